namespace XenBackends.Backend.Block;

/// <summary>
/// QoS for one disk: token buckets for requests per second and bytes per second, shared by all of
/// the disk's queues (each on its own thread, hence the lock). A queue asks <see cref="TryAdmit"/>
/// before taking a request off the ring and charges it with <see cref="Charge"/> once it knows its
/// size; a bucket may go into debt by that one request, which the refill then pays back, so the
/// long-run rate is exact without peeking at requests still on the ring. Requests left on the ring
/// are the backpressure: the guest sees a full ring, as with a slow disk. Buckets hold at most
/// <see cref="BurstWindow"/> worth of tokens, so an idle disk cannot save up a large burst.
/// </summary>
public sealed class IoRateLimiter
{
    public static readonly TimeSpan BurstWindow = TimeSpan.FromMilliseconds(100);

    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly Bucket _requests;
    private readonly Bucket _bytes;
    private long _last;

    /// <param name="iops">Requests per second; 0 is unlimited.</param>
    /// <param name="bytesPerSecond">Bytes per second; 0 is unlimited.</param>
    /// <param name="time">The clock (tests inject one); the system's when null.</param>
    public IoRateLimiter(long iops, long bytesPerSecond, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(iops);
        ArgumentOutOfRangeException.ThrowIfNegative(bytesPerSecond);
        _time = time ?? TimeProvider.System;
        _requests = new Bucket(iops);
        _bytes = new Bucket(bytesPerSecond);
        _last = _time.GetTimestamp();
    }

    public long Iops => (long)_requests.Rate;

    public long BytesPerSecond => (long)_bytes.Rate;

    /// <summary>A limiter for the configured values, or null when both are 0 (unlimited: no hook cost at all).</summary>
    public static IoRateLimiter? Create(long iops, long bytesPerSecond, TimeProvider? time = null) =>
        iops == 0 && bytesPerSecond == 0 ? null : new IoRateLimiter(iops, bytesPerSecond, time);

    /// <summary>True when one more request may be taken now; otherwise how long until one may.</summary>
    public bool TryAdmit(out TimeSpan retryAfter)
    {
        lock (_lock)
        {
            Refill();
            double wait = Math.Max(_requests.SecondsUntilPositive(), _bytes.SecondsUntilPositive());
            // Whole milliseconds, rounded up: the queue sleeps in epoll, which counts in milliseconds.
            retryAfter = wait <= 0 ? TimeSpan.Zero : TimeSpan.FromMilliseconds(Math.Max(1, Math.Ceiling(wait * 1000)));
            return wait <= 0;
        }
    }

    /// <summary>Charges one admitted request moving <paramref name="bytes"/> (0 for a flush).</summary>
    public void Charge(long bytes)
    {
        lock (_lock)
        {
            _requests.Take(1);
            _bytes.Take(bytes);
        }
    }

    private void Refill()
    {
        long now = _time.GetTimestamp();
        double seconds = (now - _last) / (double)_time.TimestampFrequency;
        _last = now;
        if (seconds <= 0) return;
        _requests.Add(seconds);
        _bytes.Add(seconds);
    }

    private sealed class Bucket
    {
        private readonly double _capacity;
        private double _tokens;

        // Any positive balance admits a request, so even a request larger than the whole capacity
        // (a 1 MiB write at 1 MB/s) goes; it just leaves a debt the refill has to pay first.
        public Bucket(long rate)
        {
            Rate = rate;
            _capacity = rate * BurstWindow.TotalSeconds;
            _tokens = _capacity;
        }

        public double Rate { get; }

        public void Add(double seconds)
        {
            if (Rate > 0) _tokens = Math.Min(_capacity, _tokens + seconds * Rate);
        }

        public void Take(double amount)
        {
            if (Rate > 0) _tokens -= amount;
        }

        /// <summary>0 when a request may go (tokens left, or unlimited); else the time until there are.</summary>
        public double SecondsUntilPositive() => Rate <= 0 || _tokens > 0 ? 0 : (-_tokens / Rate) + (1 / Rate / 1e6);
    }
}
