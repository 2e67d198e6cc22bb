using XenBackends.Backend.Block;
using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Hostile;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// XSA-229 / CVE-2017-12134: Linux merged bios over foreign (grant-mapped) pages in a PV backend
/// domain; "configurations which use exclusively grant copy are not vulnerable". The argument for
/// this backend: in the default grant-copy data path guest data pages are never mapped, so no
/// foreign page ever reaches the kernel block layer; the I/O engine only sees our own bounce pages.
/// Proof by counting: over a full mix of reads, writes, indirect requests, flushes and discards the
/// only maps are the rings (taken at connect, before any data moves), while grant copies carry all the data.
/// </summary>
public class Xsa229GrantCopyOnlyTests
{
    [Fact]
    public async Task XSA_229_grant_copy_data_path_never_maps_a_guest_data_page()
    {
        await using var f = await HostileFixture.CreateAsync(new BlockBackendOptions { DataPath = BlockDataPath.GrantCopy });
        var raw = await f.ConnectAttackerAsync(order: 2);
        int mapsAfterConnect = f.Grants.Maps;
        long copiesBefore = f.Grants.CopySegments;

        var pages = Enumerable.Range(0, 64).Select(_ => raw.GrantPage()).ToArray();
        var (indirect, indirectFrame) = raw.GrantPage(readOnly: true);
        RawBlkifRequest.WriteIndirectPage(raw.Memory.Page(indirectFrame), pages.Select(p => new RawSegment(p.Gref, 0, 7)).ToArray());
        for (int round = 0; round < 10; round++)
        {
            ulong id = 0;
            raw.Put(RawBlkifRequest.Direct(BlkifOp.Write, id++, 0, pages.Take(11).Select(p => new RawSegment(p.Gref, 0, 7)).ToArray()));
            raw.Put(RawBlkifRequest.Direct(BlkifOp.Read, id++, 0, pages.Skip(11).Take(11).Select(p => new RawSegment(p.Gref, 0, 7)).ToArray()));
            raw.Put(RawBlkifRequest.Indirect(BlkifOp.Write, id++, 1024, 64, indirect));
            raw.Put(RawBlkifRequest.Indirect(BlkifOp.Read, id++, 1024, 64, indirect));
            raw.Put(RawBlkifRequest.Direct(BlkifOp.FlushDiskCache, id++, 0));
            raw.Put(RawBlkifRequest.Direct(BlkifOp.WriteBarrier, id++, 2048, new RawSegment(pages[0].Gref, 0, 7)));
            raw.Put(new RawBlkifRequest { Operation = BlkifOp.Discard, Id = id++, Sector = 4096, NrSectors = 64 });
            raw.Push();
            var rsps = await raw.WaitResponsesAsync((int)id, HostileFixture.Bound);
            Assert.All(rsps, r => Assert.Equal(BlkifRsp.Okay, r.Status));
        }
        Assert.Equal(mapsAfterConnect, f.Grants.Maps);
        Assert.True(f.Grants.CopySegments - copiesBefore >= 10 * (11 + 11 + 64 + 64 + 1), "the data did not travel by grant copy");
    }
}
