using XenBackends.Rings.Blkif;

namespace XenBackends.Backend.Block.Tests;

/// <summary>
/// One test per check of the reference's validation list (blkif.h, Linux blkback, XSAs): each sends
/// the bad request, asserts the exact response, that the image is byte-for-byte untouched, and that
/// the ring still serves a good request afterwards.
/// </summary>
public sealed class ValidationTests
{
    private const long ImageBytes = 1 << 20; // 2048 sectors

    private static async Task AssertRefusedAsync(Action<TestBlkfront> put, short expected, byte expectedOperation,
        BlockBackendOptions? options = null, Dictionary<string, string?>? keys = null, BlkifAbi abi = BlkifAbi.X86_64)
    {
        await using var h = await BlockHarness.CreateAsync(ImageBytes, options, keys);
        var front = await h.ConnectAsync(abi);
        byte[] before = h.ReadImage();
        put(front);
        var response = await front.RoundTripAsync(0);
        Assert.Equal(new TestBlkfront.Response(0xBAD, expectedOperation, expected), response);
        Assert.True(before.AsSpan().SequenceEqual(h.ReadImage()), "the image changed");

        // The ring is still served.
        var (frame, gref) = front.AllocateDataPage();
        front.PutRw(0, BlkifOp.Read, 1, 0, [Seg(gref, 0, 7)]);
        Assert.Equal(new TestBlkfront.Response(1, BlkifOp.Read, BlkifRsp.Okay), await front.RoundTripAsync(0));
        Assert.Equal(before.AsSpan(0, 4096).ToArray(), front.Page(frame).ToArray());
    }

    private static BlkifRequestSegment Seg(uint gref, byte first, byte last) => new() { Gref = gref, FirstSect = first, LastSect = last };

    private static uint WritablePage(TestBlkfront f, byte fill = 0xEE)
    {
        var (frame, gref) = f.AllocateDataPage();
        f.Page(frame).Fill(fill);
        return gref;
    }

    [Fact]
    public Task ReadWithoutSegmentsIsAnError() =>
        AssertRefusedAsync(f => f.PutRw(0, BlkifOp.Read, 0xBAD, 0, []), BlkifRsp.Error, BlkifOp.Read);

    [Fact]
    public Task WriteWithoutSegmentsIsAnError() =>
        AssertRefusedAsync(f => f.PutRw(0, BlkifOp.Write, 0xBAD, 0, []), BlkifRsp.Error, BlkifOp.Write);

    [Fact]
    public Task DirectRequestWithTwelveSegmentsIsAnError() =>
        AssertRefusedAsync(f =>
        {
            uint g = WritablePage(f);
            var segs = Enumerable.Range(0, 11).Select(_ => Seg(g, 0, 7)).ToArray();
            f.PutRw(0, BlkifOp.Write, 0xBAD, 0, segs, nrSegments: 12);
        }, BlkifRsp.Error, BlkifOp.Write);

    [Fact]
    public Task FirstSectAfterLastSectIsAnError() =>
        AssertRefusedAsync(f => f.PutRw(0, BlkifOp.Write, 0xBAD, 0, [Seg(WritablePage(f), 5, 4)]), BlkifRsp.Error, BlkifOp.Write);

    [Fact]
    public Task LastSectOutsideThePageIsAnError() =>
        AssertRefusedAsync(f => f.PutRw(0, BlkifOp.Write, 0xBAD, 0, [Seg(WritablePage(f), 0, 8)]), BlkifRsp.Error, BlkifOp.Write);

    [Fact]
    public Task WriteBeyondTheEndOfTheImageIsAnError() =>
        AssertRefusedAsync(f => f.PutRw(0, BlkifOp.Write, 0xBAD, 2047, [Seg(WritablePage(f), 0, 1)]), BlkifRsp.Error, BlkifOp.Write);

    [Fact]
    public Task SectorRangeThatWrapsU64IsAnError() =>
        AssertRefusedAsync(f => f.PutRw(0, BlkifOp.Write, 0xBAD, ulong.MaxValue - 3, [Seg(WritablePage(f), 0, 7)]), BlkifRsp.Error, BlkifOp.Write);

    [Fact]
    public Task MisalignedSectorOnA4KDiskIsAnError() =>
        AssertRefusedAsync(f => f.PutRw(0, BlkifOp.Write, 0xBAD, 1, [Seg(WritablePage(f), 0, 7)]), BlkifRsp.Error, BlkifOp.Write,
            new BlockBackendOptions { SectorSizeOverride = 4096 });

    [Fact]
    public Task PartialSectorSegmentOnA4KDiskIsAnError() =>
        AssertRefusedAsync(f => f.PutRw(0, BlkifOp.Write, 0xBAD, 8, [Seg(WritablePage(f), 0, 3)]), BlkifRsp.Error, BlkifOp.Write,
            new BlockBackendOptions { SectorSizeOverride = 4096 });

