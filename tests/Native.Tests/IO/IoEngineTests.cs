using System.Runtime.InteropServices;
using XenBackends.Native.IO;

namespace XenBackends.Native.Tests.IO;

public unsafe class IoEngineTests
{
    public static TheoryData<IoEngineKind> Kinds => new() { IoEngineKind.IoUring, IoEngineKind.Threads, IoEngineKind.Inline };

    /// <summary>Engines that finish requests elsewhere and wake their owner through the completion fd.</summary>
    public static TheoryData<IoEngineKind> AsyncKinds => new() { IoEngineKind.IoUring, IoEngineKind.Threads };

    private static IIoEngine Create(IoEngineKind kind, int capacity = 64) => IoEngines.Create(kind, capacity);

    /// <summary>Submits everything and reaps until every tag came back once; returns results by tag.</summary>
    private static Dictionary<ulong, int> RunAll(IIoEngine engine, IEnumerable<IoRequest> requests)
    {
        var results = new Dictionary<ulong, int>();
        int expected = 0;
        foreach (var r in requests)
        {
            Assert.True(engine.TryEnqueue(r), "engine refused a request under its capacity");
            expected++;
        }
        engine.Submit();
        var buf = new IoCompletion[16];
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (results.Count < expected)
        {
            Assert.True(DateTime.UtcNow < deadline, $"only {results.Count} of {expected} completions arrived");
            engine.WaitForCompletion(1000);
            int n = engine.Reap(buf);
            for (int i = 0; i < n; i++)
                Assert.True(results.TryAdd(buf[i].Tag, buf[i].Result), $"tag {buf[i].Tag} completed twice");
        }
        Assert.Equal(0, engine.InFlight);
        return results;
    }

    [Theory, MemberData(nameof(Kinds))]
    public void Writes_then_reads_return_the_same_bytes_at_random_offsets(IoEngineKind kind)
    {
        using var image = new TempImage(16 << 20);
        using var file = ImageFile.Open(image.Path, writable: true, direct: true);
        using var engine = Create(kind);
        const int blocks = 48;
        using var data = new AlignedBuffer(blocks * 4096);
        using var back = new AlignedBuffer(blocks * 4096);
        new Random(1).NextBytes(data.Span);
        var offsets = Enumerable.Range(0, 4096).OrderBy(_ => Random.Shared.Next()).Take(blocks).Select(b => (long)b * 4096).ToArray();

        var writes = RunAll(engine, offsets.Select((off, i) =>
            IoRequest.Write(file.Fd, off, data.Address + i * 4096, 4096, (ulong)i)));
        Assert.All(writes.Values, r => Assert.Equal(4096, r));

        var reads = RunAll(engine, offsets.Select((off, i) =>
            IoRequest.Read(file.Fd, off, back.Address + i * 4096, 4096, (ulong)(1000 + i))));
        Assert.All(reads.Values, r => Assert.Equal(4096, r));
        Assert.True(data.Span.SequenceEqual(back.Span));
    }

    [Theory, MemberData(nameof(Kinds))]
    public void Vectored_write_scatters_from_and_read_gathers_into_separate_pages(IoEngineKind kind)
    {
        using var image = new TempImage(1 << 20);
        using var file = ImageFile.Open(image.Path, writable: true, direct: false);
        using var engine = Create(kind);
        using var pages = new AlignedBuffer(4 * 4096);
        using var iov = new AlignedBuffer(4 * 16);
        // Segments as a blkif request carries them: sub-ranges of pages (first_sect..last_sect).
        (int page, int offset, int length)[] segs = { (2, 512, 1024), (0, 0, 4096), (3, 3584, 512) };
        new Random(2).NextBytes(pages.Span);
        var vec = (long*)iov.Address;
        for (int i = 0; i < segs.Length; i++)
        {
            vec[2 * i] = pages.Address + segs[i].page * 4096 + segs[i].offset;
            vec[2 * i + 1] = segs[i].length;
        }
        int total = segs.Sum(s => s.length);
        var w = RunAll(engine, new[] { new IoRequest(IoOp.WriteVector, file.Fd, 8192, iov.Address, segs.Length, 1) });
        Assert.Equal(total, w[1]);

        byte[] onDisk = new byte[total];
        using (var fs = File.OpenRead(image.Path)) { fs.Position = 8192; fs.ReadExactly(onDisk); }
        int at = 0;
        foreach (var (page, offset, length) in segs)
        {
            Assert.True(pages.Span.Slice(page * 4096 + offset, length).SequenceEqual(onDisk.AsSpan(at, length)));
            at += length;
        }

        var expected = pages.Span.ToArray();
        pages.Span.Clear();
        var r = RunAll(engine, new[] { new IoRequest(IoOp.ReadVector, file.Fd, 8192, iov.Address, segs.Length, 2) });
        Assert.Equal(total, r[2]);
        foreach (var (page, offset, length) in segs)
            Assert.True(expected.AsSpan(page * 4096 + offset, length).SequenceEqual(pages.Span.Slice(page * 4096 + offset, length)));
    }

