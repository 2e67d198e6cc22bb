using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Hostile;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// XSA-350 / CVE-2020-29569, "use after free triggered by block frontend": a frontend that quickly
/// toggles between connect and disconnect while I/O is in flight freed ring state under blkback's
/// worker. Here the guest flaps its state at random while requests are outstanding.
/// </summary>
public class Xsa350StateFlapTests
{
    [Fact]
    public async Task XSA_350_state_flapping_with_io_in_flight_neither_crashes_nor_wedges_the_device()
    {
        await using var f = await HostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync();
        var (gref, frame) = raw.GrantPage();
        raw.Memory.Page(frame).Fill(0x3C);
        await using var xs = await f.Attacker.OpenXenStoreAsync();

        using var stopIo = new CancellationTokenSource();
        var io = Task.Run(() =>
        {
            // Keep the ring full of writes while the state flaps; responses are never waited for.
            uint r = 0;
            while (!stopIo.IsCancellationRequested)
            {
                if (raw.ReqProdPvt - raw.Ring.RspProd < raw.Ring.Size)
                    raw.Put(RawBlkifRequest.Direct(BlkifOp.Write, r++, 128, new RawSegment(gref, 0, 7)));
                raw.Push();
                Thread.Yield();
            }
        });
        var flap = XenstoreAttacks.FlapStateAsync(xs, raw.FrontendPath, 3_000, seed: 350);
        await f.BystanderDuringAsync(flap);
        stopIo.Cancel();
        await io;

        // Whatever the flapping left behind, a clean close and a fresh connect must work.
        Assert.True(f.Backends.IsServing(f.AttackerDisk.Path), "the lifecycle task died");
        await raw.WriteStateAsync(6);
        await raw.WaitBackendStateAsync(6, HostileFixture.Bound);
        await raw.WriteStateAsync(1);
        await raw.WaitBackendStateAsync(2, HostileFixture.Bound);
        var fresh = await f.ConnectAttackerAsync();
        var (g2, frame2) = fresh.GrantPage();
        fresh.Memory.Page(frame2).Fill(0x4D);
        fresh.Put(RawBlkifRequest.Direct(BlkifOp.Write, 1, 256, new RawSegment(g2, 0, 7)));
        fresh.Push();
        Assert.Equal(BlkifRsp.Okay, (await fresh.WaitResponsesAsync(1, HostileFixture.Bound)).Single().Status);
        await f.AssertBystanderServedAsync(99);
        f.AssertImageUnchangedOutside((128, 8), (256, 8));
        Assert.All(File.ReadAllBytes(f.AttackerImage).AsSpan(256 * 512, 4096).ToArray(), b => Assert.Equal(0x4D, b));
    }
}
