using System.Diagnostics;

namespace XenBackends.Native.Tests.IO;

/// <summary>A real loop block device over a file (losetup), detached on dispose.</summary>
internal sealed class LoopDevice : IDisposable
{
    public LoopDevice(string backingFile)
    {
        Path = Run("losetup", "--find", "--show", backingFile).Trim();
        Assert.StartsWith("/dev/loop", Path);
    }

    public string Path { get; }

    public void Dispose() => Run("losetup", "--detach", Path);

    private static string Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        string error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} {string.Join(' ', args)} failed (needs root and /dev/loop-control): {error}");
        return output;
    }
}
