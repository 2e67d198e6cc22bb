using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// XSA-423 / CVE-2022-3643: a guest split a frame's protocol headers across tx slots, so netback
/// built skbs with non-linear headers that made some NICs reset. The fix gathers up to 128 bytes of
/// header across slots; XSA-432 / CVE-2023-34319: that gathering overran its array when the frame
/// used the maximum number of slots yet was under 128 bytes (netback-anchors 4.1 row 14). Our
/// backend copies every frame into one linear buffer, so the trigger must simply produce the exact
/// frame on the tap, with its headers parsed (csum_blank needs the L4 header found across slots).
/// </summary>
public class NetXsa423432HeaderSplitTests
{
    /// <summary>
    /// A 100-byte UDP/IPv4 frame: the Ethernet header alone in the first slot (its share must be at
    /// least ETH_HLEN), then <paramref name="further"/> slots of a few bytes each, so the IPv4 and
    /// UDP headers straddle slot boundaries. 18 further slots is the most netback accepts
    /// (XEN_NETBK_LEGACY_SLOTS_MAX); 17 is where the XSA-432 fix enlarges the first-slot copy.
    /// </summary>
    [Theory]
    [InlineData(17, false)]
    [InlineData(18, false)]
    [InlineData(17, true)]
    [InlineData(18, true)]
    public async Task XSA_423_432_frame_in_maximum_slots_under_128_bytes_with_headers_across_slots_reaches_the_tap_exactly(int further, bool csumBlank)
    {
        await using var f = await NetHostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync();
        using var wire = f.Ns.Inside(() => PacketSocket.Open(f.AttackerVif));
        var csum = csumBlank ? Frames.Csum.PseudoOnly : Frames.Csum.Full;
        byte[] frame = Frames.Udp4(NetHostileFixture.TapMac, f.AttackerMac, Frames.GuestIp, Frames.HostIp, 4000, 5000, Frames.Payload(100 - 42), csum);
        Assert.Equal(100, frame.Length);

        // Slot sizes: 14, then the remaining 86 bytes over `further` slots (4 or 5 bytes each).
        var sizes = new List<int> { 14 };
        int rest = frame.Length - 14;
        for (int i = 0; i < further; i++)
        {
            int n = rest / (further - i);
            sizes.Add(n);
            rest -= n;
        }
        ushort flags = csumBlank ? (ushort)(NetTxFlags.CsumBlank | NetTxFlags.DataValidated) : NetTxFlags.DataValidated;
        int pos = 0;
        for (int s = 0; s < sizes.Count; s++)
        {
            // Each piece at an odd offset of its own page: nothing lines up by accident.
            ushort offset = (ushort)(4096 - sizes[s] - 3 * s);
            uint gref = raw.Stage(s, frame.AsSpan(pos, sizes[s]), offset);
            ushort f0 = s == 0 ? flags : (ushort)0;
            if (s < sizes.Count - 1) f0 |= NetTxFlags.MoreData;
            raw.PutTx(gref, offset, f0, (ushort)s, s == 0 ? (ushort)frame.Length : (ushort)sizes[s]);
            pos += sizes[s];
        }
        raw.PushTx();
        var rsps = await raw.WaitTxResponsesAsync(sizes.Count, NetHostileFixture.Bound);
        Assert.Equal(Enumerable.Range(0, sizes.Count).Select(i => (ushort)i), rsps.Select(r => r.Id));
        Assert.All(rsps, r => Assert.Equal(NetifRsp.Okay, r.Status));
        Assert.Equal(frame, wire.Receive((int)NetHostileFixture.Bound.TotalMilliseconds));
        Assert.Equal(0, f.AttackerStats.FatalResets);
        Assert.Equal(0, f.AttackerStats.TxDrops);
        await f.AssertBystanderServedAsync(further);
    }
}
