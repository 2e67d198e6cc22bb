using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.Xenbus;

namespace XenBackends.SimulatedHost.Tests.Guest;

public sealed class BlkfrontTests
{
    private const ushort Domid = 7;
    private static readonly TimeSpan Bound = SimulatedHostHarness.Bound;

    private static async Task<(SimulatedHostHarness H, TestBlkback Back, SimulatedBlkfront Front)> ConnectAsync(TestBlkbackConfig? config = null, BlkfrontOptions? options = null)
    {
        var h = await SimulatedHostHarness.StartAsync();
        var guest = await h.Toolstack.CreateDomainAsync(new DomainSpec(Domid, "blk-guest"));
        var backTask = TestBlkback.StartAsync(h, Domid, 51712, config);
        var disk = await h.Toolstack.AddDiskAsync(Domid, new DiskSpec("xvda", "/img") { Script = "/usr/local/bin/our-hotplug" });
        var back = await backTask;
        var front = await SimulatedBlkfront.AttachAsync(guest, disk.DevId, options);
        await front.WaitConnectedAsync(Bound);
        return (h, back, front);
    }

    [Fact]
    public async Task Single_queue_single_page_writes_exactly_the_keys_linux_blkfront_writes()
    {
        var (h, back, front) = await ConnectAsync(new TestBlkbackConfig { MaxQueues = null, MaxRingPageOrder = 0 });
        await using (h)
        await using (back)
        await using (front)
        {
            Assert.Equal(XenbusState.Initialised, back.FrontendStateAtConnect);
            var keys = back.FrontendKeysAtConnect;
            Assert.Equal(
                ["backend", "backend-id", "device-type", "event-channel", "feature-persistent", "protocol", "ring-ref", "state", "trusted", "virtual-device"],
                keys.Keys.ToArray());
            Assert.Equal("x86_64-abi", keys["protocol"]);
            Assert.Equal("1", keys["feature-persistent"]);
            Assert.Equal("3", keys["state"]);
            Assert.Equal([XenbusState.Initialised, XenbusState.Connected], front.StateHistory);
            Assert.Equal(0u, front.RingPageOrder);
            Assert.Equal(1, front.NumQueues);
        }
    }

    [Fact]
    public async Task Multi_page_multi_queue_rings_use_min_of_both_ends_and_per_queue_keys()
    {
        var (h, back, front) = await ConnectAsync(
            new TestBlkbackConfig { MaxRingPageOrder = 2, MaxQueues = 8 },
            new BlkfrontOptions { MaxRingPageOrder = 3, MaxQueues = 3 });
        await using (h)
        await using (back)
        await using (front)
        {
            var keys = back.FrontendKeysAtConnect;
            Assert.Equal("2", keys["ring-page-order"]);
            Assert.Equal("3", keys["multi-queue-num-queues"]);
            for (int q = 0; q < 3; q++)
            {
                Assert.Equal(
                    [$"queue-{q}/event-channel", $"queue-{q}/ring-ref0", $"queue-{q}/ring-ref1", $"queue-{q}/ring-ref2", $"queue-{q}/ring-ref3"],
                    keys.Keys.Where(k => k.StartsWith($"queue-{q}/", StringComparison.Ordinal)).ToArray());
            }
            Assert.DoesNotContain("ring-ref", keys.Keys);
            Assert.DoesNotContain("event-channel", keys.Keys);

            // 4 pages of 112-byte slots: 128 entries per queue, all usable at once on every queue.
            var data = Pattern(4096, 1);
            var writes = Enumerable.Range(0, 3 * 40).Select(i => front.WriteAsync((ulong)i * 8, data, queue: i % 3)).ToArray();
            Assert.All(await Task.WhenAll(writes), s => Assert.Equal(BlkifRsp.Okay, s));
            Assert.Equal([0, 1, 2], back.Requests.Select(r => r.Queue).Distinct().Order().ToArray());
        }
    }

    [Theory]
    [InlineData(BlkifAbi.X86_64)]
    [InlineData(BlkifAbi.X86_32)]
    public async Task Data_written_reads_back_through_either_abi_with_many_requests_in_flight(BlkifAbi abi)
    {
        var (h, back, front) = await ConnectAsync(options: new BlkfrontOptions { Abi = abi });
        await using (h)
        await using (back)
        await using (front)
        {
            Assert.Equal(abi, back.Abi);
            Assert.Equal(abi == BlkifAbi.X86_32 ? "x86_32-abi" : "x86_64-abi", back.FrontendKeysAtConnect["protocol"]);
            var writes = Enumerable.Range(0, 64).Select(i => front.WriteAsync((ulong)i * 16, Pattern(8192, i))).ToArray();
            Assert.All(await Task.WhenAll(writes), s => Assert.Equal(BlkifRsp.Okay, s));
            for (int i = 0; i < 64; i++)
            {
                var buffer = new byte[8192];
                Assert.Equal(BlkifRsp.Okay, await front.ReadAsync((ulong)i * 16, buffer));
                Assert.Equal(Pattern(8192, i), buffer);
            }
            Assert.Equal(Pattern(8192, 3), back.Disk.AsSpan(3 * 16 * 512, 8192).ToArray());
        }
    }

