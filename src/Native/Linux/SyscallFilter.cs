using System.Runtime.InteropServices;

namespace XenBackends.Native.Linux;

/// <summary>
/// A seccomp-bpf deny list for a process that serves an untrusted guest: the system calls a backend
/// never makes and someone who took it over would reach for first (run a program, trace or read
/// another process, change mounts or namespaces, load kernel code, set the clock, create keys). They
/// fail with EPERM; a system call made through another ABI (i386's int 0x80, whose numbers differ,
/// or x32's) ends the process, since only an attacker's code would make one. clone may not create
/// namespaces (its flags are a register the filter can read); clone3, whose flags sit in memory the
/// filter cannot read, answers ENOSYS, on which glibc's pthread_create falls back to clone.
/// A deny list, not an allow list: the .NET runtime's own needs (threads, memory, signals,
/// io_uring) change between versions, and a worker that dies on an unforeseen call would be a
/// guest-triggerable outage. Every allowed call but clone has one answer whatever its arguments,
/// which kernels since 5.11 cache per call number, so the hot path's calls do not run the program;
/// they still take seccomp's slower entry path, ~30 ns a call natively (an allow-all filter costs the
/// same) and far more in an emulated PV dom0 (src/Service/README.md, `syscallFilter`).
/// x86_64 only; the numbers are proven against the system's headers by the tests.
/// </summary>
public static unsafe partial class SyscallFilter
{
    /// <summary>The denied calls, x86_64 numbers (asm/unistd_64.h).</summary>
    public static IReadOnlyList<(string Name, int Number)> Denied { get; } =
    [
        // Running something else; reading or steering other processes.
        ("execve", 59), ("execveat", 322), ("ptrace", 101), ("process_vm_readv", 310), ("process_vm_writev", 311),
        ("process_madvise", 440), ("pidfd_getfd", 438), ("kcmp", 312),
        // Mounts, roots and namespaces.
        ("mount", 165), ("umount2", 166), ("pivot_root", 155), ("chroot", 161), ("open_tree", 428), ("move_mount", 429),
        ("fsopen", 430), ("fsconfig", 431), ("fsmount", 432), ("fspick", 433), ("mount_setattr", 442),
        ("unshare", 272), ("setns", 308),
        // Kernel code, the machine, and kernel-side programs.
        ("init_module", 175), ("finit_module", 313), ("delete_module", 176), ("kexec_load", 246), ("kexec_file_load", 320),
        ("reboot", 169), ("bpf", 321), ("perf_event_open", 298), ("userfaultfd", 323), ("iopl", 172), ("ioperm", 173),
        ("swapon", 167), ("swapoff", 168), ("acct", 163), ("quotactl", 179), ("syslog", 103), ("vhangup", 153),
        ("settimeofday", 164), ("clock_settime", 227), ("clock_adjtime", 305), ("adjtimex", 159),
        ("sethostname", 170), ("setdomainname", 171), ("uselib", 134), ("lookup_dcookie", 212),
        // Keys, file handles that bypass paths, whole-filesystem watches.
        ("add_key", 248), ("request_key", 249), ("keyctl", 250),
        ("open_by_handle_at", 304), ("name_to_handle_at", 303), ("fanotify_init", 300),
    ];

    /// <summary>clone: allowed without namespace flags (the runtime's threads are created through it).</summary>
    public const int Clone = 56;

    /// <summary>clone3: answered ENOSYS.</summary>
    public const int Clone3 = 435;

    /// <summary>The namespace flags clone may not carry (CLONE_NEWNS, _NEWCGROUP, _NEWUTS, _NEWIPC, _NEWUSER, _NEWPID, _NEWNET).</summary>
    public const uint CloneNamespaceFlags = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;

    /// <summary>Whether <see cref="Install"/> knows this process's system call ABI.</summary>
    public static bool IsSupported => RuntimeInformation.ProcessArchitecture == Architecture.X64;

