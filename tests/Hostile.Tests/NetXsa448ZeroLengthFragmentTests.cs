using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// XSA-448 / CVE-2023-46838: a tx packet whose fragments are all zero-length made netback hand the
/// core network stack an skb with empty frags (NULL dereference in dom0). The fix answers
/// zero-length slots OKAY at once and never turns them into frags (netback-anchors 4.1 row 15).
/// </summary>
public class NetXsa448ZeroLengthFragmentTests
{
    /// <summary>
    /// The whole frame in the first slot, then the maximum 18 further slots all of size 0; their
    /// grefs are never granted and their offsets sit at the very end of the page, so a backend that
    /// copied (or mapped) a zero-length slot anyway would fail the packet. Every slot is answered
    /// OKAY, the exact frame reaches the tap, and only the first slot is copied.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(18)]
    public async Task XSA_448_all_zero_length_fragments_are_answered_okay_and_never_copied(int zeroSlots)
    {
        await using var f = await NetHostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync();
        using var wire = f.Ns.Inside(() => PacketSocket.Open(f.AttackerVif));
        byte[] frame = Frames.Udp4(NetHostileFixture.TapMac, f.AttackerMac, Frames.GuestIp, Frames.HostIp, 1, 2, Frames.Payload(200), Frames.Csum.PseudoOnly);

        for (int round = 0; round < 3; round++)
        {
            long copiesBefore = f.Grants.CopySegments;
            raw.PutTx(raw.Stage(round, frame), 0, NetTxFlags.MoreData | NetTxFlags.CsumBlank | NetTxFlags.DataValidated, 0, (ushort)frame.Length);
            for (int i = 0; i < zeroSlots; i++)
                raw.PutTx(0xDEAD0000u + (uint)i, 4096, i < zeroSlots - 1 ? NetTxFlags.MoreData : (ushort)0, (ushort)(i + 1), 0);
            raw.PushTx();
            var rsps = await raw.WaitTxResponsesAsync(zeroSlots + 1, NetHostileFixture.Bound);
            Assert.Equal(Enumerable.Range(0, zeroSlots + 1).Select(i => (ushort)i), rsps.Select(r => r.Id));
            Assert.All(rsps, r => Assert.Equal(NetifRsp.Okay, r.Status));
            Assert.Equal(frame, wire.Receive((int)NetHostileFixture.Bound.TotalMilliseconds));
            // The bystander is idle here, so every copy counted is the attacker's: one per packet.
            Assert.Equal(1, f.Grants.CopySegments - copiesBefore);
        }
        Assert.Equal(3, f.AttackerStats.TxPackets);
        Assert.Equal(0, f.AttackerStats.FatalResets);
        await f.AssertBystanderServedAsync(zeroSlots);
    }
}
