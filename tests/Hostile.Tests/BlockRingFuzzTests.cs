using System.Buffers.Binary;
using System.Diagnostics;
using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost;
using XenBackends.SimulatedHost.Hostile;
using Xunit.Abstractions;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// Deterministic randomized fuzz of the real block backend's ring: random bytes and mutated valid
/// requests (direct, indirect with random indirect pages, discard, flush, barrier), random grant
/// states, and now and then a bogus producer index. Checked after every batch: every consumed
/// request got exactly one response with a blkif status; the image length is unchanged; every
/// sector equals the shadow unless an OKAY write or discard covered it, and then it holds what one
/// of those could have written (exact bytes from read-only source pages); a READ answered OKAY never
/// targeted a read-only page. A bogus producer index must halt the ring as fatal.
/// </summary>
public class BlockRingFuzzTests(ITestOutputHelper output)
{
    private const int ImageBytes = 1 << 20;
    private const int Sectors = ImageBytes / 512;

    [Theory]
    [InlineData(1, 500_000)]
    [InlineData(2, 500_000)]
    public async Task Random_and_mutated_ring_contents_never_break_the_backend_or_the_image(int seed, int requests)
    {
        await using var f = await HostileFixture.CreateAsync(attackerImageBytes: ImageBytes, seed: seed);
        var fuzz = new Fuzzer(f, new Random(seed), await f.ConnectAttackerAsync(order: 4));
        var clock = Stopwatch.StartNew();
        int sent = 0, batches = 0, halts = 0;
        while (sent < requests)
        {
            if (++batches % 400 == 0)
            {
                await fuzz.BogusProducerAsync();
                halts++;
                continue;
            }
            sent += await fuzz.BatchAsync(Math.Min(requests - sent, 1 + fuzz.Rng.Next((int)fuzz.Raw.Ring.Size)));
        }
        await f.AssertBystanderServedAsync(seed);
        output.WriteLine($"seed {seed}: {sent} requests in {batches} batches, {halts} halts, {fuzz.Okay} okay, {fuzz.OkayWrites} okay writes, {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.True(fuzz.OkayWrites > requests / 100, "almost no valid writes: the mutations are too destructive to exercise the data path");
    }

    private sealed class Fuzzer
    {
        private readonly HostileFixture _f;
        private readonly byte[] _shadow;
        private readonly byte[] _image = new byte[ImageBytes];
        private readonly (uint Gref, uint Frame)[] _ro;
        private readonly (uint Gref, uint Frame)[] _rw;
        private readonly (uint Gref, uint Frame)[] _indirect;
        private readonly HashSet<uint> _revoked = [];
        // The guest's own rings are granted too; a request naming them would have the backend
        // read or write our ring under us. A guest can do that to itself, but then the checks here
        // would be checking garbage, so those refs are replaced by ref 0 (never granted).
        private readonly HashSet<uint> _ringRefs = [];

        public Fuzzer(HostileFixture f, Random rng, RawBlkfront raw)
        {
            _f = f;
            Rng = rng;
            Raw = raw;
            _shadow = (byte[])f.Pristine.Clone();
            _ringRefs.UnionWith(raw.RingRefs);
            _ro = [.. Enumerable.Range(0, 16).Select(_ => raw.GrantPage(readOnly: true))];
            _rw = [.. Enumerable.Range(0, 16).Select(_ => raw.GrantPage())];
            _indirect = [.. Enumerable.Range(0, 2).Select(_ => raw.GrantPage(readOnly: true))];
            foreach (var (_, frame) in _ro)
                rng.NextBytes(raw.Memory.Page(frame));
        }

        public Random Rng { get; }
        public RawBlkfront Raw { get; private set; }
        public long Okay { get; private set; }
        public long OkayWrites { get; private set; }

        public async Task<int> BatchAsync(int count)
        {
            MutateGrants();
            foreach (var (_, frame) in _indirect)
                FillIndirect(Raw.Memory.Page(frame));
            uint start = Raw.ReqProdPvt;
            var slots = new byte[count][];
            for (int i = 0; i < count; i++)
            {
                byte[] slot = NextRequest();
                for (int at = 24; at + 4 <= 112; at += 4)
                    Sanitize(slot.AsSpan(at));
                BinaryPrimitives.WriteUInt64LittleEndian(slot.AsSpan(8), (ulong)i);
                slots[i] = slot;
                Raw.Put(new RawBlkifRequest { Bytes = slot });
            }
            Raw.Push();
            List<RawBlkifResponse> rsps;
            try
            {
                rsps = await Raw.WaitResponsesAsync(count, HostileFixture.Bound);
            }
            catch (TimeoutException e)
            {
                var dev = _f.Backends.Device(_f.AttackerDisk.Path);
                string last = string.Join(" | ", _f.Backends.Log.TakeLast(5));
                var got = Raw.TakeResponses().Select(r => r.Id).ToHashSet();
                string ops = string.Join(" ; ", Enumerable.Range(0, count).Where(i => !got.Contains((ulong)i)).Select(i => Convert.ToHexString(slots[i].AsSpan(0, 48))));
                throw new TimeoutException($"{e.Message}; unanswered {ops}; fault {dev.LastFault}; log {last}", e);
            }
            Assert.Equal(start + (uint)count, Raw.Ring.RspProd);
            var seen = new bool[count];
            var candidates = new List<(int Sector, byte[]? Data)>();
            foreach (var r in rsps)
            {
                Assert.True(r.Id < (ulong)count && !seen[r.Id], $"response id {r.Id} unknown or answered twice");
                seen[r.Id] = true;
                Assert.True(r.Status is BlkifRsp.Okay or BlkifRsp.Error or BlkifRsp.EOpNotSupp, $"status {r.Status}");
                // The request's operation, or an indirect request's indirect_op (byte 1), as blkback answers.
                Assert.Equal(slots[r.Id][0] == BlkifOp.Indirect ? slots[r.Id][1] : slots[r.Id][0], r.Operation);
                if (r.Status == BlkifRsp.Okay)
                {
                    Okay++;
                    Explain(slots[r.Id], candidates);
                }
            }
            CheckImage(candidates);
            return count;
        }

        /// <summary>A producer index more than a ring ahead: fatal; then the guest reconnects.</summary>
        public async Task BogusProducerAsync()
        {
            Raw.PushRaw(Raw.Ring.RspProd + Raw.Ring.Size + 1 + (uint)Rng.Next(1 << 30));
            await _f.AssertFatalAsync(Raw);
            CheckImage([]);
            Raw = await _f.ReconnectAttackerAsync(Raw, order: 4);
            _ringRefs.UnionWith(Raw.RingRefs);
        }

        private void MutateGrants()
        {
            if (Rng.Next(4) != 0) return;
            var pool = Rng.Next(2) == 0 ? _ro : _rw;
            var (gref, frame) = pool[Rng.Next(pool.Length)];
            bool ro = pool == _ro;
            switch (Rng.Next(3))
            {
                case 0:
                    Raw.Grants.WriteRawEntry(gref, new GrantEntry((ushort)(GrantTableFlags.GTF_permit_access | (ro ? GrantTableFlags.GTF_readonly : 0)), 0, frame));
                    _revoked.Remove(gref);
                    break;
                case 1:
                    Raw.Grants.WriteRawEntry(gref, new GrantEntry(0, 0, frame));
                    _revoked.Add(gref);
                    break;
                default:
                    Raw.Grants.WriteRawEntry(gref, new GrantEntry(GrantTableFlags.GTF_permit_access, 55, frame));
                    _revoked.Add(gref);
                    break;
            }
        }

        private uint AnyGref() => Rng.Next(20) switch
        {
            < 9 => _ro[Rng.Next(_ro.Length)].Gref,
            < 18 => _rw[Rng.Next(_rw.Length)].Gref,
            18 => _indirect[Rng.Next(_indirect.Length)].Gref,
            _ => (uint)Rng.Next(),
        };

        private byte[] ValidSegment()
        {
            var seg = new byte[8];
            BinaryPrimitives.WriteUInt32LittleEndian(seg, AnyGref());
            byte first = (byte)Rng.Next(8);
            seg[4] = first;
            seg[5] = (byte)Rng.Next(first, 8);
            return seg;
        }

        private void FillIndirect(Span<byte> page)
        {
            page.Clear();
            int n = Rng.Next(300);
            for (int i = 0; i < n; i++)
                ValidSegment().CopyTo(page[(8 * i)..]);
            for (int m = Rng.Next(3); m > 0; m--)
                page[Rng.Next(n * 8 + 1)] = (byte)Rng.Next(256);
            for (int i = 0; i < 512; i++)
                Sanitize(page[(8 * i)..]);
        }

        private void Sanitize(Span<byte> gref)
        {
            if (_ringRefs.Contains(BinaryPrimitives.ReadUInt32LittleEndian(gref)))
                BinaryPrimitives.WriteUInt32LittleEndian(gref, 0);
        }

        private byte[] NextRequest()
        {
            var slot = new byte[112];
            if (Rng.Next(10) == 0)
            {
                Rng.NextBytes(slot);
                slot[0] = (byte)Rng.Next(8);
                return slot;
            }
            byte op = Rng.Next(10) switch { < 4 => BlkifOp.Write, < 6 => BlkifOp.Read, 6 => BlkifOp.Indirect, 7 => BlkifOp.Discard, 8 => BlkifOp.FlushDiskCache, _ => BlkifOp.WriteBarrier };
            slot[0] = op;
            ulong sector = (ulong)Rng.Next(Sectors);
            BinaryPrimitives.WriteUInt64LittleEndian(slot.AsSpan(16), sector);
            switch (op)
            {
                case BlkifOp.Indirect:
                    slot[1] = Rng.Next(2) == 0 ? BlkifOp.Read : BlkifOp.Write;
                    BinaryPrimitives.WriteUInt16LittleEndian(slot.AsSpan(2), (ushort)Rng.Next(1, 300));
                    BinaryPrimitives.WriteUInt32LittleEndian(slot.AsSpan(28), _indirect[Rng.Next(_indirect.Length)].Gref);
                    break;
                case BlkifOp.Discard:
                    BinaryPrimitives.WriteUInt64LittleEndian(slot.AsSpan(24), (ulong)Rng.Next(64));
                    slot[1] = (byte)Rng.Next(2);
                    break;
                default:
                    int nseg = op is BlkifOp.Read or BlkifOp.Write ? Rng.Next(1, 12) : Rng.Next(0, 12);
                    slot[1] = (byte)nseg;
                    for (int i = 0; i < nseg; i++)
                        ValidSegment().CopyTo(slot, 24 + 8 * i);
                    break;
            }
            // Mutate: a few random bytes anywhere but the id (stamped later anyway).
            for (int m = Rng.Next(4) == 0 ? Rng.Next(1, 4) : 0; m > 0; m--)
                slot[Rng.Next(112)] = (byte)Rng.Next(256);
            return slot;
        }

        /// <summary>What an OKAY response allows to have changed, decoded from the bytes we wrote.</summary>
        private void Explain(byte[] slot, List<(int Sector, byte[]? Data)> candidates)
        {
            byte op = slot[0];
            ulong sector = BinaryPrimitives.ReadUInt64LittleEndian(slot.AsSpan(16));
            var segments = new List<(uint Gref, int First, int Last)>();
            bool write;
            switch (op)
            {
                case BlkifOp.Read or BlkifOp.Write or BlkifOp.WriteBarrier or BlkifOp.FlushDiskCache:
                    write = op != BlkifOp.Read;
                    Assert.InRange(slot[1], 0, 11);
                    for (int i = 0; i < slot[1]; i++)
                        segments.Add(Segment(slot.AsSpan(24 + 8 * i)));
                    break;
                case BlkifOp.Indirect:
                    write = slot[1] == BlkifOp.Write;
                    Assert.True(slot[1] is BlkifOp.Read or BlkifOp.Write, "indirect op accepted that is neither READ nor WRITE");
                    int nseg = BinaryPrimitives.ReadUInt16LittleEndian(slot.AsSpan(2));
                    uint page = BinaryPrimitives.ReadUInt32LittleEndian(slot.AsSpan(28));
                    int which = Array.FindIndex(_indirect, p => p.Gref == page);
                    Assert.True(which >= 0 && nseg <= 512, $"indirect request via ref {page} with {nseg} segments answered OKAY");
                    var content = Raw.Memory.Page(_indirect[which].Frame);
                    for (int i = 0; i < nseg; i++)
                        segments.Add(Segment(content[(8 * i)..]));
                    break;
                case BlkifOp.Discard:
                    ulong n = BinaryPrimitives.ReadUInt64LittleEndian(slot.AsSpan(24));
                    Assert.True(sector + n <= Sectors, $"discard {sector}+{n} past the end answered OKAY");
                    for (ulong s = sector; s < sector + n; s++)
                        candidates.Add(((int)s, new byte[512]));
                    return;
                default:
                    Assert.Fail($"operation {op} answered OKAY");
                    return;
            }
            long total = segments.Sum(s => s.Last - s.First + 1);
            // An empty flush or barrier covers no range (Linux blkfront sends sector_number -1 and
            // blkback checks no range for it); every other request must carry data inside the disk.
            if (total == 0)
            {
                Assert.True(op is BlkifOp.WriteBarrier or BlkifOp.FlushDiskCache, $"operation {op} without data answered OKAY");
                return;
            }
            Assert.True(sector + (ulong)total <= Sectors, $"request {sector}+{total} past the end answered OKAY");
            if (write) OkayWrites++;
            int at = (int)sector;
            foreach (var (gref, first, last) in segments)
            {
                Assert.True(first <= last && last < 8, $"segment {first}..{last} answered OKAY");
                Assert.DoesNotContain(gref, _revoked);
                // Source bytes we know exactly: read-only data pages and the (read-only) indirect pages.
                uint? known = _ro.Concat(_indirect).Where(p => p.Gref == gref).Select(p => (uint?)p.Frame).FirstOrDefault();
                bool writable = _rw.Any(p => p.Gref == gref);
                Assert.True(known is not null || writable, $"ref {gref} was never granted yet a request using it was answered OKAY");
                if (!write)
                {
                    Assert.True(writable, $"READ into read-only ref {gref} answered OKAY");
                    at += last - first + 1;
                    continue;
                }
                for (int s = first; s <= last; s++, at++)
                    candidates.Add((at, known is { } frame ? Raw.Memory.Page(frame).Slice(s * 512, 512).ToArray() : null));
            }
        }

        private static (uint, int, int) Segment(ReadOnlySpan<byte> b) => (BinaryPrimitives.ReadUInt32LittleEndian(b), b[4], b[5]);

        private void CheckImage(List<(int Sector, byte[]? Data)> candidates)
        {
            // One reused buffer: a fresh 1 MiB array per batch was a large-object allocation every
            // few hundred requests, and the gen-2 collections it caused stalled the backend threads
            // of this same process.
            using (var file = File.OpenHandle(_f.AttackerImage))
            {
                Assert.Equal(ImageBytes, RandomAccess.GetLength(file));
                Assert.Equal(ImageBytes, RandomAccess.Read(file, _image, 0));
            }
            var bySector = candidates.Count == 0 ? null : candidates.ToLookup(c => c.Sector, c => c.Data);
            for (int s = 0; s < Sectors; s++)
            {
                ReadOnlySpan<byte> have = _image.AsSpan(s * 512, 512);
                List<byte[]?> allowed = bySector is null ? [] : [.. bySector[s]];
                // Exactly one acknowledged writer with known bytes: they must be there (no lost write).
                if (allowed is [{ } only])
                    Assert.True(have.SequenceEqual(only), $"sector {s}: an acknowledged write is not in the image");
                if (have.SequenceEqual(_shadow.AsSpan(s * 512, 512)))
                    continue;
                Assert.True(allowed.Count > 0, $"sector {s} changed but no OKAY write or discard covered it");
                byte[] copy = have.ToArray();
                Assert.True(allowed.Any(d => d is null || copy.AsSpan().SequenceEqual(d)), $"sector {s} holds data none of the OKAY writes carried");
                have.CopyTo(_shadow.AsSpan(s * 512));
            }
        }
    }
}
