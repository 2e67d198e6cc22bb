using XenBackends.Native.IO;
using XenBackends.Rings.Blkif;
using XenBackends.Xenbus;

namespace XenBackends.Backend.Block.Tests;

/// <summary>
/// Responses go out as requests complete, and a worker that takes over a live ring still serves
/// every request its predecessor had taken and not answered, exactly once. The two pull against
/// each other in blkif: a request and its response share a ring slot (a union in blkif.h), so a
/// fast request's response overwrites the slot of an earlier, slower request, and a successor that
/// resumed at the shared rsp_prod would lose the slow one and replay an answered one (the SIGKILL
/// crash-consistency run saw acknowledged sectors overwritten so, when responses were out of order
/// without a journal). The request journal (BlkifJournal) reconciles them. Deterministic: an engine
/// that never completes the first request plays the slow one, a disconnect that abandons it plays
/// the kill, and a second BlockDevice over the same journal directory plays the new process.
/// </summary>
public sealed class OutOfOrderResponseTests : IDisposable
{
    private const long StuckOffset = 0;
    private readonly string _journals = Directory.CreateTempSubdirectory("blk-journal-").FullName;

    public void Dispose() => Directory.Delete(_journals, recursive: true);

    [Fact]
    public async Task A_later_request_is_answered_while_an_earlier_one_is_still_in_the_engine()
    {
        ScriptedIoEngine? engine = null;
        await using var h = await BlockHarness.CreateAsync(1 << 20, StuckFirstWrite(e => engine = e));
        var front = await h.ConnectAsync();
        var (_, g1) = front.AllocateDataPage();
        var (_, g2) = front.AllocateDataPage();
        front.PutRw(0, BlkifOp.Write, 1, 0, [new BlkifRequestSegment { Gref = g1, FirstSect = 0, LastSect = 7 }]);
        front.PutRw(0, BlkifOp.Write, 2, 8, [new BlkifRequestSegment { Gref = g2, FirstSect = 0, LastSect = 7 }]);
        front.Push(0);

        var responses = await front.WaitForResponsesAsync(0, 1, TimeSpan.FromSeconds(20));
        Assert.Equal([new TestBlkfront.Response(2, BlkifOp.Write, BlkifRsp.Okay)], responses);
        Assert.Equal(1, engine!.Hung);
        await h.Block.DisconnectAsync(CancellationToken.None);
    }

