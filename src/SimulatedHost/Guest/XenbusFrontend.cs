using System.Globalization;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.SimulatedHost.Guest;

/// <summary>
/// The xenbus side of a Linux PV frontend (drivers/xen/xenbus/xenbus_probe_frontend.c): reads
/// <c>backend</c>/<c>backend-id</c> from its node, watches the other end's <c>state</c> and hands every
/// change to the driver one at a time, and switches its own state like <c>xenbus_switch_state</c>.
/// It connects to xenstored through the guest's socket, so xenstored checks it as the guest's domid.
/// </summary>
public abstract class XenbusFrontend : IGuestDriver, IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    // Replaced on resume: the stop signal belongs to one attachment to one domain.
    private CancellationTokenSource _stop = new();
    private readonly Lock _changedLock = new();
    private TaskCompletionSource _changed = NewSignal();
    private Task _loop = Task.CompletedTask;
    private WatchSubscription? _otherEndWatch;

    private protected XenbusFrontend(SimulatedGuest guest, string kind, int devid)
    {
        Guest = guest;
        DevId = devid;
        _kind = kind;
        NodeName = $"/local/domain/{guest.Domid}/device/{kind}/{devid}";
    }

    /// <summary>The domain the driver runs in; a restore moves it to the new domain (new domid).</summary>
    public SimulatedGuest Guest { get; private set; }

    public int DevId { get; }

    private readonly string _kind;

    /// <summary>The frontend directory (<c>dev-&gt;nodename</c>); it names the domid, so it changes on restore.</summary>
    public string NodeName { get; private set; }

    /// <summary>The guest was suspended (xl save) and not yet resumed in a new domain.</summary>
    public bool IsSuspended { get; private set; }

    /// <summary>The backend directory (<c>dev-&gt;otherend</c>).</summary>
    public string OtherEnd { get; private set; } = "";

    public ushort OtherEndId { get; private set; }

    /// <summary>What this frontend last wrote to its state node.</summary>
    public XenbusState State { get; private set; } = XenbusState.Initialising;

    public XenbusState BackendState { get; private protected set; } = XenbusState.Unknown;

    /// <summary>The error that stopped the driver (xenbus_dev_fatal), if any.</summary>
    public Exception? Fault { get; private set; }

    /// <summary>Every state this frontend wrote, in order: what a test compares against Linux.</summary>
    public IReadOnlyList<XenbusState> StateHistory => _history;

    private readonly List<XenbusState> _history = [];

    private protected XenStoreClient Xs { get; private set; } = null!;

    private protected CancellationToken Stopping => _stop.Token;

    private protected bool Halted { get; private set; }

    /// <summary>Probe: connect to xenstored as the guest, learn the other end and start following it.</summary>
    private protected async Task StartAsync(CancellationToken ct)
    {
        Xs = await Guest.OpenXenStoreAsync(ct).ConfigureAwait(false);
        OtherEnd = await Xs.ReadStringAsync(NodeName + "/backend", ct).ConfigureAwait(false);
        OtherEndId = ushort.Parse(await Xs.ReadStringAsync(NodeName + "/backend-id", ct).ConfigureAwait(false), NumberStyles.None, CultureInfo.InvariantCulture);
        State = XenbusStates.Parse(await Xs.TryReadStringAsync(NodeName + "/state", ct).ConfigureAwait(false));
        var router = new WatchRouter(Xs);
        _otherEndWatch = await router.SubscribeAsync(OtherEnd + "/state", ct).ConfigureAwait(false);
        Guest.Register(this);
        _loop = Task.Run(FollowOtherEndAsync);
    }

    private async Task FollowOtherEndAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                await _otherEndWatch!.WaitAsync(_stop.Token).ConfigureAwait(false);
                await _gate.WaitAsync(_stop.Token).ConfigureAwait(false);
                try
                {
                    BackendState = XenbusStates.Parse(await Xs.TryReadStringAsync(OtherEnd + "/state", _stop.Token).ConfigureAwait(false));
                    await OtherEndChangedAsync(BackendState).ConfigureAwait(false);
                }
                finally
                {
                    _gate.Release();
                    Pulse();
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            Fault = e;
            Pulse();
        }
    }

    /// <summary>The driver's <c>otherend_changed</c>, called with the transition lock held.</summary>
    private protected abstract Task OtherEndChangedAsync(XenbusState backendState);

    /// <summary>Runs <paramref name="action"/> under the same lock as backend-state handling.</summary>
    private protected async Task WithGateAsync(Func<Task> action, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await action().ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
            Pulse();
        }
    }

    /// <summary><c>xenbus_switch_state</c>: writes only when the state differs, so no watch fires for nothing.</summary>
    private protected async Task SwitchStateAsync(XenbusState state, CancellationToken ct)
    {
        if (State == state)
            return;
        await Xs.WriteAsync(NodeName + "/state", XenbusStates.Format(state), ct).ConfigureAwait(false);
        State = state;
        lock (_history)
            _history.Add(state);
        Pulse();
    }

    /// <summary>
    /// Linux's xenbus_reset_state: a frontend starting over (reboot, kexec, driver reload) while its
    /// backend still holds the old connection first walks the backend through Closing and Closed, so
    /// the backend releases the old rings before the new handshake. Runs outside the driver's gate so
    /// the backend's state changes keep being followed.
    /// </summary>
    private protected async Task ResetConnectionAsync(Action releaseRings, TimeSpan timeout, CancellationToken ct)
    {
        var backend = XenbusStates.Parse(await Xs.TryReadStringAsync(OtherEnd + "/state", ct).ConfigureAwait(false));
        if (backend is XenbusState.Initialising or XenbusState.InitWait or XenbusState.Closed or XenbusState.Unknown)
            return;
        await WithGateAsync(() => SwitchStateAsync(XenbusState.Closing, ct), ct).ConfigureAwait(false);
        await WaitUntilAsync(() => BackendState is XenbusState.Closing or XenbusState.Closed, timeout, "backend closing").ConfigureAwait(false);
        await WithGateAsync(async () =>
        {
            releaseRings();
            await SwitchStateAsync(XenbusState.Closed, ct).ConfigureAwait(false);
        }, ct).ConfigureAwait(false);
        await WaitUntilAsync(() => BackendState == XenbusState.Closed, timeout, "backend closed").ConfigureAwait(false);
    }

    /// <summary>
    /// Waits until <paramref name="condition"/> holds (re-checked after every transition); fails on a fault or timeout.
    /// The condition is evaluated under the transition lock: a transition updates several fields one after
    /// another (a resize sets Sectors, then ResizeCount), and a check from another thread must see all of
    /// them or none. Callers must not hold the lock themselves.
    /// </summary>
    /// <summary>
    /// The guest is suspended for save or migration: the driver stops at once (no state change is
    /// written, as a frozen Linux guest writes none), keeps its in-flight requests, and drops its
    /// xenstore connection and watch, which die with the domain. The object, which stands for the
    /// guest kernel's memory, survives and is handed to <see cref="ResumeAsync"/> in the new domain.
    /// </summary>
    public async Task SuspendAsync()
    {
        if (IsSuspended || Halted)
            return;
        if (!SupportsSuspend)
            throw new NotSupportedException($"{NodeName}: this simulated driver does not model suspend/resume");
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            IsSuspended = true;
            SuspendRings();
        }
        finally
        {
            _gate.Release();
        }
        Guest.Unregister(this);
        if (_otherEndWatch is not null)
            await _otherEndWatch.DisposeAsync().ConfigureAwait(false);
        _otherEndWatch = null;
        await Xs.DisposeAsync().ConfigureAwait(false);
        Pulse();
    }

    /// <summary>
    /// xenbus_dev_resume in the restored domain: the device node now lives under the new domid, the
    /// toolstack wrote it afresh (state Initialising, a new backend); re-read the other end, follow it,
    /// and let the driver's resume run (blkfront_resume / netfront_resume).
    /// </summary>
    public async Task ResumeAsync(SimulatedGuest guest, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(guest);
        if (!IsSuspended)
            throw new InvalidOperationException($"{NodeName} is not suspended");
        Guest = guest;
        NodeName = $"/local/domain/{guest.Domid}/device/{_kind}/{DevId}";
        var stale = _stop;
        _stop = new CancellationTokenSource();
        stale.Dispose();
        BackendState = XenbusState.Unknown;
        ResumeRings();
        IsSuspended = false;
        await StartAsync(cancellationToken).ConfigureAwait(false);
        // The backend may already sit in InitWait: no further change would fire our watch.
        await WithGateAsync(async () =>
        {
            BackendState = XenbusStates.Parse(await Xs.TryReadStringAsync(OtherEnd + "/state", cancellationToken).ConfigureAwait(false));
            await OtherEndChangedAsync(BackendState).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Whether the driver models Linux's suspend/resume (only blkfront does so far).</summary>
    public virtual bool SupportsSuspend => false;

    /// <summary>Freeze the rings for suspend: in-flight requests stay in the shadow, nothing fails.</summary>
    private protected virtual void SuspendRings() => throw new NotSupportedException();

    /// <summary>Rebind what belongs to the domain (event channels) before the handshake restarts.</summary>
    private protected virtual void ResumeRings() => throw new NotSupportedException();

    public async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            Task signal;
            lock (_changedLock)
                signal = _changed.Task;
            if (Fault is { } fault)
                throw new InvalidOperationException($"{NodeName}: {what}: the frontend failed", fault);
            try
            {
                await _gate.WaitAsync(cts.Token).ConfigureAwait(false);
                bool holds;
                try
                {
                    holds = condition();
                }
                finally
                {
                    _gate.Release();
                }
                if (holds)
                    return;
                await signal.WaitAsync(cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"{NodeName}: {what} did not happen within {timeout.TotalSeconds:0.###} s (frontend {State}, backend {BackendState})");
            }
        }
    }

    public Task WaitForStateAsync(XenbusState state, TimeSpan timeout) => WaitUntilAsync(() => State == state, timeout, $"state {state}");

    private protected void Pulse()
    {
        TaskCompletionSource previous;
        lock (_changedLock)
        {
            previous = _changed;
            _changed = NewSignal();
        }
        previous.TrySetResult();
    }

    private protected void Fail(Exception e)
    {
        Fault = e;
        Pulse();
    }

    /// <summary>Stops the rings: no more ring or grant access after this returns.</summary>
    private protected abstract void StopRings();

    public async ValueTask HaltAsync()
    {
        if (Halted)
            return;
        Halted = true;
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            StopRings();
        }
        finally
        {
            _gate.Release();
        }
        Pulse();
    }

    public async ValueTask DisposeAsync()
    {
        bool suspended = IsSuspended;
        await HaltAsync().ConfigureAwait(false);
        Guest.Unregister(this);
        // A suspended driver already closed its connection with the old domain.
        if (_otherEndWatch is not null)
            await _otherEndWatch.DisposeAsync().ConfigureAwait(false);
        if (Xs is not null && !suspended)
            await Xs.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
        GC.SuppressFinalize(this);
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
