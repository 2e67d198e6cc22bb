namespace XenBackends.Native.Tests.IO;

/// <summary>A sparse image file in a private temp directory, removed on dispose.</summary>
internal sealed class TempImage : IDisposable
{
    private readonly string _dir;

    public TempImage(long size)
    {
        _dir = Directory.CreateTempSubdirectory("xb-img-").FullName;
        Path = System.IO.Path.Combine(_dir, "disk.img");
        using var f = File.Create(Path);
        f.SetLength(size);
    }

    public string Path { get; }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
