using System.Runtime.CompilerServices;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace XenBackends.Native.IO;

/// <summary>
/// io_uring without liburing (its prep helpers are static inline and cannot be P/Invoked): the SQ and
/// CQ rings are mapped here and filled by hand. One io_uring_enter submits a whole ring drain.
/// Completions signal a registered eventfd, so the owner can sleep on it with its event channel.
/// </summary>
public sealed unsafe class IoUringEngine : IIoEngine
{
    private readonly int _ringFd;
    private readonly int _eventFd;
    private readonly void* _sqRing;
    private readonly nuint _sqRingBytes;
    private readonly void* _cqRing;
    private readonly nuint _cqRingBytes;
    private readonly io_uring_sqe* _sqes;
    private readonly nuint _sqesBytes;
    private readonly uint* _sqTail, _sqHead, _sqArray, _cqHead, _cqTail;
    private readonly uint _sqMask, _cqMask, _sqEntries;
    private readonly io_uring_cqe* _cqes;
    private readonly ThreadIoEngine _sidecar; // ops io_uring cannot do (block-device ioctls)
    private uint _sqLocalTail;   // next SQE we fill
    private uint _sqSubmitted;   // up to where the kernel has taken SQEs
    private int _inFlightRing;
    private bool _disposed;

    private IoUringEngine(int ringFd, io_uring_params p, int eventFd, ThreadIoEngine sidecar)
    {
        _ringFd = ringFd;
        _eventFd = eventFd;
        _sidecar = sidecar;
        _sqEntries = p.sq_entries;
        _sqRingBytes = p.sq_off.array + p.sq_entries * sizeof(uint);
        _cqRingBytes = p.cq_off.cqes + p.cq_entries * (uint)sizeof(io_uring_cqe);
        bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
        if (single) _sqRingBytes = _cqRingBytes = Math.Max(_sqRingBytes, _cqRingBytes);

        _sqRing = Map(ringFd, _sqRingBytes, IORING_OFF_SQ_RING);
        _cqRing = single ? _sqRing : Map(ringFd, _cqRingBytes, IORING_OFF_CQ_RING);
        _sqesBytes = p.sq_entries * (uint)sizeof(io_uring_sqe);
        _sqes = (io_uring_sqe*)Map(ringFd, _sqesBytes, IORING_OFF_SQES);

        byte* sq = (byte*)_sqRing, cq = (byte*)_cqRing;
        _sqHead = (uint*)(sq + p.sq_off.head);
        _sqTail = (uint*)(sq + p.sq_off.tail);
        _sqMask = *(uint*)(sq + p.sq_off.ring_mask);
        _sqArray = (uint*)(sq + p.sq_off.array);
        _cqHead = (uint*)(cq + p.cq_off.head);
        _cqTail = (uint*)(cq + p.cq_off.tail);
        _cqMask = *(uint*)(cq + p.cq_off.ring_mask);
        _cqes = (io_uring_cqe*)(cq + p.cq_off.cqes);
        _sqLocalTail = _sqSubmitted = Volatile.Read(ref *_sqTail);
    }

    /// <summary>
    /// Sets up a ring; throws <see cref="XenNativeException"/> when the kernel refuses io_uring
    /// (ENOSYS, EPERM under seccomp or kernel.io_uring_disabled). Use <see cref="IoEngines.Create"/>
    /// to fall back automatically.
    /// </summary>
    public static IoUringEngine Create(int capacity = 256)
    {
        if (sizeof(io_uring_sqe) != 64 || sizeof(io_uring_cqe) != 16)
            throw new PlatformNotSupportedException("unexpected io_uring struct sizes in Tmds.LibC");
        io_uring_params p = default;
        // The CQ is twice the SQ by default and in-flight requests are capped at the SQ size, so the
        // completion ring can never overflow.
        int fd = io_uring_setup((uint)capacity, &p);
        if (fd < 0) throw new XenNativeException("io_uring_setup", Syscall.Errno, "io_uring is unavailable");
        int eventFd = -1;
        try
        {
            eventFd = Syscall.CreateEventFd();
            if (io_uring_register(fd, IORING_REGISTER_EVENTFD, &eventFd, 1) < 0)
                throw new XenNativeException("io_uring_register(EVENTFD)", Syscall.Errno, "cannot attach the completion eventfd");
            var sidecar = new ThreadIoEngine(capacity, threads: 1, eventFd);
            return new IoUringEngine(fd, p, eventFd, sidecar);
        }
        catch
        {
            Syscall.Close(eventFd);
            Syscall.Close(fd);
            throw;
        }
    }

    private static void* Map(int fd, nuint bytes, ulong offset)
    {
        void* addr = mmap(null, (size_t)(ulong)bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, (long)offset);
        if (addr == MAP_FAILED) throw new XenNativeException("mmap(io_uring)", Syscall.Errno, "cannot map the io_uring rings");
        return addr;
    }