    [Fact]
    public async Task Large_requests_go_indirect_only_when_the_backend_offers_it()
    {
        var (h, back, front) = await ConnectAsync(new TestBlkbackConfig { MaxIndirectSegments = 256 }, new BlkfrontOptions { MaxIndirectSegments = 32 });
        await using (h)
        await using (back)
        await using (front)
        {
            Assert.Equal(32u, front.MaxIndirectSegments);
            var big = Pattern(32 * 4096, 9);
            Assert.Equal(BlkifRsp.Okay, await front.WriteAsync(64, big));
            Assert.Equal(BlkifRsp.Okay, await front.WriteAsync(0, Pattern(4096, 1)));
            var seen = back.Requests.ToArray();
            Assert.Equal(new SeenRequest(BlkifOp.Indirect, BlkifOp.Write, 64, 32, 0, 0, seen[0].Queue), seen[0]);
            Assert.Equal(BlkifOp.Write, seen[1].Operation);
            var read = new byte[big.Length];
            Assert.Equal(BlkifRsp.Okay, await front.ReadAsync(64, read));
            Assert.Equal(big, read);
        }

        var (h2, back2, front2) = await ConnectAsync(new TestBlkbackConfig { MaxIndirectSegments = null });
        await using (h2)
        await using (back2)
        await using (front2)
        {
            Assert.Equal(0u, front2.MaxIndirectSegments);
            await Assert.ThrowsAsync<ArgumentException>(() => front2.WriteAsync(0, new byte[12 * 4096]));
        }
    }

    [Fact]
    public async Task Flush_barrier_and_secure_discard_reach_the_backend_and_features_are_read()
    {
        var (h, back, front) = await ConnectAsync(new TestBlkbackConfig { FeaturePersistent = true });
        await using (h)
        await using (back)
        await using (front)
        {
            Assert.True(front.FeatureFlushCache);
            Assert.True(front.FeatureBarrier);
            Assert.True(front.FeatureDiscard);
            Assert.True(front.DiscardSecure);
            Assert.Equal(4096u, front.DiscardGranularity);
            Assert.True(front.Persistent);
            Assert.Equal(4096ul, front.Sectors);
            Assert.Equal(512u, front.SectorSize);
            Assert.Equal(4096u, front.PhysicalSectorSize);
            Assert.Equal(0u, front.Info);

            Assert.Equal(BlkifRsp.Okay, await front.WriteAsync(8, Pattern(4096, 5)));
            Assert.Equal(BlkifRsp.Okay, await front.FlushAsync());
            Assert.Equal(BlkifRsp.Okay, await front.BarrierAsync(16, Pattern(512, 6)));
            Assert.Equal(BlkifRsp.Okay, await front.DiscardAsync(8, 8, secure: true));
            var seen = back.Requests.ToArray();
            Assert.Equal([BlkifOp.Write, BlkifOp.FlushDiskCache, BlkifOp.WriteBarrier, BlkifOp.Discard], seen.Select(r => r.Operation).ToArray());
            // Linux blkfront's empty flush carries sector_number (sector_t)-1 (seen on real Xen).
            Assert.Equal(ulong.MaxValue, seen[1].Sector);
            Assert.Equal(0, seen[1].Segments);
            Assert.Equal(BlkifDiscardFlags.Secure, seen[3].DiscardFlag);
            Assert.Equal(8ul, seen[3].NrSectors);
            Assert.All(back.Disk.AsSpan(8 * 512, 4096).ToArray(), b => Assert.Equal(0, b));
        }
    }

    [Fact]
    public async Task A_connected_backend_rewriting_its_state_announces_a_resize()
    {
        var (h, back, front) = await ConnectAsync();
        await using (h)
        await using (back)
        await using (front)
        {
            await back.ResizeAsync(8192);
            await front.WaitUntilAsync(() => front.Sectors == 8192, Bound, "resize");
            Assert.Equal(1, front.ResizeCount);
            Assert.Equal(XenbusState.Connected, front.State);
        }
    }

    [Fact]
    public async Task Frontend_follows_a_closing_backend_to_closed_and_reconnects_from_initialising()
    {
        var (h, back, front) = await ConnectAsync();
        await using (h)
        await using (back)
        await using (front)
        {
            Assert.Equal(BlkifRsp.Okay, await front.WriteAsync(0, Pattern(4096, 2)));
            await back.CloseAsync();
            await front.WaitForStateAsync(XenbusState.Closed, Bound);

            await front.ReconnectAsync();
            await front.WaitConnectedAsync(Bound);
            Assert.Equal(2, back.Connects);
            Assert.Equal(
                [XenbusState.Initialised, XenbusState.Connected, XenbusState.Closed, XenbusState.Initialising, XenbusState.Initialised, XenbusState.Connected],
                front.StateHistory);
            var buffer = new byte[4096];
            Assert.Equal(BlkifRsp.Okay, await front.ReadAsync(0, buffer));
            Assert.Equal(Pattern(4096, 2), buffer);
        }
    }

    internal static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }
}
