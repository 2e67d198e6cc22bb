using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;

namespace XenBackends.Backend.Net.Tests;

/// <summary>The steady-state rule: the queue thread allocates nothing per packet, in either direction.</summary>
public sealed class ZeroAllocationTests
{
    private static void Traffic(NetHarness h, PacketSocket wire, int frames)
    {
        for (int i = 0; i < frames; i++)
        {
            h.Front.QueueFrame(Frames.Raw(i % 2 == 0 ? 64 : 1500, Frames.TapMac, NetHarness.GuestMac, seed: (byte)i));
            h.Front.Push();
            Assert.Equal(NetifRsp.Okay, h.Front.WaitTxResponses(1)[0].Status);
            var toGuest = Frames.Raw(i % 2 == 0 ? 64 : 1500, NetHarness.GuestMac, Frames.TapMac, seed: (byte)i);
            h.Front.PostRx(1);
            wire.Send(toGuest);
            Assert.Equal(toGuest, h.Front.Receive()?.Data);
        }
    }

    /// <summary>The count after a pass that started when all earlier frames were done (a kick forces one).</summary>
    private static async Task<long> SettledAllocatedBytesAsync(NetHarness h)
    {
        var counters = h.Net.Counters[0];
        long passes = Volatile.Read(ref counters.Passes);
        h.Front.Kick();
        long deadline = Environment.TickCount64 + 5000;
        while (Volatile.Read(ref counters.Passes) == passes)
        {
            if (Environment.TickCount64 > deadline)
                throw new TimeoutException("the queue thread did not run a pass after a kick");
            await Task.Delay(2);
        }
        return Volatile.Read(ref counters.ThreadAllocatedBytes);
    }

    [Fact]
    public async Task Queue_thread_allocates_nothing_per_packet_in_steady_state()
    {
        await using var h = await NetHarness.StartAsync();
        await h.BringUpAsync(mtu: 9000);
        using var wire = h.Ns.Inside(() => PacketSocket.Open(h.Net.InterfaceName!));

        Traffic(h, wire, 200); // warm-up: JIT tiers, lazily created statics
        long start = await SettledAllocatedBytesAsync(h);
        Traffic(h, wire, 1000);
        long end = await SettledAllocatedBytesAsync(h);

        Assert.True(start > 0, "the queue thread reported its allocation count");
        Assert.Equal(1200, h.Stats().TxPackets);
        Assert.Equal(1200, h.Stats().RxPackets);
        Assert.Equal(0, end - start);
    }
}