    public string Name => "io_uring";

    public int Capacity => (int)_sqEntries;

    public int InFlight => _inFlightRing + _sidecar.InFlight;

    public int CompletionFd => _eventFd;

    public bool TryEnqueue(in IoRequest r)
    {
        if (InFlight >= Capacity) return false;
        if (r.Op is IoOp.BlockDiscard or IoOp.BlockZeroOut)
            return _sidecar.TryEnqueue(r);

        uint index = _sqLocalTail & _sqMask;
        io_uring_sqe* sqe = &_sqes[index];
        Unsafe.InitBlockUnaligned(sqe, 0, (uint)sizeof(io_uring_sqe));
        sqe->fd = r.Fd;
        sqe->user_data = r.Tag;
        switch (r.Op)
        {
            case IoOp.Read:
            case IoOp.Write:
                sqe->opcode = (byte)(r.Op == IoOp.Read ? IORING_OP_READ : IORING_OP_WRITE);
                sqe->addr = (ulong)r.Buffer;
                sqe->len = checked((uint)r.Length);
                sqe->off = (ulong)r.Offset;
                break;
            case IoOp.ReadVector:
            case IoOp.WriteVector:
                sqe->opcode = (byte)(r.Op == IoOp.ReadVector ? IORING_OP_READV : IORING_OP_WRITEV);
                sqe->addr = (ulong)r.Buffer;
                sqe->len = checked((uint)r.Length);
                sqe->off = (ulong)r.Offset;
                break;
            case IoOp.Flush:
                sqe->opcode = (byte)IORING_OP_FSYNC;
                sqe->fsync_flags = (uint)IORING_FSYNC_DATASYNC;
                break;
            case IoOp.PunchHole:
            case IoOp.ZeroRange:
                // For FALLOCATE the kernel reads the mode from len and the length from addr.
                sqe->opcode = (byte)IORING_OP_FALLOCATE;
                sqe->off = (ulong)r.Offset;
                sqe->addr = (ulong)r.Length;
                sqe->len = (uint)(Syscall.FALLOC_FL_KEEP_SIZE |
                    (r.Op == IoOp.PunchHole ? Syscall.FALLOC_FL_PUNCH_HOLE : Syscall.FALLOC_FL_ZERO_RANGE));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(r), r.Op, "unknown I/O op");
        }
        _sqArray[index] = index;
        _sqLocalTail++;
        _inFlightRing++;
        return true;
    }

    public void Submit()
    {
        _sidecar.Submit();
        uint pending = _sqLocalTail - _sqSubmitted;
        if (pending == 0) return;
        // Publish the SQEs before the tail (release), then let the kernel take them.
        Volatile.Write(ref *_sqTail, _sqLocalTail);
        while (pending > 0)
        {
            int n = io_uring_enter(_ringFd, pending, 0, 0, null);
            if (n < 0)
            {
                int e = Syscall.Errno;
                if (e == EINTR || e == EAGAIN) continue;
                throw new XenNativeException("io_uring_enter", e, "submitting I/O");
            }
            pending -= (uint)n;
            _sqSubmitted += (uint)n;
        }
    }

    public int Reap(Span<IoCompletion> completions)
    {
        // Draining the shared eventfd first means any completion posted after this point re-arms it.
        Syscall.DrainEventFd(_eventFd);
        int n = 0;
        uint head = *_cqHead;
        uint tail = Volatile.Read(ref *_cqTail);
        while (n < completions.Length && head != tail)
        {
            io_uring_cqe* cqe = &_cqes[head & _cqMask];
            completions[n++] = new IoCompletion(cqe->user_data, cqe->res);
            head++;
        }
        Volatile.Write(ref *_cqHead, head);
        _inFlightRing -= n;
        n += _sidecar.Reap(completions[n..]);
        // Whatever either source still holds (the caller's span was full, or it arrived after we
        // looked) must keep the eventfd readable, or the owner sleeps on work that is done.
        if (head != Volatile.Read(ref *_cqTail) || _sidecar.HasCompletions) Syscall.SignalEventFd(_eventFd);
        return n;
    }

    public void WaitForCompletion(int timeoutMilliseconds) => Syscall.WaitReadable(_eventFd, timeoutMilliseconds);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _sidecar.Dispose();
        // Closing the ring fd cancels and waits for outstanding requests in the kernel.
        munmap(_sqes, (size_t)(ulong)_sqesBytes);
        if (_cqRing != _sqRing) munmap(_cqRing, (size_t)(ulong)_cqRingBytes);
        munmap(_sqRing, (size_t)(ulong)_sqRingBytes);
        Syscall.Close(_ringFd);
        Syscall.Close(_eventFd);
    }
}
