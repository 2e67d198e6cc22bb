namespace XenBackends.Rings.Blkif;

/// <summary>
/// The two blkif ring layouts. They differ only in the alignment of u64: x86_32 aligns it to 4, so
/// <c>id</c> moves from 8 to 4 and the request shrinks from 112 to 108 bytes.
/// </summary>
public enum BlkifAbi
{
    /// <summary>"x86_64-abi", and "arm-abi" (arm aligns u64 to 8 too).</summary>
    X86_64 = 0,
    /// <summary>"x86_32-abi": gcc -m32's native layout of the same headers.</summary>
    X86_32 = 1,
}

/// <summary>XEN_IO_PROTO_ABI_* strings (io/protocols.h): the frontend's "protocol" xenstore key.</summary>
public static class BlkifProtocol
{
    /// <summary><c>XEN_IO_PROTO_ABI_X86_32</c></summary>
    public const string X86_32 = "x86_32-abi";
    /// <summary><c>XEN_IO_PROTO_ABI_X86_64</c></summary>
    public const string X86_64 = "x86_64-abi";
    /// <summary><c>XEN_IO_PROTO_ABI_ARM</c></summary>
    public const string Arm = "arm-abi";

    /// <summary>
    /// Maps the "protocol" key to a layout. Absent (null or empty) means the backend's native ABI,
    /// which for this x86_64/arm64 dom0 is the x86_64 layout.
    /// </summary>
    public static bool TryParse(string? protocol, out BlkifAbi abi)
    {
        switch (protocol)
        {
            case null or "" or X86_64 or Arm:
                abi = BlkifAbi.X86_64;
                return true;
            case X86_32:
                abi = BlkifAbi.X86_32;
                return true;
            default:
                abi = default;
                return false;
        }
    }

    /// <summary>As <see cref="TryParse"/>, throwing <see cref="UnknownBlkifProtocolException"/> for an unknown string.</summary>
    public static BlkifAbi Parse(string? protocol) =>
        TryParse(protocol, out BlkifAbi abi) ? abi : throw new UnknownBlkifProtocolException(protocol!);

    /// <summary>The request/response sizes of a blkif ring in this ABI.</summary>
    public static RingSlotLayout Layout(BlkifAbi abi) => abi switch
    {
        BlkifAbi.X86_64 => RingSlotLayout.Of<BlkifX86_64Request, BlkifX86_64Response>(),
        BlkifAbi.X86_32 => RingSlotLayout.Of<BlkifX86_32Request, BlkifX86_32Response>(),
        _ => throw new ArgumentOutOfRangeException(nameof(abi)),
    };
}

/// <summary>The frontend wrote a "protocol" this backend does not speak; the device cannot connect.</summary>
public sealed class UnknownBlkifProtocolException(string protocol)
    : Exception($"unknown blkif protocol \"{protocol}\"")
{
    public string Protocol { get; } = protocol;
}
