namespace XenBackends.Service.Sim;

/// <summary>Request latencies as the guest sees them (submit to response), for the summary's percentiles.</summary>
internal sealed class LatencyRecorder
{
    private readonly Lock _lock = new();
    private readonly List<double> _microseconds = [];

    public void Add(TimeSpan elapsed)
    {
        lock (_lock) _microseconds.Add(elapsed.TotalMicroseconds);
    }

    /// <summary>"p50 120 µs, p99 900 µs, p99.9 2.1 ms" or null when nothing was recorded.</summary>
    public string? Describe()
    {
        double[] sorted;
        lock (_lock) sorted = [.. _microseconds];
        if (sorted.Length == 0) return null;
        Array.Sort(sorted);
        return string.Join(", ", new[] { (50.0, "p50"), (99.0, "p99"), (99.9, "p99.9") }
            .Select(p => $"{p.Item2} {Format(Percentile(sorted, p.Item1))}"));
    }

    private static double Percentile(double[] sorted, double p) =>
        sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Length) - 1, 0, sorted.Length - 1)];

    private static string Format(double us) => us >= 1000
        ? (us / 1000).ToString("0.0#", System.Globalization.CultureInfo.InvariantCulture) + " ms"
        : us.ToString("0", System.Globalization.CultureInfo.InvariantCulture) + " µs";
}
