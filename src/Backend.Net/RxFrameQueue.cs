using System.Runtime.InteropServices;

namespace XenBackends.Backend.Net;

/// <summary>
/// Frames read from the tap and not yet given to the guest, in one pinned circular arena whose
/// payload is capped in bytes (512 KiB like XENVIF_RX_QUEUE_BYTES): a guest that posts no rx
/// buffers can hold at most this much dom0 memory, whatever the rate (XSA-392). Records are
/// [virtio_net_hdr][frame]; each keeps its arrival time so stale frames can be expired.
/// Single-threaded, allocation-free after construction.
/// </summary>
internal sealed class RxFrameQueue
{
    private readonly byte[] _arena;
    private readonly nint _arenaAddress;
    private readonly Entry[] _entries;
    private readonly int _byteCap;
    private readonly int _maxRecord;
    private int _head, _count, _write, _bytes;

    public RxFrameQueue(int byteCap, int maxRecord, int maxFrames)
    {
        _byteCap = byteCap;
        _maxRecord = maxRecord;
        _arena = GC.AllocateArray<byte>(byteCap + 2 * maxRecord, pinned: true);
        _arenaAddress = Marshal.UnsafeAddrOfPinnedArrayElement(_arena, 0);
        _entries = new Entry[maxFrames];
    }

    public int Count => _count;

    public int Bytes => _bytes;

    /// <summary>
    /// Room to read one more record of up to maxRecord bytes, or false when the cap (bytes or
    /// frames) is reached: the caller then reads into scratch and drops.
    /// </summary>
    public bool TryReserve(out Span<byte> space, out int offset)
    {
        space = default;
        offset = 0;
        if (_count == _entries.Length || _bytes >= _byteCap)
            return false;
        if (_count == 0)
            _write = 0;
        int read = _count == 0 ? 0 : _entries[_head].Offset;
        int start = _write;
        if (_count > 0 && start <= read)
        {
            if (read - start < _maxRecord)
                return false;
        }
        else if (_arena.Length - start < _maxRecord)
        {
            // Wrap to the front if the oldest record leaves room there.
            if (_count > 0 && read < _maxRecord)
                return false;
            start = 0;
        }
        offset = start;
        space = _arena.AsSpan(start, _maxRecord);
        return true;
    }

    public void Commit(int offset, int length, long arrivalTicks)
    {
        int tail = (_head + _count) % _entries.Length;
        _entries[tail] = new Entry(offset, length, arrivalTicks);
        _count++;
        _bytes += length;
        _write = offset + length;
    }

    public bool TryPeek(out Span<byte> record, out nint address, out long arrivalTicks)
    {
        if (_count == 0)
        {
            record = default;
            address = 0;
            arrivalTicks = 0;
            return false;
        }
        var e = _entries[_head];
        record = _arena.AsSpan(e.Offset, e.Length);
        address = _arenaAddress + e.Offset;
        arrivalTicks = e.ArrivalTicks;
        return true;
    }

    public void Pop()
    {
        _bytes -= _entries[_head].Length;
        _head = (_head + 1) % _entries.Length;
        _count--;
    }

    private readonly record struct Entry(int Offset, int Length, long ArrivalTicks);
}
