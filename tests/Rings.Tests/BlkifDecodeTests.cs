using XenBackends.Rings.Blkif;

namespace XenBackends.Rings.Tests;

/// <summary>blkif requests decoded from ring slots of either ABI into the canonical private request.</summary>
public class BlkifDecodeTests
{
    private static (FrontRing Front, BackRing Back, UnmanagedMemory Memory) Ring(BlkifAbi abi)
    {
        var memory = UnmanagedMemory.AllocatePages(1);
        var layout = BlkifProtocol.Layout(abi);
        return (FrontRing.Initialize(memory, layout), BackRing.Attach(memory, layout), memory);
    }

    private static BlkifRequest RoundTrip(BlkifAbi abi, Action<FrontRing> put)
    {
        var (front, back, memory) = Ring(abi);
        using (memory)
        {
            put(front);
            front.PushRequestsAndCheckNotify();
            Assert.Equal(RingRead.Item, back.TryConsumeBlkifRequest(abi, out BlkifRequest request));
            return request;
        }
    }

    [Theory]
    [InlineData(BlkifAbi.X86_64)]
    [InlineData(BlkifAbi.X86_32)]
    public void ADirectReadDecodesItsSegments(BlkifAbi abi)
    {
        var segs = new BlkifSegmentArray();
        for (int i = 0; i < 11; i++)
            segs[i] = new BlkifRequestSegment { Gref = (uint)(100 + i), FirstSect = (byte)(i % 8), LastSect = 7 };
        var req = RoundTrip(abi, f =>
        {
            if (abi == BlkifAbi.X86_64)
                f.PutRequest(new BlkifX86_64Request { Operation = BlkifOp.Write, NrSegments = 11, Handle = 51712, Id = 0xDEADBEEF_00000001, SectorNumber = 1ul << 40, Seg = segs });
            else
                f.PutRequest(new BlkifX86_32Request { Operation = BlkifOp.Write, NrSegments = 11, Handle = 51712, Id = 0xDEADBEEF_00000001, SectorNumber = 1ul << 40, Seg = segs });
        });
        Assert.Equal(BlkifRequestStatus.Valid, req.Status);
        Assert.Equal((BlkifOp.Write, (ushort)11, (ushort)51712, 0xDEADBEEF_00000001ul, 1ul << 40),
            (req.Operation, req.NrSegments, req.Handle, req.Id, req.SectorNumber));
        for (int i = 0; i < 11; i++)
            Assert.Equal(((uint)(100 + i), (byte)(i % 8), (byte)7), (req.Segments[i].Gref, req.Segments[i].FirstSect, req.Segments[i].LastSect));
    }

    [Theory]
    [InlineData(BlkifAbi.X86_64)]
    [InlineData(BlkifAbi.X86_32)]
    public void MoreThanElevenDirectSegmentsIsAnErrorThatKeepsTheId(BlkifAbi abi)
    {
        var req = RoundTrip(abi, f =>
        {
            if (abi == BlkifAbi.X86_64)
                f.PutRequest(new BlkifX86_64Request { Operation = BlkifOp.Read, NrSegments = 12, Id = 42 });
            else
                f.PutRequest(new BlkifX86_32Request { Operation = BlkifOp.Read, NrSegments = 12, Id = 42 });
        });
        Assert.Equal(BlkifRequestStatus.TooManySegments, req.Status);
        Assert.Equal(42ul, req.Id);
        Assert.Equal(BlkifOp.Read, req.Operation);
        Assert.Equal(BlkifRsp.Error, req.RejectionStatus);
    }

    [Theory]
    [InlineData(BlkifAbi.X86_64, 4096, BlkifRequestStatus.Valid, 8)]
    [InlineData(BlkifAbi.X86_64, 4097, BlkifRequestStatus.TooManyIndirectPages, 8)]
    [InlineData(BlkifAbi.X86_32, 513, BlkifRequestStatus.Valid, 2)]
    [InlineData(BlkifAbi.X86_32, 65535, BlkifRequestStatus.TooManyIndirectPages, 8)]
    public void IndirectRequestsAreBoundedByEightPages(BlkifAbi abi, int nrSegments, BlkifRequestStatus expected, int pagesCopied)
    {
        var grefs = new BlkifIndirectGrefArray();
        for (int i = 0; i < 8; i++)
            grefs[i] = (uint)(900 + i);
        var req = RoundTrip(abi, f =>
        {
            if (abi == BlkifAbi.X86_64)
                f.PutRequest(new BlkifX86_64RequestIndirect { Operation = BlkifOp.Indirect, IndirectOp = BlkifOp.Write, NrSegments = (ushort)nrSegments, Id = 9, SectorNumber = 77, Handle = 3, IndirectGrefs = grefs });
            else
                f.PutRequest(new BlkifX86_32RequestIndirect { Operation = BlkifOp.Indirect, IndirectOp = BlkifOp.Write, NrSegments = (ushort)nrSegments, Id = 9, SectorNumber = 77, Handle = 3, IndirectGrefs = grefs });
        });
        Assert.Equal(expected, req.Status);
        Assert.Equal((BlkifOp.Indirect, BlkifOp.Write, (ushort)nrSegments, 9ul, 77ul, (ushort)3),
            (req.Operation, req.IndirectOp, req.NrSegments, req.Id, req.SectorNumber, req.Handle));
        Assert.Equal(pagesCopied, req.NrIndirectPages);
        for (int i = 0; i < 8; i++)
            Assert.Equal(i < pagesCopied ? (uint)(900 + i) : 0u, req.IndirectGrefs[i]);
    }

