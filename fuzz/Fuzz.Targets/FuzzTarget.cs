namespace XenBackends.Fuzz;

/// <summary>One fuzz target: an input in, invariants checked, <see cref="InvariantViolation"/> out when one breaks.</summary>
public abstract class FuzzTarget
{
    private readonly Lock _gate = new();

    /// <summary>The name fuzz/run and the corpus folder use (fuzz/corpus/NAME).</summary>
    public abstract string Name { get; }

    /// <summary>
    /// Runs one input. Targets keep a simulated guest between inputs (building one per input would
    /// cost more than the input itself), so inputs are serialized.
    /// </summary>
    public void Run(ReadOnlySpan<byte> data)
    {
        lock (_gate)
            Execute(data);
    }

    protected abstract void Execute(ReadOnlySpan<byte> data);

    /// <summary>Small valid examples that reach each part of the code: the seed corpus.</summary>
    public abstract IEnumerable<(string Name, byte[] Data)> Seeds();

    public static IReadOnlyList<FuzzTarget> All { get; } =
    [
        new BlkifDecodeTarget(),
        new BlockRingTarget(),
        new NetTxTarget(),
        new NetCtrlTarget(),
        new XenStoreWireTarget(),
    ];

    public static FuzzTarget Get(string name) =>
        All.FirstOrDefault(t => t.Name == name)
        ?? throw new ArgumentException($"no fuzz target '{name}'; targets: {string.Join(", ", All.Select(t => t.Name))}");
}
