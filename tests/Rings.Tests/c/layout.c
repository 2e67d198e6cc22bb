/* Prints sizeof/offsetof of the blkif/netif wire structs, ring sizes and constants as
 * "key value" lines, straight from Xen's public headers, for the C# layout test. */
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <xen/io/ring.h>
#include <xen/io/blkif.h>
#include <xen/io/netif.h>

#define SZ(name, type) printf("sizeof.%s %zu\n", name, sizeof(type))
#define OF(name, type, field) printf("offsetof.%s.%s %zu\n", name, #field, offsetof(type, field))
#define K(c) printf("const.%s %lld\n", #c, (long long)(c))
#define RINGS(tag) do { \
        int p; \
        SZ(#tag "_sring_entry", union tag##_sring_entry); \
        OF(#tag "_sring", struct tag##_sring, req_prod); \
        OF(#tag "_sring", struct tag##_sring, req_event); \
        OF(#tag "_sring", struct tag##_sring, rsp_prod); \
        OF(#tag "_sring", struct tag##_sring, rsp_event); \
        OF(#tag "_sring", struct tag##_sring, pvt); \
        OF(#tag "_sring", struct tag##_sring, ring); \
        for (p = 1; p <= 16; p *= 2) \
            printf("ringsize.%s.%d %u\n", #tag, p, (unsigned)__CONST_RING_SIZE(tag, p * 4096)); \
    } while (0)

int main(void)
{
    SZ("blkif_request_segment", struct blkif_request_segment);
    OF("blkif_request_segment", struct blkif_request_segment, gref);
    OF("blkif_request_segment", struct blkif_request_segment, first_sect);
    OF("blkif_request_segment", struct blkif_request_segment, last_sect);

    SZ("blkif_request", struct blkif_request);
    OF("blkif_request", struct blkif_request, operation);
    OF("blkif_request", struct blkif_request, nr_segments);
    OF("blkif_request", struct blkif_request, handle);
    OF("blkif_request", struct blkif_request, id);
    OF("blkif_request", struct blkif_request, sector_number);
    OF("blkif_request", struct blkif_request, seg);

    SZ("blkif_request_discard", struct blkif_request_discard);
    OF("blkif_request_discard", struct blkif_request_discard, operation);
    OF("blkif_request_discard", struct blkif_request_discard, flag);
    OF("blkif_request_discard", struct blkif_request_discard, handle);
    OF("blkif_request_discard", struct blkif_request_discard, id);
    OF("blkif_request_discard", struct blkif_request_discard, sector_number);
    OF("blkif_request_discard", struct blkif_request_discard, nr_sectors);

    SZ("blkif_request_indirect", struct blkif_request_indirect);
    OF("blkif_request_indirect", struct blkif_request_indirect, operation);
    OF("blkif_request_indirect", struct blkif_request_indirect, indirect_op);
    OF("blkif_request_indirect", struct blkif_request_indirect, nr_segments);
    OF("blkif_request_indirect", struct blkif_request_indirect, id);
    OF("blkif_request_indirect", struct blkif_request_indirect, sector_number);
    OF("blkif_request_indirect", struct blkif_request_indirect, handle);
    OF("blkif_request_indirect", struct blkif_request_indirect, indirect_grefs);
#ifdef __i386__
    OF("blkif_request_indirect", struct blkif_request_indirect, pad);
#endif

    SZ("blkif_response", struct blkif_response);
    OF("blkif_response", struct blkif_response, id);
    OF("blkif_response", struct blkif_response, operation);
    OF("blkif_response", struct blkif_response, status);

    SZ("netif_tx_request", struct netif_tx_request);
    OF("netif_tx_request", struct netif_tx_request, gref);
    OF("netif_tx_request", struct netif_tx_request, offset);
    OF("netif_tx_request", struct netif_tx_request, flags);
    OF("netif_tx_request", struct netif_tx_request, id);
    OF("netif_tx_request", struct netif_tx_request, size);
    SZ("netif_tx_response", struct netif_tx_response);
    OF("netif_tx_response", struct netif_tx_response, id);
    OF("netif_tx_response", struct netif_tx_response, status);
    SZ("netif_rx_request", struct netif_rx_request);
    OF("netif_rx_request", struct netif_rx_request, id);
    OF("netif_rx_request", struct netif_rx_request, pad);
    OF("netif_rx_request", struct netif_rx_request, gref);
    SZ("netif_rx_response", struct netif_rx_response);
    OF("netif_rx_response", struct netif_rx_response, id);
    OF("netif_rx_response", struct netif_rx_response, offset);
    OF("netif_rx_response", struct netif_rx_response, flags);
    OF("netif_rx_response", struct netif_rx_response, status);

    SZ("netif_extra_info", struct netif_extra_info);
    OF("netif_extra_info", struct netif_extra_info, type);
    OF("netif_extra_info", struct netif_extra_info, flags);
    OF("netif_extra_info", struct netif_extra_info, u.gso.size);
    OF("netif_extra_info", struct netif_extra_info, u.gso.type);
    OF("netif_extra_info", struct netif_extra_info, u.gso.pad);
    OF("netif_extra_info", struct netif_extra_info, u.gso.features);
    OF("netif_extra_info", struct netif_extra_info, u.mcast.addr);
    OF("netif_extra_info", struct netif_extra_info, u.hash.type);
    OF("netif_extra_info", struct netif_extra_info, u.hash.algorithm);
    OF("netif_extra_info", struct netif_extra_info, u.hash.value);
    OF("netif_extra_info", struct netif_extra_info, u.pad);

    SZ("xen_netif_ctrl_request", struct xen_netif_ctrl_request);
    OF("xen_netif_ctrl_request", struct xen_netif_ctrl_request, id);
    OF("xen_netif_ctrl_request", struct xen_netif_ctrl_request, type);
    OF("xen_netif_ctrl_request", struct xen_netif_ctrl_request, data);
    SZ("xen_netif_ctrl_response", struct xen_netif_ctrl_response);
    OF("xen_netif_ctrl_response", struct xen_netif_ctrl_response, id);
    OF("xen_netif_ctrl_response", struct xen_netif_ctrl_response, type);
    OF("xen_netif_ctrl_response", struct xen_netif_ctrl_response, status);
    OF("xen_netif_ctrl_response", struct xen_netif_ctrl_response, data);
    SZ("xen_netif_gref", struct xen_netif_gref);
    OF("xen_netif_gref", struct xen_netif_gref, ref);
    OF("xen_netif_gref", struct xen_netif_gref, flags);
    OF("xen_netif_gref", struct xen_netif_gref, status);

    RINGS(blkif);
    RINGS(netif_tx);
    RINGS(netif_rx);
    RINGS(xen_netif_ctrl);

    K(BLKIF_OP_READ); K(BLKIF_OP_WRITE); K(BLKIF_OP_WRITE_BARRIER); K(BLKIF_OP_FLUSH_DISKCACHE);
    K(BLKIF_OP_RESERVED_1); K(BLKIF_OP_DISCARD); K(BLKIF_OP_INDIRECT);
    K(BLKIF_RSP_EOPNOTSUPP); K(BLKIF_RSP_ERROR); K(BLKIF_RSP_OKAY);
    K(BLKIF_MAX_SEGMENTS_PER_REQUEST); K(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
    K(BLKIF_DISCARD_SECURE); K(VDISK_CDROM); K(VDISK_REMOVABLE); K(VDISK_READONLY);
    K(XEN_NETIF_NR_SLOTS_MIN); K(XEN_NETIF_MAX_TX_SIZE);
    K(NETTXF_csum_blank); K(NETTXF_data_validated); K(NETTXF_more_data); K(NETTXF_extra_info);
    K(NETRXF_data_validated); K(NETRXF_csum_blank); K(NETRXF_more_data); K(NETRXF_extra_info);
    K(NETRXF_gso_prefix);
    K(XEN_NETIF_EXTRA_TYPE_NONE); K(XEN_NETIF_EXTRA_TYPE_GSO); K(XEN_NETIF_EXTRA_TYPE_MCAST_ADD);
    K(XEN_NETIF_EXTRA_TYPE_MCAST_DEL); K(XEN_NETIF_EXTRA_TYPE_HASH); K(XEN_NETIF_EXTRA_TYPE_MAX);
    K(XEN_NETIF_EXTRA_FLAG_MORE);
    K(XEN_NETIF_GSO_TYPE_NONE); K(XEN_NETIF_GSO_TYPE_TCPV4); K(XEN_NETIF_GSO_TYPE_TCPV6);
    K(NETIF_RSP_DROPPED); K(NETIF_RSP_ERROR); K(NETIF_RSP_OKAY); K(NETIF_RSP_NULL);
    K(XEN_NETIF_CTRL_TYPE_INVALID); K(XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS);
    K(XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS); K(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY);
    K(XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE); K(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE);
    K(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING); K(XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM);
    K(XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE); K(XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING);
    K(XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING);
    K(XEN_NETIF_CTRL_STATUS_SUCCESS); K(XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED);
    K(XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER); K(XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW);
    K(XEN_NETIF_CTRL_HASH_TYPE_IPV4); K(XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP);
    K(XEN_NETIF_CTRL_HASH_TYPE_IPV6); K(XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP);
    K(_XEN_NETIF_CTRL_HASH_TYPE_IPV4); K(_XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP);
    K(_XEN_NETIF_CTRL_HASH_TYPE_IPV6); K(_XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP);
    K(XEN_NETIF_CTRL_HASH_ALGORITHM_NONE); K(XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ);
    K(XEN_NETIF_CTRLF_GREF_readonly);
    return 0;
}
