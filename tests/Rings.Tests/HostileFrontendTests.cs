using XenBackends.Rings.Blkif;

namespace XenBackends.Rings.Tests;

/// <summary>What a malicious frontend can do to the back ring, through the raw view a hostile guest uses.</summary>
public class HostileFrontendTests
{
    private static readonly RingSlotLayout Layout = BlkifProtocol.Layout(BlkifAbi.X86_64);

    [Theory]
    [InlineData(0u)]
    [InlineData(uint.MaxValue - 3)]
    public void ReqProdBeyondTheRingIsATypedStickyFault(uint start)
    {
        using var memory = UnmanagedMemory.AllocatePages(1);
        var front = FrontRing.Initialize(memory, Layout, start);
        var back = BackRing.AttachAtSharedIndexes(memory, Layout);
        front.Raw.ReqProd = start + back.Size + 1; // RING_REQUEST_PROD_OVERFLOW
        Assert.Equal(RingRead.Faulted, back.TryConsumeRequest(out BlkifX86_64Request _));
        Assert.Equal(RingFault.RequestProducerOverflow, back.Fault);

        front.Raw.ReqProd = start + 1; // a sane index again does not un-halt the ring
        Assert.Equal(RingRead.Faulted, back.TryConsumeRequest(out BlkifX86_64Request _));
        Assert.Equal(RingPoll.Faulted, back.FinalCheckForRequests());
        Assert.Equal(RingPoll.Faulted, back.PollRequests(out uint n));
        Assert.Equal(0u, n);
    }

    [Fact]
    public void ExactlyRingSizeRequestsIsNotAnOverflow()
    {
        using var memory = UnmanagedMemory.AllocatePages(1);
        var front = FrontRing.Initialize(memory, Layout);
        var back = BackRing.Attach(memory, Layout);
        front.Raw.ReqProd = back.Size;
        Assert.Equal(RingPoll.Work, back.PollRequests(out uint n));
        Assert.Equal(back.Size, n);
    }

    [Fact]
    public void ReqProdIsReadOncePerCheckAndABatchIsNotExtendedMidway()
    {
        using var memory = UnmanagedMemory.AllocatePages(1);
        var front = FrontRing.Initialize(memory, Layout);
        var back = BackRing.Attach(memory, Layout);
        front.PutRequest(new BlkifX86_64Request { Id = 1 });
        front.PutRequest(new BlkifX86_64Request { Id = 2 });
        front.PushRequestsAndCheckNotify();
        Assert.Equal(RingRead.Item, back.TryConsumeRequest(out BlkifX86_64Request first));
        // The frontend now lies about req_prod; the batch already snapshotted still completes...
        front.Raw.ReqProd = 2 + back.Size * 3;
        Assert.Equal(RingRead.Item, back.TryConsumeRequest(out BlkifX86_64Request second));
        Assert.Equal((1ul, 2ul), (first.Id, second.Id));
        Assert.Equal(RingFault.None, back.Fault);
        // ...and the next check sees the lie.
        Assert.Equal(RingRead.Faulted, back.TryConsumeRequest(out BlkifX86_64Request _));
    }

    [Fact]
    public void ARequestIsCopiedOutSoLaterWritesToTheSlotChangeNothing()
    {
        using var memory = UnmanagedMemory.AllocatePages(1);
        var front = FrontRing.Initialize(memory, Layout);
        var back = BackRing.Attach(memory, Layout);
        front.PutRequest(new BlkifX86_64Request { Operation = BlkifOp.Read, NrSegments = 1, Id = 7 });
        front.PushRequestsAndCheckNotify();
        Assert.Equal(RingRead.Item, back.TryConsumeBlkifRequest(BlkifAbi.X86_64, out BlkifRequest request));
        front.Raw.RawSlot(0)[1] = 200; // nr_segments rewritten after the copy (the XSA-155 attack)
        Assert.Equal(1, request.NrSegments);
        Assert.True(request.IsValid);
    }

    [Fact]
    public void ResumingWithMoreInFlightThanSlotsIsRefused()
    {
        using var memory = UnmanagedMemory.AllocatePages(1);
        Assert.Throws<ArgumentException>(() => BackRing.Resume(memory, Layout, 100, 0));
    }

    [Fact]
    public void AnsweringMoreThanWasConsumedIsABackendBug()
    {
        using var memory = UnmanagedMemory.AllocatePages(1);
        FrontRing.Initialize(memory, Layout);
        var back = BackRing.Attach(memory, Layout);
        Assert.Throws<InvalidOperationException>(() => back.PutBlkifResponse(1, BlkifOp.Read, BlkifRsp.Okay));
    }

    [Fact]
    public void ABackendBeyondTheRingIsAFrontendFault()
    {
        using var memory = UnmanagedMemory.AllocatePages(1);
        var front = FrontRing.Initialize(memory, Layout, uint.MaxValue);
        front.Raw.RspProd = uint.MaxValue + front.Size + 1;
        Assert.Equal(RingRead.Faulted, front.TryConsumeResponse(out BlkifX86_64Response _));
        Assert.Equal(RingFault.ResponseProducerOverflow, front.Fault);
    }
}
