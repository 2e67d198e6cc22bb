using System.Diagnostics;
using System.Globalization;
using XenBackends.Service.Control;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;
using static XenBackends.Service.Sim.SimCommand;

namespace XenBackends.Service.Sim;

/// <summary>One demo run: the guest, its frontends and workloads, the live display and the summary.</summary>
internal sealed class SimRun(SimMachine machine, TextWriter output, TextWriter error)
{
    private const long DiskBytes = 256L << 20;
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(30);
    private ushort _domid;
    private bool _created;
    private SimulatedBlkfront? _disk;
    private SimulatedNetfront? _nic;
    private PacketSocket? _tap;
    private int? _workerPid;

    /// <summary>The guest's tap when the network part ran (checked again after teardown).</summary>
    public string? TapName { get; private set; }

    public async Task<int> ExecuteAsync(int seconds, int queueDepth, Stopwatch clock, CancellationToken cancellationToken)
    {
        _domid = PickDomid();
        var guest = await machine.Toolstack.CreateDomainAsync(new DomainSpec(_domid, "sim-guest") { Pages = 32768, GrantEntries = 32768 }, cancellationToken).ConfigureAwait(false);
        _created = true;
        string image = machine.CreateImage("xvda.img", DiskBytes);
        var disk = await machine.Toolstack.AddDiskAsync(_domid, new DiskSpec("xvda", image) { Script = "block-xen-backends" }, cancellationToken).ConfigureAwait(false);
        _disk = await SimulatedBlkfront.AttachAsync(guest, disk.DevId, new BlkfrontOptions { MaxQueues = 2, MaxRingPageOrder = 2, MaxIndirectSegments = 256 }, cancellationToken).ConfigureAwait(false);
        await _disk.WaitConnectedAsync(ConnectTimeout).ConfigureAwait(false);

        string? netProblem = NetworkUnavailable();
        if (netProblem is null)
        {
            try
            {
                var nic = await machine.Toolstack.AddNicAsync(_domid, new NicSpec { DevId = 0 }, cancellationToken).ConfigureAwait(false);
                _nic = await SimulatedNetfront.AttachAsync(guest, nic.DevId, new NetfrontOptions { MaxQueues = 1 }, cancellationToken).ConfigureAwait(false);
                await _nic.WaitConnectedAsync(ConnectTimeout).ConfigureAwait(false);
                TapName = $"vif{_domid}.{nic.DevId}";
                _tap = PacketSocket.Open(TapName);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                netProblem = e.Message;
            }
        }
        var status = await GuestStatusAsync(cancellationToken).ConfigureAwait(false);
        _workerPid = status?.Pid;
        output.WriteLine($"guest {_domid} \"sim-guest\" served by worker pid {_workerPid?.ToString(CultureInfo.InvariantCulture) ?? "?"}; ready after {clock.Elapsed.TotalSeconds:0.0} s");
        output.WriteLine($"  disk xvda: 256 MiB sparse raw image in {machine.Dir}, {_disk.NumQueues} queue(s), ring order {_disk.RingPageOrder}, {_disk.MaxSegments} segments/request");
        if (netProblem is not null)
        {
            output.WriteLine($"  NETWORK SKIPPED: {netProblem}");
            output.WriteLine("  (the disk part runs on its own)");
            if (_nic is not null) { await _nic.DisposeAsync().ConfigureAwait(false); _nic = null; }
            _tap?.Dispose();
            _tap = null;
        }
        else
            output.WriteLine($"  nic: tap {TapName}, guest mac {_nic!.Mac}; the host side is an AF_PACKET socket on the tap");
        output.WriteLine($"running {seconds} s: 4 KiB random read/write at queue depth {queueDepth} + 1 MiB sequential write/read-back{(_tap is null ? "" : ", frames both ways through the tap")}");

        var diskLoad = new DiskWorkload(_disk);
        var netLoad = _tap is null ? null : new NetWorkload(_nic!, _tap);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(TimeSpan.FromSeconds(seconds));
        var started = Stopwatch.StartNew();
        var work = Task.WhenAll(diskLoad.RunAsync(queueDepth, stop.Token), netLoad?.RunAsync(stop.Token) ?? Task.CompletedTask);
        var display = new ProgressDisplay(output, ProgressDisplay.TerminalAttached);
        var last = (Time: 0.0, Reads: 0L, Writes: 0L, Bytes: 0L, Tx: 0L, Rx: 0L);
        while (await Task.WhenAny(work, Task.Delay(1000, CancellationToken.None)).ConfigureAwait(false) != work)
        {
            double now = started.Elapsed.TotalSeconds, dt = Math.Max(now - last.Time, 1e-3);
            var current = (Time: now, diskLoad.Reads, diskLoad.Writes, diskLoad.Bytes, Tx: netLoad?.TxVerified ?? 0, Rx: netLoad?.RxVerified ?? 0);
            var lines = new List<string>
            {
                $"{now,5:0.0}s  xvda {N((current.Reads - last.Reads + current.Writes - last.Writes) / dt),7} IOPS (r {N((current.Reads - last.Reads) / dt)} w {N((current.Writes - last.Writes) / dt)}) {Mb((current.Bytes - last.Bytes) / dt),6} MB/s  ok {N(diskLoad.VerifiedBlocks)} bad {diskLoad.Mismatches}",
            };
            if (netLoad is not null)
                lines.Add($"        {TapName}  tx {N((current.Tx - last.Tx) / dt),7} pkt/s  rx {N((current.Rx - last.Rx) / dt),7} pkt/s  corrupt {netLoad.Corrupt}");
            display.Show(lines);
            last = current;
        }
        await work.ConfigureAwait(false);
        double elapsed = started.Elapsed.TotalSeconds;
        if (cancellationToken.IsCancellationRequested)
            output.WriteLine("interrupted: stopping early");
        // Interrupted or not, what ran is summarised and verified.
        return await SummaryAsync(diskLoad, netLoad, elapsed, CancellationToken.None).ConfigureAwait(false);
    }

