using Tmds.Linux;
using XenBackends.Native.Linux;

namespace XenBackends.Native.Tap;

/// <summary>
/// A non-persistent tap interface (IFF_TAP|IFF_NO_PI, optionally IFF_VNET_HDR and IFF_MULTI_QUEUE)
/// owned by this process: the kernel removes the interface when the last queue's descriptor closes,
/// so a crashed backend never leaves a stale vif behind for the next vif-bridge run.
/// </summary>
public sealed unsafe class TapDevice : IDisposable
{
    private readonly List<TapQueue> _queues;
    private readonly short _flags;
    private int _disposed;

    private TapDevice(string name, List<TapQueue> queues, bool vnetHeader, short flags)
    {
        Name = name;
        _queues = queues;
        HasVnetHeader = vnetHeader;
        _flags = flags;
    }

    /// <summary>The interface name the kernel gave us (equal to the requested one).</summary>
    public string Name { get; }

    public bool HasVnetHeader { get; }

    public IReadOnlyList<TapQueue> Queues => _queues;

    /// <summary>
    /// Creates tap <paramref name="name"/> with <paramref name="queueCount"/> queue descriptors
    /// (more than one needs IFF_MULTI_QUEUE). Fails with EBUSY if an interface of that name exists
    /// and is not a free tap we can attach to.
    /// </summary>
    public static TapDevice Create(string name, int queueCount = 1, bool vnetHeader = true, bool multiQueue = false)
    {
        ValidateName(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(queueCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(queueCount, 256);
        short flags = (short)(TapConstants.IFF_TAP | TapConstants.IFF_NO_PI);
        if (vnetHeader)
            flags |= TapConstants.IFF_VNET_HDR;
        if (queueCount > 1 || multiQueue)
            flags |= TapConstants.IFF_MULTI_QUEUE;
        var queues = new List<TapQueue>(queueCount);
        try
        {
            for (int i = 0; i < queueCount; i++)
                queues.Add(new TapQueue(Attach(name, flags, vnetHeader), i));
            return new TapDevice(name, queues, vnetHeader, flags);
        }
        catch
        {
            foreach (var q in queues)
                q.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Attaches more queue descriptors until there are <paramref name="count"/> (a multi-queue tap
    /// only; the frontend picks its queue count long after the tap had to exist). Offloads set later
    /// apply to all of them.
    /// </summary>
    public void EnsureQueues(int count)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, 256);
        if (count > 1 && (_flags & TapConstants.IFF_MULTI_QUEUE) == 0)
            throw new InvalidOperationException($"tap {Name} was not created multi-queue");
        while (_queues.Count < count)
            _queues.Add(new TapQueue(Attach(Name, _flags, HasVnetHeader), _queues.Count));
    }

    /// <summary>
    /// Keeps the first <paramref name="count"/> queue fds attached and detaches the rest
    /// (TUNSETQUEUE), so the kernel steers frames only to queues a thread serves. Works by fd, not by
    /// name: the hotplug script may have moved or renamed the interface since the fds were opened.
    /// </summary>
    public void SetActiveQueues(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, _queues.Count);
        if ((_flags & TapConstants.IFF_MULTI_QUEUE) == 0)
            return;
        // Attach first so the device never has zero queues in between.
        for (int i = 0; i < count; i++)
            SetQueueAttached(_queues[i], true);
        for (int i = count; i < _queues.Count; i++)
            SetQueueAttached(_queues[i], false);
    }

    private static void SetQueueAttached(TapQueue queue, bool attached)
    {
        if (queue.IsAttached == attached)
            return;
        byte* ifr = stackalloc byte[TapConstants.IfReqSize];
        new Span<byte>(ifr, TapConstants.IfReqSize).Clear();
        *(short*)(ifr + TapConstants.IfNameSize) = attached ? TapConstants.IFF_ATTACH_QUEUE : TapConstants.IFF_DETACH_QUEUE;
        if (LibC.ioctl(queue.Handle.Fd, TapConstants.TUNSETQUEUE, ifr) != 0)
            throw LinuxCallException.FromErrno($"ioctl(TUNSETQUEUE {(attached ? "attach" : "detach")} queue {queue.Index})");
        queue.IsAttached = attached;
    }

    /// <summary>
    /// True when the interface was deleted under us (`ip link del`): queue 0's fd is no longer attached
    /// to any interface (TUNGETIFF answers EBADFD).
    /// </summary>
    public bool IsGone => !IsBound(_queues[0]);

    private static bool IsBound(TapQueue queue)
    {
        byte* ifr = stackalloc byte[TapConstants.IfReqSize];
        new Span<byte>(ifr, TapConstants.IfReqSize).Clear();
        return LibC.ioctl(queue.Handle.Fd, TapConstants.TUNGETIFF, ifr) == 0 || LibC.errno != LibC.EBADFD;
    }

    /// <summary>
    /// After the interface was deleted: creates it again under the same name, in the calling thread's
    /// network namespace, on the fds we already hold (a deleted tap leaves them open but detached;
    /// TUNSETIFF attaches them again), so every poll registration and queue index stays valid. The
    /// new interface is down and on no bridge, as a fresh one is; the MAC, offloads and active queues
    /// are the caller's to set again. Throws when the name is taken by an interface we cannot attach to.
    /// </summary>
    public void Recreate()
    {
        byte* ifr = stackalloc byte[TapConstants.IfReqSize];
        foreach (var queue in _queues)
        {
            // A half-finished earlier attempt may have attached some fds already.
            if (IsBound(queue))
                continue;
            InterfaceRequest.Fill(ifr, Name);
            *(short*)(ifr + TapConstants.IfNameSize) = _flags;
            if (LibC.ioctl(queue.Handle.Fd, TapConstants.TUNSETIFF, ifr) != 0)
                throw LinuxCallException.FromErrno($"ioctl(TUNSETIFF {Name})");
            if (HasVnetHeader)
            {
                // The header size belongs to the device: a new device starts at the default again.
                int size = VirtioNetHeader.Size;
                if (LibC.ioctl(queue.Handle.Fd, TapConstants.TUNSETVNETHDRSZ, &size) != 0)
                    throw LinuxCallException.FromErrno("ioctl(TUNSETVNETHDRSZ)");
            }
            queue.IsAttached = true;
        }
    }

    private static SafeFd Attach(string name, short flags, bool vnetHeader)
    {
        byte[] path = "/dev/net/tun\0"u8.ToArray();
        int fd;
        fixed (byte* p = path)
            fd = LibC.open(p, LibC.O_RDWR | LibC.O_NONBLOCK | LibC.O_CLOEXEC);
        if (fd < 0)
            throw LinuxCallException.FromErrno("open(/dev/net/tun)");
        var handle = new SafeFd(fd);
        try
        {
            byte* ifr = stackalloc byte[TapConstants.IfReqSize];
            InterfaceRequest.Fill(ifr, name);
            *(short*)(ifr + TapConstants.IfNameSize) = flags;
            if (LibC.ioctl(fd, TapConstants.TUNSETIFF, ifr) != 0)
                throw LinuxCallException.FromErrno($"ioctl(TUNSETIFF {name})");
            if (vnetHeader)
            {
                // The 10-byte header (no num_buffers): we never merge rx buffers, so the 12-byte form buys nothing.
                int size = VirtioNetHeader.Size;
                if (LibC.ioctl(fd, TapConstants.TUNSETVNETHDRSZ, &size) != 0)
                    throw LinuxCallException.FromErrno("ioctl(TUNSETVNETHDRSZ)");
            }
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// TUNSETOFFLOAD: which unfinished frames the kernel may give us to read. Anything not enabled
    /// here the kernel completes (checksums) or segments (TSO) before the frame reaches us, which is
    /// how a frontend without feature-gso-tcpv4 still gets correct traffic.
    /// </summary>
    public void SetOffloads(TapOffloads offloads)
    {
        if ((offloads & (TapOffloads.Tso4 | TapOffloads.Tso6)) != 0 && (offloads & TapOffloads.Checksum) == 0)
            throw new ArgumentException("TSO needs checksum offload (the kernel refuses it otherwise)", nameof(offloads));
        // Offloads belong to the device; a detached fd cannot take the ioctl (EBADFD), any attached one can.
        var queue = _queues.FirstOrDefault(q => q.IsAttached) ?? throw new InvalidOperationException($"tap {Name} has no attached queue");
        if (LibC.ioctl(queue.Handle.Fd, TapConstants.TUNSETOFFLOAD, (void*)(nint)(uint)offloads) != 0)
            throw LinuxCallException.FromErrno("ioctl(TUNSETOFFLOAD)");
    }

    /// <summary>Sets the interface's own MAC (the dom0 side; Linux netback uses fe:ff:ff:ff:ff:ff so bridges never pick it).</summary>
    public void SetMacAddress(ReadOnlySpan<byte> mac)
    {
        if (mac.Length != 6)
            throw new ArgumentException("a MAC address is 6 bytes", nameof(mac));
        ulong packed = 0;
        for (int i = 0; i < 6; i++)
            packed |= (ulong)mac[i] << (8 * i);
        InterfaceIoctl(TapConstants.SIOCSIFHWADDR, "SIOCSIFHWADDR", ifr =>
        {
            *(ushort*)(ifr + TapConstants.IfNameSize) = TapConstants.ARPHRD_ETHER;
            for (int i = 0; i < 6; i++)
                ifr[TapConstants.IfNameSize + 2 + i] = (byte)(packed >> (8 * i));
        });
    }

    public void SetMtu(int mtu)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(mtu, 68);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(mtu, 65535);
        InterfaceIoctl(TapConstants.SIOCSIFMTU, "SIOCSIFMTU", ifr => *(int*)(ifr + TapConstants.IfNameSize) = mtu);
    }

    /// <summary>Brings the link up or down (vif-bridge normally does this; tests and route setups without a script need it).</summary>
    public void SetUp(bool up)
    {
        using var sock = InterfaceRequest.ControlSocket();
        byte* ifr = stackalloc byte[TapConstants.IfReqSize];
        InterfaceRequest.Fill(ifr, Name);
        if (LibC.ioctl(sock.Fd, TapConstants.SIOCGIFFLAGS, ifr) != 0)
            throw LinuxCallException.FromErrno("ioctl(SIOCGIFFLAGS)");
        short* flags = (short*)(ifr + TapConstants.IfNameSize);
        *flags = up ? (short)(*flags | TapConstants.IFF_UP) : (short)(*flags & ~TapConstants.IFF_UP);
        if (LibC.ioctl(sock.Fd, TapConstants.SIOCSIFFLAGS, ifr) != 0)
            throw LinuxCallException.FromErrno("ioctl(SIOCSIFFLAGS)");
    }

    private delegate void IfReqFiller(byte* ifr);

    private void InterfaceIoctl(int request, string what, IfReqFiller fill)
    {
        using var sock = InterfaceRequest.ControlSocket();
        byte* ifr = stackalloc byte[TapConstants.IfReqSize];
        InterfaceRequest.Fill(ifr, Name);
        fill(ifr);
        if (LibC.ioctl(sock.Fd, request, ifr) != 0)
            throw LinuxCallException.FromErrno($"ioctl({what} {Name})");
    }

    /// <summary>IFNAMSIZ-1 printable bytes, no '/', ':' or whitespace (what dev_valid_name accepts and a shell script can quote).</summary>
    public static void ValidateName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length is 0 or >= TapConstants.IfNameSize || name is "." or "..")
            throw new ArgumentException($"interface name '{name}' must be 1-15 characters", nameof(name));
        foreach (char c in name)
        {
            if (c <= ' ' || c >= 0x7f || c is '/' or ':')
                throw new ArgumentException($"interface name '{name}' contains '{c}'", nameof(name));
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        foreach (var q in _queues)
            q.Dispose();
    }
}
