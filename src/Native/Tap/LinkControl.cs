using Tmds.Linux;
using XenBackends.Native.Linux;

namespace XenBackends.Native.Tap;

/// <summary>
/// Interface ioctls by name (link up, MTU, bridge port) for interfaces this process does not hold as a
/// <see cref="TapDevice"/> object: what vif-bridge does with `ip link`, done in-process so a restarted
/// worker needs no `ip` binary and gets an errno instead of parsing a tool's output. All calls act in
/// the calling process's network namespace.
/// </summary>
public static unsafe class LinkControl
{
    // linux/sockios.h (x86_64 and every other Linux architecture: these are not _IOC-encoded).
    private const int SIOCGIFMTU = 0x8921;
    private const int SIOCBRADDIF = 0x89a2;

    /// <summary>True when an interface of that name exists in this namespace.</summary>
    public static bool Exists(string name) => TryIndexOf(name, out _) == 0;

    /// <summary>The interface's ifindex (SIOCGIFINDEX); ENODEV when there is none of that name.</summary>
    public static int IndexOf(string name)
    {
        int errno = TryIndexOf(name, out int index);
        if (errno != 0)
            throw new LinuxCallException($"ioctl(SIOCGIFINDEX {name})", errno);
        return index;
    }

    private static int TryIndexOf(string name, out int index)
    {
        TapDevice.ValidateName(name);
        using var sock = InterfaceRequest.ControlSocket();
        byte* ifr = stackalloc byte[TapConstants.IfReqSize];
        InterfaceRequest.Fill(ifr, name);
        if (LibC.ioctl(sock.Fd, TapConstants.SIOCGIFINDEX, ifr) != 0)
        {
            index = 0;
            return LibC.errno;
        }
        index = *(int*)(ifr + TapConstants.IfNameSize);
        return 0;
    }

    /// <summary>Sets or clears IFF_UP, leaving every other flag as it is.</summary>
    public static void SetUp(string name, bool up)
    {
        TapDevice.ValidateName(name);
        using var sock = InterfaceRequest.ControlSocket();
        byte* ifr = stackalloc byte[TapConstants.IfReqSize];
        InterfaceRequest.Fill(ifr, name);
        if (LibC.ioctl(sock.Fd, TapConstants.SIOCGIFFLAGS, ifr) != 0)
            throw LinuxCallException.FromErrno($"ioctl(SIOCGIFFLAGS {name})");
        short* flags = (short*)(ifr + TapConstants.IfNameSize);
        *flags = up ? (short)(*flags | TapConstants.IFF_UP) : (short)(*flags & ~TapConstants.IFF_UP);
        if (LibC.ioctl(sock.Fd, TapConstants.SIOCSIFFLAGS, ifr) != 0)
            throw LinuxCallException.FromErrno($"ioctl(SIOCSIFFLAGS {name})");
    }

    /// <summary>True when IFF_UP is set (administratively up; the carrier is another matter).</summary>
    public static bool IsUp(string name)
    {
        TapDevice.ValidateName(name);
        using var sock = InterfaceRequest.ControlSocket();
        byte* ifr = stackalloc byte[TapConstants.IfReqSize];
        InterfaceRequest.Fill(ifr, name);
        if (LibC.ioctl(sock.Fd, TapConstants.SIOCGIFFLAGS, ifr) != 0)
            throw LinuxCallException.FromErrno($"ioctl(SIOCGIFFLAGS {name})");
        return (*(short*)(ifr + TapConstants.IfNameSize) & TapConstants.IFF_UP) != 0;
    }

    public static void SetMtu(string name, int mtu)
    {
        TapDevice.ValidateName(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(mtu, 68);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(mtu, 65535);
        using var sock = InterfaceRequest.ControlSocket();
        byte* ifr = stackalloc byte[TapConstants.IfReqSize];
        InterfaceRequest.Fill(ifr, name);
        *(int*)(ifr + TapConstants.IfNameSize) = mtu;
        if (LibC.ioctl(sock.Fd, TapConstants.SIOCSIFMTU, ifr) != 0)
            throw LinuxCallException.FromErrno($"ioctl(SIOCSIFMTU {name} {mtu})");
    }

    public static int GetMtu(string name)
    {
        TapDevice.ValidateName(name);
        using var sock = InterfaceRequest.ControlSocket();
        byte* ifr = stackalloc byte[TapConstants.IfReqSize];
        InterfaceRequest.Fill(ifr, name);
        if (LibC.ioctl(sock.Fd, SIOCGIFMTU, ifr) != 0)
            throw LinuxCallException.FromErrno($"ioctl(SIOCGIFMTU {name})");
        return *(int*)(ifr + TapConstants.IfNameSize);
    }

    /// <summary>
    /// Makes <paramref name="port"/> a port of Linux bridge <paramref name="bridge"/> (SIOCBRADDIF, what
    /// `brctl addif` does). Errno: ENODEV when the bridge does not exist, EOPNOTSUPP when it is not a
    /// Linux bridge (an Open vSwitch bridge, say), EBUSY when the port already has another master;
    /// adding a port that is already this bridge's is a no-op the kernel reports as success.
    /// </summary>
    public static void AddToBridge(string bridge, string port)
    {
        TapDevice.ValidateName(bridge);
        int portIndex = IndexOf(port);
        using var sock = InterfaceRequest.ControlSocket();
        byte* ifr = stackalloc byte[TapConstants.IfReqSize];
        InterfaceRequest.Fill(ifr, bridge);
        *(int*)(ifr + TapConstants.IfNameSize) = portIndex;
        if (LibC.ioctl(sock.Fd, SIOCBRADDIF, ifr) != 0)
            throw LinuxCallException.FromErrno($"ioctl(SIOCBRADDIF {bridge} {port})");
    }
}
