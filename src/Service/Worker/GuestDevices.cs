using XenBackends.Service.Control;
using XenBackends.Service.Devices;
using XenBackends.Xenbus;

namespace XenBackends.Service.Worker;

/// <summary>
/// The devices of one guest being served in this worker: starts a <see cref="BackendLifecycle"/> per
/// device that appears, forgets it when its lifecycle ends (device removed), and never lets one
/// device's failure reach another.
/// </summary>
internal sealed class GuestDevices
{
    private readonly WatchRouter _watches;
    private readonly Func<DeviceKind, IBackendDevice> _create;
    private readonly Action<string> _log;
    private readonly Dictionary<DevicePath, Served> _served = [];
    private readonly Lock _lock = new();

    public GuestDevices(WatchRouter watches, Func<DeviceKind, IBackendDevice> create, Action<string> log)
    {
        _watches = watches;
        _create = create;
        _log = log;
    }

    private sealed record Served(DeviceKind Kind, IBackendDevice Device, Task Run);

    /// <summary>Starts what is new in <paramref name="present"/>; devices that vanished end on their own (their lifecycle sees the removal).</summary>
    public async Task UpdateAsync(IEnumerable<DevicePath> present, CancellationToken cancellationToken)
    {
        foreach (var path in present)
        {
            lock (_lock)
                if (_served.ContainsKey(path)) continue;
            if (!DeviceKinds.TryGet(path.Kind, out var kind)) continue;
            XenbusDevice device;
            try
            {
                device = await XenbusDevice.OpenAsync(_watches, path, cancellationToken).ConfigureAwait(false);
            }
            catch (FrontendConfigurationException e)
            {
                // The toolstack may still be writing the directory; the next change retries.
                _log($"{path}: not served yet: {e.Message}");
                continue;
            }
            if (await IsClosedAwaitingRemovalAsync(device, cancellationToken).ConfigureAwait(false))
                continue;
            var backend = _create(kind);
            var lifecycle = new BackendLifecycle(device, backend, _log);
            lock (_lock)
                _served[path] = new Served(kind, backend, RunAsync(path, lifecycle, backend, cancellationToken));
        }
    }

    /// <summary>
    /// A device detached by the toolstack whose lifecycle has already ended: libxl wrote online=0, we
    /// answered Closed and forgot it, but libxl removes the directory only after the hotplug script's
    /// remove/offline has run (seconds under load). A scan in that window must not serve it again: in
    /// the Xen lab (xl save, xl migrate) that re-created a saved guest's tap and put it back on the
    /// bridge, and failed a vbd whose params were already gone. Nothing is left to negotiate there, and
    /// a device attached again under the same devid gets a fresh directory (online=1, state 1).
    /// A directory without state is being removed (or not written yet): not served either.
    /// </summary>
    private static async Task<bool> IsClosedAwaitingRemovalAsync(XenbusDevice device, CancellationToken cancellationToken)
    {
        string? online = await device.ReadBackendAsync("online", cancellationToken).ConfigureAwait(false);
        var state = await device.ReadBackendStateAsync(cancellationToken).ConfigureAwait(false);
        // No state: the directory went between the scan's listing and these reads (the lab's
        // migrate then saw "params: missing" logged as fatal for the old domain); a toolstack
        // creating a device writes state with the rest, and that write brings the next scan.
        return state is null || (online == "0" && state == XenbusState.Closed);
    }

    private async Task RunAsync(DevicePath path, BackendLifecycle lifecycle, IBackendDevice backend, CancellationToken cancellationToken)
    {
        await Task.Yield();
        try
        {
            await lifecycle.RunAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            _log($"{path}: stopped: {e.Message}");
        }
        finally
        {
            try
            {
                await backend.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception e)
            {
                _log($"{path}: releasing the device failed: {e.Message}");
            }
            lock (_lock)
                _served.Remove(path);
        }
    }

    public IReadOnlyList<(DevicePath Path, DeviceKind Kind, IBackendDevice Device)> Snapshot()
    {
        lock (_lock)
            return _served.Select(s => (s.Key, s.Value.Kind, s.Value.Device)).ToList();
    }

    public Task WhenAllStoppedAsync()
    {
        lock (_lock)
            return Task.WhenAll(_served.Values.Select(s => s.Run));
    }
}
