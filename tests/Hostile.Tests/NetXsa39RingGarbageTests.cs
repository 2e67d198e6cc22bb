using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost.Hostile;
using Xunit.Abstractions;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// XSA-39 (CVE-2013-0216/0217): garbage on the guest tx ring could make netback loop or leak. The
/// fixes (netback-anchors 4.2): "netbk_tx_err to handle wrap around" (the error path answered slots
/// by comparing ring indexes, so a dropped packet straddling the 2^32 index wrap was answered
/// wrongly or forever), leak fixes on the request/grant error paths, and "shutdown the ring if it
/// contains garbage" (the origin of the FATAL disable). Reproduced with the tx ring's indexes
/// starting just below 2^32, so dropped chains, fatal chains and the ring's own wrap all meet index 0.
/// </summary>
public class NetXsa39RingGarbageTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bound = NetHostileFixture.Bound;
    private const uint NearWrap = 0xFFFF_FF00;

    /// <summary>The kinds of chain the error path must answer slot for slot (4.1 DROP rows), plus good ones between them.</summary>
    private enum Chain { Good, FragLargerThanTotal, TooShort, NineteenFrags, ZeroLengthFragsOnly }

    private static int Put(RawNetfront raw, uint gref, Chain kind, ref ushort id)
    {
        switch (kind)
        {
            case Chain.Good:
                raw.PutTx(gref, 0, NetTxFlags.MoreData, id++, 300);
                raw.PutTx(gref, 512, 0, id++, 100);
                return 2;
            case Chain.FragLargerThanTotal: // row 10: a fragment larger than what is left of the total
                raw.PutTx(gref, 0, NetTxFlags.MoreData, id++, 100);
                raw.PutTx(gref, 0, NetTxFlags.MoreData, id++, 60);
                raw.PutTx(gref, 0, 0, id++, 200);
                return 3;
            case Chain.TooShort: // row 12: 13 bytes of frame
                raw.PutTx(gref, 0, 0, id++, 13);
                return 1;
            case Chain.NineteenFrags: // row 9: 19 non-first slots is a drop, not fatal
                raw.PutTx(gref, 0, NetTxFlags.MoreData, id++, 19 * 10 + 100);
                for (int i = 0; i < 19; i++)
                    raw.PutTx(gref, 0, i < 18 ? NetTxFlags.MoreData : (ushort)0, id++, 10);
                return 20;
            case Chain.ZeroLengthFragsOnly: // XSA-448's shape, answered OKAY: the frame is the first slot's
                raw.PutTx(gref, 0, NetTxFlags.MoreData, id++, 60);
                raw.PutTx(gref, 0, NetTxFlags.MoreData, id++, 0);
                raw.PutTx(gref, 0, 0, id++, 0);
                return 3;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }

    [Fact]
    public async Task XSA_39_dropped_chains_across_the_index_wrap_are_answered_once_per_slot_and_leak_nothing()
    {
        await using var f = await NetHostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync(txStart: NearWrap);
        byte[] frame = Frames.Raw(400, NetHostileFixture.TapMac, f.AttackerMac);
        uint gref = raw.Stage(0, frame);
        using var wire = f.Ns.Inside(() => PacketSocket.Open(f.AttackerVif));
        int maps = f.Grants.Maps;
        var fds = NetHostileFixture.Fds();
        var rng = new Random(39);
        var kinds = Enum.GetValues<Chain>();
        int slotsSent = 0, chains = 0, good = 0, dropped = 0;
        ushort id = 0;

        // Read the tap side while the attack runs: the socket's buffer holds only a few hundred frames.
        bool attackDone = false;
        var reader = Task.Run(() =>
        {
            var lengths = new List<int>();
            while (true)
            {
                byte[]? got = wire.Receive(300);
                if (got is not null)
                    lengths.Add(got.Length);
                else if (Volatile.Read(ref attackDone))
                    break;
            }
            return lengths;
        });
        var attack = Task.Run(async () =>
        {
            // 600 batches of 1-6 chains: the 256-slot ring wraps ~60 times and the index passes 2^32 once.
            for (int batch = 0; batch < 600; batch++)
            {
                var expected = new List<(ushort Id, short Status)>();
                int n = rng.Next(1, 7);
                for (int c = 0; c < n && raw.Tx.FreeRequests >= 20; c++)
                {
                    Chain kind = kinds[rng.Next(kinds.Length)];
                    ushort first = id;
                    int slots = Put(raw, gref, kind, ref id);
                    short status = kind is Chain.Good or Chain.ZeroLengthFragsOnly ? NetifRsp.Okay : NetifRsp.Error;
                    for (int s = 0; s < slots; s++)
                        expected.Add(((ushort)(first + s), status));
                    slotsSent += slots;
                    chains++;
                    if (status == NetifRsp.Okay) good++; else dropped++;
                }
                raw.PushTx();
                var got = await raw.WaitTxResponsesAsync(expected.Count, Bound);
                // Exactly one response per slot, in ring order, with the slot's id: no slot answered twice,
                // none skipped, none answered past what was posted (the wrap-around bug's symptoms).
                Assert.Equal(expected, got.Select(r => (r.Id, r.Status)));
                Assert.Equal(0u, raw.TxUnread);
            }
        });
        await f.BystanderDuringAsync(attack);
        Assert.True(raw.Tx.ReqProdPvt < NearWrap, $"the ring's indexes never wrapped (at {raw.Tx.ReqProdPvt:x})");
        Assert.Equal(raw.Tx.ReqProdPvt, raw.Tx.Raw.RspProd);

        var stats = f.AttackerStats;
        Assert.Equal(0, stats.FatalResets);
        Assert.Equal(dropped, stats.TxDrops);
        Assert.Equal(good, stats.TxPackets);
        // Every good frame reached the tap; nothing of a dropped one did.
        Volatile.Write(ref attackDone, true);
        var lengths = await reader;
        Assert.All(lengths, l => Assert.Contains(l, new[] { 300, 60 }));
        Assert.Equal(good, lengths.Count);
        // The error paths took no mapping and left no fd behind (the leak half of XSA-39).
        Assert.Equal(maps, f.Grants.Maps);
        NetHostileFixture.AssertFdsBounded(fds, slack: 2);
        output.WriteLine($"XSA-39 across the wrap: {chains} chains, {slotsSent} slots, {dropped} dropped, {good} sent");
    }

    /// <summary>
    /// Garbage that cannot be a packet (a chain running past req_prod; a fragment crossing its page)
    /// placed across the index wrap: the ring is shut down (FATAL, error node, Closing), the queue
    /// thread stops consuming however the guest keeps kicking and scribbling, and a reconnect gets a
    /// working vif back.
    /// </summary>
    [Theory]
    [InlineData("more_data past req_prod", "Asked for")]
    [InlineData("fragment crossing its page", "Cross page boundary")]
    public async Task XSA_39_garbage_across_the_index_wrap_shuts_the_ring_down(string garbage, string expected)
    {
        await using var f = await NetHostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync(txStart: 0xFFFF_FFFE);
        uint gref = raw.Stage(0, Frames.Raw(400, NetHostileFixture.TapMac, f.AttackerMac));
        // Slots at 0xFFFFFFFE, 0xFFFFFFFF, 0, 1: the garbage is in the slots after the wrap.
        raw.PutTx(gref, 0, NetTxFlags.MoreData, 1, 300);
        raw.PutTx(gref, 0, NetTxFlags.MoreData, 2, 100);
        if (garbage == "more_data past req_prod")
        {
            raw.PutTx(gref, 0, NetTxFlags.MoreData, 3, 100); // and nothing after it
        }
        else
        {
            raw.PutTx(gref, 4000, NetTxFlags.MoreData, 3, 100);
            raw.PutTx(gref, 0, 0, 4, 0);
        }
        raw.PushTx();
        await f.AssertAttackerFatalAsync(expected);
        Assert.Equal(1, f.AttackerStats.FatalResets);

        // The ring is shut: more requests and kicks are not consumed and cost the thread nothing.
        string worker = $"netback d{NetHostileFixture.AttackerDomid} q0";
        TimeSpan cpu0 = ProcessProbe.ThreadCpu(worker);
        uint rspProd = raw.Tx.Raw.RspProd;
        var scribble = Task.Run(() =>
        {
            var rng = new Random(390);
            for (int i = 0; i < 20_000; i++)
            {
                rng.NextBytes(raw.TxSlot((uint)rng.Next(256)));
                raw.Tx.Raw.ReqProd = (uint)rng.Next();
                raw.KickTx();
            }
        });
        await f.BystanderDuringAsync(scribble);
        Assert.Equal(rspProd, raw.Tx.Raw.RspProd);
        TimeSpan used = ProcessProbe.ThreadCpu(worker) - cpu0;
        Assert.True(used < TimeSpan.FromMilliseconds(200), $"disabled queue thread used {used.TotalMilliseconds} ms under 20 000 kicks");

        raw = await f.ReconnectAttackerAsync(raw);
        byte[] frame = Frames.Raw(80, NetHostileFixture.TapMac, f.AttackerMac);
        raw.PutTx(raw.Stage(1, frame), 0, 0, 7, 80);
        raw.PushTx();
        Assert.Equal(NetifRsp.Okay, (await raw.WaitTxResponsesAsync(1, Bound)).Single().Status);
        await f.AssertBystanderServedAsync(99);
    }
}
