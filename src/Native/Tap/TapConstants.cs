namespace XenBackends.Native.Tap;

/// <summary>
/// linux/if_tun.h and linux/sockios.h values (x86_64, checked with gcc; see ecosystem notes 1.11).
/// </summary>
internal static class TapConstants
{
    public const int TUNSETIFF = 0x400454ca;
    public const int TUNSETOFFLOAD = 0x400454d0;
    public const int TUNSETVNETHDRSZ = 0x400454d8;
    /// <summary><c>_IOW('T', 217, int)</c>: attach or detach this fd's queue of a multi-queue tap.</summary>
    public const int TUNSETQUEUE = 0x400454d9;
    /// <summary><c>_IOR('T', 210, unsigned int)</c>: the interface this fd is attached to (EBADFD when none).</summary>
    public const int TUNGETIFF = unchecked((int)0x800454d2);
    public const int TUNGETFEATURES = unchecked((int)0x800454cf);

    public const short IFF_TAP = 0x0002;
    public const short IFF_NO_PI = 0x1000;
    public const short IFF_VNET_HDR = 0x4000;
    public const short IFF_MULTI_QUEUE = 0x0100;
    public const short IFF_ATTACH_QUEUE = 0x0200;
    public const short IFF_DETACH_QUEUE = 0x0400;

    public const int SIOCGIFFLAGS = 0x8913;
    public const int SIOCSIFFLAGS = 0x8914;
    public const int SIOCSIFMTU = 0x8922;
    public const int SIOCSIFHWADDR = 0x8924;
    public const int SIOCGIFINDEX = 0x8933;

    public const short IFF_UP = 0x1;
    public const ushort ARPHRD_ETHER = 1;

    /// <summary><c>struct ifreq</c>: 16-byte name, then a 24-byte union.</summary>
    public const int IfReqSize = 40;
    public const int IfNameSize = 16;
}

/// <summary><c>TUN_F_*</c>: what the kernel may hand us un-finished (partial checksums, TSO super-frames).</summary>
[Flags]
public enum TapOffloads : uint
{
    None = 0,
    /// <summary><c>TUN_F_CSUM</c>: frames may carry VIRTIO_NET_HDR_F_NEEDS_CSUM.</summary>
    Checksum = 0x01,
    /// <summary><c>TUN_F_TSO4</c> (requires <see cref="Checksum"/>).</summary>
    Tso4 = 0x02,
    /// <summary><c>TUN_F_TSO6</c> (requires <see cref="Checksum"/>).</summary>
    Tso6 = 0x04,
}
