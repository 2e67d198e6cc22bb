using System.Buffers.Binary;
using System.Diagnostics;
using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost.Hostile;
using Xunit.Abstractions;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// Deterministic randomized fuzz of the real NetDevice's tx path: valid frames (one or many slots,
/// zero-length fragments, GSO-less extras), mutated chains (random flags, sizes, offsets, grefs,
/// extra types and chains) and now and then a bogus producer index. Valid frames live in "valid"
/// pages and carry a sequence number; every mutated or random request only ever names "junk" pages
/// filled with 0xA5 (or grefs never granted). Checked after every batch: the backend answered every
/// slot it consumed exactly once, in order, with the id of that slot (NETIF_RSP_NULL for what it
/// took as extras), or declared the device fatal; every frame on the tap is either exactly a valid
/// frame the fuzzer built or pure junk bytes (a mix would mean slots of different packets were
/// combined); the heap and fd count stay bounded across reconnects.
/// </summary>
public class NetTxFuzzTests(ITestOutputHelper output)
{
    private const int ValidPages = 128;
    private const byte Junk = 0xA5;

    [Theory]
    [InlineData(1, 50_000)]
    [InlineData(2, 50_000)]
    public async Task Random_and_mutated_tx_requests_never_break_the_backend_or_reach_the_tap_unvalidated(int seed, int requests)
    {
        await using var f = await NetHostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync();
        using var wire = f.Ns.Inside(() => PacketSocket.Open(f.AttackerVif));
        var rng = new Random(seed);
        var shadow = new Dictionary<long, byte[]>();
        var junkPages = new List<uint>();
        void PrepareJunk(RawNetfront r)
        {
            junkPages.Clear();
            for (int i = ValidPages; i < RawNetfront.DataPages; i++)
            {
                r.Memory.Page(r.Data[i].Frame).Fill(Junk);
                junkPages.Add(r.Data[i].Gref);
            }
        }
        PrepareJunk(raw);
        // Valid pieces go to consecutive half pages: 256 halves cover a full ring, so no piece is
        // overwritten before the backend copied it (that would be the fuzzer lying to itself).
        int half = 0;
        long seq = 0;
        int sent = 0, batches = 0, fatals = 0, validOnTap = 0, junkOnTap = 0;
        long heapBefore = ProcessProbe.HeapAfterFullGc();
        var fds = NetHostileFixture.Fds();
        var clock = Stopwatch.StartNew();

        void DrainWire()
        {
            for (byte[]? got; (got = wire.Receive(0)) is not null;)
            {
                if (got.All(b => b == Junk))
                {
                    junkOnTap++;
                    continue;
                }
                Assert.True(got.Length >= 22, $"a {got.Length}-byte frame that is neither junk nor ours reached the tap");
                long s = BinaryPrimitives.ReadInt64LittleEndian(got.AsSpan(14));
                Assert.True(shadow.TryGetValue(s, out var expected), $"frame with unknown sequence {s} (len {got.Length}) reached the tap");
                Assert.Equal(expected, got);
                shadow.Remove(s);
                validOnTap++;
            }
        }

        while (sent < requests)
        {
            batches++;
            uint start = raw.Tx.ReqProdPvt;
            bool bogusProducer = batches % 150 == 0;
            // Valid packets first, then (in some batches) one mutated chain at the very end: a chain
            // left open (more_data or extra_info on its last slot) can then only hit the end of the
            // posted requests (fatal), never swallow a valid packet's slots into a legitimately
            // mixed frame the checks below could not tell from a backend bug.
            int budget = 1 + rng.Next((int)raw.Tx.FreeRequests);
            int mutated = rng.Next(100) < 40 ? Math.Min(budget, 1 + rng.Next(24)) : 0;
            while ((int)(raw.Tx.ReqProdPvt - start) < budget - mutated)
                PutValid(raw, rng, budget - mutated - (int)(raw.Tx.ReqProdPvt - start), ++seq, shadow, f.AttackerMac, ref half);
            if (mutated > 0)
                PutMutated(raw, rng, mutated, junkPages);
            int n = (int)(raw.Tx.ReqProdPvt - start);
            sent += n;
            if (bogusProducer)
                raw.Tx.Raw.ReqProd = start + raw.Tx.Size + 1 + (uint)rng.Next(1 << 20);
            else
                raw.Tx.Raw.ReqProd = raw.Tx.ReqProdPvt;
            raw.KickTx();

            bool fatal = false;
            await Bounded.UntilAsync(async () =>
            {
                if (raw.TxUnread >= (uint)n) return true;
                fatal = await raw.ReadBackendStateAsync() == 5;
                return fatal;
            }, NetHostileFixture.Bound, $"batch {batches}: {n} responses or fatal (have {raw.TxUnread})");
            var rsps = raw.TakeTxResponses();
            Assert.True(rsps.Count <= n, $"{rsps.Count} responses for {n} slots");
            for (int i = 0; i < rsps.Count; i++)
            {
                var r = rsps[i];
                Assert.True(r.Status is NetifRsp.Okay or NetifRsp.Error or NetifRsp.Null, $"status {r.Status}");
                if (r.Status != NetifRsp.Null)
                    Assert.Equal((ushort)(start + i), r.Id);
            }
            Assert.False(bogusProducer && !fatal && rsps.Count > 0 && raw.TxUnread > 0, "answers beyond a bogus producer");
            if (bogusProducer || rsps.Count < n)
            {
                // Fewer answers than slots only when the device was declared fatal.
                if (!fatal)
                    await f.WaitBackendStateAsync(f.AttackerNic, Xenbus.XenbusState.Closing);
                fatals++;
                Assert.False(string.IsNullOrEmpty(f.AttackerDevice.LastFatalError));
                DrainWire();
                raw = await f.ReconnectAttackerAsync(raw);
                PrepareJunk(raw);
            }
            DrainWire();
            if (batches % 50 == 0)
                await f.AssertBystanderServedAsync(batches);
        }
        // Let the last frames reach the socket.
        await Task.Delay(200);
        DrainWire();
        await f.AssertBystanderServedAsync(seed);
        f.AssertHostAlive();
        Assert.True(ProcessProbe.HeapAfterFullGc() - heapBefore < 16 << 20, "heap grew by more than 16 MiB");
        NetHostileFixture.AssertFdsBounded(fds, 8);
        output.WriteLine($"seed {seed}: {sent} tx slots in {batches} batches, {fatals} fatal+reconnect, {validOnTap} valid and {junkOnTap} junk frames on the tap, {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.True(validOnTap > requests / 20, "almost no valid frames got through: the fuzz does not exercise the data path");
    }

    /// <summary>A valid frame (14..3000 bytes) over 1..6 slots, sometimes with zero-length fragments; slot ids = ring index.</summary>
    private static void PutValid(RawNetfront raw, Random rng, int room, long seq, Dictionary<long, byte[]> shadow, byte[] mac, ref int half)
    {
        int maxSlots = Math.Min(room, 6);
        int len = 22 + rng.Next(rng.Next(4) == 0 ? 3000 : 300);
        byte[] frame = Frames.Raw(len, NetHostileFixture.TapMac, mac, seed: (byte)seq);
        BinaryPrimitives.WriteInt64LittleEndian(frame.AsSpan(14), seq);
        // 1..6 pieces of at most 2000 bytes (each fits its half page), the first at least ETH_HLEN,
        // cut at random points so headers and payload straddle slots.
        int n = Math.Min(1 + rng.Next(Math.Min(maxSlots, 6)), len / 14);
        if (len > n * 2000)
        {
            len = n * 2000;
            frame = frame[..len];
        }
        var pieces = new List<int>();
        int rest = len;
        for (int i = 0; i < n; i++)
        {
            int left = n - i - 1;
            int min = Math.Max(i == 0 ? 14 : 1, rest - left * 2000);
            int max = Math.Min(2000, rest - left);
            int p = i == n - 1 ? rest : min + rng.Next(max - min + 1);
            pieces.Add(p);
            rest -= p;
        }
        if (pieces.Count < maxSlots && rng.Next(4) == 0)
            pieces.Insert(1 + rng.Next(pieces.Count), 0); // an XSA-448 zero-length fragment
        int pos = 0;
        for (int i = 0; i < pieces.Count; i++)
        {
            ushort offset = 0;
            uint gref = 0xBAD0_0000u;
            if (pieces[i] > 0)
            {
                int h = half++ % (2 * ValidPages);
                offset = (ushort)((h % 2) * 2048 + rng.Next(2048 - pieces[i] + 1));
                gref = raw.Stage(h / 2, frame.AsSpan(pos, pieces[i]), offset);
            }
            ushort flags = i < pieces.Count - 1 ? NetTxFlags.MoreData : (ushort)0;
            if (i == 0 && rng.Next(2) == 0) flags |= NetTxFlags.DataValidated;
            raw.PutTx(gref, offset, flags, (ushort)raw.Tx.ReqProdPvt, i == 0 ? (ushort)frame.Length : (ushort)pieces[i]);
            pos += pieces[i];
        }
        shadow[seq] = frame;
    }

    /// <summary>Random requests and extras naming only junk pages or ungranted refs: anything may happen but what the checks forbid.</summary>
    private static void PutMutated(RawNetfront raw, Random rng, int room, List<uint> junk)
    {
        int count = room;
        for (int i = 0; i < count; i++)
        {
            if (rng.Next(5) == 0)
            {
                var extra = new NetifExtraInfo
                {
                    Type = (byte)rng.Next(7),
                    Flags = (byte)rng.Next(4),
                    GsoSize = (ushort)(rng.Next(2) == 0 ? 0 : rng.Next(65536)),
                    GsoType = (byte)rng.Next(4),
                };
                uint index = raw.Tx.ReqProdPvt;
                raw.PutExtra(extra);
                // An extra fills 8 of the slot's 12 bytes; bytes 8..9 are the id should the backend
                // (rightly, after a chain it refused) read this slot as a request.
                BinaryPrimitives.WriteUInt16LittleEndian(raw.TxSlot(index)[8..], (ushort)index);
                continue;
            }
            uint gref = rng.Next(10) switch
            {
                // Never a small ref: those are granted (the rings, valid pages) and would not be junk.
                0 => (uint)rng.Next(1 << 20, int.MaxValue),
                1 => 0xFFFF_FFFFu,
                _ => junk[rng.Next(junk.Count)],
            };
            ushort offset = (ushort)(rng.Next(3) == 0 ? rng.Next(65536) : rng.Next(4097));
            ushort size = (ushort)(rng.Next(3) switch { 0 => rng.Next(65536), 1 => rng.Next(20), _ => rng.Next(4097) });
            // Random flags, biased towards more_data/extra_info chains; csum_blank etc. included.
            ushort flags = (ushort)(rng.Next(64) & (rng.Next(2) == 0 ? 0x3F : NetTxFlags.MoreData));
            raw.PutTx(gref, offset, flags, (ushort)raw.Tx.ReqProdPvt, size);
        }
    }
}
