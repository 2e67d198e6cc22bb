using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.Xenbus;

namespace XenBackends.Integration.Tests;

public class BlockIntegrationTests
{
    private static readonly TimeSpan Connect = TimeSpan.FromSeconds(20);

    [Theory]
    [InlineData(BlkifAbi.X86_64, 0u, 1u, 0u)]
    [InlineData(BlkifAbi.X86_32, 2u, 2u, 32u)]
    [InlineData(BlkifAbi.X86_64, 4u, 4u, 256u)]
    public async Task Linux_like_blkfront_negotiates_and_moves_data_through_the_real_backend(BlkifAbi abi, uint order, uint queues, uint indirect)
    {
        await using var f = await GuestFixture.CreateAsync();
        string image = f.CreateImage(64 << 20);
        var disk = await f.Toolstack.AddDiskAsync(GuestFixture.Domid, new DiskSpec("xvda", image) { Script = "/usr/lib/xen-backends/block" });
        await using var blk = await SimulatedBlkfront.AttachAsync(f.Guest, disk.DevId,
            new BlkfrontOptions { Abi = abi, MaxRingPageOrder = order, MaxQueues = queues, MaxIndirectSegments = indirect });
        await blk.WaitConnectedAsync(Connect);

        // What the frontend negotiated is what both ends advertised.
        Assert.Equal((ulong)(64 << 20) / 512, blk.Sectors);
        Assert.Equal(512u, blk.SectorSize);
        Assert.Equal(order, blk.RingPageOrder);
        Assert.Equal((int)queues, blk.NumQueues);
        Assert.True(blk.FeatureFlushCache);
        Assert.True(blk.FeatureBarrier);
        Assert.True(blk.FeatureDiscard);
        Assert.Equal(indirect == 0 ? 0u : indirect, blk.MaxIndirectSegments);

        // Random writes of mixed sizes (larger than 11 segments where indirect is on), 48 in flight
        // at a time over every queue, each in its own 1 MiB slot so none overlap while in flight
        // (as a filesystem would), then everything is read back and compared with a shadow image.
        var rng = new Random((int)order * 31 + (int)queues);
        byte[] shadow = new byte[64 << 20];
        // Requests as large as the negotiated segment limit allows (11 without indirect descriptors).
        int maxPages = indirect == 0 ? 11 : (int)Math.Min(indirect, 64);
        int maxSectors = 8 * maxPages;
        for (int batch = 0; batch < 8; batch++)
        {
            var pending = new List<Task<short>>();
            foreach (int slot in Enumerable.Range(0, 64).OrderBy(_ => rng.Next()).Take(48))
            {
                int sectors = 8 * rng.Next(1, maxSectors / 8 + 1);
                long sector = slot * 2048L + 8L * rng.Next(0, (2048 - sectors) / 8 + 1);
                byte[] data = new byte[sectors * 512];
                rng.NextBytes(data);
                data.CopyTo(shadow, sector * 512);
                pending.Add(blk.WriteAsync((ulong)sector, data, queue: pending.Count % (int)queues));
            }
            Assert.All(await Task.WhenAll(pending), s => Assert.Equal(BlkifRsp.Okay, s));
        }
        Assert.Equal(BlkifRsp.Okay, await blk.FlushAsync());

        var reads = new List<(long Sector, byte[] Buffer, Task<short> Done)>();
        for (long sector = 0; sector < shadow.Length / 512; sector += maxSectors)
        {
            var buffer = new byte[Math.Min(maxSectors, shadow.Length / 512 - sector) * 512];
            reads.Add((sector, buffer, blk.ReadAsync((ulong)sector, buffer, queue: (int)(sector / maxSectors % queues))));
        }
        foreach (var (sector, buffer, done) in reads)
        {
            Assert.Equal(BlkifRsp.Okay, await done);
            Assert.True(shadow.AsSpan((int)(sector * 512), buffer.Length).SequenceEqual(buffer), $"data differs at sector {sector}");
        }
        // And the image file itself holds exactly the shadow: nothing written anywhere else.
        byte[] onDisk = await File.ReadAllBytesAsync(image);
        Assert.True(shadow.AsSpan().SequenceEqual(onDisk), "the image file differs from what the guest wrote");
    }

