using System.Runtime.InteropServices;
using XenBackends.Native.IO;

namespace XenBackends.Native.Tests.IO;

/// <summary>When an image may be mapped, what the mapping sees, and when it is given up.</summary>
public sealed class ImageMappingTests
{
    private static string Shm() => $"/dev/shm/xb-imgmap-{Guid.NewGuid():N}.img";

    private static void WithFile(string path, Action body)
    {
        try
        {
            body();
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_fully_written_tmpfs_image_is_mapped_and_the_mapping_is_the_file()
    {
        string path = Shm();
        var data = new byte[64 << 10];
        new Random(1).NextBytes(data);
        File.WriteAllBytes(path, data);
        WithFile(path, () =>
        {
            using var file = ImageFile.Open(path, writable: true, direct: false);
            var mapping = ImageMapping.TryCreate(file, out string reason);
            Assert.True(mapping is not null, reason);
            Assert.Equal(data.Length, mapping.Length);
            var bytes = new byte[data.Length];
            Marshal.Copy(mapping.Address, bytes, 0, bytes.Length);
            Assert.Equal(data, bytes);
            // A store through the mapping is what the next reader of the file sees, at once.
            Marshal.WriteByte(mapping.Address + 100, (byte)(data[100] ^ 0xff));
            Assert.Equal((byte)(data[100] ^ 0xff), File.ReadAllBytes(path)[100]);
            // Zero keeps every page allocated: still no hole.
            mapping.Zero(4096, 8192);
            Assert.All(File.ReadAllBytes(path).AsSpan(4096, 8192).ToArray(), b => Assert.Equal(0, b));
            Assert.Equal(data.Length, ImageMapping.FirstHole(file.Fd));
            Assert.Throws<ArgumentOutOfRangeException>(() => mapping.Zero(data.Length - 4096, 8192));
            Assert.True(mapping.Revalidate());
            mapping.Release();
        });
    }

    [Fact]
    public void A_sparse_image_an_empty_one_and_one_on_a_disk_filesystem_are_not_mapped()
    {
        string sparse = Shm();
        using (var f = File.Create(sparse)) f.SetLength(64 << 10);
        WithFile(sparse, () =>
        {
            using var file = ImageFile.Open(sparse, writable: true, direct: false);
            Assert.Null(ImageMapping.TryCreate(file, out string reason));
            Assert.Contains("sparse", reason, StringComparison.Ordinal);
        });
        // Written except for one page in the middle: one hole is enough.
        string holed = Shm();
        using (var f = File.Create(holed))
        {
            f.Write(new byte[16 << 10]);
            f.Seek(4096, SeekOrigin.Current);
            f.Write(new byte[16 << 10]);
        }
        WithFile(holed, () =>
        {
            using var file = ImageFile.Open(holed, writable: true, direct: false);
            Assert.Null(ImageMapping.TryCreate(file, out string reason));
            Assert.Contains("first hole at byte 16384", reason, StringComparison.Ordinal);
        });
        string empty = Shm();
        File.WriteAllBytes(empty, []);
        WithFile(empty, () =>
        {
            using var file = ImageFile.Open(empty, writable: true, direct: false);
            Assert.Null(ImageMapping.TryCreate(file, out _));
        });
        string disk = $"/var/tmp/xb-imgmap-{Guid.NewGuid():N}.img";
        File.WriteAllBytes(disk, new byte[8192]);
        WithFile(disk, () =>
        {
            using var file = ImageFile.Open(disk, writable: true, direct: false);
            Assert.Null(ImageMapping.TryCreate(file, out string reason));
            Assert.Contains("memory", reason, StringComparison.Ordinal);
        });
    }

    [Fact]
    public void A_size_change_gives_the_mapping_up_for_good_and_the_last_reference_unmaps_it()
    {
        string path = Shm();
        File.WriteAllBytes(path, new byte[64 << 10]);
        WithFile(path, () =>
        {
            using var file = ImageFile.Open(path, writable: true, direct: false);
            var mapping = ImageMapping.TryCreate(file, out string reason) ?? throw new InvalidOperationException(reason);
            Assert.True(mapping.AddReference());
            using (var f = File.OpenWrite(path)) f.SetLength(32 << 10);
            Assert.False(mapping.Revalidate());
            using (var f = File.OpenWrite(path)) f.SetLength(64 << 10);
            Assert.False(mapping.Revalidate()); // never taken back, even at the old size
            Assert.False(mapping.IsUsable);
            mapping.Release();
            Assert.True(mapping.AddReference()); // the creator's reference still holds it
            mapping.Release();
            mapping.Release();
            Assert.False(mapping.AddReference()); // unmapped
        });
    }
}