    [Fact]
    public async Task A_worker_taking_over_the_ring_serves_exactly_the_requests_its_predecessor_left_unanswered()
    {
        await using var h = await BlockHarness.CreateAsync(1 << 20, StuckFirstWrite(_ => { }));
        var front = await h.ConnectAsync();
        var (f1, g1) = front.AllocateDataPage();
        front.Page(f1).Fill(0xA1);
        front.PutRw(0, BlkifOp.Write, 1, 0, [new BlkifRequestSegment { Gref = g1, FirstSect = 0, LastSect = 7 }]);
        for (ulong id = 2; id <= 4; id++)
        {
            var (_, g) = front.AllocateDataPage();
            front.PutRw(0, BlkifOp.Read, id, 8 * id, [new BlkifRequestSegment { Gref = g, FirstSect = 0, LastSect = 7 }]);
        }
        front.Push(0);
        var responses = await front.WaitForResponsesAsync(0, 3, TimeSpan.FromSeconds(20));
        Assert.Equal([2UL, 3UL, 4UL], responses.Select(r => r.Id).Order());

        // The worker dies with request 1 unanswered (abandoned, as a SIGKILL leaves it); the guest
        // has already reused request 1's ring slot for an answer. The device stays Connected, as
        // xenstore is left for a restarted worker.
        await h.Block.DisconnectAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20));
        await h.Store.WriteAsync(BlockHarness.Path.Backend + "/state", "4");

        // A new process: a new device over the same journal directory, with a real engine.
        await using var successor = await StartSuccessorAsync(h, new BlockBackendOptions { JournalDirectory = _journals, DrainTimeout = TimeSpan.FromSeconds(5) });
        Assert.True(successor.Queues[0].Resumed, successor.Queues[0].ResumeProblem);
        Assert.Equal(1, successor.Queues[0].ReplayedRequests);

        responses = await front.WaitForResponsesAsync(0, 1, TimeSpan.FromSeconds(10));
        Assert.Equal([new TestBlkfront.Response(1, BlkifOp.Write, BlkifRsp.Okay)], responses);
        // Nothing answered twice: the ring still works and the next request gets the next answer.
        var (_, g5) = front.AllocateDataPage();
        front.PutRw(0, BlkifOp.Read, 5, 64, [new BlkifRequestSegment { Gref = g5, FirstSect = 0, LastSect = 7 }]);
        front.Push(0);
        Assert.Equal([new TestBlkfront.Response(5, BlkifOp.Read, BlkifRsp.Okay)], await front.WaitForResponsesAsync(0, 1, TimeSpan.FromSeconds(10)));
        await successor.DisconnectAsync(CancellationToken.None);
        Assert.Equal(0, front.TakeResponses(0, []));
        Assert.All(h.ReadImage().AsSpan(0, 4096).ToArray(), b => Assert.Equal(0xA1, b));
    }

    [Fact]
    public async Task A_fresh_connection_starts_its_journal_over_and_replays_nothing()
    {
        await using var h = await BlockHarness.CreateAsync(1 << 20, StuckFirstWrite(_ => { }));
        var front = await h.ConnectAsync();
        var (_, g1) = front.AllocateDataPage();
        front.PutRw(0, BlkifOp.Write, 1, 0, [new BlkifRequestSegment { Gref = g1, FirstSect = 0, LastSect = 7 }]);
        front.Push(0);
        await Task.Delay(100);
        await h.Block.DisconnectAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20));

        // The guest rebooted: a new ring, the backend back in InitWait (not Connected).
        await h.Store.WriteAsync(BlockHarness.Path.Backend + "/state", "2");
        var rebooted = TestBlkfront.Create(h.Guest, BlkifAbi.X86_64, 0, 1);
        await rebooted.WriteKeysAsync(h.Store, BlockHarness.Path.ExpectedFrontend);
        ScriptedIoEngine? engine = null;
        await using var successor = await StartSuccessorAsync(h, StuckFirstWrite(e => engine = e, stuck: false));
        Assert.False(successor.Queues[0].Resumed);
        Assert.Null(successor.Queues[0].ResumeProblem);
        rebooted.PutOperation(0, BlkifOp.FlushDiskCache, 9);
        await rebooted.RoundTripAsync(0);
        Assert.Equal([IoOp.Flush], engine!.Requests);
        await successor.DisconnectAsync(CancellationToken.None);
    }

    [Fact]
    public async Task A_resume_onto_a_ring_the_journal_does_not_describe_says_so_and_serves_from_rsp_prod()
    {
        await using var h = await BlockHarness.CreateAsync(1 << 20, StuckFirstWrite(_ => { }));
        var front = await h.ConnectAsync();
        front.PutOperation(0, BlkifOp.FlushDiskCache, 9);
        await front.RoundTripAsync(0);
        await h.Block.DisconnectAsync(CancellationToken.None);

        // Still Connected in xenstore, but the frontend now names other ring pages.
        await h.Store.WriteAsync(BlockHarness.Path.Backend + "/state", "4");
        var other = TestBlkfront.Create(h.Guest, BlkifAbi.X86_64, 0, 1);
        await other.WriteKeysAsync(h.Store, BlockHarness.Path.ExpectedFrontend);
        await using var successor = await StartSuccessorAsync(h, new BlockBackendOptions { JournalDirectory = _journals });
        Assert.False(successor.Queues[0].Resumed);
        Assert.Contains("no journal for this ring", successor.Queues[0].ResumeProblem);
        other.PutOperation(0, BlkifOp.FlushDiskCache, 10);
        await other.RoundTripAsync(0);
        await successor.DisconnectAsync(CancellationToken.None);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Every_kind_of_request_left_in_flight_is_served_again_in_ring_order_by_the_successor(bool indirect)
    {
        // The first worker's engine completes nothing: everything it took is in flight when it dies.
        await using var h = await BlockHarness.CreateAsync(4 << 20, new BlockBackendOptions
        {
            JournalDirectory = _journals,
            DrainTimeout = TimeSpan.FromMilliseconds(200),
            IoEngineFactory = capacity => new ScriptedIoEngine(capacity, _ => null),
        });
        var front = await h.ConnectAsync();
        var expected = new List<TestBlkfront.Response>();
        ulong id = 100;
        void Write(ulong sector, byte fill, byte op = BlkifOp.Write)
        {
            var (f, g) = front.AllocateDataPage();
            front.Page(f).Fill(fill);
            front.PutRw(0, op, ++id, sector, [new BlkifRequestSegment { Gref = g, FirstSect = 0, LastSect = 7 }]);
            expected.Add(new TestBlkfront.Response(id, op, BlkifRsp.Okay));
        }
        Write(0, 0x11);
        Write(8, 0x22);
        front.PutOperation(0, BlkifOp.FlushDiskCache, ++id);
        expected.Add(new TestBlkfront.Response(id, BlkifOp.FlushDiskCache, BlkifRsp.Okay));
        Write(16, 0x33, BlkifOp.WriteBarrier);
        Write(0, 0x44); // after the barrier: must land after the first write to sector 0
        front.PutDiscard(0, ++id, 64, 8);
        expected.Add(new TestBlkfront.Response(id, BlkifOp.Discard, BlkifRsp.Okay));
        if (indirect)
        {
            var (pf, pg) = front.AllocateDataPage();
            var segments = new BlkifRequestSegment[20];
            for (int i = 0; i < segments.Length; i++)
            {
                var (f, g) = front.AllocateDataPage();
                front.Page(f).Fill((byte)(0x60 + i));
                segments[i] = new BlkifRequestSegment { Gref = g, FirstSect = 0, LastSect = 7 };
            }
            front.WriteIndirectPage(pf, segments);
            front.PutIndirect(0, BlkifOp.Write, ++id, 256, (ushort)segments.Length, [pg]);
            expected.Add(new TestBlkfront.Response(id, BlkifOp.Write, BlkifRsp.Okay));
        }
        var (_, rg) = front.AllocateDataPage();
        front.PutRw(0, BlkifOp.Read, ++id, 8, [new BlkifRequestSegment { Gref = rg, FirstSect = 0, LastSect = 7 }]);
        expected.Add(new TestBlkfront.Response(id, BlkifOp.Read, BlkifRsp.Okay));
        front.Push(0);
        await Task.Delay(300);
        await h.Block.DisconnectAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(0, front.TakeResponses(0, []));
        await h.Store.WriteAsync(BlockHarness.Path.Backend + "/state", "4");

        await using var successor = await StartSuccessorAsync(h, new BlockBackendOptions { JournalDirectory = _journals, DrainTimeout = TimeSpan.FromSeconds(5) });
        Assert.True(successor.Queues[0].Resumed, successor.Queues[0].ResumeProblem);
        var responses = await front.WaitForResponsesAsync(0, expected.Count, TimeSpan.FromSeconds(20));
        Assert.Equal(expected.OrderBy(r => r.Id), responses.OrderBy(r => r.Id));
        await successor.DisconnectAsync(CancellationToken.None);
        byte[] image = h.ReadImage();
        Assert.All(image.AsSpan(0, 4096).ToArray(), b => Assert.Equal(0x44, b));
        Assert.All(image.AsSpan(8 * 512, 4096).ToArray(), b => Assert.Equal(0x22, b));
        Assert.All(image.AsSpan(16 * 512, 4096).ToArray(), b => Assert.Equal(0x33, b));
        if (indirect)
            Assert.All(image.AsSpan(256 * 512 + 19 * 4096, 4096).ToArray(), b => Assert.Equal(0x60 + 19, b));
    }

    /// <summary>Options whose engines never complete the write at <see cref="StuckOffset"/> and complete everything else at once.</summary>
    /// <summary>A new worker's device (a restarted process) over the harness's xenstore device, prepared and connected.</summary>
    private static async Task<BlockDevice> StartSuccessorAsync(BlockHarness h, BlockBackendOptions options)
    {
        var successor = new BlockDevice(h.Host.CreateGrantMapper(), () => h.Host.OpenEventChannels(SimulatedHost.SimulatedXenHost.Dom0), options);
        try
        {
            await successor.PrepareAsync(h.Device, CancellationToken.None);
            await successor.ConnectAsync(h.Device, CancellationToken.None);
            return successor;
        }
        catch
        {
            await successor.DisposeAsync();
            throw;
        }
    }

    private BlockBackendOptions StuckFirstWrite(Action<ScriptedIoEngine> created, bool stuck = true) => new()
    {
        JournalDirectory = _journals,
        DrainTimeout = TimeSpan.FromMilliseconds(200),
        IoEngineFactory = capacity =>
        {
            var engine = new ScriptedIoEngine(capacity, r =>
                stuck && r.Op == IoOp.WriteVector && r.Offset == StuckOffset ? null : r.Op is IoOp.ReadVector or IoOp.WriteVector ? 4096 : 0);
            created(engine);
            return engine;
        },
    };
}
