using System.Diagnostics;
using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost.Hostile;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// The tap deleted under a connected vif (`ip link del` by an administrator or a script). How the vif
/// reports it: a log line, NetDevice.TapPresent/TapLosses, and the xenbus error node
/// (/local/domain/0/error/backend/vif/D/N/error, where xl and an administrator look for device
/// errors) saying what happened and what the backend does about it; the device stays Connected, as
/// the guest did nothing wrong. Meanwhile guest frames are answered and counted as TxDrops, never
/// queued; the queue thread sleeps (a deleted tap's fd polls EPOLLERR forever, so it must leave the
/// epoll). The device re-creates the tap every TapRetryInterval and when the guest reconnects, then
/// the host re-plumbs it (the TapRecreated hook: what vif-bridge did).
/// </summary>
public class NetTapFaultTests
{
    private static readonly TimeSpan Bound = NetHostileFixture.Bound;
    private static string Worker => $"netback d{NetHostileFixture.AttackerDomid} q0";

    /// <summary>One frame each way through the attacker's vif and its tap in the namespace.</summary>
    private static Task AssertVifCarriesAsync(NetHostileFixture f, RawNetfront raw, int round) =>
        AssertCarriesAsync(f, raw, f.AttackerVif, NetHostileFixture.TapMac, round, seedOut: 5, seedIn: 9, "the inbound frame in the guest");

    /// <summary>
    /// One frame from the guest seen on <paramref name="device"/> (a packet socket in the namespace),
    /// then one sent there that must reach the guest.
    /// </summary>
    private static async Task AssertCarriesAsync(NetHostileFixture f, RawNetfront raw, string device, byte[] outboundDestination, int round, int seedOut, int seedIn, string inboundWhat)
    {
        using var wire = f.Ns.Inside(() => PacketSocket.Open(device));
        byte[] outbound = Frames.Raw(90 + round, outboundDestination, f.AttackerMac, seed: (byte)(round + seedOut));
        raw.PutTx(raw.Stage(round % RawNetfront.DataPages, outbound), 0, 0, (ushort)round, (ushort)outbound.Length);
        raw.PushTx();
        Assert.Equal(NetifRsp.Okay, (await raw.WaitTxResponsesAsync(1, Bound)).Single().Status);
        byte[]? seen;
        do
            seen = wire.Receive((int)Bound.TotalMilliseconds);
        while (seen is not null && !seen.AsSpan().SequenceEqual(outbound));
        Assert.Equal(outbound, seen);

        raw.PostRx(8);
        byte[] inbound = Frames.Raw(110 + round, f.AttackerMac, NetHostileFixture.TapMac, seed: (byte)(round + seedIn));
        wire.Send(inbound);
        List<byte[]> got = [];
        await Bounded.UntilAsync(() => { got.AddRange(raw.TakeRxFrames(out _)); return got.Any(g => g.AsSpan().SequenceEqual(inbound)); },
            Bound, inboundWhat);
    }

    /// <summary>Guest TX while the tap is gone: every slot answered OKAY, every frame a counted drop, none sent or held.</summary>
    private static async Task<int> SendWhileGoneAsync(NetHostileFixture f, RawNetfront raw, int frames)
    {
        var before = f.AttackerStats;
        byte[] frame = Frames.Raw(200, NetHostileFixture.TapMac, f.AttackerMac);
        uint gref = raw.Stage(0, frame);
        for (int done = 0; done < frames;)
        {
            int n = Math.Min(128, frames - done);
            for (int i = 0; i < n; i++)
                raw.PutTx(gref, 0, 0, (ushort)i, (ushort)frame.Length);
            raw.PushTx();
            Assert.All(await raw.WaitTxResponsesAsync(n, Bound), r => Assert.Equal(NetifRsp.Okay, r.Status));
            done += n;
        }
        var after = f.AttackerStats;
        Assert.Equal(before.TxPackets, after.TxPackets);
        Assert.Equal(frames, after.TxDrops - before.TxDrops);
        return frames;
    }

    /// <summary>
    /// While the tap is gone and cannot come back (its name is squatted in the backend's namespace by
    /// a persistent tun device), over 2 s of wall time: the queue thread uses under 100 ms of CPU, and
    /// the device tries to re-create the tap no more often than its retry interval allows. Before the
    /// fix the queue thread spun on the deleted tap's EPOLLERR: a whole core. (The whole process's CPU
    /// is not bounded here: the test host's JIT and thread pool alone vary by a second on a loaded
    /// machine, more than the bound would be worth.)
    /// </summary>
    private static async Task AssertIdleWhileGoneAsync(NetHostileFixture f, TimeSpan retry)
    {
        var threads0 = ProcessProbe.ThreadCpus();
        long attempts0 = f.AttackerDevice.TapRecreateAttempts;
        TimeSpan thread0 = ProcessProbe.ThreadCpu(Worker);
        var wall = Stopwatch.StartNew();
        await Task.Delay(TimeSpan.FromSeconds(2));
        TimeSpan thread = ProcessProbe.ThreadCpu(Worker) - thread0;
        long attempts = f.AttackerDevice.TapRecreateAttempts - attempts0;
        Assert.True(thread < TimeSpan.FromMilliseconds(100),
            $"queue thread used {thread.TotalMilliseconds} ms of CPU in {wall.ElapsedMilliseconds} ms with its tap gone; top threads: {ProcessProbe.TopThreads(threads0)}");
        long allowed = (long)(wall.Elapsed / retry) + 2;
        Assert.True(attempts <= allowed, $"{attempts} re-create attempts in {wall.ElapsedMilliseconds} ms (retry every {retry.TotalMilliseconds} ms)");
    }

