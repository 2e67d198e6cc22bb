using System.Runtime.InteropServices;
using XenBackends.Native.Linux;
using XenBackends.Native.Tap;

namespace XenBackends.Backend.Net;

/// <summary>What became of one guest-TX packet; decided by the queue thread or, for writes, the tap writer.</summary>
internal enum TxOutcome : byte
{
    /// <summary>Ready in the arena, waiting for its tap write.</summary>
    Write,
    Sent,
    /// <summary>Dropped (checksum setup refused it, or the tap refused the write).</summary>
    Dropped,
    /// <summary>The tap is deleted (EBADFD): dropped, and the queue stops polling the tap.</summary>
    TapGone,
    /// <summary>A grant copy of it failed.</summary>
    Failed,
}

internal struct TxSlot
{
    public ushort Id;
    public short Status;
}

internal struct TxPacket
{
    public int ArenaOffset;
    public int Length;
    public ushort Flags;
    public byte GsoType;
    public ushort GsoSize;
    public bool Failed;
    public TxOutcome Outcome;
}

/// <summary>
/// One guest-TX grant-copy batch: the pinned arena its frames were copied into (virtio_net_hdr +
/// frame each), its packets, and the responses its consumed slots get once every packet has been
/// handed to the tap or dropped (netback answers a tx request only then).
/// </summary>
internal sealed class TxBatch
{
    public TxBatch(int arenaBytes, int slots, int packets)
    {
        Arena = GC.AllocateArray<byte>(arenaBytes, pinned: true);
        ArenaAddress = Marshal.UnsafeAddrOfPinnedArrayElement(Arena, 0);
        Slots = new TxSlot[slots];
        Packets = new TxPacket[packets];
    }

    public byte[] Arena { get; }
    public nint ArenaAddress { get; }
    public TxSlot[] Slots { get; }
    public TxPacket[] Packets { get; }
    public int SlotCount, PacketCount, ArenaUsed;

    public void Reset() => SlotCount = PacketCount = ArenaUsed = 0;

    public Span<byte> Record(in TxPacket packet) => Arena.AsSpan(packet.ArenaOffset, VirtioNetHeader.Size + packet.Length);
}

/// <summary>
/// The guest-TX tap writer of one queue: a second thread that writes filled batches to the tap
/// while the queue thread grant-copies the next batch, so for large frames the copy (~1.9 µs per
/// 64 KiB) and the tap write (~2.2 µs) overlap instead of adding up. The hand-off is a bounded
/// single-producer single-consumer ring of <see cref="Depth"/> batches: the queue thread fills and
/// submits, this thread writes and completes, the queue thread retires (answers the slots) in
/// submission order, so responses and tap order stay exactly those of the one-thread path.
/// Either side sleeps on an eventfd only after announcing it and re-checking the indexes, so a
/// busy pipeline costs no syscalls beyond the tap writes.
/// </summary>
internal sealed class TxTapWriter : IDisposable
{
    public const int Depth = 3;
    private const int TokenWork = 0;
    private const int TokenStop = 1;
    private static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency * 20 / 1_000_000;

    private readonly TxBatch[] _batches;
    private readonly ITapQueue _tap;
    private readonly EventFd _work = EventFd.Create();
    private readonly EventFd _done = EventFd.Create();
    private readonly QueuePoll _poll = new();
    private readonly Thread _thread;
    // _submitted and _retired: queue thread only; _completed: writer only. Each is read across.
    private long _submitted, _completed, _retired;
    private int _writerSleeping, _ownerWaiting;
    private string? _failure;

    public TxTapWriter(Func<TxBatch> newBatch, ITapQueue tap, int stopFd, string threadName)
    {
        _batches = new TxBatch[Depth];
        for (int i = 0; i < Depth; i++)
            _batches[i] = newBatch();
        _tap = tap;
        _poll.Add(_work.Handle.Fd, TokenWork);
        // The queue's own stop eventfd: nobody consumes it, so it wakes both threads for good.
        _poll.Add(stopFd, TokenStop);
        _thread = new Thread(Run) { IsBackground = true, Name = threadName };
    }

    /// <summary>Polls readable after a completion the queue thread asked for (<see cref="ArmDoneSignal"/>).</summary>
    public int DoneFd => _done.Handle.Fd;

    public bool IsStarted => (_thread.ThreadState & ThreadState.Unstarted) == 0;

    /// <summary>The batch the queue thread fills next (valid while not <see cref="IsFull"/>).</summary>
    public TxBatch Next => _batches[_submitted % Depth];

    public bool InFlight => _submitted != _retired;

    public bool IsFull => _submitted - _retired == Depth;

