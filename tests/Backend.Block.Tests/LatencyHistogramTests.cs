namespace XenBackends.Backend.Block.Tests;

/// <summary>The bucket edges and the sum that the service turns into a Prometheus histogram.</summary>
public sealed class LatencyHistogramTests
{
    [Theory]
    [InlineData(0L, 0)]
    [InlineData(1L, 1)]
    [InlineData(2L, 2)]
    [InlineData(3L, 2)]
    [InlineData(1000L, 10)]
    [InlineData(1024L, 11)]
    [InlineData(long.MaxValue, LatencyHistogram.BucketCount - 1)]
    public void A_value_falls_in_the_first_bucket_whose_exclusive_upper_bound_exceeds_it(long micros, int bucket)
    {
        Assert.Equal(bucket, LatencyHistogram.BucketOf(micros));
        Assert.True(micros < LatencyHistogram.UpperBoundMicroseconds(bucket) || bucket == LatencyHistogram.BucketCount - 1);
        if (bucket > 0)
            Assert.True(micros >= LatencyHistogram.UpperBoundMicroseconds(bucket - 1));
    }

    [Fact]
    public void The_sum_is_every_recorded_microsecond_and_the_buckets_count_each_once()
    {
        var h = new LatencyHistogram();
        foreach (long micros in new long[] { 0, 1, 3, 1000, 250_000 })
            h.RecordMicroseconds(micros);
        Assert.Equal(251_004, h.SumMicroseconds);
        Assert.Equal(5, h.Total);
        Assert.Equal(1, h[0]);
        Assert.Equal(1, h[1]);
        Assert.Equal(1, h[2]);
        Assert.Equal(1, h[10]);
        Assert.Equal(1, h[18]); // 2^17 <= 250000 < 2^18
    }
}
