namespace XenBackends.SimulatedHost.Hostile;

/// <summary>Hands out the live guest bytes to rewrite (a ring slot, an indirect page) each time it is called.</summary>
public delegate Span<byte> LiveBytes();

/// <summary>
/// A guest vCPU rewriting shared memory while the backend reads it: a thread that keeps
/// alternating the bytes between two versions until disposed. Any backend that reads a field twice
/// (validate, then use) sees both versions sooner or later: the XSA-155 double-fetch trigger.
/// </summary>
public sealed class ByteFlipper : IDisposable
{
    private readonly Thread _thread;
    private volatile bool _stop;

    public ByteFlipper(LiveBytes target, byte[] versionA, byte[] versionB)
    {
        if (versionA.Length != versionB.Length)
            throw new ArgumentException("both versions must have the same length");
        _thread = new Thread(() =>
        {
            while (!_stop)
            {
                versionA.CopyTo(target());
                Flips++;
                versionB.CopyTo(target());
                Flips++;
            }
        }) { IsBackground = true, Name = "hostile-flipper" };
        _thread.Start();
    }

    /// <summary>How many times the bytes were rewritten (proves the flipper ran concurrently).</summary>
    public long Flips { get; private set; }

    public void Dispose()
    {
        _stop = true;
        _thread.Join();
    }
}
