using System.Diagnostics;

namespace XenBackends.Backend.Block;

/// <summary>
/// Request latency in fixed power-of-two buckets of microseconds: bucket 0 counts [0, 1) µs, bucket
/// i counts [2^(i-1), 2^i) µs, the last bucket everything from about 1.1 hours up. Fixed buckets make
/// recording one interlocked increment with no allocation and no lock, so the worker never waits
/// for a reader; a reader sees each bucket exactly but the set only approximately at one instant.
/// The sum of all recorded latencies (whole microseconds each, as bucketed) is kept beside the buckets
/// so an average and a Prometheus histogram's _sum can be derived.
/// </summary>
public sealed class LatencyHistogram
{
    public const int BucketCount = 33;
    private readonly long[] _buckets = new long[BucketCount];
    private long _sumMicroseconds;

    /// <summary>Upper bound (exclusive) of bucket <paramref name="index"/> in microseconds; long.MaxValue for the last.</summary>
    public static long UpperBoundMicroseconds(int index) =>
        index >= BucketCount - 1 ? long.MaxValue : 1L << index;

    public static int BucketOf(long microseconds) =>
        microseconds <= 0 ? 0 : Math.Min(BucketCount - 1, 64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)microseconds));

    /// <summary>Records an interval in <see cref="Stopwatch"/> ticks.</summary>
    internal void RecordTicks(long elapsed)
    {
        long micros = elapsed <= 0 ? 0 : elapsed * 1_000_000 / Stopwatch.Frequency;
        RecordMicroseconds(micros);
    }

    internal void RecordMicroseconds(long microseconds)
    {
        Interlocked.Increment(ref _buckets[BucketOf(microseconds)]);
        Interlocked.Add(ref _sumMicroseconds, Math.Max(0, microseconds));
    }

    /// <summary>Sum of every recorded latency in microseconds (each truncated to whole microseconds).</summary>
    public long SumMicroseconds => Volatile.Read(ref _sumMicroseconds);

    public long this[int index] => Volatile.Read(ref _buckets[index]);

    public long Total
    {
        get
        {
            long sum = 0;
            for (int i = 0; i < BucketCount; i++) sum += Volatile.Read(ref _buckets[i]);
            return sum;
        }
    }

    /// <summary>Copies the buckets into <paramref name="destination"/> (at least <see cref="BucketCount"/> long).</summary>
    public void CopyTo(Span<long> destination)
    {
        for (int i = 0; i < BucketCount; i++) destination[i] = Volatile.Read(ref _buckets[i]);
    }
}
