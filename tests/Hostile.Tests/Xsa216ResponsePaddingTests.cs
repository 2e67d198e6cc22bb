using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Hostile;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// XSA-216 / CVE-2017-10911, "blkif responses leak backend stack data": a response overlays the
/// request slot, so padding a backend does not write leaks whatever was there before.
/// </summary>
public class Xsa216ResponsePaddingTests
{
    [Fact]
    public async Task XSA_216_response_padding_is_zero_whatever_the_slot_held()
    {
        await using var f = await HostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync();
        var (gref, _) = raw.GrantPage();
        var requests = new List<RawBlkifRequest>();
        // Every slot starts as 0xFF bytes with the request fields stamped over them: unknown op
        // (EOPNOTSUPP), a valid read (OKAY), an invalid segment (ERROR).
        for (int i = 0; i < raw.Ring.Size; i++)
        {
            var bytes = Enumerable.Repeat((byte)0xFF, 112).ToArray();
            var template = (i % 3) switch
            {
                0 => RawBlkifRequest.Direct(0x7F, 0, 0),
                1 => RawBlkifRequest.Direct(BlkifOp.Read, 0, 16, new RawSegment(gref, 0, 7)),
                _ => RawBlkifRequest.Direct(BlkifOp.Read, 0, 16, new RawSegment(gref, 5, 2)),
            };
            var slot = new byte[112];
            template.WriteTo(slot);
            // Keep the fields (op, nseg, id, sector, first segment); the rest stays 0xFF.
            slot.AsSpan(0, 2).CopyTo(bytes);
            BitConverter.GetBytes((ulong)(0xAB00 + i)).CopyTo(bytes, 8);
            slot.AsSpan(16, 16).CopyTo(bytes.AsSpan(16));
            raw.Put(new RawBlkifRequest { Bytes = bytes });
        }
        raw.Push();
        var responses = await raw.WaitResponsesAsync((int)raw.Ring.Size, HostileFixture.Bound);
        Assert.Equal((int)raw.Ring.Size, responses.Count);
        // blkif answers in any order (reads wait for I/O, refusals are answered at once): each id once.
        Assert.Equal(Enumerable.Range(0, (int)raw.Ring.Size).Select(i => (ulong)(0xAB00 + i)), responses.Select(r => r.Id).Order());
        foreach (var r in responses)
        {
            // 0xFF under the fields must not change how a request is judged.
            short expected = ((int)(r.Id - 0xAB00) % 3) switch
            {
                0 => BlkifRsp.EOpNotSupp,   // unknown op
                1 => BlkifRsp.Okay,         // a valid read
                _ => BlkifRsp.Error,        // first_sect > last_sect
            };
            Assert.Equal(expected, r.Status);
            Assert.Equal((0, 0, 0), (r.Pad9, r.Pad12, r.Pad14));
        }
        await f.AssertBystanderServedAsync(0);
        f.AssertImageUnchangedOutside();
    }
}