    [Fact]
    public async Task Read_only_cdrom_is_advertised_and_writes_are_refused()
    {
        await using var f = await GuestFixture.CreateAsync();
        string image = f.CreateImage(4 << 20);
        var disk = await f.Toolstack.AddDiskAsync(GuestFixture.Domid, new DiskSpec("xvdb", image) { ReadWrite = false, IsCdrom = true, Script = "/x" });
        await using var blk = await SimulatedBlkfront.AttachAsync(f.Guest, disk.DevId);
        await blk.WaitConnectedAsync(Connect);
        Assert.Equal(VDisk.ReadOnly | VDisk.CdRom, blk.Info & (VDisk.ReadOnly | VDisk.CdRom));
        Assert.Equal(BlkifRsp.Error, await blk.WriteAsync(0, new byte[4096]));
        Assert.Equal(BlkifRsp.Okay, await blk.ReadAsync(0, new byte[4096]));
        Assert.All(await File.ReadAllBytesAsync(image), b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task Guest_reboot_reconnects_and_data_survives()
    {
        await using var f = await GuestFixture.CreateAsync();
        string image = f.CreateImage(8 << 20);
        var disk = await f.Toolstack.AddDiskAsync(GuestFixture.Domid, new DiskSpec("xvda", image) { Script = "/x" });
        await using var blk = await SimulatedBlkfront.AttachAsync(f.Guest, disk.DevId, new BlkfrontOptions { MaxRingPageOrder = 1 });
        await blk.WaitConnectedAsync(Connect);
        byte[] data = new byte[64 << 10];
        new Random(9).NextBytes(data);
        Assert.Equal(BlkifRsp.Okay, await blk.WriteAsync(2048, data));

        await blk.ReconnectAsync();
        await blk.WaitConnectedAsync(Connect);
        byte[] back = new byte[data.Length];
        Assert.Equal(BlkifRsp.Okay, await blk.ReadAsync(2048, back));
        Assert.Equal(data, back);
        Assert.True(f.Backends.IsServing(disk.Path));
    }

    [Fact]
    public async Task Online_resize_reaches_the_guest()
    {
        await using var f = await GuestFixture.CreateAsync();
        string image = f.CreateImage(8 << 20);
        var disk = await f.Toolstack.AddDiskAsync(GuestFixture.Domid, new DiskSpec("xvda", image) { Script = "/x" });
        await using var blk = await SimulatedBlkfront.AttachAsync(f.Guest, disk.DevId);
        await blk.WaitConnectedAsync(Connect);
        Assert.Equal((ulong)(8 << 20) / 512, blk.Sectors);

        using (var fs = File.OpenWrite(image)) fs.SetLength(24 << 20);
        Assert.True(await f.Backends.Device(disk.Path).ResizeAsync());
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (blk.Sectors != (ulong)(24 << 20) / 512)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the guest still sees {blk.Sectors} sectors");
            await Task.Delay(10);
        }
        Assert.Equal(BlkifRsp.Okay, await blk.WriteAsync((ulong)(20 << 20) / 512, new byte[4096]));
    }

    [Fact]
    public async Task Detach_like_xl_block_detach_stops_serving_and_removes_the_nodes()
    {
        await using var f = await GuestFixture.CreateAsync();
        string image = f.CreateImage(8 << 20);
        var disk = await f.Toolstack.AddDiskAsync(GuestFixture.Domid, new DiskSpec("xvda", image) { Script = "/x" });
        await using var blk = await SimulatedBlkfront.AttachAsync(f.Guest, disk.DevId);
        await blk.WaitConnectedAsync(Connect);
        Assert.Equal(BlkifRsp.Okay, await blk.WriteAsync(0, new byte[4096]));

        await f.Toolstack.DetachDiskAsync(disk);
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (f.Backends.IsServing(disk.Path))
        {
            Assert.True(DateTime.UtcNow < deadline, "the backend kept serving a detached disk");
            await Task.Delay(10);
        }
        Assert.Null(await f.Toolstack.Dom0.TryReadStringAsync(disk.BackendPath + "/state"));
        Assert.Null(await f.Toolstack.Dom0.TryReadStringAsync(disk.FrontendPath + "/state"));
    }

    [Fact]
    public async Task Destroying_the_guest_ends_its_devices()
    {
        await using var f = await GuestFixture.CreateAsync();
        string image = f.CreateImage(8 << 20);
        var disk = await f.Toolstack.AddDiskAsync(GuestFixture.Domid, new DiskSpec("xvda", image) { Script = "/x" });
        var blk = await SimulatedBlkfront.AttachAsync(f.Guest, disk.DevId);
        await blk.WaitConnectedAsync(Connect);

        await f.Toolstack.DestroyDomainAsync(GuestFixture.Domid);
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (f.Backends.IsServing(disk.Path))
        {
            Assert.True(DateTime.UtcNow < deadline, "the backend kept serving a destroyed guest");
            await Task.Delay(10);
        }
        Assert.False(f.Backends.Lifecycle(disk.Path).RingsUp);
    }
}
