using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Hostile;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// XSA-155 / CVE-2015-8550, "paravirtualized drivers incautious about shared memory contents"
/// (http://xenbits.xen.org/xsa/advisory-155.html): a guest rewrites a request while the backend
/// reads it, hoping the backend validates one version and acts on another. The trigger here is a
/// thread flipping the request between a valid and an invalid version for the whole test.
/// </summary>
public class Xsa155DoubleFetchTests
{
    private const int Rounds = 400;

    /// <summary>
    /// nr_segments flips between 1 (8 sectors ending exactly at the end of the disk: valid) and 11
    /// (88 sectors: 80 past the end). A backend that checked the range with 1 and then copied 11
    /// would write past the end of the image (the file would grow) with the marker page's data.
    /// </summary>
    [Fact]
    public async Task XSA_155_nr_segments_flipped_during_processing_never_writes_past_the_validated_range()
    {
        await using var f = await HostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync();
        var (good, goodFrame) = raw.GrantPage(readOnly: true);
        var (marker, markerFrame) = raw.GrantPage(readOnly: true);
        raw.Memory.Page(goodFrame).Fill(0x11);
        raw.Memory.Page(markerFrame).Fill(0xEE);
        ulong last = (ulong)f.AttackerSectors - 8;
        var segments = new RawSegment[11];
        segments[0] = new RawSegment(good, 0, 7);
        for (int i = 1; i < 11; i++) segments[i] = new RawSegment(marker, 0, 7);

        int okay = 0, error = 0;
        var attack = Task.Run(async () =>
        {
            for (int r = 0; r < Rounds; r++)
            {
                uint slot = raw.ReqProdPvt;
                raw.Put(RawBlkifRequest.Direct(BlkifOp.Write, (ulong)r, last, segments) with { NrSegments = 1 });
                // Byte 1 is nr_segments in the request (and part of the id in the response).
                using (new ByteFlipper(() => raw.Ring.RawSlot(slot).Slice(1, 1), [1], [11]))
                {
                    raw.Push();
                    var rsp = (await raw.WaitResponsesAsync(1, HostileFixture.Bound)).Single();
                    // Byte 1 of the slot is also byte 1 of the response id: the flipper may have
                    // overwritten it after the backend answered, so only the other id bytes are compared.
                    Assert.Equal((ulong)r & ~0xFF00UL, rsp.Id & ~0xFF00UL);
                    if (rsp.Status == BlkifRsp.Okay) okay++;
                    else if (rsp.Status == BlkifRsp.Error) error++;
                    else Assert.Fail($"unexpected status {rsp.Status}");
                }
            }
        });
        await f.BystanderDuringAsync(attack);

        Assert.Equal(Rounds, okay + error);
        f.AssertImageUnchangedOutside(((long)last, 8));
        byte[] image = File.ReadAllBytes(f.AttackerImage);
        Assert.DoesNotContain((byte)0xEE, image.AsSpan((int)last * 512, 4096).ToArray());
        // The last write that succeeded wrote the good page.
        if (okay > 0) Assert.All(image.AsSpan((int)last * 512, 4096).ToArray(), b => Assert.Equal(0x11, b));
    }

    /// <summary>
    /// The indirect page is guest memory too: one of its segments flips between valid and
    /// first_sect > last_sect (a negative length if used after a check of the other version). Both
    /// versions name the same data page, so whatever the backend copied, it can only fail
    /// validation or write that page's bytes inside the requested range.
    /// </summary>
    [Fact]
    public async Task XSA_155_indirect_page_rewritten_during_processing_is_read_once()
    {
        await using var f = await HostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync();
        const int nseg = 64;
        var (good, goodFrame) = raw.GrantPage(readOnly: true);
        var (indirect, indirectFrame) = raw.GrantPage(readOnly: true);
        raw.Memory.Page(goodFrame).Fill(0x22);
        // Only one segment differs between the versions, so most copies the backend takes are
        // untorn and both outcomes occur; whichever it took, it must act on exactly that copy.
        const int flipped = 37;
        var page = raw.Memory.Page(indirectFrame);
        RawBlkifRequest.WriteIndirectPage(page, Enumerable.Repeat(new RawSegment(good, 0, 7), nseg).ToArray());
        byte[] valid = page.Slice(flipped * 8, 8).ToArray();
        byte[] invalid = new byte[8];
        BitConverter.GetBytes(good).CopyTo(invalid, 0);
        invalid[4] = 7; // first_sect > last_sect
        invalid[5] = 0;
        const ulong sector = 1024;

        int okay = 0;
        using (new ByteFlipper(() => raw.Memory.Page(indirectFrame).Slice(flipped * 8, 8), valid, invalid))
        {
            var attack = Task.Run(async () =>
            {
                for (int r = 0; r < Rounds / 2; r++)
                {
                    raw.Put(RawBlkifRequest.Indirect(BlkifOp.Write, (ulong)r, sector, nseg, indirect));
                    raw.Push();
                    var rsp = (await raw.WaitResponsesAsync(1, HostileFixture.Bound)).Single();
                    Assert.True(rsp.Status is BlkifRsp.Okay or BlkifRsp.Error, $"status {rsp.Status}");
                    if (rsp.Status == BlkifRsp.Okay) okay++;
                }
            });
            await f.BystanderDuringAsync(attack);
        }
        Assert.True(okay > 0, "no write ever saw the valid version; the test proved nothing");
        f.AssertImageUnchangedOutside(((long)sector, nseg * 8));
        byte[] image = File.ReadAllBytes(f.AttackerImage);
        Assert.All(image.AsSpan((int)sector * 512, nseg * 4096).ToArray(), b => Assert.Equal(0x22, b));
    }
}
