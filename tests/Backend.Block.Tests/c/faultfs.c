/*
 * faultfs: a FUSE filesystem holding one file, "disk.img", passed through to a backing image, that
 * fails chosen byte ranges with EIO on command. No device-mapper here (dm-error, dm-flakey), so this
 * is how the block tests get a real file whose reads or writes fail where they choose, through the
 * kernel's ordinary VFS path (the backend cannot tell it from a failing disk).
 *
 *   faultfs BACKING MOUNTPOINT [fuse options]
 *
 * Commands, one per line on stdin, each answered "ok" (or "error: ...") on stdout once in effect:
 *   fail read|write|both OFFSET LENGTH   add a range (bytes) that fails with EIO
 *   clear                                drop every range
 *   vanish                               from now on every operation fails with EIO (a dead disk)
 *   count                                prints "reads N writes N failed N" (what reached us)
 * The file is opened with direct_io, so no page cache sits between the backend and these ranges:
 * every read and write the backend makes arrives here.
 */
#define FUSE_USE_VERSION 35
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_RANGES 64
#define FILE_NAME "disk.img"
#define FILE_PATH "/" FILE_NAME

enum { FAIL_READ = 1, FAIL_WRITE = 2 };

struct range { off_t start; off_t end; int kinds; };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct range ranges[MAX_RANGES];
static int nranges;
static int vanished;
static unsigned long reads, writes, failed;
static int backing_fd = -1;

/* True when [off, off+len) touches a range failing this kind of access (or the disk vanished). */
static int should_fail(off_t off, size_t len, int kind)
{
    int fail = 0;
    pthread_mutex_lock(&lock);
    if (kind == FAIL_READ) reads++;
    if (kind == FAIL_WRITE) writes++;
    fail = vanished;
    for (int i = 0; !fail && i < nranges; i++)
        if ((ranges[i].kinds & kind) && off < ranges[i].end && (off_t)(off + len) > ranges[i].start)
            fail = 1;
    if (fail) failed++;
    pthread_mutex_unlock(&lock);
    return fail;
}

static int gone(void)
{
    pthread_mutex_lock(&lock);
    int v = vanished;
    if (v) failed++;
    pthread_mutex_unlock(&lock);
    return v;
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    (void)fi;
    memset(st, 0, sizeof *st);
    if (strcmp(path, "/") == 0) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
        return 0;
    }
    if (strcmp(path, FILE_PATH) != 0)
        return -ENOENT;
    if (gone())
        return -EIO;
    struct stat b;
    if (fstat(backing_fd, &b) != 0)
        return -errno;
    st->st_mode = S_IFREG | 0644;
    st->st_nlink = 1;
    st->st_size = b.st_size;
    st->st_blocks = b.st_blocks;
    st->st_blksize = 4096;
    st->st_mtim = b.st_mtim;
    st->st_ctim = b.st_ctim;
    return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    (void)off; (void)fi; (void)flags;
    if (strcmp(path, "/") != 0)
        return -ENOENT;
    fill(buf, ".", NULL, 0, 0);
    fill(buf, "..", NULL, 0, 0);
    fill(buf, FILE_NAME, NULL, 0, 0);
    return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
    if (strcmp(path, FILE_PATH) != 0)
        return -ENOENT;
    if (gone())
        return -EIO;
    fi->direct_io = 1;
    return 0;
}

static int fs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)path; (void)fi;
    if (should_fail(off, size, FAIL_READ))
        return -EIO;
    ssize_t n = pread(backing_fd, buf, size, off);
    return n < 0 ? -errno : (int)n;
}

static int fs_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)path; (void)fi;
    if (should_fail(off, size, FAIL_WRITE))
        return -EIO;
    ssize_t n = pwrite(backing_fd, buf, size, off);
    return n < 0 ? -errno : (int)n;
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path; (void)fi;
    if (gone())
        return -EIO;
    return (datasync ? fdatasync(backing_fd) : fsync(backing_fd)) != 0 ? -errno : 0;
}

static int fs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
    (void)path; (void)fi;
    if (should_fail(off, (size_t)len, FAIL_WRITE))
        return -EIO;
    return fallocate(backing_fd, mode, off, len) != 0 ? -errno : 0;
}

static int fs_flush(const char *path, struct fuse_file_info *fi)
{
    (void)path; (void)fi;
    return 0;
}

static const struct fuse_operations ops = {
    .getattr = fs_getattr,
    .readdir = fs_readdir,
    .open = fs_open,
    .read = fs_read,
    .write = fs_write,
    .fsync = fs_fsync,
    .fallocate = fs_fallocate,
    .flush = fs_flush,
};

static void *commands(void *arg)
{
    (void)arg;
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        char kind[16];
        long long off, len;
        pthread_mutex_lock(&lock);
        if (sscanf(line, "fail %15s %lld %lld", kind, &off, &len) == 3) {
            int k = strcmp(kind, "read") == 0 ? FAIL_READ : strcmp(kind, "write") == 0 ? FAIL_WRITE
                  : strcmp(kind, "both") == 0 ? FAIL_READ | FAIL_WRITE : 0;
            if (k == 0 || off < 0 || len <= 0 || nranges == MAX_RANGES) {
                printf("error: bad range\n");
            } else {
                ranges[nranges++] = (struct range){ off, off + len, k };
                printf("ok\n");
            }
        } else if (strncmp(line, "clear", 5) == 0) {
            nranges = 0;
            printf("ok\n");
        } else if (strncmp(line, "vanish", 6) == 0) {
            vanished = 1;
            printf("ok\n");
        } else if (strncmp(line, "count", 5) == 0) {
            printf("reads %lu writes %lu failed %lu\n", reads, writes, failed);
        } else {
            printf("error: unknown command\n");
        }
        fflush(stdout);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: faultfs BACKING MOUNTPOINT [fuse options]\n");
        return 2;
    }
    backing_fd = open(argv[1], O_RDWR);
    if (backing_fd < 0) {
        perror(argv[1]);
        return 1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, commands, NULL) != 0)
        return 1;
    /* fuse_main sees: argv[0] MOUNTPOINT -f [options]; foreground, so the test owns the process. */
    char **fargs = calloc((size_t)argc + 1, sizeof *fargs);
    int n = 0;
    fargs[n++] = argv[0];
    fargs[n++] = argv[2];
    fargs[n++] = "-f";
    for (int i = 3; i < argc; i++)
        fargs[n++] = argv[i];
    return fuse_main(n, fargs, &ops, NULL);
}