    /// <summary>Set when the writer thread died of a bug; the queue goes fatal on it.</summary>
    public string? Failure => Volatile.Read(ref _failure);

    public void Start() => _thread.Start();

    /// <summary>Hands <see cref="Next"/> to the writer thread.</summary>
    public void Submit()
    {
        Volatile.Write(ref _submitted, _submitted + 1);
        // Store-load fence: either the writer sees the new batch on its re-check or we see it asleep.
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _writerSleeping) != 0 && Interlocked.Exchange(ref _writerSleeping, 0) != 0)
            _work.Signal();
    }

    /// <summary>The oldest batch the writer finished and the queue thread has not answered yet.</summary>
    public bool TryTakeCompleted(out TxBatch batch)
    {
        if (_retired < Volatile.Read(ref _completed))
        {
            batch = _batches[_retired % Depth];
            return true;
        }
        batch = null!;
        return false;
    }

    /// <summary>The batch from <see cref="TryTakeCompleted"/> was answered; its arena may be reused.</summary>
    public void Retired() => _retired++;

    /// <summary>
    /// Before the queue thread sleeps with batches in flight: asks for a signal on <see cref="DoneFd"/>
    /// at the next completion. False when one completed meanwhile (do not sleep).
    /// </summary>
    public bool ArmDoneSignal()
    {
        Volatile.Write(ref _ownerWaiting, 1);
        Interlocked.MemoryBarrier();
        return Volatile.Read(ref _completed) == _retired && Failure is null;
    }

    /// <summary>After the queue thread woke: drops a pending done signal.</summary>
    public void ConsumeDoneSignal()
    {
        Volatile.Write(ref _ownerWaiting, 0);
        _done.TryConsume(out _);
    }

    /// <summary>Waits for the thread; the queue's stop eventfd must have been signalled.</summary>
    public void Join()
    {
        if (IsStarted && _thread.IsAlive)
            _thread.Join();
    }

    public void Dispose()
    {
        Join();
        _poll.Dispose();
        _work.Dispose();
        _done.Dispose();
    }

    private void Run()
    {
        try
        {
            while (true)
            {
                long next = _completed;
                if (next < Volatile.Read(ref _submitted))
                {
                    WriteBatch(_batches[next % Depth]);
                    Volatile.Write(ref _completed, next + 1);
                    Interlocked.MemoryBarrier();
                    // A sleeping queue thread is woken when at most one batch is left, not at every
                    // completion: a wake-up costs microseconds, and it then refills several batches
                    // while this thread writes the last one.
                    if (Volatile.Read(ref _submitted) - (next + 1) <= 1
                        && Volatile.Read(ref _ownerWaiting) != 0 && Interlocked.Exchange(ref _ownerWaiting, 0) != 0)
                        _done.Signal();
                    continue;
                }
                if (SpinForWork(next))
                    continue;
                Volatile.Write(ref _writerSleeping, 1);
                Interlocked.MemoryBarrier();
                if (next < Volatile.Read(ref _submitted))
                {
                    Volatile.Write(ref _writerSleeping, 0);
                    continue;
                }
                ulong ready = _poll.Wait(-1);
                if ((ready & (1UL << TokenStop)) != 0)
                    return;
                _work.TryConsume(out _);
                Volatile.Write(ref _writerSleeping, 0);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Batches in flight are never answered now; the queue thread sees this and goes fatal.
            Volatile.Write(ref _failure, e.Message);
            _done.Signal();
        }
    }

    // The next batch usually follows within one grant copy: waiting that long awake is cheaper than
    // an eventfd wake-up (measured at several µs on the 2-vCPU VM).
    private bool SpinForWork(long next)
    {
        long deadline = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
        do
        {
            Thread.SpinWait(20);
            if (next < Volatile.Read(ref _submitted))
                return true;
        }
        while (System.Diagnostics.Stopwatch.GetTimestamp() < deadline);
        return false;
    }

    private void WriteBatch(TxBatch batch)
    {
        bool gone = false;
        for (int p = 0; p < batch.PacketCount; p++)
        {
            ref TxPacket packet = ref batch.Packets[p];
            if (packet.Outcome != TxOutcome.Write)
                continue;
            packet.Outcome = gone ? TxOutcome.TapGone : Outcome(_tap.Write(batch.Record(packet)));
            gone |= packet.Outcome == TxOutcome.TapGone;
        }
    }

    public static TxOutcome Outcome(TapIoStatus status) => status switch
    {
        TapIoStatus.Ok => TxOutcome.Sent,
        TapIoStatus.Gone => TxOutcome.TapGone,
        _ => TxOutcome.Dropped,
    };
}
