/* A real blkif FRONT_RING (Xen's macros) driving the C# BackRing across processes.
 * usage: front <ring-file> <pages> <count> <seed> <start-index> */
#include "peer.h"
#include <xen/io/ring.h>
#include <xen/io/blkif.h>

int main(int argc, char **argv)
{
    if (argc != 6)
        die("usage");
    size_t bytes = (size_t)atoi(argv[2]) * 4096;
    uint64_t count = strtoull(argv[3], NULL, 10);
    rng_state = strtoull(argv[4], NULL, 10) | 1;
    RING_IDX start = (RING_IDX)strtoul(argv[5], NULL, 10);
    blkif_sring_t *s = map_ring(argv[1], bytes);
    blkif_front_ring_t fr;

    SHARED_RING_INIT(s);
    s->req_prod = s->rsp_prod = start;
    s->req_event = s->rsp_event = start + 1;
    FRONT_RING_ATTACH(&fr, s, start, bytes);
    kick(); /* ready: the backend may attach now */

    uint64_t sent = 0, received = 0;
    while (received < count) {
        if (sent < count && !RING_FULL(&fr)) {
            uint32_t n = 1 + rnd(RING_SIZE(&fr));
            if (n > RING_FREE_REQUESTS(&fr))
                n = RING_FREE_REQUESTS(&fr);
            if (n > count - sent)
                n = (uint32_t)(count - sent);
            for (uint32_t i = 0; i < n; i++, sent++) {
                blkif_request_t *req = RING_GET_REQUEST(&fr, fr.req_prod_pvt);
                memset(req, 0, sizeof *req);
                req->operation = op_of(sent);
                req->nr_segments = nseg_of(sent);
                req->handle = (uint16_t)sent;
                req->id = sent;
                req->sector_number = sector_of(sent);
                for (int k = 0; k < req->nr_segments; k++) {
                    req->seg[k].gref = (grant_ref_t)(sent + k);
                    req->seg[k].first_sect = (uint8_t)k % 8;
                    req->seg[k].last_sect = 7;
                }
                fr.req_prod_pvt++;
            }
            int notify;
            RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&fr, notify);
            if (notify)
                kick();
        }

        uint32_t budget = 1 + rnd(RING_SIZE(&fr));
        while (budget-- && RING_HAS_UNCONSUMED_RESPONSES(&fr)) {
            xen_rmb();
            blkif_response_t rsp;
            RING_COPY_RESPONSE(&fr, fr.rsp_cons, &rsp);
            fr.rsp_cons++;
            if (rsp.id != received || rsp.status != status_of(received) || rsp.operation != op_of(received)) {
                fprintf(stderr, "front: response %llu: id %llu op %u status %d\n",
                        (unsigned long long)received, (unsigned long long)rsp.id, rsp.operation, rsp.status);
                return 5;
            }
            received++;
        }
        if (received == count)
            break;
        if (sent < count && !RING_FULL(&fr))
            continue;
        int more;
        RING_FINAL_CHECK_FOR_RESPONSES(&fr, more);
        if (!more)
            wait_kick();
    }
    fprintf(stderr, "front: %llu requests answered in order\n", (unsigned long long)received);
    return 0;
}