    // A persistent tun (not tap) device: TUNSETIFF with IFF_TAP on its name fails with EINVAL.
    private static void Squat(string name) => Shell.Run("ip", "tuntap", "add", "dev", name, "mode", "tun");

    private static void Unsquat(string name)
    {
        try
        {
            Shell.Run("ip", "link", "del", name);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    [Fact]
    public async Task Tap_deleted_under_a_connected_vif_is_reported_costs_no_cpu_drops_guest_tx_and_is_recreated_and_replumbed()
    {
        var retry = TimeSpan.FromMilliseconds(300);
        await using var f = await NetHostileFixture.CreateAsync(tapRetry: retry, replumb: true);
        var raw = await f.ConnectAttackerAsync();
        var device = f.AttackerDevice;
        await AssertVifCarriesAsync(f, raw, 0);

        Squat(f.AttackerVif);
        try
        {
            f.Ns.Ip("link", "del", f.AttackerVif);
            await Bounded.UntilAsync(() => !device.TapPresent, Bound, "the device noticing its tap is gone");
            // Noticed without any traffic: the fd's EPOLLERR woke the queue thread.
            Assert.Equal(1, device.TapLosses);
            Assert.Equal(1, f.AttackerStats.TapGone);
            await Bounded.UntilAsync(async () => (await f.ErrorNodeAsync(f.AttackerNic))?.Contains("cannot be re-created yet", StringComparison.Ordinal) == true,
                Bound, "the error node naming the fault");
            Assert.Contains(f.Log, l => l.Contains($"tap {f.AttackerVif} was deleted under the backend", StringComparison.Ordinal));
            // The guest did nothing wrong: still Connected, no fatal.
            await f.WaitBackendStateAsync(f.AttackerNic, Xenbus.XenbusState.Connected);
            Assert.Equal(0, f.AttackerStats.FatalResets);

            await AssertIdleWhileGoneAsync(f, retry);
            await f.BystanderDuringAsync(SendWhileGoneAsync(f, raw, 1000));
            await AssertIdleWhileGoneAsync(f, retry);
            Assert.False(device.TapPresent);
            Assert.Equal(0, f.Replumbs);
        }
        finally
        {
            Unsquat(f.AttackerVif);
        }

        // The name is free: within a retry the tap is back, re-plumbed, the error node gone, frames flow.
        await Bounded.UntilAsync(async () => device.TapPresent && f.Replumbs == 1 && await f.ErrorNodeAsync(f.AttackerNic) is null,
            Bound, "the tap re-created and re-plumbed");
        Assert.Equal(1, device.TapRecreations);
        Assert.Equal(1, device.TapLosses);
        await AssertVifCarriesAsync(f, raw, 1);
        await f.AssertBystanderServedAsync(1);
    }

    /// <summary>
    /// With retries far apart, the guest reconnecting is what brings the tap back: Connect re-creates
    /// and re-plumbs it before the rings go up.
    /// </summary>
    [Fact]
    public async Task Tap_deleted_under_a_vif_comes_back_when_the_guest_reconnects()
    {
        var retry = TimeSpan.FromHours(1);
        await using var f = await NetHostileFixture.CreateAsync(tapRetry: retry, replumb: true);
        var raw = await f.ConnectAttackerAsync();
        var device = f.AttackerDevice;
        Squat(f.AttackerVif);
        try
        {
            f.Ns.Ip("link", "del", f.AttackerVif);
            await Bounded.UntilAsync(() => !device.TapPresent, Bound, "the device noticing its tap is gone");
            await Bounded.UntilAsync(async () => (await f.ErrorNodeAsync(f.AttackerNic))?.Contains("cannot be re-created yet", StringComparison.Ordinal) == true,
                Bound, "the error node naming the fault");
            await AssertIdleWhileGoneAsync(f, retry);
        }
        finally
        {
            Unsquat(f.AttackerVif);
        }
        // Nothing retries within the hour.
        await Task.Delay(500);
        Assert.False(device.TapPresent);

        raw = await f.ReconnectAttackerAsync(raw);
        Assert.True(device.TapPresent);
        Assert.Equal(1, device.TapRecreations);
        Assert.Equal(1, f.Replumbs);
        // A successful connect clears the error node (BackendLifecycle), and nothing rewrites it.
        Assert.Null(await f.ErrorNodeAsync(f.AttackerNic));
        await AssertVifCarriesAsync(f, raw, 2);
        await f.AssertBystanderServedAsync(2);
    }

    /// <summary>
    /// One frame each way between the guest and the bridge device its tap is a port of (broadcast out,
    /// so the bridge takes it locally and learns the guest's MAC on the tap's port).
    /// </summary>
    private static Task AssertBridgeCarriesAsync(NetHostileFixture f, RawNetfront raw, string bridge, int round) =>
        AssertCarriesAsync(f, raw, bridge, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], round, seedOut: 21, seedIn: 23, "the inbound frame from the bridge in the guest");

    /// <summary>
    /// The bridge the tap was a port of deleted (`ip link del br`): the tap still works, so no read or
    /// write shows it; the device follows the tap's bridge membership through rtnetlink in the tap's
    /// namespace and reports the loss (log, BridgeLosses, error node; still Connected). Guest frames
    /// keep being answered and written to the (bridge-less) tap, nothing queues, the queue thread and
    /// the watch thread sleep. Re-running vif-bridge (bridge re-created, port re-added) clears the
    /// report and frames cross the bridge again.
    /// </summary>
    [Fact]
    public async Task Bridge_deleted_under_a_bridged_vif_is_reported_costs_no_cpu_and_clears_when_vif_bridge_runs_again()
    {
        const string bridge = "xhbr0"; // inside the test's own namespace: no clash with anything
        await using var f = await NetHostileFixture.CreateAsync(attackerBridge: bridge);
        var raw = await f.ConnectAttackerAsync();
        var device = f.AttackerDevice;
        await Bounded.UntilAsync(() => device.TapMaster > 0, Bound, "the device seeing its tap on the bridge");
        await AssertBridgeCarriesAsync(f, raw, bridge, 0);

        f.Ns.Ip("link", "del", bridge);
        // TapMaster is published before the loss is counted (both on the watch's thread): wait for the count.
        await Bounded.UntilAsync(() => device.TapMaster == 0 && device.BridgeLosses >= 1, Bound, "the device noticing the bridge is gone");
        Assert.Equal(1, device.BridgeLosses);
        await Bounded.UntilAsync(async () => (await f.ErrorNodeAsync(f.AttackerNic))?.Contains("no longer a port of its bridge", StringComparison.Ordinal) == true,
            Bound, "the error node naming the fault");
        Assert.Contains(f.Log, l => l.Contains("no longer a port of its bridge", StringComparison.Ordinal));
        await f.WaitBackendStateAsync(f.AttackerNic, Xenbus.XenbusState.Connected);
        Assert.True(device.TapPresent);

        var threads0 = ProcessProbe.ThreadCpus();
        TimeSpan queue0 = ProcessProbe.ThreadCpu(Worker), watch0 = ProcessProbe.ThreadCpu("vif bridge watc");
        await Task.Delay(TimeSpan.FromSeconds(2));
        TimeSpan queue = ProcessProbe.ThreadCpu(Worker) - queue0, watch = ProcessProbe.ThreadCpu("vif bridge watc") - watch0;
        Assert.True(queue < TimeSpan.FromMilliseconds(100) && watch < TimeSpan.FromMilliseconds(100),
            $"queue thread {queue.TotalMilliseconds} ms, bridge watch {watch.TotalMilliseconds} ms of CPU in 2 s; top: {ProcessProbe.TopThreads(threads0)}");

        // Guest frames while unbridged: answered, handed to the tap (which is up and takes them), none held.
        var before = f.AttackerStats;
        byte[] frame = Frames.Raw(200, NetHostileFixture.TapMac, f.AttackerMac);
        uint gref = raw.Stage(0, frame);
        var send = Task.Run(async () =>
        {
            for (int done = 0; done < 1000; done += 100)
            {
                for (int i = 0; i < 100; i++)
                    raw.PutTx(gref, 0, 0, (ushort)i, (ushort)frame.Length);
                raw.PushTx();
                Assert.All(await raw.WaitTxResponsesAsync(100, Bound), r => Assert.Equal(NetifRsp.Okay, r.Status));
            }
        });
        await f.BystanderDuringAsync(send);
        var after = f.AttackerStats;
        Assert.Equal(1000, (after.TxPackets - before.TxPackets) + (after.TxDrops - before.TxDrops));
        Assert.Equal(0, after.FatalResets);

        // vif-bridge runs again: the bridge comes back with the tap on it.
        NamespaceVifHotplug.Plumb(f.Ns, f.AttackerVif, bridge);
        await Bounded.UntilAsync(async () => device.TapMaster > 0 && await f.ErrorNodeAsync(f.AttackerNic) is null, Bound, "the report cleared");
        Assert.Equal(1, device.BridgeLosses);
        await AssertBridgeCarriesAsync(f, raw, bridge, 1);
        await f.AssertBystanderServedAsync(1);
    }
}
