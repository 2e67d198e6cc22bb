using System.Collections.Concurrent;
using System.Globalization;
using XenBackends.Rings.Blkif;

namespace XenBackends.Backend.Block.Tests;

/// <summary>
/// The real BlockDevice on an image whose chosen sectors fail with EIO (c/faultfs.c, a FUSE
/// passthrough): exactly the requests that touch a bad range are answered BLKIF_RSP_ERROR, every
/// other one OKAY with the right data, and the device keeps serving. Then the storage disappears.
/// </summary>
public sealed class ImageEioTests
{
    private const int Page = 4096;
    private static readonly TimeSpan Bounded = TimeSpan.FromSeconds(20);

    private static string Backing(int bytes, int seed)
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("xb-eio-").FullName, "backing.img");
        var data = new byte[bytes];
        new Random(seed).NextBytes(data);
        File.WriteAllBytes(path, data);
        return path;
    }

    /// <summary>One request of <paramref name="pages"/> whole pages at <paramref name="sector"/>; returns its frames.</summary>
    private static uint[] Put(TestBlkfront front, byte op, ulong id, ulong sector, int pages, int seed = 0)
    {
        var frames = new uint[pages];
        var segs = new BlkifRequestSegment[pages];
        for (int i = 0; i < pages; i++)
        {
            var (frame, gref) = front.AllocateDataPage();
            if (op == BlkifOp.Write) new Random(seed * 100 + i).NextBytes(front.Page(frame));
            else front.Page(frame).Fill(0xEE);
            frames[i] = frame;
            segs[i] = new BlkifRequestSegment { Gref = gref, LastSect = 7 };
        }
        front.PutRw(0, op, id, sector, segs);
        return frames;
    }

    private static byte[] Gather(TestBlkfront front, uint[] frames) => frames.SelectMany(f => front.Page(f).ToArray()).ToArray();

    [Fact]
    public async Task Requests_touching_EIO_sectors_fail_alone_and_every_other_request_is_served_with_the_right_data()
    {
        string backing = Backing(4 << 20, 11);
        byte[] original = File.ReadAllBytes(backing);
        using var fs = FaultFs.Start(backing);
        // Bad for reads: one 512-byte sector in page 16. Bad for writes: page 32.
        fs.FailReads(16 * Page + 3 * 512, 512);
        fs.FailWrites(32 * Page, Page);
        var log = new ConcurrentQueue<string>();
        await using var h = await BlockHarness.CreateAsync(0, imagePath: fs.ImagePath, log: log.Enqueue);
        var front = await h.ConnectAsync(order: 1);

        var reads = new Dictionary<ulong, uint[]>
        {
            [1] = Put(front, BlkifOp.Read, 1, 16 * 8, 1),      // the bad sector's page: ERROR
            [2] = Put(front, BlkifOp.Read, 2, 15 * 8, 1),      // its neighbours: OKAY
            [3] = Put(front, BlkifOp.Read, 3, 17 * 8, 1),
            [4] = Put(front, BlkifOp.Read, 4, 12 * 8, 8),      // 8 pages spanning it: ERROR
            [5] = Put(front, BlkifOp.Read, 5, 32 * 8, 1),      // write-bad page reads fine
        };
        var writes = new Dictionary<ulong, uint[]>
        {
            [6] = Put(front, BlkifOp.Write, 6, 32 * 8, 1, seed: 6),  // ERROR, image unchanged
            [7] = Put(front, BlkifOp.Write, 7, 30 * 8, 4, seed: 7),  // spans page 32: ERROR
            [8] = Put(front, BlkifOp.Write, 8, 64 * 8, 2, seed: 8),  // OKAY
            [9] = Put(front, BlkifOp.Write, 9, 16 * 8, 1, seed: 9),  // read-bad page writes fine
        };
        front.Push(0);
        var status = (await front.WaitForResponsesAsync(0, 9, Bounded)).ToDictionary(r => r.Id, r => r.Status);

        Assert.Equal(BlkifRsp.Error, status[1]);
        Assert.Equal(BlkifRsp.Error, status[4]);
        Assert.Equal(BlkifRsp.Error, status[6]);
        Assert.Equal(BlkifRsp.Error, status[7]);
        foreach (ulong ok in new ulong[] { 2, 3, 5, 8, 9 })
            Assert.True(status[ok] == BlkifRsp.Okay, $"request {ok} answered {status[ok]}");
        Assert.Equal(original.AsSpan(15 * Page, Page).ToArray(), Gather(front, reads[2]));
        Assert.Equal(original.AsSpan(17 * Page, Page).ToArray(), Gather(front, reads[3]));
        Assert.Equal(original.AsSpan(32 * Page, Page).ToArray(), Gather(front, reads[5]));

        byte[] disk = File.ReadAllBytes(backing);
        Assert.Equal(original.AsSpan(32 * Page, Page).ToArray(), disk.AsSpan(32 * Page, Page).ToArray());
        Assert.Equal(Gather(front, writes[8]), disk.AsSpan(64 * Page, 2 * Page).ToArray());
        Assert.Equal(Gather(front, writes[9]), disk.AsSpan(16 * Page, Page).ToArray());
        Assert.Equal(4, h.Block.Statistics.ErrorResponses);
        Assert.Equal(4, h.Block.Statistics.IoErrors);
        Assert.Equal(5, h.Block.Statistics.LastIoErrno); // EIO
        // Four failures in one burst: one report (rate-limited), naming the operation and the errno.
        string report = Assert.Single(log, l => l.Contains("image I/O failed", StringComparison.Ordinal));
        Assert.Contains("BLKIF_RSP_ERROR", report);
        Assert.Contains("Input/output error (errno 5)", report);

        // The device keeps serving: a flush, and once the ranges heal the same requests succeed.
        front.PutRw(0, BlkifOp.FlushDiskCache, 10, ulong.MaxValue, []); // empty, sector_number -1 as Linux sends it
        Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
        fs.Clear();
        var again = Put(front, BlkifOp.Read, 11, 12 * 8, 8);
        Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
        Assert.Equal(File.ReadAllBytes(backing).AsSpan(12 * Page, 8 * Page).ToArray(), Gather(front, again));
        Put(front, BlkifOp.Write, 12, 32 * 8, 1, seed: 12);
        Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
        Assert.All(h.Block.Queues, q => Assert.False(q.Finished));
        Assert.Null(h.Block.LastFault);
    }

    /// <summary>
    /// "Disappearing" on FUSE (or any network or user-space filesystem): the open image stops
    /// working. Either every access fails (the disk behind it died: vanish) or the daemon is gone
    /// and the kernel answers ENOTCONN for the open fd. Each request is then ERROR, promptly, with
    /// no hang; the device reports, stays up and disconnects cleanly.
    /// </summary>
    [Theory]
    [InlineData("vanish")]
    [InlineData("daemon-killed")]
    public async Task A_FUSE_image_that_disappears_fails_every_request_promptly_and_disconnect_still_works(string how)
    {
        string backing = Backing(2 << 20, 12);
        byte[] original = File.ReadAllBytes(backing);
        using var fs = FaultFs.Start(backing);
        var log = new ConcurrentQueue<string>();
        await using var h = await BlockHarness.CreateAsync(0, imagePath: fs.ImagePath, log: log.Enqueue);
        var front = await h.ConnectAsync(order: 1);
        var before = Put(front, BlkifOp.Read, 1, 0, 2);
        Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
        Assert.Equal(File.ReadAllBytes(backing).AsSpan(0, 2 * Page).ToArray(), Gather(front, before));

        if (how == "vanish") fs.Vanish();
        else fs.KillDaemon();

        Put(front, BlkifOp.Read, 2, 0, 1);
        Put(front, BlkifOp.Write, 3, 8, 4, seed: 3);
        Put(front, BlkifOp.Read, 4, 64, 11);
        front.PutRw(0, BlkifOp.FlushDiskCache, 5, ulong.MaxValue, []);
        front.Push(0);
        var responses = await front.WaitForResponsesAsync(0, 4, Bounded);
        Assert.All(responses, r => Assert.True(r.Status == BlkifRsp.Error, $"request {r.Id} answered {r.Status}"));
        // The write after the loss never reached the backing file.
        Assert.Equal(original, File.ReadAllBytes(backing));
        Assert.Equal(4, h.Block.Statistics.ErrorResponses);
        // The ring still runs (the worker answers each new request), and teardown is bounded.
        Put(front, BlkifOp.Read, 6, 0, 1);
        Assert.Equal(BlkifRsp.Error, (await front.RoundTripAsync(0)).Status);
        Assert.All(h.Block.Queues, q => Assert.False(q.Finished));
        Assert.Equal(5, h.Block.Statistics.IoErrors);
        // One clear report for the burst, not one line per request; a dead FUSE daemon is ENOTCONN.
        string report = Assert.Single(log, l => l.Contains("image I/O failed", StringComparison.Ordinal));
        Assert.Contains(how == "vanish" ? "Input/output error (errno 5)" : "storage is gone", report);
        // No busy loop: with nothing on the ring, the queue's thread sleeps.
        long ticks = QueueThreadTicks();
        await Task.Delay(1000);
        long burnt = QueueThreadTicks() - ticks;
        Assert.True(burnt <= 10, $"the queue thread used {burnt} clock ticks of CPU in 1 s with nothing to do");
        await h.Block.DisconnectAsync(CancellationToken.None).WaitAsync(Bounded);
        Assert.Empty(h.Block.Queues);
    }

    /// <summary>
    /// The image file unlinked under a running backend (a local filesystem): POSIX keeps the inode
    /// alive while the worker holds it open, so this is not a failure at all. Requests keep being
    /// served from the open file, as QEMU and a loop device would: nothing fails, nothing is lost.
    /// </summary>
    [Fact]
    public async Task An_image_file_deleted_under_the_backend_keeps_being_served_from_the_open_inode()
    {
        await using var h = await BlockHarness.CreateAsync(1 << 20);
        var front = await h.ConnectAsync(order: 1);
        byte[] original = h.ReadImage();
        File.Delete(h.ImagePath);
        var written = Put(front, BlkifOp.Write, 1, 8, 2, seed: 1);
        Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
        var back = Put(front, BlkifOp.Read, 2, 0, 4);
        Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
        byte[] expected = original.AsSpan(0, 4 * Page).ToArray();
        Gather(front, written).CopyTo(expected, Page);
        Assert.Equal(expected, Gather(front, back));
        Assert.Equal(0, h.Block.Statistics.ErrorResponses);
        Assert.False(File.Exists(h.ImagePath));
    }

    /// <summary>utime + stime (clock ticks) of the queue's worker thread, "blkif-d7-q0", from /proc/self/task.</summary>
    private static long QueueThreadTicks()
    {
        string name = $"blkif-d{BlockHarness.GuestId}-q0";
        foreach (string task in Directory.GetDirectories("/proc/self/task"))
        {
            string comm;
            try { comm = File.ReadAllText(Path.Combine(task, "comm")).Trim(); }
            catch (IOException) { continue; }
            if (comm != name)
                continue;
            string stat = File.ReadAllText(Path.Combine(task, "stat"));
            // Fields after the parenthesised comm: state is field 3, utime 14, stime 15.
            string[] f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
        }
        Assert.Fail($"no thread named {name} in this process");
        return 0;
    }
}