    [Theory, MemberData(nameof(Kinds))]
    public void Punch_hole_reads_back_zeros_frees_space_and_keeps_the_size(IoEngineKind kind)
    {
        using var image = new TempImage(4 << 20);
        using var file = ImageFile.Open(image.Path, writable: true, direct: false);
        using var engine = Create(kind);
        using var data = new AlignedBuffer(1 << 20);
        data.Span.Fill(0xA5);
        Assert.Equal(1 << 20, RunAll(engine, new[] { IoRequest.Write(file.Fd, 0, data.Address, 1 << 20, 1) })[1]);
        Assert.Equal(0, RunAll(engine, new[] { IoRequest.Flush(file.Fd, 2) })[2]);
        long allocatedBefore = AllocatedBytes(image.Path);

        Assert.Equal(0, RunAll(engine, new[] { new IoRequest(IoOp.PunchHole, file.Fd, 256 << 10, 0, 512 << 10, 3) })[3]);
        Assert.Equal(0, RunAll(engine, new[] { new IoRequest(IoOp.ZeroRange, file.Fd, 0, 0, 4096, 4) })[4]);

        var bytes = File.ReadAllBytes(image.Path);
        Assert.Equal(4 << 20, bytes.Length);
        Assert.All(bytes.AsSpan(0, 4096).ToArray(), b => Assert.Equal(0, b));
        Assert.All(bytes.AsSpan(4096, (256 << 10) - 4096).ToArray(), b => Assert.Equal(0xA5, b));
        Assert.All(bytes.AsSpan(256 << 10, 512 << 10).ToArray(), b => Assert.Equal(0, b));
        Assert.All(bytes.AsSpan(768 << 10, 256 << 10).ToArray(), b => Assert.Equal(0xA5, b));
        Assert.True(AllocatedBytes(image.Path) <= allocatedBefore - (512 << 10), "punching a hole freed no space");
    }

    [Theory, MemberData(nameof(Kinds))]
    public void A_failing_request_fails_alone_with_its_errno(IoEngineKind kind)
    {
        using var image = new TempImage(1 << 20);
        using var ro = ImageFile.Open(image.Path, writable: false, direct: false);
        using var engine = Create(kind);
        using var buf = new AlignedBuffer(4096);
        var results = RunAll(engine, new[]
        {
            IoRequest.Read(ro.Fd, 0, buf.Address, 4096, 1),
            IoRequest.Write(ro.Fd, 0, buf.Address, 4096, 2),   // write on a read-only fd
            IoRequest.Read(ro.Fd, 4096, buf.Address, 4096, 3),
        });
        Assert.Equal(4096, results[1]);
        Assert.Equal(-Tmds.Linux.LibC.EBADF, results[2]);
        Assert.Equal(4096, results[3]);
    }

