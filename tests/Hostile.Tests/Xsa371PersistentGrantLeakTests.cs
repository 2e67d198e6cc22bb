using XenBackends.Backend.Block;
using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Hostile;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// XSA-371, "blkback driver may leak persistent grants" (blkback-anchors 4.8): grants blkback kept
/// mapped for reuse were not all released, so a guest could pin backend resources and its own pages
/// for ever. This backend keeps no grant beyond a request (grant copy, or one map per request) and
/// does not offer feature-persistent; the advisory's trigger is a frontend that asks for persistent
/// grants anyway, reuses the same grants in every request as a persistent frontend does, and
/// disconnects with I/O in flight, again and again. After every disconnect the guest must be able to
/// revoke every grant (gnttab_end_foreign_access fails while one is mapped or being copied), and the
/// backend's live mappings must be back to what the other guest's rings need.
/// </summary>
public class Xsa371PersistentGrantLeakTests
{
    private const int Cycles = 12;
    private static readonly Dictionary<string, string?> AskForPersistent = new() { ["feature-persistent"] = "1" };

    [Theory]
    [InlineData(BlockDataPath.GrantCopy)]
    [InlineData(BlockDataPath.GrantMap)]
    public async Task XSA_371_frontend_asking_for_persistent_grants_gets_none_and_every_grant_is_released(BlockDataPath path)
    {
        await using var f = await HostileFixture.CreateAsync(new BlockBackendOptions { DataPath = path });
        int baseline = f.Grants.Live; // the bystander's ring
        long requests = 0;
        for (int cycle = 0; cycle < Cycles; cycle++)
        {
            var raw = await f.ConnectAttackerAsync(overrides: AskForPersistent);
            string? offered = await f.Toolstack.Dom0.TryReadStringAsync(raw.BackendPath + "/feature-persistent");
            Assert.True(offered is null or "0", $"the backend offered feature-persistent={offered}");

            // The same 22 grants in every request, as a persistent-grant frontend reuses its pool.
            var pages = Enumerable.Range(0, 22).Select(_ => raw.GrantPage()).ToArray();
            var write = pages.Take(11).Select(p => new RawSegment(p.Gref, 0, 7)).ToArray();
            var read = pages.Skip(11).Select(p => new RawSegment(p.Gref, 0, 7)).ToArray();
            ulong id = 0;
            for (int round = 0; round < 4; round++)
            {
                raw.Put(RawBlkifRequest.Direct(BlkifOp.Write, id++, (ulong)(round * 88), write));
                raw.Put(RawBlkifRequest.Direct(BlkifOp.Read, id++, (ulong)(round * 88), read));
            }
            raw.Push();
            requests += (long)id;
            if (cycle % 2 == 0)
            {
                Assert.All(await raw.WaitResponsesAsync((int)id, HostileFixture.Bound), r => Assert.Equal(BlkifRsp.Okay, r.Status));
            }
            else
            {
                // Disconnect with the requests just pushed, answered or not.
                for (int round = 0; round < 4; round++)
                    raw.Put(RawBlkifRequest.Direct(BlkifOp.Write, id++, 1000, write));
                raw.Push();
                requests += 4;
            }

            await raw.WriteStateAsync(6);
            await raw.WaitBackendStateAsync(6, HostileFixture.Bound);
            // Closed: nothing of this connection may still hold a grant of the guest's.
            foreach (var (gref, _) in pages)
                Assert.True(raw.Grants.EndAccess(gref), $"cycle {cycle}: grant {gref} is still mapped or being copied by the backend");
            Assert.Equal(baseline, f.Grants.Live);
            await raw.WriteStateAsync(1);
            await raw.WaitBackendStateAsync(2, HostileFixture.Bound);
            await f.AssertBystanderServedAsync(cycle);
        }
        Assert.Equal(baseline, f.Grants.Live);
        Assert.True(requests >= Cycles * 8);
    }
}
