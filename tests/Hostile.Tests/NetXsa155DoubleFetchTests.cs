using System.Buffers.Binary;
using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost.Hostile;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// XSA-155 / CVE-2015-8550 for netback ("use RING_COPY_REQUEST() throughout"): the guest rewrites a
/// tx request while the backend reads it. Whatever the backend copied, it must validate and act on
/// that one copy (netback-anchors 4.1 row 2).
/// </summary>
public class NetXsa155DoubleFetchTests
{
    private const int Rounds = 300;

    /// <summary>
    /// A thread flips offset, flags and size of the slot (bytes 4..11; the gref in bytes 0..3 is left
    /// alone because the 4-byte response lands there) between a valid 60-byte frame at offset 0 and a
    /// version that must be dropped: size 8 (below ETH_HLEN, row 12), offset 1024, csum_blank. The page
    /// holds the same frame at 0 and at 1024, so every consistent copy yields exactly that frame or a
    /// drop. A backend that validated one size and copied another would put a short or long frame on
    /// the tap; one that re-read flags after validating could write half-built headers.
    /// </summary>
    [Fact]
    public async Task XSA_155_tx_request_rewritten_while_read_is_acted_on_as_one_copy()
    {
        await using var f = await NetHostileFixture.CreateAsync();
        var raw = await f.ConnectAttackerAsync();
        using var wire = f.Ns.Inside(() => PacketSocket.Open(f.AttackerVif));
        byte[] frame = Frames.Raw(60, NetHostileFixture.TapMac, f.AttackerMac, seed: 0x55);
        uint gref = raw.Stage(0, frame);
        raw.Stage(0, frame, 1024);

        int okay = 0, error = 0;
        long flips = 0;
        var attack = Task.Run(async () =>
        {
            for (int r = 0; r < Rounds; r++)
            {
                ushort id = (ushort)r;
                uint slot = raw.Tx.ReqProdPvt;
                raw.PutTx(gref, 0, 0, id, 60);
                byte[] valid = raw.TxSlot(slot)[4..12].ToArray();
                byte[] invalid = (byte[])valid.Clone();
                BinaryPrimitives.WriteUInt16LittleEndian(invalid.AsSpan(0), 1024);
                BinaryPrimitives.WriteUInt16LittleEndian(invalid.AsSpan(2), NetTxFlags.CsumBlank);
                BinaryPrimitives.WriteUInt16LittleEndian(invalid.AsSpan(6), 8);
                using (var flipper = new ByteFlipper(() => raw.TxSlot(slot)[4..12], valid, invalid))
                {
                    raw.PushTx();
                    var rsp = (await raw.WaitTxResponsesAsync(1, NetHostileFixture.Bound)).Single();
                    Assert.Equal(id, rsp.Id);
                    if (rsp.Status == NetifRsp.Okay) okay++;
                    else if (rsp.Status == NetifRsp.Error) error++;
                    else Assert.Fail($"status {rsp.Status}");
                    flips += flipper.Flips;
                }
            }
        });
        await f.BystanderDuringAsync(attack);

        var seen = new List<byte[]>();
        for (byte[]? got; (got = wire.Receive(300)) is not null;)
            seen.Add(got);
        Assert.All(seen, s => Assert.Equal(frame, s));
        Assert.True(seen.Count <= okay, $"{seen.Count} frames on the tap for {okay} OKAY answers");
        Assert.Equal(Rounds, okay + error);
        Assert.True(flips > Rounds, "the flipper barely ran");
        Assert.True(error > 0 && okay > 0, $"only one version was ever seen (okay {okay}, error {error}): the test proved nothing");
        Assert.Equal(0, f.AttackerStats.FatalResets);
    }
}
