using XenBackends.Rings.Blkif;
using XenBackends.Rings.Netif;

namespace XenBackends.Rings.Tests;

/// <summary>
/// A C# frontend and backend on one ring under a seeded random scheduler that models event
/// channels: a side that went to sleep (final check said idle) runs again only once the other
/// side's push said notify. If both sleep with work outstanding, a wakeup was lost. Indexes start
/// near 2^32 so every run crosses the wrap.
/// </summary>
public class RingPropertyTests
{
    public static TheoryData<string, int, uint, int> Cases => new()
    {
        { "blkif", 1, uint.MaxValue - 10, 1 },
        { "blkif", 4, uint.MaxValue - 300, 2 },
        { "blkif", 16, uint.MaxValue, 3 },
        { "netif_tx", 1, uint.MaxValue - 100, 4 },
        { "netif_rx", 2, 0u, 5 },
        { "ctrl", 1, uint.MaxValue - 1, 6 },
    };

    private static RingSlotLayout LayoutOf(string ring) => ring switch
    {
        "blkif" => BlkifProtocol.Layout(BlkifAbi.X86_64),
        "netif_tx" => NetifRings.Tx,
        "netif_rx" => NetifRings.Rx,
        _ => NetifRings.Ctrl,
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryRequestIsAnsweredOnceInOrderWithoutLostWakeups(string ringType, int pages, uint start, int seed)
    {
        const int Count = 50_000;
        var layout = LayoutOf(ringType);
        using var memory = UnmanagedMemory.AllocatePages(pages);
        var front = FrontRing.Initialize(memory, layout, start);
        var back = BackRing.AttachAtSharedIndexes(memory, layout);
        var r = new Random(seed);
        uint sent = 0, consumed = 0, answered = 0, received = 0;
        bool frontAsleep = false, backAsleep = false, frontPending = false, backPending = false;
        Span<byte> request = stackalloc byte[layout.RequestSize];
        bool sawFull = false, sawWrap = false;

        while (received < Count)
        {
            bool frontRunnable = !frontAsleep || frontPending;
            bool backRunnable = !backAsleep || backPending;
            Assert.True(frontRunnable || backRunnable,
                $"both ends asleep: sent {sent} consumed {consumed} answered {answered} received {received}");
            bool runFront = frontRunnable && (!backRunnable || r.Next(2) == 0);
            if (runFront)
            {
                frontAsleep = frontPending = false;
                int n = r.Next(0, (int)front.Size + 1);
                for (int i = 0; i < n && sent < Count && !front.IsFull; i++, sent++)
                    front.NextRequest().WriteUInt32(0, sent);
                sawFull |= front.IsFull;
                if (front.PushRequestsAndCheckNotify())
                    backPending = true;
                int m = r.Next(0, (int)front.Size + 1);
                for (int i = 0; i < m && front.TryConsumeResponse(out uint id) == RingRead.Item; i++, received++)
                    Assert.Equal(received, id);
                // Sleep when nothing more can be sent, and sometimes (as a guest waiting for
                // completions would) while requests are outstanding even though it could send.
                bool canSend = sent < Count && !front.IsFull;
                bool wantsSleep = !canSend || (sent != received && r.Next(3) == 0);
                if (wantsSleep && received < Count && front.FinalCheckForResponses() == RingPoll.Idle)
                    frontAsleep = true;
            }
            else
            {
                backAsleep = backPending = false;
                int n = r.Next(0, (int)back.Size + 1);
                for (int i = 0; i < n; i++)
                {
                    RingRead read = back.TryConsumeRequest(request);
                    Assert.NotEqual(RingRead.Faulted, read);
                    if (read == RingRead.Empty)
                        break;
                    Assert.Equal(consumed, BitConverter.ToUInt32(request));
                    consumed++;
                }
                // Answer some of what was consumed; requests may stay in flight across pushes.
                int a = r.Next(0, (int)(consumed - answered) + 1);
                for (int i = 0; i < a; i++, answered++)
                    back.NextResponse().WriteUInt32(0, answered);
                sawWrap |= back.RspProdPvt < start;
                if (back.PushResponsesAndCheckNotify())
                    frontPending = true;
                // Sleep only with nothing in flight, as a backend whose I/O has completed.
                if (consumed == answered && back.FinalCheckForRequests() == RingPoll.Idle)
                    backAsleep = true;
            }
        }
        Assert.Equal((uint)Count, answered);
        Assert.True(sawFull, "the ring never filled up");
        Assert.True(start == 0 || sawWrap, "the indexes never wrapped");
    }

    [Fact]
    public void EmptyRingHasNothingAndFinalCheckArmsTheNextIndex()
    {
        using var memory = UnmanagedMemory.AllocatePages(1);
        var front = FrontRing.Initialize(memory, NetifRings.Tx, uint.MaxValue);
        var back = BackRing.AttachAtSharedIndexes(memory, NetifRings.Tx);
        Assert.Equal(RingRead.Empty, back.TryConsumeRequest(out NetifTxRequest _));
        Assert.Equal(RingPoll.Idle, back.FinalCheckForRequests());
        Assert.Equal(0u, front.Raw.ReqEvent); // req_cons + 1 wrapped to 0
        Assert.Equal(front.Size, front.FreeRequests);
        Assert.Equal(RingRead.Empty, front.TryConsumeResponse(out NetifTxResponse _));
    }

    [Fact]
    public void WaitingForMoreRequestsThanPostedArmsPastReqProdSoTheNextPushKicks()
    {
        using var memory = UnmanagedMemory.AllocatePages(1);
        var front = FrontRing.Initialize(memory, NetifRings.Rx, uint.MaxValue - 1);
        var back = BackRing.AttachAtSharedIndexes(memory, NetifRings.Rx);
        front.PutRequest(new NetifRxRequest { Id = 1 });
        front.PushRequestsAndCheckNotify();
        // One buffer posted, the backend needs more: the final check sees work and arms nothing,
        // so the next push would not kick (the bug RequestKickOnNextRequest exists for).
        Assert.Equal(RingPoll.Work, back.FinalCheckForRequests());
        Assert.False(back.RequestKickOnNextRequest());
        Assert.Equal(front.ReqProdPvt + 1, front.Raw.ReqEvent); // across the 2^32 wrap
        front.PutRequest(new NetifRxRequest { Id = 2 });
        Assert.True(front.PushRequestsAndCheckNotify());
    }

    [Fact]
    public void FullRingRefusesAnotherRequestAndTheBackendStopsAtTheRingSize()
    {
        using var memory = UnmanagedMemory.AllocatePages(1);
        var layout = BlkifProtocol.Layout(BlkifAbi.X86_64);
        var front = FrontRing.Initialize(memory, layout, uint.MaxValue - 5);
        for (uint i = 0; i < front.Size; i++)
            front.PutRequest(new BlkifX86_64Request { Id = i });
        Assert.True(front.IsFull);
        Assert.Throws<InvalidOperationException>(() => front.PutRequest(new BlkifX86_64Request()));
        front.PushRequestsAndCheckNotify();

        var back = BackRing.AttachAtSharedIndexes(memory, layout);
        for (uint i = 0; i < back.Size; i++)
        {
            Assert.Equal(RingRead.Item, back.TryConsumeBlkifRequest(BlkifAbi.X86_64, out var req));
            Assert.Equal(i, req.Id);
        }
        Assert.Equal(back.Size, back.InFlight);
        Assert.Equal(RingRead.Empty, back.TryConsumeRequest(out BlkifX86_64Request _));
        Assert.Equal(RingFault.None, back.Fault);
    }

    [Fact]
    public void MemoryThatIsNotWholePagesIsRejected()
    {
        using var memory = UnmanagedMemory.AllocatePages(1);
        using var small = new SliceMemory(memory, 4000);
        Assert.Throws<ArgumentException>(() => BackRing.Attach(small, NetifRings.Rx));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)] // not a power of two: the ring still rounds down
    [InlineData(32)]
    public void AnyPageMultipleGivesAPowerOfTwoRing(int pages)
    {
        using var memory = UnmanagedMemory.AllocatePages(pages);
        var back = BackRing.Attach(memory, BlkifProtocol.Layout(BlkifAbi.X86_32));
        Assert.True(System.Numerics.BitOperations.IsPow2(back.Size));
        Assert.True(SharedRing.HeaderSize + back.Size * 108 <= memory.Length);
        Assert.True(SharedRing.HeaderSize + back.Size * 2 * 108 > memory.Length);
    }

