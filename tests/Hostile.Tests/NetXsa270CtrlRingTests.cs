using System.Runtime.InteropServices;
using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// XSA-270 (netback's XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING lacked overflow and bounds checks: an
/// out-of-bounds write in dom0, then out-of-range queue indexes used on the rx path). Reproduced
/// through the real control ring of a connected vif: every malformed request is refused with a
/// status, none changes the table, none is fatal, and the vif keeps carrying frames (netback-anchors
/// 4.1 "Ctrl" row and 4.2).
/// </summary>
public class NetXsa270CtrlRingTests
{
    [Fact]
    public async Task XSA_270_hash_mapping_overflow_and_out_of_range_queue_are_refused_through_the_ctrl_ring()
    {
        await using var f = await NetHostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync(ctrl: true);
        var bound = NetHostileFixture.Bound;
        async Task<uint> Ctrl(ushort type, uint d0 = 0, uint d1 = 0, uint d2 = 0) => (await raw.CtrlAsync(type, d0, d1, d2, bound)).Status;
        uint Entries(params uint[] e) => raw.GrantBytes(MemoryMarshal.AsBytes(e.AsSpan()));

        Assert.Equal(NetifCtrlStatus.Success, await Ctrl(NetifCtrlType.SetHashAlgorithm, NetifCtrlHashAlgorithm.Toeplitz));
        Assert.Equal(NetifCtrlStatus.Success, await Ctrl(NetifCtrlType.SetHashFlags, NetifCtrlHashType.Ipv4 | NetifCtrlHashType.Ipv4Tcp));
        Assert.Equal(NetifCtrlStatus.Success, await Ctrl(NetifCtrlType.SetHashMappingSize, 128));

        uint ones = Entries([.. Enumerable.Repeat(1u, 1024)]);
        uint page = raw.GrantBytes(new byte[4096]);
        (uint Len, uint Off)[] outOfBounds =
        [
            (2, 0xFFFF_FFFF),   // off + len wraps to 1: the original XSA-270 trigger
            (1, 0xFFFF_FFFF),   // wraps to 0
            (0xFFFF_FFFF, 1),   // len alone is absurd
            (16, 120),          // runs past the 128-entry table
            (0, 129),           // empty, but starting past the end
            (1025, 0),          // more than one page of entries (len > PAGE/4)
            (129, 0),           // longer than the table
        ];
        foreach (var (len, off) in outOfBounds)
        {
            uint status = await Ctrl(NetifCtrlType.SetHashMapping, page, len, off);
            Assert.True(status is NetifCtrlStatus.InvalidParameter or NetifCtrlStatus.BufferOverflow, $"len {len} off {off}: status {status}");
        }
        // One queue: index 1 is out of range. Whole table, a single entry, and the last entry.
        Assert.Equal(NetifCtrlStatus.InvalidParameter, await Ctrl(NetifCtrlType.SetHashMapping, ones, 128, 0));
        Assert.Equal(NetifCtrlStatus.InvalidParameter, await Ctrl(NetifCtrlType.SetHashMapping, Entries(0, 0, 0xFFFF_FFFF), 3, 10));
        Assert.Equal(NetifCtrlStatus.InvalidParameter, await Ctrl(NetifCtrlType.SetHashMapping, ones, 1, 127));
        Assert.All(f.AttackerDevice.HashSettings.Mapping.ToArray(), q => Assert.Equal(0u, q));
        // A valid update still lands: the ctrl ring was not disabled by the refusals.
        Assert.Equal(NetifCtrlStatus.Success, await Ctrl(NetifCtrlType.SetHashMapping, Entries(0, 0), 2, 126));

        Assert.Equal(0, f.AttackerStats.FatalResets);
        Assert.Null(f.AttackerDevice.LastFatalError);
        // The attacker's own vif still works both ways, hash extra and all.
        using var wire = f.Ns.Inside(() => PacketSocket.Open(f.AttackerVif));
        raw.PostRx(64);
        byte[] inbound = Frames.Tcp4(f.AttackerMac, NetHostileFixture.TapMac, Frames.HostIp, Frames.GuestIp, 80, 1234, 1, Frames.Payload(100), Frames.Csum.Full);
        wire.Send(inbound);
        List<byte[]> got = [];
        await SimulatedHost.Hostile.Bounded.UntilAsync(() => { got.AddRange(raw.TakeRxFrames(out _)); return got.Count > 0; }, bound, "a frame in the attacker guest");
        Assert.Equal(inbound, got[0]);
        await f.AssertBystanderServedAsync(0);
    }

    /// <summary>
    /// The XSA-270 follow-up ("copy into the inactive table, validate, then flip"): the guest keeps
    /// rewriting the granted mapping page between all-valid (queue 0) and all-invalid (queue 1)
    /// while the backend copies it. Each request must either succeed with a table of zeros or be
    /// refused with the table unchanged; an entry naming queue 1 must never be published.
    /// </summary>
    [Fact]
    public async Task XSA_270_mapping_page_rewritten_during_the_copy_never_publishes_an_invalid_queue()
    {
        await using var f = await NetHostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync(ctrl: true);
        var bound = NetHostileFixture.Bound;
        Assert.Equal(NetifCtrlStatus.Success, (await raw.CtrlAsync(NetifCtrlType.SetHashAlgorithm, NetifCtrlHashAlgorithm.Toeplitz, 0, 0, bound)).Status);
        Assert.Equal(NetifCtrlStatus.Success, (await raw.CtrlAsync(NetifCtrlType.SetHashMappingSize, 128, 0, 0, bound)).Status);
        var (gref, frame) = raw.GrantPage(readOnly: true);
        byte[] zeros = new byte[512], ones = MemoryMarshal.AsBytes(Enumerable.Repeat(1u, 128).ToArray().AsSpan()).ToArray();
        int success = 0, refused = 0;
        var attack = Task.Run(async () =>
        {
            using var flipper = new SimulatedHost.Hostile.ByteFlipper(() => raw.Memory.Page(frame)[..512], zeros, ones);
            for (int i = 0; i < 300; i++)
            {
                uint status = (await raw.CtrlAsync(NetifCtrlType.SetHashMapping, gref, 128, 0, bound)).Status;
                if (status == NetifCtrlStatus.Success) success++;
                else if (status == NetifCtrlStatus.InvalidParameter) refused++;
                else Assert.Fail($"status {status}");
                Assert.All(f.AttackerDevice.HashSettings.Mapping.ToArray(), q => Assert.Equal(0u, q));
            }
        });
        await f.BystanderDuringAsync(attack);
        Assert.Equal(300, success + refused);
        Assert.True(refused > 0, "the invalid version was never seen: the test proved nothing");
        Assert.Equal(0, f.AttackerStats.FatalResets);
    }
}