    [Fact]
    public Task MisalignedDiscardOnA4KDiskIsAnError() =>
        AssertRefusedAsync(f => f.PutDiscard(0, 0xBAD, 8, 4), BlkifRsp.Error, BlkifOp.Discard,
            new BlockBackendOptions { SectorSizeOverride = 4096 });

    [Fact]
    public Task DiscardBeyondTheEndIsAnError() =>
        AssertRefusedAsync(f => f.PutDiscard(0, 0xBAD, 2000, 49), BlkifRsp.Error, BlkifOp.Discard);

    [Fact]
    public Task DiscardThatWrapsU64IsAnError() =>
        AssertRefusedAsync(f => f.PutDiscard(0, 0xBAD, 8, ulong.MaxValue - 4), BlkifRsp.Error, BlkifOp.Discard);

    [Fact]
    public Task DiscardWhenDiscardIsDisabledIsNotSupported() =>
        AssertRefusedAsync(f => f.PutDiscard(0, 0xBAD, 0, 8), BlkifRsp.EOpNotSupp, BlkifOp.Discard,
            keys: new() { ["discard-enable"] = "0" });

    private static readonly Dictionary<string, string?> ReadOnly = new() { ["mode"] = "r" };

    [Fact]
    public Task WriteToAReadOnlyDiskIsAnError() =>
        AssertRefusedAsync(f => f.PutRw(0, BlkifOp.Write, 0xBAD, 0, [Seg(WritablePage(f), 0, 7)]), BlkifRsp.Error, BlkifOp.Write, keys: ReadOnly);

    /// <summary>
    /// Found on real Xen (lab disk): Linux blkfront's empty flush carries sector_number
    /// (sector_t)-1; blkback checks no range for zero sectors. Answering ERROR made blkfront log
    /// "empty flush op failed" and disable flushes.
    /// </summary>
    [Theory]
    [InlineData(BlkifOp.FlushDiskCache)]
    [InlineData(BlkifOp.WriteBarrier)]
    public async Task EmptyFlushWithLinuxSectorMinusOneSucceeds(byte op)
    {
        await using var h = await BlockHarness.CreateAsync(ImageBytes);
        var front = await h.ConnectAsync(BlkifAbi.X86_64);
        front.PutRw(0, op, 9, ulong.MaxValue, []);
        Assert.Equal(new TestBlkfront.Response(9, op, BlkifRsp.Okay), await front.RoundTripAsync(0));
    }

    [Fact]
    public Task FlushOnAReadOnlyDiskIsAnError() =>
        AssertRefusedAsync(f => f.PutRw(0, BlkifOp.FlushDiskCache, 0xBAD, 0, []), BlkifRsp.Error, BlkifOp.FlushDiskCache, keys: ReadOnly);

    [Fact]
    public Task BarrierOnAReadOnlyDiskIsAnError() =>
        AssertRefusedAsync(f => f.PutRw(0, BlkifOp.WriteBarrier, 0xBAD, 0, []), BlkifRsp.Error, BlkifOp.WriteBarrier, keys: ReadOnly);

    [Fact]
    public Task DiscardOnAReadOnlyDiskIsAnError() =>
        AssertRefusedAsync(f => f.PutDiscard(0, 0xBAD, 0, 8), BlkifRsp.Error, BlkifOp.Discard, keys: ReadOnly);

    /// <summary>
    /// Found on real Xen (lab smoke): Linux blkfront checks a response's operation against the
    /// request's indirect_op and disabled the disk ("response has wrong operation (6 instead of 1)")
    /// when we echoed BLKIF_OP_INDIRECT. Linux blkback answers with the indirect_op; so must we.
    /// </summary>
    [Theory]
    [InlineData(BlkifOp.Read)]
    [InlineData(BlkifOp.Write)]
    public async Task IndirectRequestIsAnsweredWithItsIndirectOp(byte op)
    {
        await using var h = await BlockHarness.CreateAsync(ImageBytes);
        var front = await h.ConnectAsync(BlkifAbi.X86_64);
        var (ind, indRef) = front.AllocateDataPage(readOnly: true);
        front.WriteIndirectPage(ind, [Seg(WritablePage(front), 0, 7), Seg(WritablePage(front), 0, 7)]);
        front.PutIndirect(0, op, 7, 0, 2, [indRef]);
        Assert.Equal(new TestBlkfront.Response(7, op, BlkifRsp.Okay), await front.RoundTripAsync(0));
    }

