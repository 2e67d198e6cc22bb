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

    private static readonly (string Name, Func<FuzzTarget> Create)[] Registry =
    [
        ("blkif-decode", () => new BlkifDecodeTarget()),
        ("block-ring", () => new BlockRingTarget()),
        ("net-tx", () => new NetTxTarget()),
        ("net-rx", () => new NetRxTarget()),
        ("net-ctrl", () => new NetCtrlTarget()),
        ("xenstore-wire", () => new XenStoreWireTarget()),
    ];

    private static readonly Dictionary<string, FuzzTarget> Created = [];

    public static IReadOnlyList<string> Names { get; } = [.. Registry.Select(r => r.Name)];

    /// <summary>Every target (each built on first use: a target owns a simulated guest).</summary>
    public static IReadOnlyList<FuzzTarget> All => [.. Names.Select(Get)];

    /// <summary>
    /// The named target, built on first use. Under afl the runner must call this only inside
    /// SharpFuzz's Run: instrumented code that runs before it writes coverage into a map that does
    /// not exist yet.
    /// </summary>
    public static FuzzTarget Get(string name)
    {
        var (_, create) = Registry.FirstOrDefault(r => r.Name == name);
        if (create is null)
            throw new ArgumentException($"no fuzz target '{name}'; targets: {string.Join(", ", Names)}");
        lock (Created)
        {
            if (!Created.TryGetValue(name, out FuzzTarget? target))
                Created[name] = target = create();
            return target;
        }
    }
}
