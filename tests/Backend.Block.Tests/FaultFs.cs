using System.Diagnostics;
using XenBackends.TestSupport;

namespace XenBackends.Backend.Block.Tests;

/// <summary>
/// c/faultfs.c built with gcc against Debian's libfuse3-dev and mounted for one test: a FUSE
/// filesystem whose one file, disk.img, passes through to a backing image and fails the byte ranges
/// a test names with EIO (this kernel has no device-mapper, so no dm-error or dm-flakey). Without
/// gcc, libfuse3-dev or /dev/fuse the test fails; it never skips.
/// </summary>
internal sealed class FaultFs : IDisposable
{
    private static readonly Lazy<string> Binary = new(Build);
    private readonly Process _daemon;

    private FaultFs(string mount, string backing, Process daemon)
    {
        Mount = mount;
        Backing = backing;
        _daemon = daemon;
    }

    public string Mount { get; }
    public string Backing { get; }
    public string ImagePath => Path.Combine(Mount, "disk.img");

    public static FaultFs Start(string backing)
    {
        if (!File.Exists("/dev/fuse"))
            Assert.Fail("/dev/fuse is missing: the EIO tests need FUSE");
        string mount = Directory.CreateTempSubdirectory("xb-faultfs-").FullName;
        var psi = new ProcessStartInfo(Binary.Value)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.ArgumentList.Add(backing);
        psi.ArgumentList.Add(mount);
        var daemon = Process.Start(psi)!;
        var fs = new FaultFs(mount, backing, daemon);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!File.ReadAllText("/proc/self/mountinfo").Contains(" " + mount + " ", StringComparison.Ordinal))
        {
            if (daemon.HasExited || DateTime.UtcNow > deadline)
            {
                string err = daemon.HasExited ? daemon.StandardError.ReadToEnd() : "(still running)";
                fs.Dispose();
                Assert.Fail($"faultfs did not mount {mount}: {err}");
            }
            Thread.Sleep(20);
        }
        return fs;
    }

    /// <summary>Sends one command and returns its answer line once the filesystem applied it.</summary>
    public string Command(string command)
    {
        _daemon.StandardInput.WriteLine(command);
        _daemon.StandardInput.Flush();
        var line = _daemon.StandardOutput.ReadLineAsync();
        if (!line.Wait(TimeSpan.FromSeconds(10)) || line.Result is null)
            Assert.Fail($"faultfs did not answer '{command}'");
        Assert.False(line.Result!.StartsWith("error", StringComparison.Ordinal), $"faultfs: '{command}' -> {line.Result}");
        return line.Result!;
    }

    public void FailReads(long offset, long length) => Command($"fail read {offset} {length}");
    public void FailWrites(long offset, long length) => Command($"fail write {offset} {length}");
    public void Clear() => Command("clear");
    public void Vanish() => Command("vanish");

    /// <summary>The daemon dies (SIGKILL): the kernel aborts the connection, every access is ENOTCONN.</summary>
    public void KillDaemon()
    {
        _daemon.Kill();
        _daemon.WaitForExit(10_000);
    }

    public void Dispose()
    {
        if (!_daemon.HasExited)
            KillDaemon();
        // Lazy: a test may still hold the image open; the mount goes when the last fd does.
        using (var umount = Process.Start(new ProcessStartInfo("umount", ["-l", Mount]) { RedirectStandardError = true })!)
            umount.WaitForExit(10_000);
        _daemon.Dispose();
        try { Directory.Delete(Mount); } catch (IOException) { }
    }

    private static string Build()
    {
        string source = Path.Combine(AppContext.BaseDirectory, "c", "faultfs.c");
        string output = Path.Combine(Directory.CreateTempSubdirectory("xb-faultfs-bin-").FullName, "faultfs");
        string cflags = PkgConfig("--cflags"), libs = PkgConfig("--libs");
        var (code, err) = Exec("gcc", ["-O2", "-Wall", "-Werror", .. Split(cflags), "-o", output, source, .. Split(libs), "-lpthread"]);
        if (code != 0)
            Assert.Fail($"gcc faultfs.c failed:\n{err}");
        return output;
    }

    private static string PkgConfig(string what)
    {
        var (code, text) = Exec("pkg-config", [what, "fuse3"], stdout: true);
        if (code != 0)
            Assert.Fail($"pkg-config {what} fuse3 failed (install libfuse3-dev and pkg-config): {text}");
        return text.Trim();
    }

    private static string[] Split(string flags) => flags.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    private static (int Code, string Text) Exec(string file, string[] args, bool stdout = false)
    {
        var r = ChildProcess.Run(file, args, "the FUSE tests need gcc, pkg-config and libfuse3-dev");
        return (r.ExitCode, stdout ? r.Stdout : r.Stderr);
    }
}
