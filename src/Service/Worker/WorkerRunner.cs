using System.Globalization;
using System.Text.Json;
using XenBackends.Native.Linux;
using XenBackends.Service.Control;
using XenBackends.Service.Devices;
using XenBackends.Service.Hosting;
using XenBackends.Xenbus;
using XenBackends.XenStore;

namespace XenBackends.Service.Worker;

/// <summary>
/// The `worker` process: serves every configured-kind device of one guest, reports their states and
/// counters on stdout (one JSON line a second) and logs on stderr, both read by the supervisor. Ends
/// when cancelled (SIGTERM: rings released, xenstore left as is so a new worker resumes) or when stdin
/// closes (the supervisor is gone).
/// </summary>
public static class WorkerRunner
{
    public const int ExitHostUnavailable = 3;
    public const int ExitXenStoreLost = 4;
    public const int ExitPrivileges = 5;

    public static async Task<int> RunAsync(WorkerOptions options, TextWriter report, TextWriter log, CancellationToken cancellationToken)
    {
        var logLock = new Lock();
        void Log(string message)
        {
            lock (logLock) { log.WriteLine(message); log.Flush(); }
        }

        IXenHost host;
        try
        {
            host = options.Host.Open();
        }
        catch (HostUnavailableException e)
        {
            Log(e.Message);
            return ExitHostUnavailable;
        }
        using var hostLease = host;
        XenStoreClient store;
        try
        {
            store = await host.OpenXenStoreAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (HostUnavailableException e)
        {
            Log(e.Message);
            return ExitHostUnavailable;
        }
        await using var storeLease = store;
        // From here on the worker parses what its guest writes: before that, give up for good whatever it
        // does not need (it cannot regain it), so a guest that subverted it gets as little as possible.
        try
        {
            ulong kept = ProcessPrivileges.Restrict(WorkerPrivileges.For(options.Config.Kinds));
            string filter;
            if (!options.Config.SyscallFilter)
                filter = "system call filter off (syscallFilter: false)";
            else if (!SyscallFilter.IsSupported)
                filter = "no system call filter for this architecture";
            else
            {
                SyscallFilter.Install();
                filter = $"{SyscallFilter.Denied.Count} system calls denied (seccomp)";
            }
            Log($"domain {options.Domid}: no_new_privs set, capabilities kept: {WorkerPrivileges.Describe(kept)}; {filter}");
        }
        catch (LinuxCallException e)
        {
            Log($"domain {options.Domid}: cannot reduce the worker's privileges ({e.Message}); refusing to serve the guest with more than it needs");
            return ExitPrivileges;
        }
        await using var watches = new WatchRouter(store);
        string? name = await store.TryReadStringAsync($"/local/domain/{options.Domid}/name", cancellationToken).ConfigureAwait(false);
        var qos = name is not null && options.Config.Qos.Guests.TryGetValue(name, out var own) ? own : options.Config.Qos.Defaults;
        using var grants = host.CreateGrantMapper();
        var context = new DeviceContext(host, grants, options.Config, qos, Log);
        if (qos.DiskIops != 0 || qos.DiskBytesPerSecond != 0)
            Log($"domain {options.Domid}: disk QoS per disk: {(qos.DiskIops == 0 ? "unlimited" : qos.DiskIops.ToString(CultureInfo.InvariantCulture))} IOPS, {(qos.DiskBytesPerSecond == 0 ? "unlimited" : qos.DiskBytesPerSecond.ToString(CultureInfo.InvariantCulture))} bytes/s");
        if (qos.VifBytesPerSecond != 0)
            Log($"domain {options.Domid}: vif TX default {qos.VifBytesPerSecond.ToString(CultureInfo.InvariantCulture)} bytes/s for vifs without a rate key");
        var devices = new GuestDevices(watches, kind => kind.Create(context), Log);
        var discovery = new BackendDiscovery(watches, 0, options.Config.Kinds);
        Log($"serving domain {options.Domid}{(name is null ? "" : $" ({name})")} on {host.Kind} host, kinds {string.Join(",", options.Config.Kinds)}");

        using var reporterStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var reporter = ReportLoopAsync(options.Domid, name, devices, watches, report, reporterStop.Token);
        int exit = 0;
        try
        {
            await discovery.RunAsync(
                set => devices.UpdateAsync(set.Where(p => p.FrontendDomId == options.Domid), cancellationToken),
                cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (XenStoreConnectionException e)
        {
            Log($"lost xenstored: {e.Message}");
            exit = ExitXenStoreLost;
        }
        await devices.WhenAllStoppedAsync().ConfigureAwait(false);
        await reporterStop.CancelAsync().ConfigureAwait(false);
        try { await reporter.ConfigureAwait(false); } catch (OperationCanceledException) { }
        Log($"domain {options.Domid}: worker stopped");
        return exit;
    }

    private static async Task ReportLoopAsync(uint domid, string? name, GuestDevices devices, WatchRouter watches, TextWriter report, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        var readers = new Dictionary<DevicePath, DeviceStateReader>();
        try
        {
            do
            {
                var line = new WorkerReport { Domid = domid, Name = name };
                var present = new HashSet<DevicePath>();
                foreach (var (path, kind, device) in devices.Snapshot())
                {
                    present.Add(path);
                    var status = new DeviceStatus { Kind = path.Kind, DevId = path.DevId };
                    try
                    {
                        if (!readers.TryGetValue(path, out var reader))
                            readers[path] = reader = await DeviceStateReader.OpenAsync(watches, path, cancellationToken).ConfigureAwait(false);
                        await reader.RefreshAsync(cancellationToken).ConfigureAwait(false);
                        status.BackendState = StateName(reader.BackendState);
                        status.FrontendState = StateName(reader.FrontendState);
                        status.Error = reader.Error;
                    }
                    catch (XenStoreException)
                    {
                        // The device is being torn down; report what we have.
                    }
                    foreach (var (key, value) in kind.Counters(device)) status.Counters[key] = value;
                    status.Histograms = kind.Histograms?.Invoke(device);
                    line.Devices.Add(status);
                }
                foreach (var gone in readers.Keys.Where(p => !present.Contains(p)).ToList())
                {
                    await readers[gone].DisposeAsync().ConfigureAwait(false);
                    readers.Remove(gone);
                }
                report.WriteLine(JsonSerializer.Serialize(line, StatusJsonContext.Default.WorkerReport));
                report.Flush();
            }
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false));
        }
        finally
        {
            foreach (var reader in readers.Values)
                await reader.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static string StateName(string? raw) =>
        raw is null ? "" : int.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && Enum.IsDefined((XenbusState)n) ? ((XenbusState)n).ToString() : raw;
}
