using XenBackends.Rings.Netif;

namespace XenBackends.Backend.Net.Control;

/// <summary>
/// What the frontend configured over the control ring: algorithm, hash types, key and the
/// hash-to-queue mapping. Immutable: the control thread builds a new instance from private,
/// already validated copies and publishes it with one reference store, so a queue thread never
/// sees a half-written mapping (the property netback gets from its double-buffered mapping_sel
/// after XSA-270).
/// </summary>
public sealed class RxHashSettings
{
    /// <summary>XEN_NETBK_MAX_HASH_MAPPING_SIZE: the table size GET_HASH_MAPPING_SIZE reports.</summary>
    public const int MaxMappingSize = 128;

    /// <summary>Every hash type we can compute (GET_HASH_FLAGS).</summary>
    public const uint SupportedTypes = NetifCtrlHashType.Ipv4 | NetifCtrlHashType.Ipv4Tcp | NetifCtrlHashType.Ipv6 | NetifCtrlHashType.Ipv6Tcp;

    private static readonly byte[] NoKey = new byte[Toeplitz.MaxKeyLength];

    /// <summary>Hashing off, no key, no table: the state of every new connection.</summary>
    public static RxHashSettings Initial { get; } = new(NetifCtrlHashAlgorithm.None, 0, NoKey, new Toeplitz(NoKey), []);

    private RxHashSettings(byte algorithm, uint types, byte[] key, Toeplitz toeplitz, uint[] mapping)
    {
        Algorithm = algorithm;
        Types = types;
        _key = key;
        Function = toeplitz;
        Mapping = mapping;
    }

    // Shared between instances: nothing ever writes into a published key or table.
    private readonly byte[] _key;

    public byte Algorithm { get; }

    /// <summary>XEN_NETIF_CTRL_HASH_TYPE_* bits to compute; 0 means no hashing.</summary>
    public uint Types { get; }

    /// <summary>40 bytes; octets the frontend did not set are zero.</summary>
    public ReadOnlyMemory<byte> Key => _key;

    internal Toeplitz Function { get; }

    /// <summary>Queue per table index; empty means hash modulo the queue count.</summary>
    public IReadOnlyList<uint> Mapping { get; }

    internal uint[] MappingArray => (uint[])Mapping;

    /// <summary>True when received frames are hashed (and the hash extra is given to the guest).</summary>
    public bool IsHashing => Algorithm == NetifCtrlHashAlgorithm.Toeplitz && Types != 0;

    public RxHashSettings WithAlgorithm(byte algorithm) => new(algorithm, Types, _key, Function, MappingArray);

    public RxHashSettings WithTypes(uint types) => new(Algorithm, types, _key, Function, MappingArray);

    /// <summary>A new key (zero-extended to 40 bytes): netif.h says unspecified octets are zero.</summary>
    public RxHashSettings WithKey(ReadOnlySpan<byte> key)
    {
        var full = new byte[Toeplitz.MaxKeyLength];
        key.CopyTo(full);
        return new(Algorithm, Types, full, new Toeplitz(full), MappingArray);
    }

    /// <summary>A zero-filled table of <paramref name="size"/> entries (SET_HASH_MAPPING_SIZE invalidates the old one).</summary>
    public RxHashSettings WithMappingSize(int size) => new(Algorithm, Types, _key, Function, new uint[size]);

    public RxHashSettings WithMapping(uint[] mapping) => new(Algorithm, Types, _key, Function, mapping);
}