    // linux/audit.h, linux/seccomp.h, linux/filter.h.
    private const uint AUDIT_ARCH_X86_64 = 0xC000003E;
    private const uint X32_SYSCALL_BIT = 0x40000000;
    private const uint SECCOMP_RET_KILL_PROCESS = 0x80000000;
    private const uint SECCOMP_RET_ERRNO = 0x00050000;
    private const uint SECCOMP_RET_ALLOW = 0x7FFF0000;
    private const uint EPERM = 1;
    private const uint ENOSYS = 38;
    private const ushort BPF_LD_W_ABS = 0x20;
    private const ushort BPF_JEQ_K = 0x15;
    private const ushort BPF_JGE_K = 0x35;
    private const ushort BPF_JSET_K = 0x45;
    private const ushort BPF_RET_K = 0x06;
    private const uint OffsetNr = 0;    // struct seccomp_data.nr
    private const uint OffsetArch = 4;  // struct seccomp_data.arch
    private const uint OffsetArg0 = 16; // struct seccomp_data.args[0], its low half (little-endian)
    private const int SYS_seccomp = 317;
    private const uint SECCOMP_SET_MODE_FILTER = 1;
    private const uint SECCOMP_FILTER_FLAG_TSYNC = 1;

    [StructLayout(LayoutKind.Sequential)]
    private struct SockFprog
    {
        public ushort Length;
        public SockFilter* Filter;
    }

    /// <summary>One classic BPF instruction (struct sock_filter).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public readonly record struct SockFilter(ushort Code, byte JumpTrue, byte JumpFalse, uint K);

    /// <summary>
    /// The filter program: wrong ABI kills; x32 numbers, <see cref="Denied"/> and clone with namespace
    /// flags get EPERM; clone3 gets ENOSYS; the rest is allowed. Classic BPF jumps forward only, so
    /// the returns come last and every match jumps down to its return.
    /// </summary>
    public static SockFilter[] BuildProgram()
    {
        int n = Denied.Count;
        int allow = 9 + n, eperm = allow + 1, enosys = eperm + 1;
        // Instruction i jumps to i + 1 + offset.
        var program = new List<SockFilter>(enosys + 1)
        {
            new(BPF_LD_W_ABS, 0, 0, OffsetArch),                          // 0
            new(BPF_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),                      // 1
            new(BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),               // 2
            new(BPF_LD_W_ABS, 0, 0, OffsetNr),                            // 3
            new(BPF_JGE_K, Jump(eperm - 5), 0, X32_SYSCALL_BIT),          // 4
            new(BPF_JEQ_K, Jump(enosys - 6), 0, (uint)Clone3),            // 5
            new(BPF_JEQ_K, 0, 2, (uint)Clone),                            // 6: not clone -> 9
            new(BPF_LD_W_ABS, 0, 0, OffsetArg0),                          // 7
            new(BPF_JSET_K, Jump(eperm - 9), Jump(allow - 9), CloneNamespaceFlags), // 8
        };
        foreach (var (_, number) in Denied)
            program.Add(new(BPF_JEQ_K, Jump(eperm - program.Count - 1), 0, (uint)number));
        program.Add(new(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW));
        program.Add(new(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM));
        program.Add(new(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | ENOSYS));
        return [.. program];
    }

    private static byte Jump(int distance) =>
        distance is >= 0 and <= byte.MaxValue ? (byte)distance : throw new InvalidOperationException("deny list too long for one jump");

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial nint seccomp_syscall(nint number, nuint operation, nuint flags, SockFprog* program);

    /// <summary>
    /// Installs the filter on every thread of the process (TSYNC: the runtime's threads exist already).
    /// Needs no_new_privs (<see cref="ProcessPrivileges.Restrict"/>) or CAP_SYS_ADMIN. It cannot be removed.
    /// </summary>
    public static void Install()
    {
        if (!IsSupported)
            throw new PlatformNotSupportedException($"no system call filter for {RuntimeInformation.ProcessArchitecture}");
        SockFilter[] program = BuildProgram();
        fixed (SockFilter* filter = program)
        {
            var fprog = new SockFprog { Length = (ushort)program.Length, Filter = filter };
            nint r = seccomp_syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog);
            if (r < 0)
                throw LinuxCallException.FromErrno("seccomp(SECCOMP_SET_MODE_FILTER)");
            if (r > 0)
                throw new LinuxCallException($"seccomp(SECCOMP_SET_MODE_FILTER): thread {r} could not take the filter", 0);
        }
    }
}
