using System.Diagnostics;
using System.Text.Json;
using XenBackends.Rings.Blkif;
using XenBackends.Service.Config;
using XenBackends.Service.Supervisor;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;
using Xunit.Abstractions;

namespace XenBackends.Service.Tests;

/// <summary>
/// QoS from the configuration, end to end: the supervisor execs a worker per guest on the simulated
/// host and the guest's own traffic is what gets limited. These are bounds, not timings: throughput over
/// a few seconds must stay under rate x elapsed x 1.2 plus one burst (the limiters' own allowance), and
/// must be well above nothing, so a worker that stalls the device fails as surely as one that ignores
/// the limit.
/// </summary>
public sealed class QosEndToEndTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Measure = TimeSpan.FromSeconds(4);

    [Fact]
    public async Task A_vif_without_a_rate_key_is_held_to_the_configured_default_rate()
    {
        const long rate = 500_000; // bytes per second
        const int frameSize = 1400;
        using var ns = new NetNamespace();
        await using var sim = await ToolstackHost.CreateAsync();
        var command = SimHost.WorkerIn(ns);
        var config = sim.Config("vif");
        config.Qos.Defaults.VifBytesPerSecond = rate;
        await using var harness = await SupervisorHarness.StartAsync(config, sim.Spec, command, sim.Dir);
        var guest = await sim.CreateGuestAsync(26, "paced");
        var nic = await sim.Toolstack.AddNicAsync(26, new NicSpec { DevId = 0 });
        Assert.Null(await sim.Toolstack.Dom0.TryReadStringAsync(nic.BackendPath + "/rate")); // the toolstack set no rate
        await using var front = await SimulatedNetfront.AttachAsync(guest, nic.DevId, new NetfrontOptions { MaxQueues = 1 });
        await harness.StepAsync(() => front.WaitConnectedAsync(TimeSpan.FromSeconds(30)));
        ns.Ip("link", "set", "dev", "vif26.0", "up");

        var frame = new byte[frameSize];
        new byte[] { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x16, 0x3e, 0, 26, 0, 0x88, 0xb5 }.CopyTo(frame, 0);
        using var stop = new CancellationTokenSource();
        // Several senders keep the TX ring full, so the backend's credit, not the guest, sets the pace.
        var senders = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
                await front.SendAsync(frame, cancellationToken: stop.Token);
        })).ToArray();
        try
        {
            await harness.StepAsync(() => Eventually.TrueAsync(() => RxBytes(ns, "vif26.0") > 0, "the guest's frames reach the tap"));
            var clock = Stopwatch.StartNew();
            long before = RxBytes(ns, "vif26.0");
            await Task.Delay(Measure);
            long delivered = RxBytes(ns, "vif26.0") - before;
            double elapsed = clock.Elapsed.TotalSeconds;
            output.WriteLine($"vif at a {rate} B/s default: {delivered} bytes in {elapsed:F2} s = {delivered / elapsed:F0} B/s");

            // One burst: credit may build up to max(128 KiB, one window) (netback's rule), plus a frame in flight.
            double ceiling = rate * elapsed * 1.2 + 131_072 + frameSize;
            Assert.True(delivered <= ceiling, $"{delivered} bytes in {elapsed:F2} s exceeds the default rate's ceiling {ceiling:F0}");
            Assert.True(delivered >= rate * elapsed * 0.4, $"only {delivered} bytes in {elapsed:F2} s at a {rate} B/s default: the vif is stalled, not paced");
            Assert.Equal(0, front.Counters.TxErrors);
        }
        finally
        {
            await stop.CancelAsync();
            foreach (var s in senders)
                try { await s; } catch (OperationCanceledException) { }
        }
        var device = harness.Supervisor.Snapshot().Guests.Single().Devices.Single();
        Assert.Equal(0, device.Counters["tx_drops"]); // paced by deferral on the ring, never by dropping
        // The queue's passes reach status through the worker; paced TX takes at least a pass per credit window.
        Assert.True(device.Counters["passes"] >= (long)(Measure.TotalMilliseconds / 50), $"{device.Counters["passes"]} passes");
    }

    [Fact]
    public async Task A_guests_disk_iops_limit_holds_through_its_worker_and_leaves_another_guest_unlimited()
    {
        const long iops = 150;
        const int depth = 8;
        await using var sim = await ToolstackHost.CreateAsync();
        var config = sim.Config("vbd");
        config.Qos.Guests["limited"] = new GuestQos { DiskIops = iops };
        await using var harness = await SupervisorHarness.StartAsync(config, sim.Spec, SimHost.Worker, sim.Dir);
        var limitedGuest = await sim.CreateGuestAsync(27, "limited");
        var freeGuest = await sim.CreateGuestAsync(28, "free");
        var limitedDisk = await sim.Toolstack.AddDiskAsync(27, new DiskSpec("xvda", sim.CreateImage(64 << 20, "limited.img")) { Script = "block-xen-backends" });
        var freeDisk = await sim.Toolstack.AddDiskAsync(28, new DiskSpec("xvda", sim.CreateImage(64 << 20, "free.img")) { Script = "block-xen-backends" });
        await using var limited = await SimulatedBlkfront.AttachAsync(limitedGuest, limitedDisk.DevId, new BlkfrontOptions { MaxQueues = 1 });
        await using var free = await SimulatedBlkfront.AttachAsync(freeGuest, freeDisk.DevId, new BlkfrontOptions { MaxQueues = 1 });
        await harness.StepAsync(() => limited.WaitConnectedAsync(TimeSpan.FromSeconds(30)));
        await harness.StepAsync(() => free.WaitConnectedAsync(TimeSpan.FromSeconds(30)));
        // Two guests, two workers: the limit is the limited guest's worker's alone.
        Assert.NotEqual(harness.Supervisor.WorkerPids()[27], harness.Supervisor.WorkerPids()[28]);

        using var stop = new CancellationTokenSource();
        var limitedLoad = new RandomReads(limited, depth, stop.Token);
        var freeLoad = new RandomReads(free, depth, stop.Token);
        try
        {
            await harness.StepAsync(() => Eventually.TrueAsync(() => limitedLoad.Completed > 0 && freeLoad.Completed > 0, "both guests' reads complete"));
            var clock = Stopwatch.StartNew();
            long limitedBefore = limitedLoad.Completed, freeBefore = freeLoad.Completed;
            await Task.Delay(Measure);
            long limitedDone = limitedLoad.Completed - limitedBefore;
            long freeDone = freeLoad.Completed - freeBefore;
            double elapsed = clock.Elapsed.TotalSeconds;
            output.WriteLine($"disk at {iops} IOPS: {limitedDone / elapsed:F0} IOPS; unlimited guest beside it: {freeDone / elapsed:F0} IOPS ({elapsed:F2} s)");

            // One burst: the bucket holds 100 ms of tokens; plus the requests in flight when counting began.
            double ceiling = iops * elapsed * 1.2 + iops * IoRateLimiterBurstSeconds + depth;
            Assert.True(limitedDone <= ceiling, $"limited guest: {limitedDone} reads in {elapsed:F2} s exceeds {ceiling:F0} at {iops} IOPS");
            Assert.True(limitedDone >= iops * elapsed * 0.4, $"limited guest: only {limitedDone} reads in {elapsed:F2} s at {iops} IOPS: stalled, not limited");
            // Isolation: the other guest's disk runs past the limited one's ceiling.
            Assert.True(freeDone > ceiling * 1.5, $"unlimited guest: {freeDone} reads in {elapsed:F2} s, not clearly above the limited guest's ceiling {ceiling:F0}");
        }
        finally
        {
            await stop.CancelAsync();
            await limitedLoad.StopAsync();
            await freeLoad.StopAsync();
        }
        Assert.Equal(0, limitedLoad.Failed);
        Assert.Equal(0, freeLoad.Failed);
    }

    private static double IoRateLimiterBurstSeconds => Backend.Block.IoRateLimiter.BurstWindow.TotalSeconds;

    /// <summary><paramref name="depth"/> loops of random 4 KiB reads over the first 32 MiB, counting completions.</summary>
    private sealed class RandomReads
    {
        private readonly Task[] _loops;
        private long _completed;
        private long _failed;

        public RandomReads(SimulatedBlkfront disk, int depth, CancellationToken stop)
        {
            _loops = Enumerable.Range(0, depth).Select(i => Task.Run(async () =>
            {
                var random = new Random(i);
                var buffer = new byte[4096];
                while (!stop.IsCancellationRequested)
                {
                    ulong sector = (ulong)random.Next(0, (32 << 20) / 4096) * 8;
                    short status = await disk.ReadAsync(sector, buffer, cancellationToken: stop);
                    Interlocked.Increment(ref status == BlkifRsp.Okay ? ref _completed : ref _failed);
                }
            })).ToArray();
        }

        public long Completed => Interlocked.Read(ref _completed);

        public long Failed => Interlocked.Read(ref _failed);

        public async Task StopAsync()
        {
            foreach (var loop in _loops)
                try { await loop; } catch (OperationCanceledException) { }
        }
    }

    private static long RxBytes(NetNamespace ns, string link)
    {
        using var doc = JsonDocument.Parse(ns.Ip("-s", "-j", "link", "show", "dev", link));
        return doc.RootElement[0].GetProperty("stats64").GetProperty("rx").GetProperty("bytes").GetInt64();
    }
}
