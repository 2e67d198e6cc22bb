using XenBackends.TestSupport;

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

    private static string Run(string file, params string[] args) =>
        ChildProcess.Checked(file, args, installHint: "needs root and /dev/loop-control (util-linux's losetup)");
}
