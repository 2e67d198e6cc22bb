using XenBackends.Backend.Block;
using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost;
using XenBackends.SimulatedHost.Hostile;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// XSA-362 ("backends treating grant mapping errors as bug": BUG() on a failed map) and XSA-365 /
/// CVE-2021-26930 (blkback's xen_blkbk_map "an error encountered earlier might be discarded by
/// later processing", leaving entries looking mapped). Trigger: one bad ref among many in the
/// grant-MAP data path. Outcome: that request answers ERROR, nothing stays mapped (every good ref
/// can be revoked afterwards, which Xen refuses while a page is mapped), the ring keeps working.
/// </summary>
public class Xsa362365GrantMapErrorTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(10)]
    public async Task XSA_362_365_one_bad_ref_among_eleven_answers_error_and_leaves_nothing_mapped(int badIndex)
    {
        await using var f = await HostileFixture.CreateAsync(new BlockBackendOptions { DataPath = BlockDataPath.GrantMap });
        var raw = await f.ConnectAttackerAsync();
        var pages = Enumerable.Range(0, 11).Select(_ => raw.GrantPage()).ToArray();
        var segments = pages.Select(p => new RawSegment(p.Gref, 0, 7)).ToArray();
        segments[badIndex] = segments[badIndex] with { Gref = 4000 }; // never granted
        raw.Put(RawBlkifRequest.Direct(BlkifOp.Write, 1, 0, segments));
        raw.Put(RawBlkifRequest.Direct(BlkifOp.Read, 2, 0, segments));
        raw.Push();
        var rsps = await raw.WaitResponsesAsync(2, HostileFixture.Bound);
        Assert.All(rsps, r => Assert.Equal(BlkifRsp.Error, r.Status));
        AssertAllRevocable(raw, pages.Where((_, i) => i != badIndex).Select(p => p.Gref));
        await AssertStillServesAsync(f, raw);
    }

    [Fact]
    public async Task XSA_362_365_one_bad_ref_among_256_indirect_segments_answers_error_and_leaves_nothing_mapped()
    {
        await using var f = await HostileFixture.CreateAsync(new BlockBackendOptions { DataPath = BlockDataPath.GrantMap });
        var raw = await f.ConnectAttackerAsync();
        var pages = Enumerable.Range(0, 256).Select(_ => raw.GrantPage()).ToArray();
        var segments = pages.Select(p => new RawSegment(p.Gref, 0, 7)).ToArray();
        segments[200] = segments[200] with { Gref = uint.MaxValue };
        var (ind, indFrame) = raw.GrantPage(readOnly: true);
        RawBlkifRequest.WriteIndirectPage(raw.Memory.Page(indFrame), segments);
        raw.Put(RawBlkifRequest.Indirect(BlkifOp.Read, 1, 0, 256, ind));
        raw.Put(RawBlkifRequest.Indirect(BlkifOp.Write, 2, 0, 256, ind));
        raw.Push();
        Assert.All(await raw.WaitResponsesAsync(2, HostileFixture.Bound), r => Assert.Equal(BlkifRsp.Error, r.Status));
        AssertAllRevocable(raw, pages.Where((_, i) => i != 200).Select(p => p.Gref).Append(ind));
        await AssertStillServesAsync(f, raw);
    }

    /// <summary>
    /// Grants revoked mid-request: another vCPU rewrites the entries (valid / revoked / wrong
    /// domain) while reads and writes through them run, on both data paths. Every request is
    /// answered OKAY or ERROR, nothing crashes, nothing outside the range changes, nothing stays pinned.
    /// </summary>
    [Theory]
    [InlineData(BlockDataPath.GrantMap)]
    [InlineData(BlockDataPath.GrantCopy)]
    public async Task Grant_entries_rewritten_while_requests_are_in_flight_are_answered_and_released(BlockDataPath path)
    {
        await using var f = await HostileFixture.CreateAsync(new BlockBackendOptions { DataPath = path });
        var raw = await f.ConnectAttackerAsync();
        var pages = Enumerable.Range(0, 11).Select(_ => raw.GrantPage()).ToArray();
        var segments = pages.Select(p => new RawSegment(p.Gref, 0, 7)).ToArray();
        using var stop = new CancellationTokenSource();
        var flipper = Task.Run(() =>
        {
            var rng = new Random(365);
            while (!stop.IsCancellationRequested)
            {
                var (gref, frame) = pages[rng.Next(pages.Length)];
                var entry = rng.Next(3) switch
                {
                    0 => new GrantEntry(GrantTableFlags.GTF_permit_access, SimulatedXenHost.Dom0, frame),
                    // Revoked as gnttab_end_foreign_access does: flags cleared, frame left alone. (Zeroing
                    // the frame too would, mid-write, briefly grant frame 0 -- the guest's own ring --
                    // and the guest would be corrupting itself, which the backend then rightly halts.)
                    1 => new GrantEntry(0, SimulatedXenHost.Dom0, frame),
                    _ => new GrantEntry(GrantTableFlags.GTF_permit_access, 99, frame),
                };
                raw.Grants.WriteRawEntry(gref, entry);
            }
        });
        int okay = 0, error = 0;
        try
        {
            for (int r = 0; r < 300; r++)
            {
                raw.Put(RawBlkifRequest.Direct(r % 2 == 0 ? BlkifOp.Write : BlkifOp.Read, (ulong)r, 512, segments));
                raw.Push();
                RawBlkifResponse rsp;
                try
                {
                    rsp = (await raw.WaitResponsesAsync(1, HostileFixture.Bound)).Single();
                }
                catch (TimeoutException e)
                {
                    var device = f.Backends.Device(f.AttackerDisk.Path);
                    throw new TimeoutException($"request {r}: {e.Message}; backend fault: {device.LastFault ?? "none"}; queues: "
                        + string.Join(", ", device.Queues.Select(q => $"{q.Index} finished={q.Finished} fault={q.FaultReason ?? "none"}"))
                        + "; log: " + string.Join(" | ", f.Backends.Log.TakeLast(5)), e);
                }
                Assert.True(rsp.Id == (ulong)r, $"request {r} was answered by a response for id {rsp.Id} (status {rsp.Status}, op {rsp.Operation})");
                if (rsp.Status == BlkifRsp.Okay) okay++;
                else if (rsp.Status == BlkifRsp.Error) error++;
                else Assert.Fail($"status {rsp.Status}");
            }
        }
        finally
        {
            // The grant table dies with the fixture: the flipper must be gone first.
            stop.Cancel();
            await flipper;
        }
        Assert.Equal(300, okay + error);
        Assert.True(error > 0, "no request ever met a revoked grant; the attack did not happen");
        foreach (var (gref, frame) in pages)
            raw.Grants.WriteRawEntry(gref, new GrantEntry(GrantTableFlags.GTF_permit_access, SimulatedXenHost.Dom0, frame));
        AssertAllRevocable(raw, pages.Select(p => p.Gref));
        await f.AssertBystanderServedAsync(3);
        f.AssertImageUnchangedOutside((512, 88));
    }

    /// <summary>EndAccess fails while the backend still has the page mapped or is copying (GTF_reading/writing).</summary>
    private static void AssertAllRevocable(RawBlkfront raw, IEnumerable<uint> grefs)
    {
        foreach (uint gref in grefs)
            Assert.True(raw.Grants.EndAccess(gref), $"grant {gref} is still in use by the backend");
    }

    private static async Task AssertStillServesAsync(HostileFixture f, RawBlkfront raw)
    {
        var (gref, frame) = raw.GrantPage();
        raw.Memory.Page(frame).Fill(0x61);
        raw.Put(RawBlkifRequest.Direct(BlkifOp.Write, 77, 2048, new RawSegment(gref, 0, 7)));
        raw.Push();
        Assert.Equal(BlkifRsp.Okay, (await raw.WaitResponsesAsync(1, HostileFixture.Bound)).Single().Status);
        await f.AssertBystanderServedAsync(5);
        f.AssertImageUnchangedOutside((2048, 8));
    }
}
