using System.Globalization;
using System.Runtime.CompilerServices;
using XenBackends.Rings.Blkif;
using XenBackends.Rings.Netif;

namespace XenBackends.Rings.Tests;

/// <summary>
/// Every size, offset, ring size and constant of the C# ABI types against gcc's reading of Xen's
/// own headers, at -m64 (x86_64-abi, arm-abi) and -m32 (x86_32-abi). No expected number is typed
/// here: both sides are computed.
/// </summary>
public class AbiLayoutTests
{
    [Theory]
    [InlineData("-m64")]
    [InlineData("-m32")]
    public void EveryNumberMatchesXensHeaders(string flag)
    {
        string program = CTool.Build("layout.c", "layout" + flag, flag);
        var c = new Dictionary<string, long>();
        foreach (string line in CTool.Run(program).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] kv = line.Split(' ');
            c.Add(kv[0], long.Parse(kv[1], CultureInfo.InvariantCulture));
        }
        var cs = flag == "-m64" ? CSharpNumbers(BlkifAbi.X86_64) : CSharpNumbers(BlkifAbi.X86_32);

        var mismatches = new List<string>();
        foreach (var (key, value) in c)
        {
            if (!cs.TryGetValue(key, out long mine))
                mismatches.Add($"{key}: C says {value}, C# has no such number");
            else if (mine != value)
                mismatches.Add($"{key}: C says {value}, C# says {mine}");
        }
        foreach (string key in cs.Keys.Except(c.Keys))
            mismatches.Add($"{key}: C# has it, the C program printed none");
        Assert.True(mismatches.Count == 0, string.Join('\n', mismatches));
        Assert.True(c.Count > 150, $"only {c.Count} numbers compared");
    }

    private static long Off<T, TField>(ref T s, ref TField field) =>
        (long)Unsafe.ByteOffset(ref Unsafe.As<T, byte>(ref s), ref Unsafe.As<TField, byte>(ref field));

    private static Dictionary<string, long> CSharpNumbers(BlkifAbi abi)
    {
        var n = new Dictionary<string, long>();
        void Size<T>(string name) where T : unmanaged => n.Add($"sizeof.{name}", Unsafe.SizeOf<T>());
        void At(string name, string field, long offset) => n.Add($"offsetof.{name}.{field}", offset);

        var seg = default(BlkifRequestSegment);
        Size<BlkifRequestSegment>("blkif_request_segment");
        At("blkif_request_segment", "gref", Off(ref seg, ref seg.Gref));
        At("blkif_request_segment", "first_sect", Off(ref seg, ref seg.FirstSect));
        At("blkif_request_segment", "last_sect", Off(ref seg, ref seg.LastSect));

        if (abi == BlkifAbi.X86_64)
        {
            var r = default(BlkifX86_64Request);
            Size<BlkifX86_64Request>("blkif_request");
            At("blkif_request", "operation", Off(ref r, ref r.Operation));
            At("blkif_request", "nr_segments", Off(ref r, ref r.NrSegments));
            At("blkif_request", "handle", Off(ref r, ref r.Handle));
            At("blkif_request", "id", Off(ref r, ref r.Id));
            At("blkif_request", "sector_number", Off(ref r, ref r.SectorNumber));
            At("blkif_request", "seg", Off(ref r, ref r.Seg));
            var d = default(BlkifX86_64RequestDiscard);
            Size<BlkifX86_64RequestDiscard>("blkif_request_discard");
            At("blkif_request_discard", "operation", Off(ref d, ref d.Operation));
            At("blkif_request_discard", "flag", Off(ref d, ref d.Flag));
            At("blkif_request_discard", "handle", Off(ref d, ref d.Handle));
            At("blkif_request_discard", "id", Off(ref d, ref d.Id));
            At("blkif_request_discard", "sector_number", Off(ref d, ref d.SectorNumber));
            At("blkif_request_discard", "nr_sectors", Off(ref d, ref d.NrSectors));
            var i = default(BlkifX86_64RequestIndirect);
            Size<BlkifX86_64RequestIndirect>("blkif_request_indirect");
            At("blkif_request_indirect", "operation", Off(ref i, ref i.Operation));
            At("blkif_request_indirect", "indirect_op", Off(ref i, ref i.IndirectOp));
            At("blkif_request_indirect", "nr_segments", Off(ref i, ref i.NrSegments));
            At("blkif_request_indirect", "id", Off(ref i, ref i.Id));
            At("blkif_request_indirect", "sector_number", Off(ref i, ref i.SectorNumber));
            At("blkif_request_indirect", "handle", Off(ref i, ref i.Handle));
            At("blkif_request_indirect", "indirect_grefs", Off(ref i, ref i.IndirectGrefs));
            var p = default(BlkifX86_64Response);
            Size<BlkifX86_64Response>("blkif_response");
            At("blkif_response", "id", Off(ref p, ref p.Id));
            At("blkif_response", "operation", Off(ref p, ref p.Operation));
            At("blkif_response", "status", Off(ref p, ref p.Status));
        }
        else
        {
            var r = default(BlkifX86_32Request);
            Size<BlkifX86_32Request>("blkif_request");
            At("blkif_request", "operation", Off(ref r, ref r.Operation));
            At("blkif_request", "nr_segments", Off(ref r, ref r.NrSegments));
            At("blkif_request", "handle", Off(ref r, ref r.Handle));
            At("blkif_request", "id", Off(ref r, ref r.Id));
            At("blkif_request", "sector_number", Off(ref r, ref r.SectorNumber));
            At("blkif_request", "seg", Off(ref r, ref r.Seg));
            var d = default(BlkifX86_32RequestDiscard);
            Size<BlkifX86_32RequestDiscard>("blkif_request_discard");
            At("blkif_request_discard", "operation", Off(ref d, ref d.Operation));
            At("blkif_request_discard", "flag", Off(ref d, ref d.Flag));
            At("blkif_request_discard", "handle", Off(ref d, ref d.Handle));
            At("blkif_request_discard", "id", Off(ref d, ref d.Id));
            At("blkif_request_discard", "sector_number", Off(ref d, ref d.SectorNumber));
            At("blkif_request_discard", "nr_sectors", Off(ref d, ref d.NrSectors));
            var i = default(BlkifX86_32RequestIndirect);
            Size<BlkifX86_32RequestIndirect>("blkif_request_indirect");
            At("blkif_request_indirect", "operation", Off(ref i, ref i.Operation));
            At("blkif_request_indirect", "indirect_op", Off(ref i, ref i.IndirectOp));
            At("blkif_request_indirect", "nr_segments", Off(ref i, ref i.NrSegments));
            At("blkif_request_indirect", "id", Off(ref i, ref i.Id));
            At("blkif_request_indirect", "sector_number", Off(ref i, ref i.SectorNumber));
            At("blkif_request_indirect", "handle", Off(ref i, ref i.Handle));
            At("blkif_request_indirect", "indirect_grefs", Off(ref i, ref i.IndirectGrefs));
            At("blkif_request_indirect", "pad", Off(ref i, ref i.Pad));
            var p = default(BlkifX86_32Response);
            Size<BlkifX86_32Response>("blkif_response");
            At("blkif_response", "id", Off(ref p, ref p.Id));
            At("blkif_response", "operation", Off(ref p, ref p.Operation));
            At("blkif_response", "status", Off(ref p, ref p.Status));
        }

        var tx = default(NetifTxRequest);
        Size<NetifTxRequest>("netif_tx_request");
        At("netif_tx_request", "gref", Off(ref tx, ref tx.Gref));
        At("netif_tx_request", "offset", Off(ref tx, ref tx.Offset));
        At("netif_tx_request", "flags", Off(ref tx, ref tx.Flags));
        At("netif_tx_request", "id", Off(ref tx, ref tx.Id));
        At("netif_tx_request", "size", Off(ref tx, ref tx.Size));
        var txr = default(NetifTxResponse);
        Size<NetifTxResponse>("netif_tx_response");
        At("netif_tx_response", "id", Off(ref txr, ref txr.Id));
        At("netif_tx_response", "status", Off(ref txr, ref txr.Status));
        var rx = default(NetifRxRequest);
        Size<NetifRxRequest>("netif_rx_request");
        At("netif_rx_request", "id", Off(ref rx, ref rx.Id));
        At("netif_rx_request", "pad", Off(ref rx, ref rx.Pad));
        At("netif_rx_request", "gref", Off(ref rx, ref rx.Gref));
        var rxr = default(NetifRxResponse);
        Size<NetifRxResponse>("netif_rx_response");
        At("netif_rx_response", "id", Off(ref rxr, ref rxr.Id));
        At("netif_rx_response", "offset", Off(ref rxr, ref rxr.Offset));
        At("netif_rx_response", "flags", Off(ref rxr, ref rxr.Flags));
        At("netif_rx_response", "status", Off(ref rxr, ref rxr.Status));
        var x = default(NetifExtraInfo);
        Size<NetifExtraInfo>("netif_extra_info");
        At("netif_extra_info", "type", Off(ref x, ref x.Type));
        At("netif_extra_info", "flags", Off(ref x, ref x.Flags));
        At("netif_extra_info", "u.gso.size", Off(ref x, ref x.GsoSize));
        At("netif_extra_info", "u.gso.type", Off(ref x, ref x.GsoType));
        At("netif_extra_info", "u.gso.pad", Off(ref x, ref x.GsoPad));
        At("netif_extra_info", "u.gso.features", Off(ref x, ref x.GsoFeatures));
        At("netif_extra_info", "u.mcast.addr", Off(ref x, ref x.McastAddr));
        At("netif_extra_info", "u.hash.type", Off(ref x, ref x.HashType));
        At("netif_extra_info", "u.hash.algorithm", Off(ref x, ref x.HashAlgorithm));
        At("netif_extra_info", "u.hash.value", Off(ref x, ref x.HashValue));
        At("netif_extra_info", "u.pad", Off(ref x, ref x.Pad0));
        var cq = default(XenNetifCtrlRequest);
        Size<XenNetifCtrlRequest>("xen_netif_ctrl_request");
        At("xen_netif_ctrl_request", "id", Off(ref cq, ref cq.Id));
        At("xen_netif_ctrl_request", "type", Off(ref cq, ref cq.Type));
        At("xen_netif_ctrl_request", "data", Off(ref cq, ref cq.Data));
        var cr = default(XenNetifCtrlResponse);
        Size<XenNetifCtrlResponse>("xen_netif_ctrl_response");
        At("xen_netif_ctrl_response", "id", Off(ref cr, ref cr.Id));
        At("xen_netif_ctrl_response", "type", Off(ref cr, ref cr.Type));
        At("xen_netif_ctrl_response", "status", Off(ref cr, ref cr.Status));
        At("xen_netif_ctrl_response", "data", Off(ref cr, ref cr.Data));
        var g = default(XenNetifGref);
        Size<XenNetifGref>("xen_netif_gref");
        At("xen_netif_gref", "ref", Off(ref g, ref g.Ref));
        At("xen_netif_gref", "flags", Off(ref g, ref g.Flags));
        At("xen_netif_gref", "status", Off(ref g, ref g.Status));

        void Ring(string tag, RingSlotLayout layout)
        {
            n.Add($"sizeof.{tag}_sring_entry", layout.SlotSize);
            At($"{tag}_sring", "req_prod", SharedRing.ReqProdOffset);
            At($"{tag}_sring", "req_event", SharedRing.ReqEventOffset);
            At($"{tag}_sring", "rsp_prod", SharedRing.RspProdOffset);
            At($"{tag}_sring", "rsp_event", SharedRing.RspEventOffset);
            At($"{tag}_sring", "pvt", SharedRing.PvtOffset);
            At($"{tag}_sring", "ring", SharedRing.HeaderSize);
            for (int pages = 1; pages <= 16; pages *= 2)
                n.Add($"ringsize.{tag}.{pages}", layout.RingSize(pages * SharedRing.PageSize));
        }
        Ring("blkif", BlkifProtocol.Layout(abi));
        Ring("netif_tx", NetifRings.Tx);
        Ring("netif_rx", NetifRings.Rx);
        Ring("xen_netif_ctrl", NetifRings.Ctrl);

        void K(string name, long value) => n.Add($"const.{name}", value);
        K("BLKIF_OP_READ", BlkifOp.Read); K("BLKIF_OP_WRITE", BlkifOp.Write);
        K("BLKIF_OP_WRITE_BARRIER", BlkifOp.WriteBarrier); K("BLKIF_OP_FLUSH_DISKCACHE", BlkifOp.FlushDiskCache);
        K("BLKIF_OP_RESERVED_1", BlkifOp.Reserved1); K("BLKIF_OP_DISCARD", BlkifOp.Discard);
        K("BLKIF_OP_INDIRECT", BlkifOp.Indirect);
        K("BLKIF_RSP_EOPNOTSUPP", BlkifRsp.EOpNotSupp); K("BLKIF_RSP_ERROR", BlkifRsp.Error); K("BLKIF_RSP_OKAY", BlkifRsp.Okay);
        K("BLKIF_MAX_SEGMENTS_PER_REQUEST", BlkifLimits.MaxSegmentsPerRequest);
        K("BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST", BlkifLimits.MaxIndirectPagesPerRequest);
        K("BLKIF_DISCARD_SECURE", BlkifDiscardFlags.Secure);
        K("VDISK_CDROM", VDisk.CdRom); K("VDISK_REMOVABLE", VDisk.Removable); K("VDISK_READONLY", VDisk.ReadOnly);
        K("XEN_NETIF_NR_SLOTS_MIN", Netif.Netif.NrSlotsMin); K("XEN_NETIF_MAX_TX_SIZE", Netif.Netif.MaxTxSize);
        K("NETTXF_csum_blank", NetTxFlags.CsumBlank); K("NETTXF_data_validated", NetTxFlags.DataValidated);
        K("NETTXF_more_data", NetTxFlags.MoreData); K("NETTXF_extra_info", NetTxFlags.ExtraInfo);
        K("NETRXF_data_validated", NetRxFlags.DataValidated); K("NETRXF_csum_blank", NetRxFlags.CsumBlank);
        K("NETRXF_more_data", NetRxFlags.MoreData); K("NETRXF_extra_info", NetRxFlags.ExtraInfo);
        K("NETRXF_gso_prefix", NetRxFlags.GsoPrefix);
        K("XEN_NETIF_EXTRA_TYPE_NONE", NetifExtraType.None); K("XEN_NETIF_EXTRA_TYPE_GSO", NetifExtraType.Gso);
        K("XEN_NETIF_EXTRA_TYPE_MCAST_ADD", NetifExtraType.McastAdd); K("XEN_NETIF_EXTRA_TYPE_MCAST_DEL", NetifExtraType.McastDel);
        K("XEN_NETIF_EXTRA_TYPE_HASH", NetifExtraType.Hash); K("XEN_NETIF_EXTRA_TYPE_MAX", NetifExtraType.Max);
        K("XEN_NETIF_EXTRA_FLAG_MORE", NetifExtraFlags.More);
        K("XEN_NETIF_GSO_TYPE_NONE", NetifGsoType.None); K("XEN_NETIF_GSO_TYPE_TCPV4", NetifGsoType.TcpV4);
        K("XEN_NETIF_GSO_TYPE_TCPV6", NetifGsoType.TcpV6);
        K("NETIF_RSP_DROPPED", NetifRsp.Dropped); K("NETIF_RSP_ERROR", NetifRsp.Error);
        K("NETIF_RSP_OKAY", NetifRsp.Okay); K("NETIF_RSP_NULL", NetifRsp.Null);
        K("XEN_NETIF_CTRL_TYPE_INVALID", NetifCtrlType.Invalid); K("XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS", NetifCtrlType.GetHashFlags);
        K("XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS", NetifCtrlType.SetHashFlags); K("XEN_NETIF_CTRL_TYPE_SET_HASH_KEY", NetifCtrlType.SetHashKey);
        K("XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE", NetifCtrlType.GetHashMappingSize);
        K("XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE", NetifCtrlType.SetHashMappingSize);
        K("XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING", NetifCtrlType.SetHashMapping);
        K("XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM", NetifCtrlType.SetHashAlgorithm);
        K("XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE", NetifCtrlType.GetGrefMappingSize);
        K("XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING", NetifCtrlType.AddGrefMapping);
        K("XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING", NetifCtrlType.DelGrefMapping);
        K("XEN_NETIF_CTRL_STATUS_SUCCESS", NetifCtrlStatus.Success); K("XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED", NetifCtrlStatus.NotSupported);
        K("XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER", NetifCtrlStatus.InvalidParameter);
        K("XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW", NetifCtrlStatus.BufferOverflow);
        K("XEN_NETIF_CTRL_HASH_TYPE_IPV4", NetifCtrlHashType.Ipv4); K("XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP", NetifCtrlHashType.Ipv4Tcp);
        K("XEN_NETIF_CTRL_HASH_TYPE_IPV6", NetifCtrlHashType.Ipv6); K("XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP", NetifCtrlHashType.Ipv6Tcp);
        K("_XEN_NETIF_CTRL_HASH_TYPE_IPV4", NetifCtrlHashType.Ipv4Bit); K("_XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP", NetifCtrlHashType.Ipv4TcpBit);
        K("_XEN_NETIF_CTRL_HASH_TYPE_IPV6", NetifCtrlHashType.Ipv6Bit); K("_XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP", NetifCtrlHashType.Ipv6TcpBit);
        K("XEN_NETIF_CTRL_HASH_ALGORITHM_NONE", NetifCtrlHashAlgorithm.None);
        K("XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ", NetifCtrlHashAlgorithm.Toeplitz);
        K("XEN_NETIF_CTRLF_GREF_readonly", NetifCtrlGrefFlags.ReadOnly);
        return n;
    }
}
