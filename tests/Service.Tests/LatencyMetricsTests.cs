using System.Globalization;
using System.Net;
using System.Net.Http;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using XenBackends.Rings.Blkif;
using XenBackends.Service.Cli;
using XenBackends.Service.Control;
using XenBackends.Service.Metrics;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;

namespace XenBackends.Service.Tests;

/// <summary>
/// The block backend's latency histogram, from the exec'd worker through the supervisor to
/// `status --json` and GET /metrics: present for a vbd, well-formed, and moving with the guest's I/O.
/// </summary>
public sealed class LatencyMetricsTests
{
    private const string Family = "xen_backends_request_latency_seconds";

    private sealed record Histogram(string[] Le, long[] Cumulative, double Sum, long Count);

    [Fact]
    public async Task A_vbds_request_latency_histogram_reaches_status_json_and_metrics_and_counts_the_guests_io()
    {
        await using var sim = await ToolstackHost.CreateAsync();
        await using var harness = await SupervisorHarness.StartAsync(sim.Config("vbd"), sim.Spec, SimHost.Worker, sim.Dir);
        var guest = await sim.CreateGuestAsync(29, "timed");
        var disk = await sim.Toolstack.AddDiskAsync(29, new DiskSpec("xvda", sim.CreateImage(8 << 20)) { Script = "block-xen-backends" });
        await using var blk = await SimulatedBlkfront.AttachAsync(guest, disk.DevId, new BlkfrontOptions { MaxQueues = 1 });
        await harness.StepAsync(() => blk.WaitConnectedAsync(TimeSpan.FromSeconds(30)));
        string socket = Path.Combine(sim.Dir, "ctl", "control.sock");
        await using var control = new ControlServer(socket, harness.Supervisor.Snapshot, NullLogger.Instance);
        await using var metrics = new MetricsServer(new IPEndPoint(IPAddress.Loopback, 0), harness.Supervisor.Snapshot, NullLogger.Instance);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };

        var before = await Eventually.ValueAsync(() => FromStatusJsonAsync(socket), "the connected vbd's histogram in status --json");
        AssertWellFormed(before);
        const int ios = 50;
        var data = new byte[8192];
        for (int i = 0; i < ios; i++)
            Assert.Equal(BlkifRsp.Okay, await blk.WriteAsync((ulong)i * 16, data));

        // The worker reports once a second: wait for a report that includes our writes.
        var after = await Eventually.ValueAsync(async () => await FromStatusJsonAsync(socket) is { } h && h.Count >= before.Count + ios ? h : null, $"{ios} more requests counted in status --json");
        AssertWellFormed(after);
        Assert.True(after.Sum > before.Sum, $"the latency sum moved ({before.Sum} -> {after.Sum})");
        // Every bucket's cumulative count is at least what it was: histograms only grow.
        Assert.All(after.Cumulative.Zip(before.Cumulative), p => Assert.True(p.First >= p.Second));

        string text = await http.GetStringAsync($"http://127.0.0.1:{metrics.EndPoint.Port}/metrics");
        var scraped = FromPrometheus(text, "domid=\"29\",guest=\"timed\",kind=\"vbd\"");
        AssertWellFormed(scraped);
        Assert.True(scraped.Count >= before.Count + ios, $"/metrics _count {scraped.Count} counts the {ios} writes");
        Assert.Equal(after.Le, scraped.Le);
        Assert.Single(text.Split('\n'), l => l == $"# TYPE {Family} histogram");
    }

    private static void AssertWellFormed(Histogram h)
    {
        Assert.Equal("+Inf", h.Le[^1]);
        double[] bounds = h.Le[..^1].Select(le => double.Parse(le, CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(bounds.Order().ToArray(), bounds);
        Assert.Equal(bounds.Length, bounds.Distinct().Count());
        for (int i = 1; i < h.Cumulative.Length; i++)
            Assert.True(h.Cumulative[i] >= h.Cumulative[i - 1], $"bucket le={h.Le[i]} is cumulative");
        Assert.Equal(h.Count, h.Cumulative[^1]);
        Assert.True(h.Sum >= 0);
    }

    private static async Task<Histogram?> FromStatusJsonAsync(string socket)
    {
        var output = new StringWriter();
        Assert.Equal(0, await StatusCommand.RunAsync(null, socket, json: true, output, TextWriter.Null, CancellationToken.None));
        using var doc = JsonDocument.Parse(output.ToString());
        foreach (var g in doc.RootElement.GetProperty("guests").EnumerateArray())
            foreach (var d in g.GetProperty("devices").EnumerateArray())
                if (d.GetProperty("kind").GetString() == "vbd" && d.TryGetProperty("histograms", out var hs))
                {
                    var h = hs.GetProperty("request_latency_seconds");
                    var buckets = h.GetProperty("buckets").EnumerateArray().ToArray();
                    return new Histogram(
                        [.. buckets.Select(b => b.GetProperty("le").GetString() ?? "")],
                        [.. buckets.Select(b => b.GetProperty("count").GetInt64())],
                        h.GetProperty("sum").GetDouble(),
                        h.GetProperty("count").GetInt64());
                }
        return null;
    }

    /// <summary>The family's lines for one device, as a scraper would read them.</summary>
    private static Histogram FromPrometheus(string text, string labelsPrefix)
    {
        var le = new List<string>();
        var counts = new List<long>();
        double? sum = null;
        long? count = null;
        foreach (string line in text.Split('\n'))
        {
            if (!line.StartsWith(Family, StringComparison.Ordinal) || !line.Contains("{" + labelsPrefix, StringComparison.Ordinal)) continue;
            string value = line[(line.LastIndexOf(' ') + 1)..];
            if (line.StartsWith(Family + "_bucket{", StringComparison.Ordinal))
            {
                int at = line.IndexOf(",le=\"", StringComparison.Ordinal);
                Assert.True(at > 0, $"a bucket line carries le: {line}");
                le.Add(line[(at + 5)..line.IndexOf('"', at + 5)]);
                counts.Add(long.Parse(value, CultureInfo.InvariantCulture));
            }
            else if (line.StartsWith(Family + "_sum{", StringComparison.Ordinal))
                sum = double.Parse(value, CultureInfo.InvariantCulture);
            else if (line.StartsWith(Family + "_count{", StringComparison.Ordinal))
                count = long.Parse(value, CultureInfo.InvariantCulture);
            else
                Assert.Fail($"unexpected line in the histogram family: {line}");
        }
        Assert.NotEmpty(le);
        return new Histogram([.. le], [.. counts], sum ?? throw new Xunit.Sdk.XunitException("no _sum line"), count ?? throw new Xunit.Sdk.XunitException("no _count line"));
    }
}