    [Fact]
    public Task IndirectWriteToAReadOnlyDiskIsAnError() =>
        AssertRefusedAsync(f =>
        {
            var (ind, indRef) = f.AllocateDataPage(readOnly: true);
            f.WriteIndirectPage(ind, [Seg(WritablePage(f), 0, 7)]);
            f.PutIndirect(0, BlkifOp.Write, 0xBAD, 0, 1, [indRef]);
        }, BlkifRsp.Error, BlkifOp.Write, keys: ReadOnly);

    [Theory]
    [InlineData(BlockDataPath.GrantCopy)]
    [InlineData(BlockDataPath.GrantMap)]
    public Task WriteFromAnUngrantedReferenceIsAnError(BlockDataPath path) =>
        AssertRefusedAsync(f => f.PutRw(0, BlkifOp.Write, 0xBAD, 0, [Seg(WritablePage(f), 0, 7), Seg(900, 0, 7)]), BlkifRsp.Error, BlkifOp.Write,
            new BlockBackendOptions { DataPath = path });

    [Theory]
    [InlineData(BlockDataPath.GrantCopy)]
    [InlineData(BlockDataPath.GrantMap)]
    public Task ReadIntoAReadOnlyGrantIsAnError(BlockDataPath path) =>
        AssertRefusedAsync(f =>
        {
            var (_, gref) = f.AllocateDataPage(readOnly: true);
            f.PutRw(0, BlkifOp.Read, 0xBAD, 0, [Seg(gref, 0, 7)]);
        }, BlkifRsp.Error, BlkifOp.Read, new BlockBackendOptions { DataPath = path });

    [Theory]
    [InlineData(BlkifOp.Reserved1)]
    [InlineData(7)]
    [InlineData(255)]
    public Task UnknownOperationIsNotSupported(byte op) =>
        AssertRefusedAsync(f => f.PutOperation(0, op, 0xBAD), BlkifRsp.EOpNotSupp, op);

    [Theory]
    [InlineData(BlkifOp.FlushDiskCache)]
    [InlineData(BlkifOp.Discard)]
    [InlineData(BlkifOp.Indirect)]
    [InlineData(9)]
    public Task IndirectWithAnIndirectOpOtherThanReadOrWriteIsAnError(byte indirectOp) =>
        AssertRefusedAsync(f =>
        {
            var (ind, indRef) = f.AllocateDataPage(readOnly: true);
            f.WriteIndirectPage(ind, [Seg(WritablePage(f), 0, 7)]);
            f.PutIndirect(0, indirectOp, 0xBAD, 0, 1, [indRef]);
        }, BlkifRsp.Error, indirectOp);

    [Fact]
    public Task IndirectWithoutSegmentsIsAnError() =>
        AssertRefusedAsync(f =>
        {
            var (_, indRef) = f.AllocateDataPage(readOnly: true);
            f.PutIndirect(0, BlkifOp.Write, 0xBAD, 0, 0, [indRef]);
        }, BlkifRsp.Error, BlkifOp.Write);

    [Fact]
    public Task IndirectWithMoreSegmentsThanAdvertisedIsAnError() =>
        AssertRefusedAsync(f =>
        {
            uint g = WritablePage(f);
            var (ind, indRef) = f.AllocateDataPage(readOnly: true);
            f.WriteIndirectPage(ind, Enumerable.Range(0, 257).Select(_ => Seg(g, 0, 7)).ToArray());
            f.PutIndirect(0, BlkifOp.Write, 0xBAD, 0, 257, [indRef]);
        }, BlkifRsp.Error, BlkifOp.Write);

    [Fact]
    public Task IndirectSegmentOutsideItsPageIsAnError() =>
        AssertRefusedAsync(f =>
        {
            uint g = WritablePage(f);
            var (ind, indRef) = f.AllocateDataPage(readOnly: true);
            f.WriteIndirectPage(ind, [Seg(g, 0, 7), Seg(g, 0, 9)]);
            f.PutIndirect(0, BlkifOp.Write, 0xBAD, 0, 2, [indRef]);
        }, BlkifRsp.Error, BlkifOp.Write);

    [Fact]
    public Task IndirectPageThatIsNotGrantedIsAnError() =>
        AssertRefusedAsync(f => f.PutIndirect(0, BlkifOp.Write, 0xBAD, 0, 4, [901]), BlkifRsp.Error, BlkifOp.Write);

    [Fact]
    public Task IndirectRangeBeyondTheEndIsAnError() =>
        AssertRefusedAsync(f =>
        {
            uint g = WritablePage(f);
            var (ind, indRef) = f.AllocateDataPage(readOnly: true);
            f.WriteIndirectPage(ind, Enumerable.Range(0, 20).Select(_ => Seg(g, 0, 7)).ToArray());
            f.PutIndirect(0, BlkifOp.Write, 0xBAD, 2048 - 8 * 19, 20, [indRef]);
        }, BlkifRsp.Error, BlkifOp.Write, abi: BlkifAbi.X86_32);
}
