/* The ring.h macros as functions over a caller's shared ring and private indexes, so the C#
 * rings' decisions can be compared with Xen's own on identical states. Built as a shared library. */
#include "barriers.h"
#include <stdint.h>
#include <string.h>
#include <xen/io/ring.h>
#include <xen/io/blkif.h>

static blkif_back_ring_t back(void *s, unsigned bytes, RING_IDX req_cons, RING_IDX rsp_prod_pvt)
{
    blkif_back_ring_t br;
    BACK_RING_ATTACH(&br, (blkif_sring_t *)s, 0, bytes);
    br.req_cons = req_cons;
    br.rsp_prod_pvt = rsp_prod_pvt;
    return br;
}

static blkif_front_ring_t front(void *s, unsigned bytes, RING_IDX req_prod_pvt, RING_IDX rsp_cons)
{
    blkif_front_ring_t fr;
    FRONT_RING_ATTACH(&fr, (blkif_sring_t *)s, 0, bytes);
    fr.req_prod_pvt = req_prod_pvt;
    fr.rsp_cons = rsp_cons;
    return fr;
}

unsigned oracle_ring_size(void *s, unsigned bytes)
{
    blkif_back_ring_t br = back(s, bytes, 0, 0);
    return RING_SIZE(&br);
}

unsigned oracle_back_unconsumed(void *s, unsigned bytes, unsigned req_cons, unsigned rsp_prod_pvt)
{
    blkif_back_ring_t br = back(s, bytes, req_cons, rsp_prod_pvt);
    return XEN_RING_NR_UNCONSUMED_REQUESTS(&br);
}

int oracle_back_prod_overflow(void *s, unsigned bytes, unsigned req_cons, unsigned rsp_prod_pvt)
{
    blkif_back_ring_t br = back(s, bytes, req_cons, rsp_prod_pvt);
    return RING_REQUEST_PROD_OVERFLOW(&br, br.sring->req_prod);
}

int oracle_back_cons_overflow(void *s, unsigned bytes, unsigned req_cons, unsigned rsp_prod_pvt)
{
    blkif_back_ring_t br = back(s, bytes, req_cons, rsp_prod_pvt);
    return RING_REQUEST_CONS_OVERFLOW(&br, req_cons);
}

int oracle_back_push(void *s, unsigned bytes, unsigned req_cons, unsigned rsp_prod_pvt)
{
    blkif_back_ring_t br = back(s, bytes, req_cons, rsp_prod_pvt);
    int notify;
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&br, notify);
    return notify;
}

int oracle_back_final_check(void *s, unsigned bytes, unsigned req_cons, unsigned rsp_prod_pvt)
{
    blkif_back_ring_t br = back(s, bytes, req_cons, rsp_prod_pvt);
    int work;
    RING_FINAL_CHECK_FOR_REQUESTS(&br, work);
    return work != 0;
}

unsigned oracle_front_free(void *s, unsigned bytes, unsigned req_prod_pvt, unsigned rsp_cons)
{
    blkif_front_ring_t fr = front(s, bytes, req_prod_pvt, rsp_cons);
    return RING_FREE_REQUESTS(&fr);
}

int oracle_front_rsp_overflow(void *s, unsigned bytes, unsigned req_prod_pvt, unsigned rsp_cons)
{
    blkif_front_ring_t fr = front(s, bytes, req_prod_pvt, rsp_cons);
    return RING_RESPONSE_PROD_OVERFLOW(&fr, fr.sring->rsp_prod);
}

unsigned oracle_front_unconsumed(void *s, unsigned bytes, unsigned req_prod_pvt, unsigned rsp_cons)
{
    blkif_front_ring_t fr = front(s, bytes, req_prod_pvt, rsp_cons);
    return XEN_RING_NR_UNCONSUMED_RESPONSES(&fr);
}

int oracle_front_push(void *s, unsigned bytes, unsigned req_prod_pvt, unsigned rsp_cons)
{
    blkif_front_ring_t fr = front(s, bytes, req_prod_pvt, rsp_cons);
    int notify;
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&fr, notify);
    return notify;
}

int oracle_front_final_check(void *s, unsigned bytes, unsigned req_prod_pvt, unsigned rsp_cons)
{
    blkif_front_ring_t fr = front(s, bytes, req_prod_pvt, rsp_cons);
    int work;
    RING_FINAL_CHECK_FOR_RESPONSES(&fr, work);
    return work != 0;
}
