using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using XenBackends.Service.Config;
using XenBackends.Service.Control;
using XenBackends.Service.Hosting;
using XenBackends.Service.Systemd;
using XenBackends.Xenbus;
using XenBackends.XenStore;

namespace XenBackends.Service.Supervisor;

/// <summary>
/// The `serve` process. Watches backend/&lt;kind&gt; for every configured kind, keeps exactly one worker
/// process per guest that has devices, restarts crashed workers with backoff, and when a guest it saw
/// introduced is no longer (@releaseDomain) stops its worker and removes what is left of its backend
/// nodes. It touches no
/// grant or event channel itself: everything a guest can influence lives in that guest's worker.
/// </summary>
public sealed class Supervisor : IAsyncDisposable
{
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(250);

    private readonly ServiceConfig _config;
    private readonly string _configJson;
    private readonly HostSpec _host;
    private readonly WorkerCommand _command;
    private readonly ILogger _logger;
    private readonly SdNotifier _notifier;
    private readonly SupervisorHealth _health;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Dictionary<uint, GuestEntry> _guests = [];
    private readonly HashSet<uint> _released = [];
    // Domains seen introduced (XS_IS_DOMAIN_INTRODUCED answered T). Only these can be known gone: a
    // domain whose backend nodes were written before its introduction also answers F, and reaping it
    // would delete a guest that is still being built.
    private readonly HashSet<uint> _seenIntroduced = [];
    private readonly Channel<bool> _domainsChanged = Channel.CreateBounded<bool>(
        new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    private readonly List<Task> _stopping = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly DateTime _started;
    private HashSet<uint> _desired = [];
    private XenStoreClient? _store;
    private WatchRouter? _watches;
    private Task? _run;
    private string? _lastStatus;
    private bool _shuttingDown;

    public Supervisor(ServiceConfig config, HostSpec host, WorkerCommand command, ILogger logger, SdNotifier notifier, SupervisorHealth health, TimeProvider time)
    {
        _config = config;
        _configJson = ConfigLoader.Serialize(config);
        _host = host;
        _command = command;
        _logger = logger;
        _notifier = notifier;
        _health = health;
        _time = time;
        _started = time.GetUtcNow().UtcDateTime;
    }

    /// <summary>Faults when the supervisor cannot go on (xenstored lost); the service then exits non-zero for systemd to restart it.</summary>
    public Task Completion => _run ?? Task.CompletedTask;

    /// <summary>
    /// Connects to xenstored, starts workers for the guests that already have devices, then reports
    /// READY=1: systemd (and xendomains after us) must not start guests before their backends exist.
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!_host.IsSimulated)
        {
            // The supervisor itself only needs xenstore, but a worker needs gntdev and evtchn: say so once, now.
            using var check = _host.Open();
        }
        _store = await OpenStoreAsync(cancellationToken).ConfigureAwait(false);
        _watches = new WatchRouter(_store);
        var discovery = new BackendDiscovery(_watches, 0, _config.Kinds);
        ApplyDevices(await discovery.ScanAsync(cancellationToken).ConfigureAwait(false));
        var released = await _watches.SubscribeAsync("@releaseDomain", cancellationToken).ConfigureAwait(false);
        var introduced = await _watches.SubscribeAsync("@introduceDomain", cancellationToken).ConfigureAwait(false);
        _run = RunAsync(discovery, released, introduced, _stop.Token);
        _notifier.Notify("READY=1\nSTATUS=" + StatusLine());
        _logger.LogInformation("supervising kinds {Kinds} on {Host}", string.Join(",", _config.Kinds), _host.IsSimulated ? "the simulated host" : "Xen");
    }

    private async Task<XenStoreClient> OpenStoreAsync(CancellationToken cancellationToken)
    {
        try
        {
            return _host.XenStoreSocket is null
                ? await XenStoreClient.OpenAsync(cancellationToken: cancellationToken).ConfigureAwait(false)
                : await XenStoreClient.OpenSocketAsync(_host.XenStoreSocket, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new HostUnavailableException(
                $"cannot reach xenstored at {_host.XenStoreSocket ?? "its default socket or /dev/xen/xenbus"}: {e.Message}. Is xenstored running (Debian: /etc/init.d/xen start)?", e);
        }
    }

    private async Task RunAsync(BackendDiscovery discovery, WatchSubscription released, WatchSubscription introduced, CancellationToken cancellationToken)
    {
        await Task.Yield();
        var tasks = new[]
        {
            discovery.RunAsync(set => { ApplyDevices(set); return Task.CompletedTask; }, cancellationToken),
            DomainLoopAsync(released, introduced, cancellationToken),
            TickLoopAsync(cancellationToken),
        };
        try
        {
            await await Task.WhenAny(tasks).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (XenStoreConnectionException e)
        {
            _logger.LogCritical("lost the connection to xenstored: {Message}; exiting so the service manager restarts us", e.Message);
            _notifier.Notify("STATUS=lost xenstored: " + e.Message);
            throw;
        }
        finally
        {
            await released.DisposeAsync().ConfigureAwait(false);
            await introduced.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void ApplyDevices(IReadOnlySet<DevicePath> devices)
    {
        lock (_lock)
        {
            var desired = devices.Select(d => d.FrontendDomId).ToHashSet();
            bool newcomers = !desired.IsSubsetOf(_desired);
            _desired = desired;
            _released.IntersectWith(_desired);
            Reconcile();
            // A new guest may already be introduced and never fire @introduceDomain again: look now.
            if (newcomers) _domainsChanged.Writer.TryWrite(true);
        }
    }

    private async Task TickLoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(Tick, _time);
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
        {
            lock (_lock) Reconcile();
            _health.Beat();
            string status = StatusLine();
            if (status != _lastStatus)
            {
                _lastStatus = status;
                _notifier.Notify("STATUS=" + status);
            }
        }
    }

    /// <summary>Brings workers in line with the devices present; runs under the lock, never blocks.</summary>
    private void Reconcile()
    {
        if (_shuttingDown) return;
        var now = _time.GetUtcNow().UtcDateTime;
        foreach (uint domid in _desired)
        {
            if (_released.Contains(domid) || _guests.ContainsKey(domid)) continue;
            var entry = new GuestEntry(domid, new RestartBackoff(_config.Restart));
            _guests[domid] = entry;
            StartWorker(entry);
        }
        foreach (var entry in _guests.Values.ToList())
        {
            if (entry.Stopping) continue;
            if (!_desired.Contains(entry.Domid) || _released.Contains(entry.Domid))
            {
                BeginStop(entry, "its devices are gone");
                continue;
            }
            if (entry.Process is { HasExited: true } crashed)
            {
                entry.LastExit = crashed.Exited.Result;
                var delay = entry.Backoff.NextDelay(now - crashed.Started);
                entry.RestartAt = now + delay;
                entry.Process = null;
                crashed.Dispose();
                _logger.LogWarning("worker for domain {Domid} (pid {Pid}) died ({Exit}); restarting in {Delay} ms",
                    entry.Domid, crashed.Pid, entry.LastExit, (int)delay.TotalMilliseconds);
            }
            if (entry.Process is null && entry.RestartAt <= now)
            {
                entry.Restarts++;
                StartWorker(entry);
            }
        }
    }

    private void StartWorker(GuestEntry entry)
    {
        entry.RestartAt = null;
        try
        {
            entry.Process = WorkerProcess.Start(_command, entry.Domid, _host, _configJson, _logger);
            _logger.LogInformation("started worker for domain {Domid}: pid {Pid}", entry.Domid, entry.Process.Pid);
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or IOException)
        {
            var delay = entry.Backoff.NextDelay(TimeSpan.Zero);
            entry.LastExit = "could not start: " + e.Message;
            entry.RestartAt = _time.GetUtcNow().UtcDateTime + delay;
            _logger.LogError("cannot start a worker for domain {Domid} ({Command}): {Message}; retrying in {Delay} ms",
                entry.Domid, _command.FileName, e.Message, (int)delay.TotalMilliseconds);
        }
    }

    private void BeginStop(GuestEntry entry, string why)
    {
        entry.Stopping = true;
        var process = entry.Process;
        _logger.LogInformation("stopping the worker for domain {Domid}: {Why}", entry.Domid, why);
        var task = Task.Run(async () =>
        {
            if (process is not null)
            {
                await process.StopAsync(StopGrace).ConfigureAwait(false);
                process.Dispose();
            }
            lock (_lock)
            {
                if (_guests.TryGetValue(entry.Domid, out var current) && current == entry) _guests.Remove(entry.Domid);
                Reconcile();
            }
        });
        _stopping.Add(task);
        _stopping.RemoveAll(t => t.IsCompleted);
    }

    /// <summary>
    /// Learns which guests are introduced and reaps those that were and no longer are. Xenstore offers
    /// no domain list to dom0, only the @introduceDomain/@releaseDomain watches (fired without saying
    /// which domain) and XS_IS_DOMAIN_INTRODUCED, which answers F both for a domain that died and for
    /// one the toolstack has not introduced yet (docs/misc/xenstore.txt; C xenstored's
    /// find_domain_by_domid skips non-introduced domains). So "gone" means: seen introduced, now not.
    /// </summary>
    private async Task DomainLoopAsync(WatchSubscription released, WatchSubscription introduced, CancellationToken cancellationToken)
    {
        while (true)
        {
            await WatchSubscription.WhenAnyChangedAsync([released, introduced], cancellationToken,
                ct => _domainsChanged.Reader.WaitToReadAsync(ct).AsTask()).ConfigureAwait(false);
            // Consume before asking, so a change while we ask is seen by the next round.
            released.TryConsume();
            introduced.TryConsume();
            _domainsChanged.Reader.TryRead(out _);
            uint[] candidates;
            lock (_lock) candidates = _guests.Keys.Concat(_desired).Concat(_seenIntroduced).Distinct().ToArray();
            foreach (uint domid in candidates)
            {
                bool isIntroduced = await _store!.IsDomainIntroducedAsync(domid, cancellationToken).ConfigureAwait(false);
                bool gone;
                lock (_lock)
                {
                    gone = !isIntroduced && _seenIntroduced.Remove(domid);
                    if (isIntroduced) _seenIntroduced.Add(domid);
                    gone &= _guests.ContainsKey(domid) || _desired.Contains(domid);
                }
                if (gone)
                    await ReapAsync(domid, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>A dead guest: its worker goes first (releasing mappings, ports and taps), then its backend nodes.</summary>
    private async Task ReapAsync(uint domid, CancellationToken cancellationToken)
    {
        _logger.LogInformation("domain {Domid} is gone (@releaseDomain); cleaning up", domid);
        Task stopped;
        lock (_lock)
        {
            _released.Add(domid);
            Reconcile();
            stopped = Task.WhenAll(_stopping);
        }
        await stopped.ConfigureAwait(false);
        RemoveJournals(domid);
        foreach (string kind in _config.Kinds)
        {
            await RemoveQuietlyAsync($"/local/domain/0/backend/{kind}/{domid}", cancellationToken).ConfigureAwait(false);
            await RemoveQuietlyAsync($"/local/domain/0/error/backend/{kind}/{domid}", cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The dead guest's request journals (BlockDevice.JournalFileName: domid-kind-devid-qN). They are
    /// kept across worker restarts on purpose; with the domain gone nobody will resume them.
    /// </summary>
    private void RemoveJournals(uint domid)
    {
        string directory = ServiceConfig.JournalDirectoryOf(_config);
        try
        {
            foreach (string file in Directory.EnumerateFiles(directory, domid.ToString(System.Globalization.CultureInfo.InvariantCulture) + "-*"))
                File.Delete(file);
        }
        catch (DirectoryNotFoundException)
        {
            // No disk was ever connected: nothing to remove.
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning("cannot remove the request journals of domain {Domid} in {Directory}: {Message}", domid, directory, e.Message);
        }
    }

    private async Task RemoveQuietlyAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            await _store!.RemoveAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (XenStoreErrorException e) when (e.ErrnoName == XsErrno.ENOENT)
        {
            // The toolstack removed it already (xl destroy does).
        }
    }

    private string StatusLine()
    {
        lock (_lock)
        {
            int running = _guests.Values.Count(g => g.Process is { HasExited: false });
            int devices = _guests.Values.Sum(g => g.Process?.LastReport?.Devices.Count ?? 0);
            int waiting = _guests.Values.Count(g => g.Process is null && !g.Stopping);
            return $"{running} guest worker(s) running, {devices} device(s)" + (waiting > 0 ? $", {waiting} waiting to restart" : "");
        }
    }

    public StatusSnapshot Snapshot()
    {
        var snapshot = new StatusSnapshot
        {
            Host = _host.IsSimulated ? "simulated" : "xen",
            Kinds = [.. _config.Kinds],
            UptimeSeconds = (long)(_time.GetUtcNow().UtcDateTime - _started).TotalSeconds,
        };
        lock (_lock)
        {
            foreach (var g in _guests.Values.OrderBy(g => g.Domid))
            {
                var report = g.Process?.LastReport;
                snapshot.Guests.Add(new GuestStatus
                {
                    Domid = g.Domid,
                    Name = report?.Name,
                    Worker = g.Stopping ? "stopping" : g.Process is { HasExited: false } ? "running" : "restarting",
                    Pid = g.Process?.Pid,
                    Restarts = g.Restarts,
                    LastExit = g.LastExit,
                    Devices = report?.Devices ?? [],
                });
            }
        }
        return snapshot;
    }

    /// <summary>The pids of the live workers, by guest (tests and status use it).</summary>
    public IReadOnlyDictionary<uint, int> WorkerPids()
    {
        lock (_lock)
            return _guests.Values.Where(g => g.Process is { HasExited: false }).ToDictionary(g => g.Domid, g => g.Process!.Pid);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_run is not null)
        {
            try { await _run.ConfigureAwait(false); } catch (Exception e) when (e is OperationCanceledException or XenStoreException) { }
        }
        Task stopped;
        lock (_lock)
        {
            _shuttingDown = true;
            foreach (var entry in _guests.Values.Where(g => !g.Stopping).ToList()) BeginStop(entry, "the service is stopping");
            stopped = Task.WhenAll(_stopping);
        }
        await stopped.ConfigureAwait(false);
        if (_watches is not null) await _watches.DisposeAsync().ConfigureAwait(false);
        if (_store is not null) await _store.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }
}