    private async Task<int> SummaryAsync(DiskWorkload disk, NetWorkload? net, double elapsed, CancellationToken cancellationToken)
    {
        // The worker reports counters once a second; wait for a report that includes the last requests.
        GuestStatus? status = null;
        for (int i = 0; i < 30; i++)
        {
            status = await GuestStatusAsync(cancellationToken).ConfigureAwait(false);
            var vbd = status?.Devices.FirstOrDefault(d => d.Kind == "vbd");
            if (vbd is not null && vbd.Counters.GetValueOrDefault("rd_req") + vbd.Counters.GetValueOrDefault("wr_req") >= disk.Reads + disk.Writes) break;
            await Task.Delay(200, cancellationToken).ConfigureAwait(false);
        }
        bool diskOk = disk.Mismatches == 0 && disk.Errors == 0 && disk.VerifiedBlocks > 0;
        bool netOk = net is null || (net.Corrupt == 0 && net.TxErrors == 0 && net.TxVerified > 0 && net.RxVerified > 0);
        output.WriteLine($"summary after {elapsed:0.0} s (worker pid {status?.Pid?.ToString(CultureInfo.InvariantCulture) ?? "?"}, restarts {status?.Restarts ?? 0}):");
        output.WriteLine($"  disk xvda: {N(disk.Reads)} reads, {N(disk.Writes)} writes, {N((disk.Reads + disk.Writes) / elapsed)} IOPS, {Mb(disk.ReadBytes)} MB read, {Mb(disk.WriteBytes)} MB written, {Mb(disk.Bytes / elapsed)} MB/s");
        output.WriteLine($"  disk latency (guest-observed): 4 KiB read {disk.RandomReadLatency.Describe() ?? "-"}; 4 KiB write {disk.RandomWriteLatency.Describe() ?? "-"}; 1 MiB {disk.SequentialLatency.Describe() ?? "-"}");
        output.WriteLine($"  disk data verified {(diskOk ? "OK" : "FAILED")}: {N(disk.VerifiedBlocks)} 4 KiB blocks read back and compared, {disk.Mismatches} mismatches, {disk.Errors} I/O errors");
        if (net is not null)
        {
            output.WriteLine($"  nic {TapName}: guest TX {N(net.TxSent)} sent, {N(net.TxVerified)} arrived on the tap; guest RX {N(net.RxSent)} sent into the tap, {N(net.RxVerified)} received; {N((net.TxVerified + net.RxVerified) / elapsed)} pkt/s");
            output.WriteLine($"  network data verified {(netOk ? "OK" : "FAILED")}: {net.Corrupt} corrupt frames, {net.TxErrors} TX errors, {N(net.TxSent - net.TxVerified + Math.Max(0, net.RxSent - net.RxVerified))} frames lost on the way (queues full)");
        }
        else
            output.WriteLine("  network: skipped");
        if (status is not null)
            foreach (var d in status.Devices.OrderBy(d => d.Kind, StringComparer.Ordinal))
                output.WriteLine($"  backend {d.Kind}/{d.DevId} ({d.BackendState}) per `xen-backends status`: " +
                    string.Join(" ", d.Counters.Where(c => c.Value != 0).OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key}={c.Value}")));
        return diskOk && netOk ? 0 : ExitVerificationFailed;
    }

    private async Task<GuestStatus?> GuestStatusAsync(CancellationToken cancellationToken)
    {
        try
        {
            var snapshot = await StatusClient.QueryAsync(machine.Config.ControlSocket, cancellationToken).ConfigureAwait(false);
            return snapshot.Guests.FirstOrDefault(g => g.Domid == _domid);
        }
        catch (IOException e)
        {
            error.WriteLine("status: " + e.Message);
            return null;
        }
    }

    /// <summary>xl destroy, then waits (bounded) for the supervisor to stop the worker, forget the guest and lose its backend nodes.</summary>
    public async Task<(bool Clean, string Description)> TeardownAsync()
    {
        _tap?.Dispose();
        if (!_created) return (true, "no guest was created");
        try
        {
            await machine.Toolstack.DestroyDomainAsync(_domid).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            return (false, "destroying the guest FAILED: " + e.Message);
        }
        if (_disk is not null) await _disk.DisposeAsync().ConfigureAwait(false);
        if (_nic is not null) await _nic.DisposeAsync().ConfigureAwait(false);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        bool workerGone = false, forgotten = false, nodesGone = false;
        while (DateTime.UtcNow < deadline)
        {
            workerGone = _workerPid is not { } pid || !Directory.Exists($"/proc/{pid}");
            forgotten = await GuestStatusAsync(CancellationToken.None).ConfigureAwait(false) is null;
            nodesGone = await GoneAsync($"/local/domain/0/backend/vbd/{_domid}").ConfigureAwait(false)
                && await GoneAsync($"/local/domain/0/backend/vif/{_domid}").ConfigureAwait(false);
            if (workerGone && forgotten && nodesGone)
                return (true, $"guest destroyed, worker{(_workerPid is null ? "" : $" pid {_workerPid}")} exited, backend nodes removed");
            await Task.Delay(100).ConfigureAwait(false);
        }
        return (false, "guest destroyed, but after 20 s " + string.Join(", ", new[]
        {
            workerGone ? null : $"worker pid {_workerPid} STILL RUNNING",
            forgotten ? null : "the supervisor STILL LISTS the guest",
            nodesGone ? null : "backend nodes STILL PRESENT",
        }.Where(p => p is not null)));
    }

    private async Task<bool> GoneAsync(string path)
    {
        try
        {
            await machine.Toolstack.Dom0.DirectoryAsync(path).ConfigureAwait(false);
            return false;
        }
        catch (XenStore.XenStoreErrorException e) when (e.ErrnoName == XenStore.XsErrno.ENOENT)
        {
            return true;
        }
    }
}