    [Fact]
    public void AnIndirectRequestMustReadOrWrite()
    {
        var req = RoundTrip(BlkifAbi.X86_64, f =>
            f.PutRequest(new BlkifX86_64RequestIndirect { Operation = BlkifOp.Indirect, IndirectOp = BlkifOp.FlushDiskCache, NrSegments = 1, Id = 5 }));
        Assert.Equal(BlkifRequestStatus.BadIndirectOperation, req.Status);
        Assert.Equal(BlkifRsp.Error, req.RejectionStatus);
        Assert.Equal(5ul, req.Id);
    }

    [Theory]
    [InlineData(BlkifAbi.X86_64, BlkifOp.Reserved1)]
    [InlineData(BlkifAbi.X86_64, 200)]
    [InlineData(BlkifAbi.X86_32, 7)]
    public void AnUnknownOperationKeepsIdAndOpForAnEOpNotSuppAnswer(BlkifAbi abi, byte op)
    {
        var req = RoundTrip(abi, f =>
        {
            if (abi == BlkifAbi.X86_64)
                f.PutRequest(new BlkifX86_64Request { Operation = op, NrSegments = 200, Handle = 1, Id = ulong.MaxValue, SectorNumber = 5 });
            else
                f.PutRequest(new BlkifX86_32Request { Operation = op, NrSegments = 200, Handle = 1, Id = ulong.MaxValue, SectorNumber = 5 });
        });
        Assert.Equal(BlkifRequestStatus.UnknownOperation, req.Status);
        Assert.Equal((op, ulong.MaxValue), (req.Operation, req.Id));
        Assert.Equal(BlkifRsp.EOpNotSupp, req.RejectionStatus);
        // Nothing beyond id and operation was trusted.
        Assert.Equal((0, 0, 0ul), (req.NrSegments, req.Handle, req.SectorNumber));
    }

    [Theory]
    [InlineData(BlkifAbi.X86_64)]
    [InlineData(BlkifAbi.X86_32)]
    public void ADiscardDecodesItsRangeAndFlag(BlkifAbi abi)
    {
        var req = RoundTrip(abi, f =>
        {
            if (abi == BlkifAbi.X86_64)
                f.PutRequest(new BlkifX86_64RequestDiscard { Operation = BlkifOp.Discard, Flag = BlkifDiscardFlags.Secure, Handle = 2, Id = 3, SectorNumber = 4, NrSectors = 1ul << 33 });
            else
                f.PutRequest(new BlkifX86_32RequestDiscard { Operation = BlkifOp.Discard, Flag = BlkifDiscardFlags.Secure, Handle = 2, Id = 3, SectorNumber = 4, NrSectors = 1ul << 33 });
        });
        Assert.True(req.IsValid);
        Assert.Equal((BlkifDiscardFlags.Secure, (ushort)2, 3ul, 4ul, 1ul << 33), (req.DiscardFlag, req.Handle, req.Id, req.SectorNumber, req.NrSectors));
    }

    [Fact]
    public void TheRingAndTheAbiMustAgree()
    {
        var (_, back, memory) = Ring(BlkifAbi.X86_64);
        using (memory)
            Assert.Throws<ArgumentException>(() => back.TryConsumeBlkifRequest(BlkifAbi.X86_32, out _));
    }

    [Theory]
    [InlineData(null, BlkifAbi.X86_64)]
    [InlineData("", BlkifAbi.X86_64)]
    [InlineData("x86_64-abi", BlkifAbi.X86_64)]
    [InlineData("arm-abi", BlkifAbi.X86_64)]
    [InlineData("x86_32-abi", BlkifAbi.X86_32)]
    public void ProtocolStringsMapToLayouts(string? protocol, BlkifAbi expected)
    {
        Assert.True(BlkifProtocol.TryParse(protocol, out BlkifAbi abi));
        Assert.Equal(expected, abi);
        Assert.Equal(expected, BlkifProtocol.Parse(protocol));
    }

    [Theory]
    [InlineData("x86_64")]
    [InlineData("X86_32-ABI")]
    [InlineData("ia64-abi")]
    public void AnUnknownProtocolIsATypedError(string protocol)
    {
        Assert.False(BlkifProtocol.TryParse(protocol, out _));
        var e = Assert.Throws<UnknownBlkifProtocolException>(() => BlkifProtocol.Parse(protocol));
        Assert.Equal(protocol, e.Protocol);
    }
}