    private sealed class SliceMemory(Native.SharedMemory inner, int length) : Native.SharedMemory(inner.Address, length)
    {
        protected override void Release()
        {
        }
    }
}

/// <summary>The per-request path (consume, decode, answer, push, final check) allocates nothing.</summary>
public class AllocationTests
{
    [Fact]
    public void ServingRequestsAllocatesNothing()
    {
        var layout = BlkifProtocol.Layout(BlkifAbi.X86_64);
        using var memory = UnmanagedMemory.AllocatePages(4);
        var front = FrontRing.Initialize(memory, layout);
        var back = BackRing.Attach(memory, layout);
        void Round()
        {
            while (!front.IsFull)
                front.PutRequest(new BlkifX86_64Request { Operation = BlkifOp.Read, NrSegments = 11, Id = front.ReqProdPvt });
            front.PushRequestsAndCheckNotify();
            while (back.TryConsumeBlkifRequest(BlkifAbi.X86_64, out BlkifRequest req) == RingRead.Item)
                back.PutBlkifResponse(req.Id, req.Operation, req.RejectionStatus);
            back.PushResponsesAndCheckNotify();
            back.FinalCheckForRequests();
            while (front.TryConsumeResponse(out BlkifX86_64Response _) == RingRead.Item)
            {
            }
            front.FinalCheckForResponses();
        }
        Round(); // JIT and first-use costs
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
            Round();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(101u * back.Size, back.RspProdPvt);
    }
}
