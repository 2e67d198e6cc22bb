using XenBackends.Rings.Blkif;

namespace XenBackends.Backend.Block.Tests;

/// <summary>A clock that moves only when the test says so.</summary>
internal sealed class ManualClock : TimeProvider
{
    private long _ticks = 1_000_000;

    public override long TimestampFrequency => 1_000_000; // microseconds

    public override long GetTimestamp() => Interlocked.Read(ref _ticks);

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, (long)by.TotalMicroseconds);
}

/// <summary>Disk QoS: the token buckets on an injected clock, and the block queue holding requests on the ring while over the rate.</summary>
public sealed class IoRateLimiterTests
{
    /// <summary>Simulates <paramref name="seconds"/> in 1 ms steps, admitting as many requests of <paramref name="bytes"/> as allowed.</summary>
    private static long Admitted(IoRateLimiter limiter, ManualClock clock, int seconds, long bytes)
    {
        long admitted = 0;
        for (int ms = 0; ms < seconds * 1000; ms++)
        {
            while (limiter.TryAdmit(out _))
            {
                limiter.Charge(bytes);
                admitted++;
            }
            clock.Advance(TimeSpan.FromMilliseconds(1));
        }
        return admitted;
    }

    [Fact]
    public void Iops_over_ten_seconds_is_the_rate_plus_one_burst_window()
    {
        var clock = new ManualClock();
        long n = Admitted(new IoRateLimiter(iops: 100, bytesPerSecond: 0, clock), clock, 10, 4096);
        // 100/s for 10 s, plus the 10 tokens (100 ms) the bucket starts with; the last refill may be mid-token.
        Assert.InRange(n, 1009, 1010);
    }

    [Fact]
    public void Bytes_per_second_over_ten_seconds_holds_for_requests_larger_than_the_bucket()
    {
        var clock = new ManualClock();
        long n = Admitted(new IoRateLimiter(iops: 0, bytesPerSecond: 1 << 20, clock), clock, 10, 64 << 10);
        // 16 requests of 64 KiB a second; the bucket (102.4 KiB) admits two at once to start with.
        Assert.InRange(n, 160, 162);
    }

    [Fact]
    public void With_both_limits_the_stricter_one_decides()
    {
        var clock = new ManualClock();
        Assert.InRange(Admitted(new IoRateLimiter(iops: 1000, bytesPerSecond: 40960, clock), clock, 10, 4096), 100, 102);
        clock = new ManualClock();
        Assert.InRange(Admitted(new IoRateLimiter(iops: 10, bytesPerSecond: 1 << 30, clock), clock, 10, 4096), 100, 101);
    }

    [Fact]
    public void Retry_after_is_exactly_when_the_next_request_may_go_and_idle_time_saves_at_most_a_burst_window()
    {
        var clock = new ManualClock();
        var limiter = new IoRateLimiter(iops: 10, bytesPerSecond: 0, clock);
        Assert.True(limiter.TryAdmit(out _));
        limiter.Charge(4096);
        Assert.False(limiter.TryAdmit(out var retry));
        Assert.Equal(TimeSpan.FromMilliseconds(1), retry); // the bucket is at exactly 0: one tick more
        limiter.Charge(0); // a request taken anyway (another queue) puts the bucket 1 token in debt
        Assert.False(limiter.TryAdmit(out retry));
        Assert.Equal(TimeSpan.FromMilliseconds(101), retry);
        clock.Advance(TimeSpan.FromMilliseconds(100));
        Assert.False(limiter.TryAdmit(out _));
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(limiter.TryAdmit(out _));

        clock.Advance(TimeSpan.FromHours(1));
        int burst = 0;
        while (limiter.TryAdmit(out _)) { limiter.Charge(0); burst++; }
        Assert.Equal(1, burst); // 10 IOPS x 100 ms
    }

    [Fact]
    public void No_limits_means_no_limiter()
    {
        Assert.Null(IoRateLimiter.Create(0, 0));
        Assert.Equal(5, IoRateLimiter.Create(5, 0)!.Iops);
        Assert.Throws<ArgumentOutOfRangeException>(() => new IoRateLimiter(-1, 0));
    }

    [Fact]
    public async Task The_queue_leaves_requests_over_the_rate_on_the_ring_until_the_clock_allows_them()
    {
        var clock = new ManualClock();
        var limiter = new IoRateLimiter(iops: 10, bytesPerSecond: 0, clock); // a burst of one request
        await using var h = await BlockHarness.CreateAsync(1 << 20, new BlockBackendOptions { RateLimiter = limiter, MaxQueues = 1 });
        var front = await h.ConnectAsync(BlkifAbi.X86_64);
        var (_, gref) = front.AllocateDataPage();
        for (ulong id = 1; id <= 4; id++)
            front.PutRw(0, BlkifOp.Read, id, 0, [new BlkifRequestSegment { Gref = gref, FirstSect = 0, LastSect = 7 }]);
        front.Push(0);
        front.Kick(0);

        var first = await front.WaitForResponsesAsync(0, 1);
        Assert.Equal(1ul, Assert.Single(first).Id);
        // The clock has not moved: nothing else can have been admitted, however long the queue retried.
        Assert.Equal(1, h.Block.Statistics.ReadRequests);

        clock.Advance(TimeSpan.FromMilliseconds(100)); // one token
        Assert.Equal(2ul, Assert.Single(await front.WaitForResponsesAsync(0, 1)).Id);
        Assert.Equal(2, h.Block.Statistics.ReadRequests);

        clock.Advance(TimeSpan.FromSeconds(10)); // idle time is capped at one burst window: one more, not all
        Assert.Equal(3ul, Assert.Single(await front.WaitForResponsesAsync(0, 1)).Id);
        Assert.Equal(3, h.Block.Statistics.ReadRequests);

        clock.Advance(TimeSpan.FromMilliseconds(100));
        var last = await front.WaitForResponsesAsync(0, 1);
        Assert.Equal(new TestBlkfront.Response(4, BlkifOp.Read, BlkifRsp.Okay), Assert.Single(last));
    }
}
