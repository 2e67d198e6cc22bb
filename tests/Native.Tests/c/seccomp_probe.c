/*
 * seccomp_probe FILTER PROBE...: FILTER is a file of struct sock_filter (the backend's program as it
 * built it). Each PROBE runs in its own child, which installs the filter first (except the probes
 * named "unfiltered-..."): a system call number (called with zero arguments), "getpid", "x32"
 * (getpid through the x32 ABI), "int80" (getpid through the i386 ABI), "clone" (a fork through
 * clone), "clone-newuser" (the same with CLONE_NEWUSER), "clone3" (a fork through clone3) or
 * "thread" (pthread_create, which glibc does through clone3, then clone on ENOSYS). One line per probe:
 * "PROBE eperm", "PROBE ret=R errno=E" or "PROBE signal=S".
 *
 * Each child first leaves its session and takes its own UTS and mount namespaces, so a call the
 * filter failed to stop (sethostname, vhangup, mount...) changes nothing outside it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <pthread.h>
#include <signal.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sock_filter program[4096];
static unsigned short length;

static void *thread_body(void *arg) { return arg; }

/* A fork through clone or clone3: the child leaves at once, the parent reaps it. */
static long forked(long r)
{
    if (r == 0)
        _exit(0);
    if (r > 0)
        waitpid((pid_t)r, NULL, __WALL);
    return r;
}

static long call(const char *what)
{
    if (strcmp(what, "clone") == 0)
        return forked(syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L));
    if (strcmp(what, "clone-newuser") == 0)
        return forked(syscall(SYS_clone, (long)(SIGCHLD | CLONE_NEWUSER), 0L, 0L, 0L, 0L));
    if (strcmp(what, "clone3") == 0) {
        struct clone_args args = { .exit_signal = SIGCHLD };
        return forked(syscall(SYS_clone3, &args, sizeof args));
    }
    if (strcmp(what, "thread") == 0) {
        pthread_t t;
        int e = pthread_create(&t, NULL, thread_body, NULL);
        if (e != 0) { errno = e; return -1; }
        pthread_join(t, NULL);
        return 1;
    }
    if (strcmp(what, "getpid") == 0)
        return syscall(SYS_getpid);
    if (strcmp(what, "x32") == 0)
        return syscall(0x40000000L | SYS_getpid);
    if (strcmp(what, "int80") == 0) {
        long r = 20; /* __NR_getpid on i386 */
        __asm__ volatile("int $0x80" : "+a"(r) : : "memory", "r8", "r9", "r10", "r11");
        if (r < 0 && r > -4096) { errno = (int)-r; return -1; }
        return r;
    }
    return syscall(strtol(what, NULL, 10), 0, 0, 0, 0, 0, 0);
}

int main(int argc, char **argv)
{
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 2; }
    length = (unsigned short)fread(program, sizeof program[0], sizeof program / sizeof program[0], f);
    fclose(f);
    for (int i = 2; i < argc; i++) {
        const char *what = argv[i];
        int filtered = strncmp(what, "unfiltered-", 11) != 0;
        if (!filtered)
            what += 11;
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 2; }
        if (pid == 0) {
            setsid();
            if (unshare(CLONE_NEWUTS | CLONE_NEWNS) != 0) { dprintf(1, "%s setup-failed unshare errno=%d\n", argv[i], errno); _exit(3); }
            struct sock_fprog fprog = { length, program };
            if (filtered && (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0)) {
                dprintf(1, "%s setup-failed seccomp errno=%d\n", argv[i], errno);
                _exit(3);
            }
            errno = 0;
            long r = call(what);
            int e = errno;
            if (r == -1 && e == EPERM)
                dprintf(1, "%s eperm\n", argv[i]);
            else
                dprintf(1, "%s ret=%ld errno=%d\n", argv[i], r, e);
            _exit(0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid) { perror("waitpid"); return 2; }
        if (WIFSIGNALED(status))
            printf("%s signal=%d\n", argv[i], WTERMSIG(status));
    }
    return 0;
}
