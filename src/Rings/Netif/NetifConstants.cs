namespace XenBackends.Rings.Netif;

/// <summary>Limits of io/netif.h.</summary>
public static class Netif
{
    /// <summary><c>XEN_NETIF_NR_SLOTS_MIN</c>: slots per packet a backend must accept.</summary>
    public const int NrSlotsMin = 18;
    /// <summary><c>XEN_NETIF_MAX_TX_SIZE</c>: the u16 size of a tx packet's first slot.</summary>
    public const int MaxTxSize = 0xFFFF;
}

/// <summary><c>NETTXF_*</c>: <c>netif_tx_request.flags</c>.</summary>
public static class NetTxFlags
{
    /// <summary><c>NETTXF_csum_blank</c>: the checksum field holds only the pseudo-header sum.</summary>
    public const ushort CsumBlank = 1 << 0;
    /// <summary><c>NETTXF_data_validated</c></summary>
    public const ushort DataValidated = 1 << 1;
    /// <summary><c>NETTXF_more_data</c>: the packet continues in the next request.</summary>
    public const ushort MoreData = 1 << 2;
    /// <summary><c>NETTXF_extra_info</c>: a netif_extra_info follows in the next slot.</summary>
    public const ushort ExtraInfo = 1 << 3;
}

/// <summary><c>NETRXF_*</c>: <c>netif_rx_response.flags</c> (bits 0 and 1 are swapped relative to TX).</summary>
public static class NetRxFlags
{
    /// <summary><c>NETRXF_data_validated</c></summary>
    public const ushort DataValidated = 1 << 0;
    /// <summary><c>NETRXF_csum_blank</c></summary>
    public const ushort CsumBlank = 1 << 1;
    /// <summary><c>NETRXF_more_data</c></summary>
    public const ushort MoreData = 1 << 2;
    /// <summary><c>NETRXF_extra_info</c></summary>
    public const ushort ExtraInfo = 1 << 3;
    /// <summary><c>NETRXF_gso_prefix</c> (deprecated).</summary>
    public const ushort GsoPrefix = 1 << 4;
}

/// <summary><c>XEN_NETIF_EXTRA_TYPE_*</c>: <c>netif_extra_info.type</c>.</summary>
public static class NetifExtraType
{
    /// <summary><c>XEN_NETIF_EXTRA_TYPE_NONE</c> (never valid).</summary>
    public const byte None = 0;
    /// <summary><c>XEN_NETIF_EXTRA_TYPE_GSO</c></summary>
    public const byte Gso = 1;
    /// <summary><c>XEN_NETIF_EXTRA_TYPE_MCAST_ADD</c></summary>
    public const byte McastAdd = 2;
    /// <summary><c>XEN_NETIF_EXTRA_TYPE_MCAST_DEL</c></summary>
    public const byte McastDel = 3;
    /// <summary><c>XEN_NETIF_EXTRA_TYPE_HASH</c></summary>
    public const byte Hash = 4;
    /// <summary><c>XEN_NETIF_EXTRA_TYPE_MAX</c>: types are below this.</summary>
    public const byte Max = 5;
}

/// <summary><c>XEN_NETIF_EXTRA_FLAG_*</c>: <c>netif_extra_info.flags</c>.</summary>
public static class NetifExtraFlags
{
    /// <summary><c>XEN_NETIF_EXTRA_FLAG_MORE</c>: another extra follows.</summary>
    public const byte More = 1 << 0;
}

/// <summary><c>XEN_NETIF_GSO_TYPE_*</c>.</summary>
public static class NetifGsoType
{
    /// <summary><c>XEN_NETIF_GSO_TYPE_NONE</c></summary>
    public const byte None = 0;
    /// <summary><c>XEN_NETIF_GSO_TYPE_TCPV4</c></summary>
    public const byte TcpV4 = 1;
    /// <summary><c>XEN_NETIF_GSO_TYPE_TCPV6</c></summary>
    public const byte TcpV6 = 2;
}

