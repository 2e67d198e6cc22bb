using XenBackends.XenStore;

namespace XenBackends.Xenbus;

/// <summary>
/// Drives one device through the xenbus handshake for its whole life: prepare, InitWait, connect,
/// close, reconnect, removal. Every change of the frontend's state or of the backend directory
/// re-reads xenstore and applies <see cref="LifecycleRules"/>; nothing is inferred from which watch
/// fired, so coalesced or spurious events are harmless and a guest flapping its state quickly
/// (XSA-350) only ever meets one transition at a time.
/// </summary>
public sealed class BackendLifecycle
{
    private readonly XenbusDevice _device;
    private readonly IBackendDevice _backend;
    private readonly Action<string>? _log;
    private bool _ringsUp;

    public BackendLifecycle(XenbusDevice device, IBackendDevice backend, Action<string>? log = null)
    {
        _device = device;
        _backend = backend;
        _log = log;
    }

    /// <summary>Why the last connect failed, if it did (also written to the xenbus error node).</summary>
    public string? LastError { get; private set; }

    public bool RingsUp => _ringsUp;

    /// <summary>
    /// Runs until the device is removed (returns) or <paramref name="cancellationToken"/> fires (the
    /// worker is stopping: rings are released but xenstore is left as it is, so a restarted worker
    /// resumes the device where this one stopped).
    /// </summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        await using var frontendWatch = await _device.Watches.SubscribeAsync(_device.FrontendPath + "/state", cancellationToken).ConfigureAwait(false);
        await using var backendWatch = await _device.Watches.SubscribeAsync(_device.BackendPath, cancellationToken).ConfigureAwait(false);
        try
        {
            var start = await _device.ReadBackendStateAsync(cancellationToken).ConfigureAwait(false);
            if (start is null) return;
            // libxl writes online=0 when it removes a device (detach, destroy, reboot).
            bool detaching = await _device.ReadBackendAsync("online", cancellationToken).ConfigureAwait(false) == "0";
            if (detaching && start == XenbusState.Closed)
            {
                // Already closed for removal by an earlier lifecycle, which then returned; the
                // directory outlives it until libxl has run the hotplug script's "remove", and any
                // change in it makes the worker look again. Found in the lab (guest reboot, xl
                // network-detach): serving it again re-created and re-plumbed the vif's tap, opened
                // the image, and wrote InitWait over Closed under libxl's teardown.
                return;
            }
            if (!detaching)
            {
                try
                {
                    await _backend.PrepareAsync(_device, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    await FailAsync("preparing the device failed: " + e.Message, cancellationToken).ConfigureAwait(false);
                    return;
                }
                // A restarted worker finds its device Connected: keep that state and resume.
                var initial = await _device.ReadBackendStateAsync(cancellationToken).ConfigureAwait(false);
                if (initial is null) return;
                if (initial != XenbusState.Connected)
                    await _device.SwitchStateAsync(XenbusState.InitWait, cancellationToken).ConfigureAwait(false);
            }
            // Detaching (a restarted worker caught mid-detach): nothing to prepare or offer, the
            // rules below only see the close through to Closed so libxl can finish.

            while (true)
            {
                frontendWatch.TryConsume();
                backendWatch.TryConsume();
                var view = await ObserveAsync(cancellationToken).ConfigureAwait(false);
                var action = LifecycleRules.Decide(view);
                if (action == LifecycleAction.Remove)
                {
                    await DisconnectAsync(cancellationToken).ConfigureAwait(false);
                    _log?.Invoke($"{_device.Path}: removed");
                    return;
                }
                if (action != LifecycleAction.None)
                {
                    _log?.Invoke($"{_device.Path}: frontend {view.Frontend}, backend {view.Backend}: {action}");
                    await ApplyAsync(action, cancellationToken).ConfigureAwait(false);
                    continue; // re-read at once: our own writes may enable the next step
                }
                await WatchSubscription.WhenAnyChangedAsync([frontendWatch, backendWatch], cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await DisconnectAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }
        catch (XenStoreConnectionException)
        {
            // xenstored went away: nothing more can be negotiated; stop serving cleanly.
            await DisconnectAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    private async Task<LifecycleView> ObserveAsync(CancellationToken cancellationToken)
    {
        var frontend = _device.ReadFrontendStateAsync(cancellationToken);
        var backend = _device.ReadBackendStateAsync(cancellationToken);
        var online = _device.ReadBackendAsync("online", cancellationToken);
        await Task.WhenAll(frontend, backend, online).ConfigureAwait(false);
        bool ready = !_ringsUp && await _backend.IsReadyToConnectAsync(_device, cancellationToken).ConfigureAwait(false);
        // libxl always writes online=1; a missing node is treated as online so hand-made devices work.
        return new LifecycleView(frontend.Result, backend.Result, online.Result != "0", _ringsUp, ready);
    }

    private async Task ApplyAsync(LifecycleAction action, CancellationToken cancellationToken)
    {
        switch (action)
        {
            case LifecycleAction.Reconnect:
                await _device.SwitchStateAsync(XenbusState.InitWait, cancellationToken).ConfigureAwait(false);
                break;
            case LifecycleAction.Connect:
                await ConnectAsync(cancellationToken).ConfigureAwait(false);
                break;
            case LifecycleAction.Close:
                await _device.SwitchStateAsync(XenbusState.Closing, cancellationToken).ConfigureAwait(false);
                break;
            case LifecycleAction.Disconnect:
                await DisconnectAsync(cancellationToken).ConfigureAwait(false);
                await _device.SwitchStateAsync(XenbusState.Closed, cancellationToken).ConfigureAwait(false);
                break;
        }
    }

    private async Task ConnectAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _backend.ConnectAsync(_device, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException and not XenStoreConnectionException)
        {
            await FailAsync(e is FrontendConfigurationException ? e.Message : "connecting failed: " + e.Message, cancellationToken).ConfigureAwait(false);
            return;
        }
        _ringsUp = true;
        LastError = null;
        await _device.ClearErrorAsync(cancellationToken).ConfigureAwait(false);
        await _device.SwitchStateAsync(XenbusState.Connected, cancellationToken).ConfigureAwait(false);
    }

    private async Task DisconnectAsync(CancellationToken cancellationToken)
    {
        if (!_ringsUp) return;
        await _backend.DisconnectAsync(cancellationToken).ConfigureAwait(false);
        _ringsUp = false;
    }

    private async Task FailAsync(string message, CancellationToken cancellationToken)
    {
        LastError = message;
        _log?.Invoke($"{_device.Path}: fatal: {message}");
        await _device.ReportFatalAsync(message, cancellationToken).ConfigureAwait(false);
    }
}
