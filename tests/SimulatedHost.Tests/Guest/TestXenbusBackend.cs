using XenBackends.Native;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.SimulatedHost.Tests.Guest;

/// <summary>
/// What the two test backends (<see cref="TestBlkback"/>, <see cref="TestNetback"/>) share: dom0's
/// xenstore connection, grant mapper and event channels, waiting for the toolstack's backend
/// directory, following the frontend's state the way Linux's xenbus backends do (connect when the
/// subclass says so, Closing/Closed, back to InitWait after a frontend restarts) and one loop that
/// hands each pending port to the subclass. Not hardened: they trust the frontend.
/// </summary>
public abstract class TestXenbusBackend : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    // Linux runs every xenbus callback of a backend on the one xenwatch thread, so a backend closing on
    // its own and the frontend-state handler never interleave. Here CloseAsync runs on the test's thread
    // and the handler on the watch loop: without this lock the handler could read the state mid-close
    // (Closing) with a stale frontend Connected and map the rings again while the frontend frees them.
    private readonly SemaphoreSlim _transition = new(1, 1);
    private Task _stateLoop = Task.CompletedTask;
    private Task _eventLoop = Task.CompletedTask;

    protected TestXenbusBackend(XenStoreClient xs, SimulatedXenHost host, ushort domid, string backendPath)
    {
        Xs = xs;
        Router = new WatchRouter(xs);
        Mapper = host.CreateGrantMapper();
        Events = host.OpenEventChannels(0);
        Domid = domid;
        BackendPath = backendPath;
    }

    public string BackendPath { get; }
    public string FrontendPath { get; private set; } = "";
    public SortedDictionary<string, string> FrontendKeysAtConnect { get; private set; } = [];
    public XenbusState FrontendStateAtConnect { get; private set; }
    public int Connects { get; protected set; }
    public Exception? Fault { get; protected set; }

    protected XenStoreClient Xs { get; }
    protected WatchRouter Router { get; }
    protected IGrantMapper Mapper { get; }
    protected SimulatedEventChannels Events { get; }
    protected ushort Domid { get; }
    protected CancellationToken Stopping => _stop.Token;
    protected XenbusState State { get; private set; } = XenbusState.Initialising;

    /// <summary>Guards the rings against the event loop while they are mapped or torn down.</summary>
    protected Lock RingLock { get; } = new();

    /// <summary>Waits for the toolstack to create the backend directory (its frontend key) and remembers the frontend's path.</summary>
    protected async Task WaitForToolstackAsync()
    {
        await using (var created = await Router.SubscribeAsync(BackendPath + "/frontend"))
        {
            using var cts = new CancellationTokenSource(SimulatedHostHarness.Bound);
            while (await Xs.TryReadStringAsync(BackendPath + "/frontend") is null)
                await created.WaitAsync(cts.Token);
        }
        FrontendPath = await Xs.ReadStringAsync(BackendPath + "/frontend");
    }

    /// <summary>After the features are published: InitWait, then the event and frontend-state loops.</summary>
    protected async Task StartAsync()
    {
        await SetStateAsync(XenbusState.InitWait);
        _eventLoop = Task.Run(ServeAsync);
        _stateLoop = Task.Run(FollowFrontendAsync);
    }

    /// <summary>Whether the frontend's new state makes this backend connect (read against <see cref="State"/>).</summary>
    protected abstract bool ShouldConnect(XenbusState frontend);

    /// <summary>Maps the rings and goes Connected; runs under the transition lock.</summary>
    protected abstract Task ConnectAsync(XenbusState frontend);

    /// <summary>Unbinds and unmaps whatever is connected (idempotent).</summary>
    protected abstract void Disconnect();

    /// <summary>Serves the rings behind <paramref name="port"/>; called under <see cref="RingLock"/>.</summary>
    protected abstract void ServePort(uint port);

    /// <summary>The frontend-state loop failed.</summary>
    protected virtual void OnFault(Exception e)
    {
    }

    /// <summary>Reads the frontend's whole directory for <see cref="FrontendKeysAtConnect"/> as a connect starts.</summary>
    protected async Task<SortedDictionary<string, string>> ReadFrontendKeysAsync(XenbusState frontend)
    {
        FrontendStateAtConnect = frontend;
        FrontendKeysAtConnect = await XsDump.TreeAsync(Xs, FrontendPath);
        return FrontendKeysAtConnect;
    }

    /// <summary>The backend closes on its own (unbind, driver unload): Closing, then Closed.</summary>
    public async Task CloseAsync()
    {
        await _transition.WaitAsync();
        try
        {
            Disconnect();
            await SetStateAsync(XenbusState.Closing);
            await SetStateAsync(XenbusState.Closed);
        }
        finally
        {
            _transition.Release();
        }
    }

    private async Task FollowFrontendAsync()
    {
        try
        {
            await using var watch = await Router.SubscribeAsync(FrontendPath + "/state", _stop.Token);
            while (true)
            {
                await watch.WaitAsync(_stop.Token);
                // The frontend state is read under the lock, so it is judged against a settled State.
                await _transition.WaitAsync(_stop.Token);
                try
                {
                    var fe = XenbusStates.Parse(await Xs.TryReadStringAsync(FrontendPath + "/state", _stop.Token));
                    switch (fe)
                    {
                        case var connect when ShouldConnect(connect):
                            await ConnectAsync(fe);
                            break;
                        case XenbusState.Closing when State is not XenbusState.Closed:
                            Disconnect();
                            await SetStateAsync(XenbusState.Closing);
                            break;
                        case XenbusState.Closed or XenbusState.Unknown when State is not XenbusState.Closed:
                            Disconnect();
                            await SetStateAsync(XenbusState.Closed);
                            break;
                        case XenbusState.Initialising when State == XenbusState.Closed:
                            await SetStateAsync(XenbusState.InitWait);
                            break;
                    }
                }
                finally
                {
                    _transition.Release();
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            Fault = e;
            OnFault(e);
        }
    }

    private async Task ServeAsync()
    {
        try
        {
            while (true)
            {
                uint port = await Events.WaitPendingAsync(_stop.Token);
                lock (RingLock)
                    ServePort(port);
                Events.Unmask(port);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        catch (Exception e)
        {
            Fault = e;
        }
    }

    protected async Task SetStateAsync(XenbusState state)
    {
        State = state;
        await Xs.WriteAsync(BackendPath + "/state", XenbusStates.Format(state));
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _stateLoop;
        await _eventLoop;
        Disconnect();
        Events.Dispose();
        Mapper.Dispose();
        _transition.Dispose();
        await Router.DisposeAsync();
        await Xs.DisposeAsync();
        GC.SuppressFinalize(this);
    }
}
