using XenBackends.Native.Linux;
using XenBackends.Native.Tap;

namespace XenBackends.Net.Bench;

/// <summary>Where guest-TX frames go when the tap is taken out of the measurement: nowhere, counted.</summary>
internal sealed class NullSink : ITapQueue, IDisposable
{
    private readonly EventFd _never = EventFd.Create();
    public long Frames;

    public int PollFd => _never.Handle.Fd;

    public TapIoStatus Read(Span<byte> buffer, out int length)
    {
        length = 0;
        return TapIoStatus.WouldBlock;
    }

    public TapIoStatus Write(ReadOnlySpan<byte> frame)
    {
        Frames++;
        return TapIoStatus.Ok;
    }

    public void Dispose() => _never.Dispose();
}

/// <summary>
/// Guest-RX frames out of thin air: one prepared record (virtio_net_hdr + frame) handed out as
/// often as the benchmark frontend has granted credit for, so the flood never overflows the
/// backend's queue (drops would be wasted work, not delivery). The eventfd is the doorbell: readable
/// while credit may exist, reset when it runs out.
/// </summary>
internal sealed class CreditSource : ITapQueue, IDisposable
{
    private readonly byte[] _record;
    private readonly EventFd _doorbell = EventFd.Create();
    private long _credit;

    public CreditSource(byte[] record) => _record = record;

    public int PollFd => _doorbell.Handle.Fd;

    public void AddCredit(long frames)
    {
        Interlocked.Add(ref _credit, frames);
        _doorbell.Signal();
    }

    public TapIoStatus Read(Span<byte> buffer, out int length)
    {
        length = 0;
        if (Volatile.Read(ref _credit) <= 0)
        {
            // Reset the doorbell, then look again: credit added after this point rings it anew.
            _doorbell.TryConsume(out _);
            if (Volatile.Read(ref _credit) <= 0)
                return TapIoStatus.WouldBlock;
        }
        Interlocked.Decrement(ref _credit);
        // tun's contract: copy what fits, consume the frame, report its full length.
        _record.AsSpan(0, Math.Min(_record.Length, buffer.Length)).CopyTo(buffer);
        length = _record.Length;
        return TapIoStatus.Ok;
    }

    public TapIoStatus Write(ReadOnlySpan<byte> frame) => TapIoStatus.Ok;

    public void Dispose() => _doorbell.Dispose();
}
