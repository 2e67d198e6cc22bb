using XenBackends.Native.IO;

namespace XenBackends.Native.Tests.IO;

public unsafe class IoUringWakeupTests
{
    /// <summary>
    /// io_uring's completions and its sidecar threads' completions share one eventfd, which the ring
    /// worker sleeps on. Only its owner may drain it, once per reap, before looking at every source:
    /// when the sidecar drained it too, a CQE the kernel posted between the owner's look at the CQ and
    /// the sidecar's drain lost its wakeup, and the worker slept on a finished request ("31 of 32
    /// responses"). The kernel posting that CQE is played here by signalling the eventfd.
    /// </summary>
    [Fact]
    public void A_sidecar_sharing_the_eventfd_never_drains_a_wakeup_that_is_not_its_own()
    {
        using var image = new TempImage(1 << 20);
        using var file = ImageFile.Open(image.Path, writable: true, direct: false);
        int eventFd = Tmds.Linux.LibC.eventfd(0, Tmds.Linux.LibC.EFD_CLOEXEC | Tmds.Linux.LibC.EFD_NONBLOCK);
        Assert.True(eventFd >= 0);
        try
        {
            using var sidecar = new ThreadIoEngine(4, 1, eventFd);
            Assert.True(sidecar.TryEnqueue(new IoRequest(IoOp.BlockDiscard, file.Fd, 0, 0, 4096, 7)));
            sidecar.Submit();
            var buf = new IoCompletion[4];
            int got = 0;
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (got == 0)
            {
                Assert.True(DateTime.UtcNow < deadline, "the sidecar never completed");
                sidecar.WaitForCompletion(1000);
                ulong kernelPostedACqe = 1;
                Assert.Equal(8, (long)Tmds.Linux.LibC.write(eventFd, &kernelPostedACqe, 8));
                got = sidecar.Reap(buf);
            }
            Assert.Equal(new IoCompletion(7, -Tmds.Linux.LibC.ENOTTY), buf[0]);
            var p = new Tmds.Linux.pollfd { fd = eventFd, events = (short)Tmds.Linux.LibC.POLLIN };
            Assert.True(Tmds.Linux.LibC.poll(&p, 1, 0) == 1, "the sidecar's reap swallowed the owner's wakeup");
        }
        finally
        {
            Tmds.Linux.LibC.close(eventFd);
        }
    }

    /// <summary>Both sources completing together, reaped only when the eventfd says so, as a ring worker does.</summary>
    [Fact]
    public void Completions_from_io_uring_and_its_sidecar_always_leave_the_fd_readable_until_reaped()
    {
        using var image = new TempImage(1 << 20);
        using var file = ImageFile.Open(image.Path, writable: true, direct: false);
        using var engine = IoUringEngine.Create(16);
        using var data = new AlignedBuffer(4096);
        var buf = new IoCompletion[2];
        for (int round = 0; round < 500; round++)
        {
            // A dirty page makes the flush finish later, in an io_uring worker, while the sidecar's
            // failing ioctl finishes at once on its thread.
            Assert.True(engine.TryEnqueue(IoRequest.Write(file.Fd, 0, data.Address, 4096, 1)));
            Assert.True(engine.TryEnqueue(IoRequest.Flush(file.Fd, 2)));
            Assert.True(engine.TryEnqueue(new IoRequest(IoOp.BlockDiscard, file.Fd, 0, 0, 4096, 3)));
            engine.Submit();
            int got = 0;
            while (got < 3)
            {
                var p = new Tmds.Linux.pollfd { fd = engine.CompletionFd, events = (short)Tmds.Linux.LibC.POLLIN };
                Assert.True(Tmds.Linux.LibC.poll(&p, 1, 10_000) == 1,
                    $"round {round}: {got} of 3 completions reaped and the completion fd is not readable");
                got += engine.Reap(buf);
            }
        }
    }
}
