using System.Net;
using XenBackends.Backend.Net.Control;
using XenBackends.Backend.Net.Tests.Infra;

namespace XenBackends.Backend.Net.Tests.Control;

/// <summary>The hash a Windows frontend steers by must be bit-exact, or its RSS queues get the wrong flows.</summary>
public sealed class ToeplitzTests
{
    // The RSS verification key from Microsoft's "Verifying the RSS Hash Calculation".
    internal static readonly byte[] RssKey =
    [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
        0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
        0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    public static TheoryData<string, int, string, int, uint, uint> Vectors => new()
    {
        // source, source port, destination, destination port, IP-only hash, IP+TCP hash
        { "66.9.149.187", 2794, "161.142.100.80", 1766, 0x323e8fc2, 0x51ccc178 },
        { "199.92.111.2", 14230, "65.69.140.83", 4739, 0xd718262a, 0xc626b0ea },
        { "24.19.198.95", 12898, "12.22.207.184", 38024, 0xd2d0a5de, 0x5c2b394a },
        { "38.27.205.30", 48228, "209.142.163.6", 2217, 0x82989176, 0xafc7327f },
        { "153.39.163.191", 44251, "202.188.127.2", 1303, 0x5d1809c5, 0x10e828a2 },
        { "3ffe:2501:200:1fff::7", 2794, "3ffe:2501:200:3::1", 1766, 0x2cc18cd5, 0x40207d3d },
        { "3ffe:501:8::260:97ff:fe40:efab", 14230, "ff02::1", 4739, 0x0f0c461c, 0xdde51bbf },
        { "3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, "fe80::200:f8ff:fe21:67cf", 38024, 0x4b61e985, 0x02d1feef },
    };

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Published_rss_vectors_match_both_the_table_driven_and_the_reference_hash(string src, int sport, string dst, int dport, uint ipHash, uint tcpHash)
    {
        byte[] ip = [.. IPAddress.Parse(src).GetAddressBytes(), .. IPAddress.Parse(dst).GetAddressBytes()];
        byte[] tcp = [.. ip, (byte)(sport >> 8), (byte)sport, (byte)(dport >> 8), (byte)dport];
        var toeplitz = new Toeplitz(RssKey);

        Assert.Equal(ipHash, ToeplitzReference.Hash(RssKey, ip));
        Assert.Equal(tcpHash, ToeplitzReference.Hash(RssKey, tcp));
        Assert.Equal(ipHash, toeplitz.Hash(ip));
        Assert.Equal(tcpHash, toeplitz.Hash(tcp));
    }

    [Fact]
    public void Table_driven_hash_equals_the_bit_by_bit_definition_for_random_keys_and_inputs()
    {
        var random = new Random(1234);
        for (int round = 0; round < 200; round++)
        {
            byte[] key = new byte[random.Next(0, Toeplitz.MaxKeyLength + 1)];
            random.NextBytes(key);
            byte[] input = new byte[random.Next(0, Toeplitz.MaxInput + 1)];
            random.NextBytes(input);
            Assert.Equal(ToeplitzReference.Hash(key, input), new Toeplitz(key).Hash(input));
        }
    }

    [Fact]
    public void An_empty_key_hashes_everything_to_zero_as_netif_h_says()
    {
        Assert.Equal(0u, new Toeplitz([]).Hash([1, 2, 3, 4, 5, 6, 7, 8]));
    }
}
