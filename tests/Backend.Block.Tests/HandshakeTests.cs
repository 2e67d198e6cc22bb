using XenBackends.Rings.Blkif;
using XenBackends.Xenbus;

namespace XenBackends.Backend.Block.Tests;

/// <summary>The xenbus handshake driven by the shared <see cref="BackendLifecycle"/> against the in-process xenstored.</summary>
public sealed class HandshakeTests
{
    private static async Task WaitForStateAsync(BlockHarness h, XenbusState expected)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        string? state = null;
        while (DateTime.UtcNow < deadline)
        {
            state = await h.ReadBackendAsync("state");
            if (state == XenbusStates.Format(expected))
                return;
            await Task.Delay(10);
        }
        Assert.Fail($"backend state stayed {state}, expected {expected}");
    }

    private static Task SetFrontendStateAsync(BlockHarness h, XenbusState state) =>
        h.Store.WriteAsync(BlockHarness.Path.ExpectedFrontend + "/state", XenbusStates.Format(state));

    [Fact]
    public async Task FullHandshakePublishesEveryKeyServesIoAndClosesCleanly()
    {
        await using var h = await BlockHarness.CreateAsync(3 << 20, new BlockBackendOptions { MaxQueues = 2 });
        var lifecycle = new BackendLifecycle(h.Device, h.Block);
        using var cts = new CancellationTokenSource();
        Task run = lifecycle.RunAsync(cts.Token);

        await WaitForStateAsync(h, XenbusState.InitWait);
        Assert.Equal("256", await h.ReadBackendAsync("feature-max-indirect-segments"));
        Assert.Equal("4", await h.ReadBackendAsync("max-ring-page-order"));
        Assert.Equal("2", await h.ReadBackendAsync("multi-queue-max-queues"));

        var front = TestBlkfront.Create(h.Guest, BlkifAbi.X86_64, order: 1, queueCount: 2);
        await front.WriteKeysAsync(h.Store, BlockHarness.Path.ExpectedFrontend);
        await SetFrontendStateAsync(h, XenbusState.Initialised);
        await WaitForStateAsync(h, XenbusState.Connected);

        Assert.Equal("6144", await h.ReadBackendAsync("sectors"));
        Assert.Equal("512", await h.ReadBackendAsync("sector-size"));
        Assert.Equal("0", await h.ReadBackendAsync("info"));
        Assert.Equal("1", await h.ReadBackendAsync("feature-flush-cache"));
        Assert.Equal("1", await h.ReadBackendAsync("feature-barrier"));
        Assert.Equal("1", await h.ReadBackendAsync("feature-discard"));
        Assert.Equal("1", await h.ReadBackendAsync("discard-secure"));
        Assert.Equal("0", await h.ReadBackendAsync("discard-alignment"));
        Assert.NotNull(await h.ReadBackendAsync("discard-granularity"));
        Assert.NotNull(await h.ReadBackendAsync("physical-sector-size"));
        Assert.Equal(2, h.Block.Queues.Count);

        for (int q = 0; q < 2; q++)
        {
            var (frame, gref) = front.AllocateDataPage();
            front.PutRw(q, BlkifOp.Read, (ulong)q, 6143 - 7, [new BlkifRequestSegment { Gref = gref, LastSect = 7 }]);
            Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(q)).Status);
            Assert.Equal(h.ReadImage().AsSpan(6136 * 512, 4096).ToArray(), front.Page(frame).ToArray());
        }

        await SetFrontendStateAsync(h, XenbusState.Closing);
        await WaitForStateAsync(h, XenbusState.Closing);
        await SetFrontendStateAsync(h, XenbusState.Closed);
        await WaitForStateAsync(h, XenbusState.Closed);
        Assert.Empty(h.Block.Queues);

        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [Fact]
    public async Task ReadOnlyCdromAdvertisesItsInfoBitsAndNoDiscard()
    {
        await using var h = await BlockHarness.CreateAsync(1 << 20, backendKeys: new Dictionary<string, string?> { ["mode"] = "r", ["device-type"] = "cdrom" });
        await h.ConnectAsync();
        Assert.Equal(((int)(VDisk.ReadOnly | VDisk.CdRom)).ToString(System.Globalization.CultureInfo.InvariantCulture), await h.ReadBackendAsync("info"));
        Assert.Equal("0", await h.ReadBackendAsync("feature-discard"));
    }

    [Theory]
    [InlineData("protocol", "sparc-abi", "protocol")]
    [InlineData("ring-page-order", "5", "ring-page-order")]
    [InlineData("ring-page-order", "-1", "ring-page-order")]
    [InlineData("multi-queue-num-queues", "0", "multi-queue-num-queues")]
    [InlineData("multi-queue-num-queues", "5", "multi-queue-num-queues")]
    [InlineData("ring-ref", "12x", "ring-ref")]
    [InlineData("ring-ref", "999", "ring")]
    [InlineData("event-channel", null, "event-channel")]
    [InlineData("event-channel", "4000", "event-channel")]
    public async Task BadFrontendValueRefusesTheConnectionThroughTheErrorNode(string key, string? value, string mentioned)
    {
        await using var h = await BlockHarness.CreateAsync(1 << 20);
        var lifecycle = new BackendLifecycle(h.Device, h.Block);
        using var cts = new CancellationTokenSource();
        Task run = lifecycle.RunAsync(cts.Token);
        await WaitForStateAsync(h, XenbusState.InitWait);

        var front = TestBlkfront.Create(h.Guest, BlkifAbi.X86_64, order: 0, queueCount: 1);
        await front.WriteKeysAsync(h.Store, BlockHarness.Path.ExpectedFrontend);
        string path = BlockHarness.Path.ExpectedFrontend + "/" + key;
        if (value is null) await h.Store.RemoveAsync(path);
        else await h.Store.WriteAsync(path, value);
        await SetFrontendStateAsync(h, XenbusState.Initialised);

        await WaitForStateAsync(h, XenbusState.Closing);
        string? error = await h.Store.TryReadStringAsync(h.Device.ErrorPath);
        Assert.NotNull(error);
        Assert.Contains(mentioned, error, StringComparison.Ordinal);
        Assert.Empty(h.Block.Queues);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [Theory]
    [InlineData("params", "qcow2:/some/image")]
    [InlineData("params", "relative/path.img")]
    [InlineData("params", "/does/not/exist.img")]
    [InlineData("mode", "x")]
    [InlineData("device-type", "floppy")]
    [InlineData("discard-enable", "yes")]
    public async Task BadToolstackValueRefusesTheDeviceBeforeInitWait(string key, string value)
    {
        await using var h = await BlockHarness.CreateAsync(1 << 20, backendKeys: new Dictionary<string, string?> { [key] = value });
        var lifecycle = new BackendLifecycle(h.Device, h.Block);
        using var cts = new CancellationTokenSource();
        Task run = lifecycle.RunAsync(cts.Token);
        await WaitForStateAsync(h, XenbusState.Closing);
        Assert.NotNull(await h.Store.TryReadStringAsync(h.Device.ErrorPath));
        Assert.Null(await h.ReadBackendAsync("feature-max-indirect-segments"));
        await cts.CancelAsync();
        try { await run; } catch (OperationCanceledException) { }
    }

    [Theory]
    [InlineData("aio:")]
    [InlineData("raw:")]
    [InlineData("")]
    public async Task ParamsAcceptsABarePathOrARawFormatPrefix(string prefix)
    {
        string dir = Directory.CreateTempSubdirectory("blkp-").FullName;
        string image = Path.Combine(dir, "d.img");
        await File.WriteAllBytesAsync(image, new byte[8192]);
        await using var h = await BlockHarness.CreateAsync(0, backendKeys: new Dictionary<string, string?> { ["params"] = prefix + image }, imagePath: image);
        await h.ConnectAsync();
        Assert.Equal("16", await h.ReadBackendAsync("sectors"));
    }

    [Fact]
    public async Task OnlineResizeRewritesSectorsAndTheConnectedState()
    {
        await using var h = await BlockHarness.CreateAsync(1 << 20);
        var front = await h.ConnectAsync();
        await h.Device.SwitchStateAsync(XenbusState.Connected);
        await using var watch = await h.Router.SubscribeAsync(BlockHarness.Path.Backend + "/state");
        await watch.WaitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token); // the initial event
        using (var f = File.OpenWrite(h.ImagePath)) f.SetLength(2 << 20);
        Assert.True(await h.Block.ResizeAsync());
        Assert.Equal("4096", await h.ReadBackendAsync("sectors"));
        await watch.WaitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
        Assert.Equal("4", await h.ReadBackendAsync("state"));

        // The new space is addressable at once; unchanged size is reported as such.
        var (_, gref) = front.AllocateDataPage();
        front.PutRw(0, BlkifOp.Write, 5, 4088, [new BlkifRequestSegment { Gref = gref, LastSect = 7 }]);
        Assert.Equal(BlkifRsp.Okay, (await front.RoundTripAsync(0)).Status);
        Assert.False(await h.Block.ResizeAsync());
    }
}