/// <summary><c>NETIF_RSP_*</c>: tx/rx response status.</summary>
public static class NetifRsp
{
    /// <summary><c>NETIF_RSP_DROPPED</c></summary>
    public const short Dropped = -2;
    /// <summary><c>NETIF_RSP_ERROR</c></summary>
    public const short Error = -1;
    /// <summary><c>NETIF_RSP_OKAY</c></summary>
    public const short Okay = 0;
    /// <summary><c>NETIF_RSP_NULL</c>: the response to an extra-info slot.</summary>
    public const short Null = 1;
}

/// <summary><c>XEN_NETIF_CTRL_TYPE_*</c>: control ring request types.</summary>
public static class NetifCtrlType
{
    /// <summary><c>XEN_NETIF_CTRL_TYPE_INVALID</c></summary>
    public const ushort Invalid = 0;
    /// <summary><c>XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS</c></summary>
    public const ushort GetHashFlags = 1;
    /// <summary><c>XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS</c></summary>
    public const ushort SetHashFlags = 2;
    /// <summary><c>XEN_NETIF_CTRL_TYPE_SET_HASH_KEY</c></summary>
    public const ushort SetHashKey = 3;
    /// <summary><c>XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE</c></summary>
    public const ushort GetHashMappingSize = 4;
    /// <summary><c>XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE</c></summary>
    public const ushort SetHashMappingSize = 5;
    /// <summary><c>XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING</c></summary>
    public const ushort SetHashMapping = 6;
    /// <summary><c>XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM</c></summary>
    public const ushort SetHashAlgorithm = 7;
    /// <summary><c>XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE</c></summary>
    public const ushort GetGrefMappingSize = 8;
    /// <summary><c>XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING</c></summary>
    public const ushort AddGrefMapping = 9;
    /// <summary><c>XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING</c></summary>
    public const ushort DelGrefMapping = 10;
}

/// <summary><c>XEN_NETIF_CTRL_STATUS_*</c>: control ring response status.</summary>
public static class NetifCtrlStatus
{
    /// <summary><c>XEN_NETIF_CTRL_STATUS_SUCCESS</c></summary>
    public const uint Success = 0;
    /// <summary><c>XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED</c></summary>
    public const uint NotSupported = 1;
    /// <summary><c>XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER</c></summary>
    public const uint InvalidParameter = 2;
    /// <summary><c>XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW</c></summary>
    public const uint BufferOverflow = 3;
}

/// <summary><c>XEN_NETIF_CTRL_HASH_TYPE_*</c> (bit masks; the <c>_XEN_...</c> bit numbers are the extra-info hash type).</summary>
public static class NetifCtrlHashType
{
    /// <summary><c>_XEN_NETIF_CTRL_HASH_TYPE_IPV4</c></summary>
    public const int Ipv4Bit = 0;
    /// <summary><c>_XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP</c></summary>
    public const int Ipv4TcpBit = 1;
    /// <summary><c>_XEN_NETIF_CTRL_HASH_TYPE_IPV6</c></summary>
    public const int Ipv6Bit = 2;
    /// <summary><c>_XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP</c></summary>
    public const int Ipv6TcpBit = 3;
    /// <summary><c>XEN_NETIF_CTRL_HASH_TYPE_IPV4</c></summary>
    public const uint Ipv4 = 1u << Ipv4Bit;
    /// <summary><c>XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP</c></summary>
    public const uint Ipv4Tcp = 1u << Ipv4TcpBit;
    /// <summary><c>XEN_NETIF_CTRL_HASH_TYPE_IPV6</c></summary>
    public const uint Ipv6 = 1u << Ipv6Bit;
    /// <summary><c>XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP</c></summary>
    public const uint Ipv6Tcp = 1u << Ipv6TcpBit;
}

/// <summary><c>XEN_NETIF_CTRL_HASH_ALGORITHM_*</c>.</summary>
public static class NetifCtrlHashAlgorithm
{
    /// <summary><c>XEN_NETIF_CTRL_HASH_ALGORITHM_NONE</c></summary>
    public const byte None = 0;
    /// <summary><c>XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ</c></summary>
    public const byte Toeplitz = 1;
}

/// <summary><c>XEN_NETIF_CTRLF_GREF_*</c>: <c>xen_netif_gref.flags</c>.</summary>
public static class NetifCtrlGrefFlags
{
    /// <summary><c>XEN_NETIF_CTRLF_GREF_readonly</c></summary>
    public const ushort ReadOnly = 1 << 0;
}
