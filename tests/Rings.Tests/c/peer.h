/* Shared plumbing of the cross-process ring peers: the ring lives in a file mapped MAP_SHARED by
 * both processes; an "event channel" kick is one byte on a pipe (stdout = kick the C# side,
 * stdin = kicked by it). A peer sleeps on stdin only when the ring macros say there is no work,
 * so a wrong notify decision on either side becomes a timeout. */
#include "barriers.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define KICK_TIMEOUT_MS 20000

static void die(const char *what)
{
    fprintf(stderr, "peer: %s (errno %d)\n", what, errno);
    exit(2);
}

static void *map_ring(const char *path, size_t bytes)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        die("open ring file");
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        die("mmap ring file");
    close(fd);
    return p;
}

static void kick(void)
{
    char k = 'k';
    if (write(1, &k, 1) != 1)
        die("kick");
}

/* Sleeps until kicked; every queued kick is drained, as a pending event channel is one bit. */
static void wait_kick(void)
{
    struct pollfd pfd = { .fd = 0, .events = POLLIN };
    int n = poll(&pfd, 1, KICK_TIMEOUT_MS);
    if (n == 0) {
        fprintf(stderr, "peer: no kick within %d ms: a notification was lost\n", KICK_TIMEOUT_MS);
        exit(3);
    }
    if (n < 0)
        die("poll");
    char buf[256];
    ssize_t r = read(0, buf, sizeof buf);
    if (r <= 0) {
        fprintf(stderr, "peer: kick pipe closed\n");
        exit(4);
    }
}

static uint64_t rng_state;

static uint32_t rnd(uint32_t bound)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % bound);
}

/* What each side derives from a request's sequence number, so both can check the other. */
static uint64_t sector_of(uint64_t seq) { return seq * 2654435761ULL + 17; }
static int16_t status_of(uint64_t seq) { return (int16_t)(seq % 7) - 3; }
static uint8_t op_of(uint64_t seq) { return (uint8_t)(seq % 2); }
static uint8_t nseg_of(uint64_t seq) { return (uint8_t)(seq % 12); }
