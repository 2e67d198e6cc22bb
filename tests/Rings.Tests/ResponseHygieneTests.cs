using System.Buffers.Binary;
using XenBackends.Rings.Blkif;
using XenBackends.Rings.Netif;

namespace XenBackends.Rings.Tests;

/// <summary>
/// Responses overlay the request slot they answer; every byte of the response must be either a
/// written field or zero (XSA-216), whatever was in the slot before.
/// </summary>
public class ResponseHygieneTests
{
    [Theory]
    [InlineData(BlkifAbi.X86_64)]
    [InlineData(BlkifAbi.X86_32)]
    public void ABlkifResponseLeavesNoStaleByteInItsPadding(BlkifAbi abi)
    {
        var layout = BlkifProtocol.Layout(abi);
        using var memory = UnmanagedMemory.AllocatePages(1);
        var front = FrontRing.Initialize(memory, layout);
        var back = BackRing.Attach(memory, layout);
        front.NextRequest();
        front.PushRequestsAndCheckNotify();
        front.Raw.RawSlot(0).Fill(0xAA); // stale bytes a response must not carry back
        Assert.Equal(RingRead.Item, back.TryConsumeBlkifRequest(abi, out var req));
        back.PutBlkifResponse(0x1122334455667788, BlkifOp.Write, BlkifRsp.EOpNotSupp);
        back.PushResponsesAndCheckNotify();

        Span<byte> slot = front.Raw.RawSlot(0);
        Assert.Equal(0x1122334455667788ul, BinaryPrimitives.ReadUInt64LittleEndian(slot));
        Assert.Equal(BlkifOp.Write, slot[8]);
        Assert.Equal(0, slot[9]);
        Assert.Equal(BlkifRsp.EOpNotSupp, BinaryPrimitives.ReadInt16LittleEndian(slot[10..]));
        Assert.All(slot[12..layout.ResponseSize].ToArray(), b => Assert.Equal(0, b));
        Assert.Equal(RingRead.Item, front.TryConsumeResponse(out BlkifX86_32Response rsp));
        Assert.Equal((0x1122334455667788ul, BlkifOp.Write, BlkifRsp.EOpNotSupp), (rsp.Id, rsp.Operation, rsp.Status));
    }

    [Fact]
    public void NetifResponsesAreWrittenFieldByField()
    {
        using var memory = UnmanagedMemory.AllocatePages(1);
        var front = FrontRing.Initialize(memory, NetifRings.Rx);
        var back = BackRing.Attach(memory, NetifRings.Rx);
        for (int i = 0; i < 2; i++)
            front.PutRequest(new NetifRxRequest { Id = (ushort)i, Gref = 10 });
        front.PushRequestsAndCheckNotify();
        front.Raw.RawSlot(0).Fill(0xEE);
        front.Raw.RawSlot(1).Fill(0xEE);
        Assert.Equal(RingRead.Item, back.TryConsumeRequest(out NetifRxRequest _));
        Assert.Equal(RingRead.Item, back.TryConsumeRequest(out NetifRxRequest _));
        back.PutResponse(new NetifRxResponse { Id = 0, Offset = 14, Flags = NetRxFlags.ExtraInfo, Status = 1500 });
        var gso = new NetifExtraInfo { Type = NetifExtraType.Gso, GsoSize = 1448, GsoType = NetifGsoType.TcpV4 };
        back.PutResponse(gso);
        back.PushResponsesAndCheckNotify();

        Assert.Equal(RingRead.Item, front.TryConsumeResponse(out NetifRxResponse rsp));
        Assert.Equal(((ushort)0, (ushort)14, NetRxFlags.ExtraInfo, (short)1500), (rsp.Id, rsp.Offset, rsp.Flags, rsp.Status));
        Assert.Equal(RingRead.Item, front.TryConsumeResponse(out NetifExtraInfo extra));
        Assert.Equal((NetifExtraType.Gso, (byte)0, (ushort)1448, NetifGsoType.TcpV4, (byte)0, (ushort)0),
            (extra.Type, extra.Flags, extra.GsoSize, extra.GsoType, extra.GsoPad, extra.GsoFeatures));
    }

    [Fact]
    public void TxAndCtrlResponsesRoundTrip()
    {
        using var tx = UnmanagedMemory.AllocatePages(1);
        var front = FrontRing.Initialize(tx, NetifRings.Tx);
        var back = BackRing.Attach(tx, NetifRings.Tx);
        front.PutRequest(new NetifTxRequest { Gref = 1, Offset = 2, Flags = NetTxFlags.MoreData, Id = 3, Size = 60 });
        front.PushRequestsAndCheckNotify();
        Assert.Equal(RingRead.Item, back.TryConsumeRequest(out NetifTxRequest txReq));
        front.Raw.RawSlot(0)[..4].Fill(0x55); // stale bytes under the 4-byte response
        Assert.Equal(((uint)1, (ushort)2, NetTxFlags.MoreData, (ushort)3, (ushort)60), (txReq.Gref, txReq.Offset, txReq.Flags, txReq.Id, txReq.Size));
        back.PutResponse(new NetifTxResponse { Id = 3, Status = NetifRsp.Okay });
        back.PushResponsesAndCheckNotify();
        Assert.Equal(RingRead.Item, front.TryConsumeResponse(out NetifTxResponse txRsp));
        Assert.Equal(((ushort)3, NetifRsp.Okay), (txRsp.Id, txRsp.Status));

        using var ctrl = UnmanagedMemory.AllocatePages(1);
        var cf = FrontRing.Initialize(ctrl, NetifRings.Ctrl);
        var cb = BackRing.Attach(ctrl, NetifRings.Ctrl);
        var data = new NetifCtrlRequestData();
        data[0] = 11; data[1] = 40; data[2] = 0;
        cf.PutRequest(new XenNetifCtrlRequest { Id = 1, Type = NetifCtrlType.SetHashKey, Data = data });
        cf.PushRequestsAndCheckNotify();
        Assert.Equal(RingRead.Item, cb.TryConsumeRequest(out XenNetifCtrlRequest creq));
        Assert.Equal((NetifCtrlType.SetHashKey, 11u, 40u), (creq.Type, creq.Data[0], creq.Data[1]));
        cb.PutResponse(new XenNetifCtrlResponse { Id = 1, Type = creq.Type, Status = NetifCtrlStatus.BufferOverflow, Data = 0 });
        cb.PushResponsesAndCheckNotify();
        Assert.Equal(RingRead.Item, cf.TryConsumeResponse(out XenNetifCtrlResponse crsp));
        Assert.Equal(((ushort)1, NetifCtrlType.SetHashKey, NetifCtrlStatus.BufferOverflow), (crsp.Id, crsp.Type, crsp.Status));
    }
}
