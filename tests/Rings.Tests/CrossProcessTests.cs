using System.Globalization;
using XenBackends.Rings.Blkif;

namespace XenBackends.Rings.Tests;

/// <summary>
/// The C# rings against Xen's own ring macros in another process, over one shared mapping, with
/// kicks sent only when a push says notify and each side sleeping only when its final check says
/// idle. A wrong notify or final-check decision on either side leaves both asleep: the bounded
/// wait then fails the test. Random batch sizes; each request is checked answered once, in order.
/// </summary>
public class CrossProcessTests
{
    private const int Count = 100_000;

    // What both sides derive from a request's sequence number (same formulas as c/peer.h).
    private static ulong SectorOf(ulong seq) => unchecked(seq * 2654435761UL + 17);
    private static short StatusOf(ulong seq) => (short)((short)(seq % 7) - 3);
    private static byte OpOf(ulong seq) => (byte)(seq % 2);
    private static byte NsegOf(ulong seq) => (byte)(seq % 12);

    private static string Flag(BlkifAbi abi) => abi == BlkifAbi.X86_64 ? "-m64" : "-m32";

    [Theory]
    [InlineData(BlkifAbi.X86_64, 1, 0u, 11)]
    [InlineData(BlkifAbi.X86_64, 4, uint.MaxValue - 5000, 12)]
    [InlineData(BlkifAbi.X86_32, 2, uint.MaxValue - 37, 13)]
    public void CFrontRingAgainstCSharpBackRing(BlkifAbi abi, int pages, uint start, int seed)
    {
        string program = CTool.Build("front.c", "front" + Flag(abi), Flag(abi));
        using var memory = MappedFileMemory.Create(pages);
        using var peer = new CPeer(program, memory.Path, pages.ToString(CultureInfo.InvariantCulture),
            Count.ToString(CultureInfo.InvariantCulture), seed.ToString(CultureInfo.InvariantCulture),
            start.ToString(CultureInfo.InvariantCulture));
        peer.WaitKick(); // the frontend initialised the shared ring
        var ring = BackRing.AttachAtSharedIndexes(memory, BlkifProtocol.Layout(abi));
        Assert.Equal(start, ring.ReqCons);
        var random = new Random(seed);

        ulong seq = 0;
        while (seq < Count)
        {
            int budget = random.Next(1, (int)ring.Size + 1);
            while (budget-- > 0)
            {
                RingRead read = ring.TryConsumeBlkifRequest(abi, out BlkifRequest request);
                Assert.NotEqual(RingRead.Faulted, read);
                if (read == RingRead.Empty)
                    break;
                Assert.True(request.IsValid, $"request {seq}: {request.Status}");
                Assert.Equal(seq, request.Id);
                Assert.Equal(OpOf(seq), request.Operation);
                Assert.Equal(NsegOf(seq), request.NrSegments);
                Assert.Equal((ushort)seq, request.Handle);
                Assert.Equal(SectorOf(seq), request.SectorNumber);
                for (int k = 0; k < request.NrSegments; k++)
                    Assert.Equal((uint)(seq + (ulong)k), request.Segments[k].Gref);
                ring.PutBlkifResponse(request.Id, request.Operation, StatusOf(seq));
                seq++;
                if (random.Next(8) == 0 && ring.PushResponsesAndCheckNotify())
                    peer.Kick();
            }
            if (ring.PushResponsesAndCheckNotify())
                peer.Kick();
            if (seq == Count)
                break;
            RingPoll poll = ring.FinalCheckForRequests();
            Assert.NotEqual(RingPoll.Faulted, poll);
            if (poll == RingPoll.Idle)
                peer.WaitKick();
        }
        peer.WaitForSuccess();
        Assert.Contains($"{Count} requests answered in order", peer.StandardError);
    }

    [Theory]
    [InlineData(BlkifAbi.X86_64, 1, 0u, 21)]
    [InlineData(BlkifAbi.X86_64, 8, uint.MaxValue - 3000, 22)]
    [InlineData(BlkifAbi.X86_32, 1, uint.MaxValue - 7, 23)]
    public void CSharpFrontRingAgainstCBackRing(BlkifAbi abi, int pages, uint start, int seed)
    {
        string program = CTool.Build("back.c", "back" + Flag(abi), Flag(abi));
        using var memory = MappedFileMemory.Create(pages);
        var ring = FrontRing.Initialize(memory, BlkifProtocol.Layout(abi), start);
        using var peer = new CPeer(program, memory.Path, pages.ToString(CultureInfo.InvariantCulture),
            Count.ToString(CultureInfo.InvariantCulture), seed.ToString(CultureInfo.InvariantCulture));
        var random = new Random(seed);

        ulong sent = 0, received = 0;
        while (received < Count)
        {
            if (sent < Count && !ring.IsFull)
            {
                long n = Math.Min(Math.Min(random.Next(1, (int)ring.Size + 1), ring.FreeRequests), Count - (long)sent);
                for (long i = 0; i < n; i++, sent++)
                    PutRequest(ring, abi, sent);
                if (ring.PushRequestsAndCheckNotify())
                    peer.Kick();
            }
            int budget = random.Next(1, (int)ring.Size + 1);
            while (budget-- > 0)
            {
                RingRead read = ring.TryConsumeResponse(out BlkifX86_32Response response); // id, operation, status: the common prefix
                Assert.NotEqual(RingRead.Faulted, read);
                if (read == RingRead.Empty)
                    break;
                Assert.Equal(received, response.Id);
                Assert.Equal(OpOf(received), response.Operation);
                Assert.Equal(StatusOf(received), response.Status);
                received++;
            }
            if (received == Count)
                break;
            if (sent < Count && !ring.IsFull)
                continue;
            RingPoll poll = ring.FinalCheckForResponses();
            Assert.NotEqual(RingPoll.Faulted, poll);
            if (poll == RingPoll.Idle)
                peer.WaitKick();
        }
        peer.WaitForSuccess();
        Assert.Contains($"{Count} requests answered", peer.StandardError);
    }

    private static void PutRequest(FrontRing ring, BlkifAbi abi, ulong seq)
    {
        if (abi == BlkifAbi.X86_64)
        {
            var r = new BlkifX86_64Request
            {
                Operation = OpOf(seq), NrSegments = NsegOf(seq), Handle = (ushort)seq, Id = seq, SectorNumber = SectorOf(seq),
            };
            ring.PutRequest(r);
        }
        else
        {
            var r = new BlkifX86_32Request
            {
                Operation = OpOf(seq), NrSegments = NsegOf(seq), Handle = (ushort)seq, Id = seq, SectorNumber = SectorOf(seq),
            };
            ring.PutRequest(r);
        }
    }
}
