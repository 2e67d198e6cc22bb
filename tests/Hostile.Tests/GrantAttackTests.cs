using XenBackends.Backend.Block;
using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Hostile;

namespace XenBackends.Hostile.Tests;

/// <summary>Bad grants the guest hands the backend (blkback-anchors §4 item 8): answered ERROR per request, never more.</summary>
public class GrantAttackTests
{
    /// <summary>
    /// A READ into a page the guest granted read-only would make the backend write where it was
    /// only allowed to read. On both data paths: ERROR, and the page is untouched.
    /// </summary>
    [Theory]
    [InlineData(BlockDataPath.GrantCopy)]
    [InlineData(BlockDataPath.GrantMap)]
    public async Task Read_into_a_read_only_grant_is_an_error_and_the_page_is_untouched(BlockDataPath path)
    {
        await using var f = await HostileFixture.CreateAsync(new BlockBackendOptions { DataPath = path });
        var raw = await f.ConnectAttackerAsync();
        var (ro, roFrame) = raw.GrantPage(readOnly: true);
        var (rw, _) = raw.GrantPage();
        raw.Memory.Page(roFrame).Fill(0xC3);
        raw.Put(RawBlkifRequest.Direct(BlkifOp.Read, 1, 0, new RawSegment(ro, 0, 7)));
        raw.Put(RawBlkifRequest.Direct(BlkifOp.Read, 2, 0, new RawSegment(rw, 0, 7), new RawSegment(ro, 0, 7)));
        raw.Put(RawBlkifRequest.Direct(BlkifOp.Write, 3, 0, new RawSegment(ro, 0, 7)));
        raw.Push();
        var rsps = await raw.WaitResponsesAsync(3, HostileFixture.Bound);
        Assert.Equal([BlkifRsp.Error, BlkifRsp.Error, BlkifRsp.Okay], rsps.OrderBy(r => r.Id).Select(r => r.Status));
        Assert.All(raw.Memory.Page(roFrame).ToArray(), b => Assert.Equal(0xC3, b));
        f.AssertImageUnchangedOutside((0, 8));
        await f.AssertBystanderServedAsync(2);
    }

    /// <summary>
    /// Refs the guest never granted, refs past the end of its table, the reserved toolstack refs,
    /// and a ref granted to another domain. In particular a ref granted by the BYSTANDER must never
    /// let the attacker read or write the bystander's page (grants are per-domain).
    /// </summary>
    [Theory]
    [InlineData(BlockDataPath.GrantCopy)]
    [InlineData(BlockDataPath.GrantMap)]
    public async Task Bad_grant_refs_are_errors_and_never_reach_another_guests_pages(BlockDataPath path)
    {
        await using var f = await HostileFixture.CreateAsync(new BlockBackendOptions { DataPath = path });
        var raw = await f.ConnectAttackerAsync();
        // A page the bystander granted to dom0: same ref number in the attacker's table is not granted.
        var bystander = f.BystanderGuest.Domain;
        uint victimFrame = bystander.Memory.AllocatePage();
        bystander.Memory.Page(victimFrame).Fill(0x99);
        uint victimRef = bystander.Grants.GrantAccess(0, victimFrame, readOnly: false);
        uint wrongDomain = raw.Grants.GrantAccess(42, raw.Memory.AllocatePage(), readOnly: false);
        uint[] bad = [victimRef, 7_999, 8_192, 1_000_000, uint.MaxValue, 0, 3, wrongDomain];
        ulong id = 0;
        foreach (uint gref in bad)
        {
            raw.Put(RawBlkifRequest.Direct(BlkifOp.Read, id++, 0, new RawSegment(gref, 0, 7)));
            raw.Put(RawBlkifRequest.Direct(BlkifOp.Write, id++, 8, new RawSegment(gref, 0, 7)));
        }
        var (ind, indFrame) = raw.GrantPage(readOnly: true);
        RawBlkifRequest.WriteIndirectPage(raw.Memory.Page(indFrame), [new RawSegment(victimRef, 0, 7)]);
        raw.Put(RawBlkifRequest.Indirect(BlkifOp.Write, id++, 16, 1, ind));
        raw.Put(RawBlkifRequest.Indirect(BlkifOp.Write, id++, 16, 1, victimRef)); // indirect page itself bad
        raw.Push();
        var rsps = await raw.WaitResponsesAsync((int)id, HostileFixture.Bound);
        Assert.All(rsps, r => Assert.Equal(BlkifRsp.Error, r.Status));
        Assert.All(bystander.Memory.Page(victimFrame).ToArray(), b => Assert.Equal(0x99, b));
        f.AssertImageUnchangedOutside();
        await f.AssertBystanderServedAsync(4);
    }
}
