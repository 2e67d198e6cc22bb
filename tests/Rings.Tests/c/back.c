/* A real blkif BACK_RING (Xen's macros) serving the C# FrontRing across processes.
 * usage: back <ring-file> <pages> <count> <seed>; attaches at the shared rsp_prod. */
#include "peer.h"
#include <xen/io/ring.h>
#include <xen/io/blkif.h>

int main(int argc, char **argv)
{
    if (argc != 5)
        die("usage");
    size_t bytes = (size_t)atoi(argv[2]) * 4096;
    uint64_t count = strtoull(argv[3], NULL, 10);
    rng_state = strtoull(argv[4], NULL, 10) | 1;
    blkif_sring_t *s = map_ring(argv[1], bytes);
    blkif_back_ring_t br;
    BACK_RING_ATTACH(&br, s, s->rsp_prod, bytes);

    uint64_t answered = 0;
    while (answered < count) {
        RING_IDX rp = s->req_prod;
        xen_rmb();
        if (RING_REQUEST_PROD_OVERFLOW(&br, rp)) {
            fprintf(stderr, "back: req_prod overflow\n");
            return 5;
        }
        uint32_t budget = 1 + rnd(RING_SIZE(&br));
        while (budget-- && br.req_cons != rp && !RING_REQUEST_CONS_OVERFLOW(&br, br.req_cons)) {
            blkif_request_t req;
            RING_COPY_REQUEST(&br, br.req_cons, &req);
            br.req_cons++;
            uint64_t seq = answered;
            if (req.id != seq || req.operation != op_of(seq) || req.nr_segments != nseg_of(seq)
                || req.sector_number != sector_of(seq) || req.handle != (uint16_t)seq) {
                fprintf(stderr, "back: request %llu: id %llu op %u nseg %u\n", (unsigned long long)seq,
                        (unsigned long long)req.id, req.operation, req.nr_segments);
                return 5;
            }
            blkif_response_t *rsp = RING_GET_RESPONSE(&br, br.rsp_prod_pvt);
            memset(rsp, 0, sizeof *rsp);
            rsp->id = req.id;
            rsp->operation = req.operation;
            rsp->status = status_of(seq);
            br.rsp_prod_pvt++;
            answered++;
            if (rnd(8) == 0) {
                int notify;
                RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&br, notify);
                if (notify)
                    kick();
            }
        }
        int notify;
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&br, notify);
        if (notify)
            kick();
        if (answered == count)
            break;
        int more;
        RING_FINAL_CHECK_FOR_REQUESTS(&br, more);
        if (!more)
            wait_kick();
    }
    fprintf(stderr, "back: %llu requests answered\n", (unsigned long long)answered);
    return 0;
}