    [Theory, MemberData(nameof(Kinds))]
    public void Refuses_requests_beyond_capacity_until_completions_are_reaped(IoEngineKind kind)
    {
        using var image = new TempImage(1 << 20);
        using var file = ImageFile.Open(image.Path, writable: true, direct: false);
        using var engine = Create(kind, capacity: 8);
        int cap = engine.Capacity;
        Assert.True(cap >= 8);
        for (int i = 0; i < cap; i++) Assert.True(engine.TryEnqueue(IoRequest.Flush(file.Fd, (ulong)i)));
        Assert.False(engine.TryEnqueue(IoRequest.Flush(file.Fd, 99)));
        engine.Submit();
        var buf = new IoCompletion[cap];
        int got = 0;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (got < cap && DateTime.UtcNow < deadline)
        {
            engine.WaitForCompletion(1000);
            got += engine.Reap(buf.AsSpan(got));
        }
        Assert.Equal(cap, got);
        Assert.Equal(0, engine.InFlight);
        Assert.Equal(0, RunAll(engine, new[] { IoRequest.Flush(file.Fd, 100) })[100]);
    }

    [Theory, MemberData(nameof(AsyncKinds))]
    public void Completion_fd_becomes_readable_when_work_finishes(IoEngineKind kind)
    {
        using var image = new TempImage(1 << 20);
        using var file = ImageFile.Open(image.Path, writable: true, direct: false);
        using var engine = Create(kind);
        Assert.True(engine.TryEnqueue(IoRequest.Flush(file.Fd, 7)));
        engine.Submit();
        var p = new Tmds.Linux.pollfd { fd = engine.CompletionFd, events = (short)Tmds.Linux.LibC.POLLIN };
        Assert.Equal(1, Tmds.Linux.LibC.poll(&p, 1, 30_000));
        var buf = new IoCompletion[4];
        Assert.Equal(1, engine.Reap(buf));
        Assert.Equal(new IoCompletion(7, 0), buf[0]);
    }

    [Theory, MemberData(nameof(Kinds))]
    public void Only_the_inline_engine_says_it_completes_inline(IoEngineKind kind)
    {
        using var engine = Create(kind);
        Assert.Equal(kind == IoEngineKind.Inline, engine.CompletesInline);
    }

    [Fact]
    public void Inline_engine_finishes_each_request_before_TryEnqueue_returns_without_signalling_its_fd()
    {
        using var image = new TempImage(1 << 20);
        using var file = ImageFile.Open(image.Path, writable: true, direct: false);
        using var engine = Create(IoEngineKind.Inline);
        using var buf = new AlignedBuffer(4096);
        buf.Span.Fill(0x3C);
        Assert.True(engine.TryEnqueue(IoRequest.Write(file.Fd, 4096, buf.Address, 4096, 5)));
        // Already on the file: nothing was submitted or waited for.
        Assert.All(File.ReadAllBytes(image.Path).AsSpan(4096, 4096).ToArray(), b => Assert.Equal(0x3C, b));
        Assert.Equal(1, engine.InFlight);
        var p = new Tmds.Linux.pollfd { fd = engine.CompletionFd, events = (short)Tmds.Linux.LibC.POLLIN };
        Assert.Equal(0, Tmds.Linux.LibC.poll(&p, 1, 0));
        var done = new IoCompletion[4];
        Assert.Equal(1, engine.Reap(done));
        Assert.Equal(new IoCompletion(5, 4096), done[0]);
        Assert.Equal(0, engine.InFlight);
    }

    [Fact]
    public void Images_on_tmpfs_are_memory_resident_and_images_on_disk_filesystems_are_not()
    {
        string shm = $"/dev/shm/xb-resident-{Guid.NewGuid():N}.img";
        File.WriteAllBytes(shm, new byte[4096]);
        try
        {
            using var onTmpfs = ImageFile.Open(shm, writable: false, direct: false);
            Assert.True(onTmpfs.IsMemoryResident);
        }
        finally
        {
            File.Delete(shm);
        }
        // /var/tmp is on a disk filesystem by convention (FHS), unlike /tmp, which may be tmpfs.
        string disk = $"/var/tmp/xb-resident-{Guid.NewGuid():N}.img";
        File.WriteAllBytes(disk, new byte[4096]);
        try
        {
            using var onDisk = ImageFile.Open(disk, writable: false, direct: false);
            Assert.False(onDisk.IsMemoryResident);
        }
        finally
        {
            File.Delete(disk);
        }
    }

    private static long AllocatedBytes(string path)
    {
        Tmds.Linux.stat st;
        var bytes = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
            Assert.Equal(0, Tmds.Linux.LibC.stat(p, &st));
        return (long)st.st_blocks * 512;
    }
}
