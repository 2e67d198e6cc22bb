using XenBackends.Backend.Block;
using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;
using Xunit.Abstractions;

namespace XenBackends.Migration.Tests;

public class SaveRestoreTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Connect = TimeSpan.FromSeconds(30);
    private const long ImageBytes = 32 << 20;

    /// <summary>
    /// Every kind of request is in flight when the guest is saved, on a source whose image never
    /// answers. The save must not wait for that I/O (the default 30 s drain would), and after the
    /// restore against a destination without discard, each request completes exactly once: OKAY, or
    /// EOPNOTSUPP for the discards, never ERROR; the data on disk is what the guest wrote.
    /// </summary>
    [Fact]
    public async Task Requests_in_flight_at_save_are_reissued_whole_and_never_fail()
    {
        await using var h = await MigrationHost.StartAsync(
            path => path.FrontendDomId == 7
                ? new BlockBackendOptions { IoEngineFactory = capacity => new HungIoEngine(capacity) }
                : new BlockBackendOptions(),
            // libxl would force the removal after 10 s; a generous toolstack wait shows the bound
            // comes from the backend releasing the device itself.
            new ToolstackOptions { DestroyTimeout = TimeSpan.FromSeconds(60) });
        string image = h.CreateImage(ImageBytes);
        await h.Toolstack.CreateDomainAsync(new DomainSpec(7, "guest") { Pages = 16384, GrantEntries = 16384 });
        var disk = await h.Toolstack.AddDiskAsync(7, new DiskSpec("xvda", image) { Script = "/x" });
        await using var blk = await SimulatedBlkfront.AttachAsync(h.Toolstack.GetGuest(7), disk.DevId, new BlkfrontOptions { MaxIndirectSegments = 64, MaxQueues = 2 });
        await blk.WaitConnectedAsync(Connect);
        Assert.True(blk.FeatureDiscard);

        var rng = new Random(5);
        byte[] shadow = new byte[ImageBytes];
        var writes = new List<Task<short>>();
        var discards = new List<Task<short>>();
        for (int slot = 0; slot < 24; slot++)
        {
            // Slots of 1 MiB, none overlapping: the order of re-issue cannot change the result.
            long sector = slot * 2048L;
            int bytes = slot % 3 == 0 ? 64 * 4096 : 4096 * rng.Next(1, 12); // every third is indirect
            byte[] data = new byte[bytes];
            rng.NextBytes(data);
            data.CopyTo(shadow, sector * 512);
            writes.Add(slot % 4 == 1 ? blk.BarrierAsync((ulong)sector, data.AsMemory(0, Math.Min(bytes, 11 * 4096)).ToArray())
                                     : blk.WriteAsync((ulong)sector, data));
            if (slot % 4 == 1)
                Array.Clear(shadow, (int)(sector * 512) + Math.Min(bytes, 11 * 4096), bytes - Math.Min(bytes, 11 * 4096));
        }
        writes.Add(blk.FlushAsync());
        writes.Add(blk.BarrierAsync(0, ReadOnlyMemory<byte>.Empty));
        discards.Add(blk.DiscardAsync(60_000, 64));
        discards.Add(blk.DiscardAsync(61_000, 64, secure: true));
        int issued = writes.Count + discards.Count;

        var source = h.Device(disk.Path);
        await WaitUntil(() => source.Device.Queues.Sum(q => q.IoEngineName == "hung" ? 1 : 0) > 0 && HungIoEngine.TotalAccepted > 0, "the source backend to accept I/O");

        var moved = await h.Toolstack.SaveRestoreAsync(7, new SaveRestoreSpec(8) { RestoreDisk = d => d with { DiscardEnable = false } });
        output.WriteLine($"suspend {moved.Suspended.TotalMilliseconds:0} ms, source gone {moved.SourceDestroyed.TotalMilliseconds:0} ms, total {moved.Total.TotalMilliseconds:0} ms");
        // The hung source was released well inside its 30 s drain and libxl's 60 s wait.
        Assert.True(moved.SourceDestroyed < TimeSpan.FromSeconds(10), $"the save took {moved.SourceDestroyed}");
        Assert.False(h.IsServing(disk.Path));
        Assert.Empty(source.Device.Queues);
        Assert.False(source.Lifecycle.RingsUp);

        await blk.WaitConnectedAsync(Connect);
        Assert.Equal("/local/domain/8/device/vbd/51712", blk.NodeName);
        Assert.False(blk.FeatureDiscard); // blkif_recover re-read the destination's features
        short[] ws = await Task.WhenAll(writes).WaitAsync(Connect);
        short[] ds = await Task.WhenAll(discards).WaitAsync(Connect);
        Assert.All(ws, s => Assert.Equal(BlkifRsp.Okay, s));
        Assert.All(ds, s => Assert.Equal(BlkifRsp.EOpNotSupp, s));
        Assert.Equal(issued, blk.ReissuedRequests);
        output.WriteLine($"re-issued {blk.ReissuedRequests} of {issued}: " + string.Join(", ", blk.ReissuedByOperation.OrderBy(p => p.Key).Select(p => $"op {p.Key}: {p.Value}")));

        await VerifyAsync(blk, shadow, image);
    }

    /// <summary>
    /// Load never stops while the guest is saved and restored (and migrated) again and again, onto
    /// destinations that alternately lack indirect descriptors; nothing fails, nothing is lost.
    /// </summary>
    [Fact]
    public async Task Repeated_save_restore_and_migrate_under_load_has_no_errors()
    {
        const int Cycles = 12;
        await using var h = await MigrationHost.StartAsync(
            path => path.FrontendDomId % 2 == 0 ? new BlockBackendOptions() : new BlockBackendOptions { MaxIndirectSegments = 11, MaxQueues = 1 });
        string image = h.CreateImage(ImageBytes);
        ushort domid = 10;
        await h.Toolstack.CreateDomainAsync(new DomainSpec(domid, "guest") { Pages = 16384, GrantEntries = 16384 });
        var disk = await h.Toolstack.AddDiskAsync(domid, new DiskSpec("xvda", image) { Script = "/x" });
        await using var blk = await SimulatedBlkfront.AttachAsync(h.Toolstack.GetGuest(domid), disk.DevId, new BlkfrontOptions { MaxIndirectSegments = 32 });
        await blk.WaitConnectedAsync(Connect);

        byte[] shadow = new byte[ImageBytes];
        int errors = 0, completed = 0, notSupported = 0;
        using var stop = new CancellationTokenSource();
        // Eight writers, each owning 4 MiB and issuing in order, so the shadow is exact.
        var writers = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            var rng = new Random(w);
            long baseSector = w * 8192L;
            while (!stop.IsCancellationRequested)
            {
                int kind = rng.Next(10);
                short status;
                if (kind == 0)
                    status = await blk.FlushAsync();
                else if (kind == 1)
                {
                    long at = baseSector + 8L * rng.Next(0, 1000);
                    status = await blk.DiscardAsync((ulong)at, 8, secure: rng.Next(2) == 0);
                    if (status == BlkifRsp.Okay)
                        Array.Clear(shadow, (int)(at * 512), 4096);
                }
                else
                {
                    // The block layer sizes new requests by the limit of the current connection.
                    int pages = kind == 2 ? Math.Min(32, blk.MaxSegments) : rng.Next(1, 12);
                    long at = baseSector + 8L * rng.Next(0, 1024 - pages);
                    byte[] data = new byte[pages * 4096];
                    rng.NextBytes(data);
                    try
                    {
                        status = kind == 3 ? await blk.BarrierAsync((ulong)at, data.AsMemory(0, Math.Min(data.Length, 11 * 4096)).ToArray())
                                           : await blk.WriteAsync((ulong)at, data);
                    }
                    catch (ArgumentException)
                    {
                        continue; // sized just before a restore lowered the limit; nothing was issued
                    }
                    if (status == BlkifRsp.Okay)
                        data.AsSpan(0, kind == 3 ? Math.Min(data.Length, 11 * 4096) : data.Length).CopyTo(shadow.AsSpan((int)(at * 512)));
                }
                if (status == BlkifRsp.Error) Interlocked.Increment(ref errors);
                else if (status == BlkifRsp.EOpNotSupp) Interlocked.Increment(ref notSupported);
                Interlocked.Increment(ref completed);
            }
        })).ToArray();

        for (int cycle = 0; cycle < Cycles; cycle++)
        {
            int before = Volatile.Read(ref completed);
            await WaitUntil(() => Volatile.Read(ref completed) > before + 100, "load between cycles");
            ushort next = (ushort)(domid + 1);
            await h.Toolstack.SaveRestoreAsync(domid, new SaveRestoreSpec(next) { Migrate = cycle % 2 == 1 });
            domid = next;
            await blk.WaitConnectedAsync(Connect);
            Assert.Equal(domid % 2 == 0 ? 32u : 0u, blk.MaxIndirectSegments);
        }
        await WaitUntil(() => Volatile.Read(ref completed) > 0, "load after the last cycle");
        stop.Cancel();
        await Task.WhenAll(writers).WaitAsync(Connect);

        output.WriteLine($"cycles {Cycles}, requests completed {completed}, re-issued {blk.ReissuedRequests} (" +
            string.Join(", ", blk.ReissuedByOperation.OrderBy(p => p.Key).Select(p => $"op {p.Key}: {p.Value}")) + $"), errors {errors}, EOPNOTSUPP {notSupported}");
        Assert.Equal(0, errors);
        Assert.Equal(0, notSupported);
        await VerifyAsync(blk, shadow, image);
    }

    /// <summary>
    /// xl migrate destroys the source only after the destination reported a successful start
    /// (xl_migrate.c: "Target reports successful startup", then libxl_domain_destroy): the guest
    /// already runs on the destination's backends while the source's are still attached. The
    /// source's removal is held in its hotplug script until the guest has done I/O on the
    /// destination; a toolstack that destroyed the source first would never get there.
    /// </summary>
    [Fact]
    public async Task Migrate_runs_the_guest_on_the_destination_before_the_source_is_destroyed()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var h = await MigrationHost.StartAsync(toolstack: new ToolstackOptions { HotplugScripts = new HoldRemoval("/vbd/40/", release.Task) });
        string image = h.CreateImage(ImageBytes);
        await h.Toolstack.CreateDomainAsync(new DomainSpec(40, "guest") { Pages = 16384, GrantEntries = 16384 });
        var disk = await h.Toolstack.AddDiskAsync(40, new DiskSpec("xvda", image) { Script = "/x" });
        await using var blk = await SimulatedBlkfront.AttachAsync(h.Toolstack.GetGuest(40), disk.DevId);
        await blk.WaitConnectedAsync(Connect);
        byte[] data = new byte[8192];
        new Random(40).NextBytes(data);
        Assert.Equal(BlkifRsp.Okay, await blk.WriteAsync(0, data));

        var move = h.Toolstack.SaveRestoreAsync(40, new SaveRestoreSpec(41) { Migrate = true });
        await blk.WaitUntilAsync(() => blk.IsConnected && blk.NodeName.StartsWith("/local/domain/41/", StringComparison.Ordinal), Connect, "connect on the destination");
        Assert.Equal(BlkifRsp.Okay, await blk.WriteAsync(16, data));
        Assert.False(move.IsCompleted);
        Assert.Equal(40, h.Toolstack.GetGuest(40).Domid); // the source domain still exists
        Assert.NotNull(await h.Toolstack.Dom0.TryReadStringAsync(disk.BackendPath + "/state"));

        release.SetResult();
        await move.WaitAsync(Connect);
        Assert.Throws<KeyNotFoundException>(() => h.Toolstack.GetGuest(40));
        await WaitUntil(() => !h.IsServing(disk.Path), "the source backend to finish");
        byte[] back = new byte[8192];
        Assert.Equal(BlkifRsp.Okay, await blk.ReadAsync(16, back));
        Assert.Equal(data, back);
    }

    /// <summary>The stock scripts, except that removing a matching backend waits for a signal.</summary>
    private sealed class HoldRemoval(string backendPart, Task released) : IHotplugScripts
    {
        private readonly DefaultHotplugScripts _default = new();

        public async Task RunAsync(HotplugInvocation invocation, XenBackends.XenStore.XenStoreClient dom0, CancellationToken cancellationToken)
        {
            if (invocation.Action == "remove" && invocation.BackendPath.Contains(backendPart, StringComparison.Ordinal))
                await released.WaitAsync(cancellationToken);
            await _default.RunAsync(invocation, dom0, cancellationToken);
        }
    }

    private static async Task VerifyAsync(SimulatedBlkfront blk, byte[] shadow, string image)
    {
        Assert.Equal(BlkifRsp.Okay, await blk.FlushAsync());
        int chunk = 11 * 4096;
        for (int offset = 0; offset < shadow.Length; offset += chunk)
        {
            byte[] back = new byte[Math.Min(chunk, shadow.Length - offset)];
            Assert.Equal(BlkifRsp.Okay, await blk.ReadAsync((ulong)(offset / 512), back));
            Assert.True(shadow.AsSpan(offset, back.Length).SequenceEqual(back), $"the guest reads other data at byte {offset}");
        }
        byte[] onDisk = await File.ReadAllBytesAsync(image);
        Assert.True(shadow.AsSpan().SequenceEqual(onDisk), "the image differs from what the guest wrote");
    }

    private static async Task WaitUntil(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Connect;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(5);
        }
    }
}
