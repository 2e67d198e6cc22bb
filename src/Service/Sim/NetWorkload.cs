using System.Buffers.Binary;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost.Guest;

namespace XenBackends.Service.Sim;

/// <summary>
/// The guest's network traffic through its tap. Guest TX: frames of random length (broadcast,
/// ethertype 0x88B5) sent by the netfront, received by the host on the tap and checked. Guest RX:
/// frames to the guest's MAC (ethertype 0x88B6) sent by the host into the tap and checked by the
/// netfront. Each frame carries its sequence number and a payload derived from it. A frame lost
/// (a full queue drops, as a NIC would) is counted, not failed; a frame with wrong content fails.
/// </summary>
internal sealed class NetWorkload
{
    private const ushort GuestTxType = 0x88B5;
    private const ushort GuestRxType = 0x88B6;
    private const int Window = 64;
    private static readonly byte[] HostMac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
    private static readonly byte[] Broadcast = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    private readonly SimulatedNetfront _nic;
    private readonly PacketSocket _host;
    private readonly byte[] _guestMac;
    private long _txSent, _txSeen, _txBad, _txErrors, _rxSent, _rxSeen, _rxBad;

    public NetWorkload(SimulatedNetfront nic, PacketSocket host)
    {
        _nic = nic;
        _host = host;
        _guestMac = nic.Mac.Split(':').Select(h => Convert.ToByte(h, 16)).ToArray();
    }

    public long TxSent => Interlocked.Read(ref _txSent);
    public long TxVerified => Interlocked.Read(ref _txSeen);
    public long RxSent => Interlocked.Read(ref _rxSent);
    public long RxVerified => Interlocked.Read(ref _rxSeen);
    public long Corrupt => Interlocked.Read(ref _txBad) + Interlocked.Read(ref _rxBad);

    /// <summary>TX requests the backend answered with an error status.</summary>
    public long TxErrors => Interlocked.Read(ref _txErrors);

    public async Task RunAsync(CancellationToken stop)
    {
        using var drain = new CancellationTokenSource();
        var hostReceive = Task.Run(() => HostReceiveAsync(drain.Token), CancellationToken.None);
        var guestReceive = Task.Run(() => GuestReceiveAsync(drain.Token), CancellationToken.None);
        await Task.WhenAll(
            Task.Run(() => GuestSendAsync(stop), CancellationToken.None),
            Task.Run(() => HostSendAsync(stop), CancellationToken.None)).ConfigureAwait(false);
        // Frames still on their way get a moment to arrive before the receivers stop.
        drain.CancelAfter(TimeSpan.FromMilliseconds(300));
        await Task.WhenAll(hostReceive, guestReceive).ConfigureAwait(false);
    }

    private async Task GuestSendAsync(CancellationToken stop)
    {
        var rng = new Random(Environment.ProcessId);
        var inFlight = new List<Task<short>>();
        long seq = 0;
        while (!stop.IsCancellationRequested)
        {
            var frame = Frame(Broadcast, _guestMac, GuestTxType, seq++, rng.Next(64, 1515));
            inFlight.Add(_nic.SendAsync(frame));
            Interlocked.Increment(ref _txSent);
            if (inFlight.Count >= Window)
            {
                var done = await Task.WhenAny(inFlight).ConfigureAwait(false);
                inFlight.Remove(done);
                if (await done.ConfigureAwait(false) != NetifRsp.Okay) Interlocked.Increment(ref _txErrors);
            }
        }
        foreach (short status in await Task.WhenAll(inFlight).ConfigureAwait(false))
            if (status != NetifRsp.Okay) Interlocked.Increment(ref _txErrors);
    }

    private async Task HostSendAsync(CancellationToken stop)
    {
        var rng = new Random(Environment.ProcessId + 1);
        long seq = 0, writtenOff = 0, waitingSince = 0;
        while (!stop.IsCancellationRequested)
        {
            // At most a window in flight, so the guest's receive ring, not this loop, sets the pace.
            long outstanding = RxSent - RxVerified - Interlocked.Read(ref _rxBad) - writtenOff;
            if (outstanding >= Window)
            {
                if (waitingSince == 0)
                    waitingSince = Environment.TickCount64;
                else if (Environment.TickCount64 - waitingSince > 200)
                {
                    writtenOff += outstanding; // dropped on the way: counted as lost, not waited for
                    waitingSince = 0;
                }
                await Task.Delay(1, CancellationToken.None).ConfigureAwait(false);
                continue;
            }
            waitingSince = 0;
            _host.Send(Frame(_guestMac, HostMac, GuestRxType, seq++, rng.Next(64, 1515)));
            Interlocked.Increment(ref _rxSent);
        }
    }

    private async Task HostReceiveAsync(CancellationToken drain)
    {
        var buffer = new byte[65536];
        try
        {
            while (true)
            {
                int n = await _host.ReceiveAsync(buffer, drain).ConfigureAwait(false);
                var frame = buffer.AsSpan(0, n);
                if (n < 14 || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != GuestTxType) continue; // our own RX frames, going out
                Interlocked.Increment(ref Check(frame) ? ref _txSeen : ref _txBad);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task GuestReceiveAsync(CancellationToken drain)
    {
        try
        {
            while (true)
            {
                var frame = await _nic.ReceiveAsync(drain).ConfigureAwait(false);
                if (frame.Data.Length < 14 || BinaryPrimitives.ReadUInt16BigEndian(frame.Data.AsSpan(12)) != GuestRxType) continue;
                Interlocked.Increment(ref Check(frame.Data) ? ref _rxSeen : ref _rxBad);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Ethernet header, 8-byte sequence number, 2-byte length, then bytes derived from both.</summary>
    private static byte[] Frame(byte[] dst, byte[] src, ushort type, long seq, int length)
    {
        var frame = new byte[length];
        dst.CopyTo(frame, 0);
        src.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), type);
        BinaryPrimitives.WriteInt64LittleEndian(frame.AsSpan(14), seq);
        BinaryPrimitives.WriteUInt16LittleEndian(frame.AsSpan(22), (ushort)length);
        for (int i = 24; i < length; i++) frame[i] = (byte)(seq * 31 + i);
        return frame;
    }

    private static bool Check(ReadOnlySpan<byte> frame)
    {
        if (frame.Length < 24) return false;
        long seq = BinaryPrimitives.ReadInt64LittleEndian(frame[14..]);
        int length = BinaryPrimitives.ReadUInt16LittleEndian(frame[22..]);
        // Short frames may come back padded to the Ethernet minimum; the payload we wrote must be intact.
        if (length > frame.Length) return false;
        for (int i = 24; i < length; i++)
            if (frame[i] != (byte)(seq * 31 + i)) return false;
        return true;
    }
}
