namespace XenBackends.Xenbus.Tests;

/// <summary>A backend kind that records calls and enforces the contract: never connect twice without a disconnect.</summary>
internal sealed class RecordingDevice : IBackendDevice
{
    private readonly object _gate = new();
    private int _active; // calls in progress, to catch concurrency

    public List<string> Calls { get; } = new();
    public bool Connected { get; private set; }
    public int Connects { get; private set; }
    public int Disconnects { get; private set; }
    public Func<Task<bool>> Ready { get; set; } = () => Task.FromResult(true);

    private void Enter(string call)
    {
        Assert.Equal(1, Interlocked.Increment(ref _active));
        lock (_gate) Calls.Add(call);
    }

    private void Leave() => Interlocked.Decrement(ref _active);

    public async Task PrepareAsync(XenbusDevice device, CancellationToken cancellationToken)
    {
        Enter("prepare");
        await device.WriteBackendAsync("feature-test", "1", cancellationToken);
        Leave();
    }

    public Task<bool> IsReadyToConnectAsync(XenbusDevice device, CancellationToken cancellationToken) => Ready();

    public async Task ConnectAsync(XenbusDevice device, CancellationToken cancellationToken)
    {
        Enter("connect");
        try
        {
            Assert.False(Connected, "connected twice without a disconnect");
            // Stands in for reading ring-ref: a guest-written value the backend validates.
            await FrontendKeys.ReadUInt32Async(device, "ring-ref", 1, 100_000, null, cancellationToken);
            Connected = true;
            Connects++;
        }
        finally { Leave(); }
    }

    public Task DisconnectAsync(CancellationToken cancellationToken)
    {
        Enter("disconnect");
        if (Connected) Disconnects++;
        Connected = false;
        Leave();
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
