using System.Globalization;
using XenBackends.Backend.Block;
using XenBackends.Service.Control;

namespace XenBackends.Service.Devices;

/// <summary>
/// The block backend's power-of-two microsecond histogram as a Prometheus-style one in seconds.
/// Bucket i holds latencies truncated to whole microseconds below 2^i, so every observation in it was
/// below 2^i µs: le = 2^i µs is a true upper bound, and cumulating the buckets in order gives
/// Prometheus's "observations &lt;= le". The count is the +Inf bucket of the same copy, so _count and
/// the buckets always agree even while queues keep recording.
/// </summary>
internal static class LatencyBuckets
{
    public static HistogramStatus ToStatus(LatencyHistogram histogram)
    {
        Span<long> counts = stackalloc long[LatencyHistogram.BucketCount];
        histogram.CopyTo(counts);
        var status = new HistogramStatus { Sum = histogram.SumMicroseconds / 1e6 };
        long cumulative = 0;
        for (int i = 0; i < LatencyHistogram.BucketCount; i++)
        {
            cumulative += counts[i];
            bool last = i == LatencyHistogram.BucketCount - 1;
            status.Buckets.Add(new HistogramBucket { Le = last ? "+Inf" : Seconds(LatencyHistogram.UpperBoundMicroseconds(i)), Count = cumulative });
        }
        status.Count = cumulative;
        return status;
    }

    // Every bound is a whole number of microseconds: six decimals are exact, and the text is stable across scrapes.
    private static string Seconds(long microseconds) =>
        (microseconds / 1e6).ToString("0.######", CultureInfo.InvariantCulture);
}
