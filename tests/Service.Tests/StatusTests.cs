using System.Net.Http;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using XenBackends.Service.Cli;
using XenBackends.Service.Control;
using XenBackends.Service.Metrics;

namespace XenBackends.Service.Tests;

public sealed class StatusTests
{
    private static StatusSnapshot Sample() => new()
    {
        Host = "simulated",
        Kinds = ["vbd", "vif"],
        UptimeSeconds = 42,
        Guests =
        [
            new GuestStatus
            {
                Domid = 3, Name = "web\"1", Worker = "running", Pid = 1234, Restarts = 1, LastExit = "killed by signal 9",
                Devices =
                [
                    new DeviceStatus { Kind = "vif", DevId = 0, BackendState = "InitWait", FrontendState = "Initialising" },
                    new DeviceStatus
                    {
                        Kind = "vbd", DevId = 51712, BackendState = "Connected", FrontendState = "Connected", Counters = new() { ["wr_req"] = 7, ["rd_req"] = 10 },
                        Histograms = new()
                        {
                            ["request_latency_seconds"] = new HistogramStatus
                            {
                                Buckets = [new() { Le = "0.000001", Count = 0 }, new() { Le = "0.000512", Count = 12 }, new() { Le = "+Inf", Count = 17 }],
                                Sum = 0.0125,
                                Count = 17,
                            },
                        },
                    },
                ],
            },
            new GuestStatus { Domid = 4, Worker = "restarting", Restarts = 3, LastExit = "exit code 1" },
        ],
    };

    [Fact]
    public void The_table_lists_every_device_with_states_and_sorted_counters()
    {
        Assert.Equal(
            "host simulated, kinds vbd,vif, up 42s, 2 guest(s)\n" +
            "DOMID  NAME   WORKER      PID   RESTARTS  DEVICE     BACKEND    FRONTEND      COUNTERS\n" +
            "3      web\"1  running     1234  1         vbd/51712  Connected  Connected     rd_req=10 wr_req=7\n" +
            "3      web\"1  running     1234  1         vif/0      InitWait   Initialising\n" +
            "4      -      restarting  -     3         -          -          -             last exit: exit code 1\n",
            StatusTable.Render(Sample()));
    }

    [Fact]
    public async Task The_status_command_reads_the_control_socket_as_a_table_or_json()
    {
        string socket = Path.Combine(Directory.CreateTempSubdirectory("xb-ctl-").FullName, "run", "control.sock");
        await using var server = new ControlServer(socket, Sample, NullLogger.Instance);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));

        var table = new StringWriter();
        Assert.Equal(0, await StatusCommand.RunAsync(null, socket, json: false, table, TextWriter.Null, CancellationToken.None));
        Assert.Equal(StatusTable.Render(Sample()), table.ToString());

        var json = new StringWriter();
        Assert.Equal(0, await StatusCommand.RunAsync(null, socket, json: true, json, TextWriter.Null, CancellationToken.None));
        Assert.StartsWith("{\"host\":\"simulated\",\"kinds\":[\"vbd\",\"vif\"],\"uptimeSeconds\":42,\"guests\":[{\"domid\":3,\"name\":\"web\\u00221\"", json.ToString(), StringComparison.Ordinal);
        Assert.Contains("\"counters\":{\"wr_req\":7,\"rd_req\":10}", json.ToString(), StringComparison.Ordinal);
        using var doc = System.Text.Json.JsonDocument.Parse(json.ToString());
        var devices = doc.RootElement.GetProperty("guests")[0].GetProperty("devices");
        Assert.False(devices[0].TryGetProperty("histograms", out _), "a vif has no distribution, so no key");
        var latency = devices[1].GetProperty("histograms").GetProperty("request_latency_seconds");
        Assert.Equal(new[] { "0.000001", "0.000512", "+Inf" }, latency.GetProperty("buckets").EnumerateArray().Select(b => b.GetProperty("le").GetString() ?? "").ToArray());
        Assert.Equal(new[] { 0L, 12L, 17L }, latency.GetProperty("buckets").EnumerateArray().Select(b => b.GetProperty("count").GetInt64()).ToArray());
        Assert.Equal(0.0125, latency.GetProperty("sum").GetDouble());
        Assert.Equal(17, latency.GetProperty("count").GetInt64());
    }

    [Fact]
    public async Task Status_without_a_supervisor_says_so()
    {
        var error = new StringWriter();
        string socket = Path.Combine(Path.GetTempPath(), "xb-none-" + Guid.NewGuid().ToString("N"));
        Assert.Equal(1, await StatusCommand.RunAsync(null, socket, json: false, TextWriter.Null, error, CancellationToken.None));
        Assert.Contains($"no supervisor answers on {socket}", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Prometheus_text_has_one_family_per_counter_with_escaped_labels()
    {
        string text = PrometheusText.Render(Sample());
        Assert.Contains("# TYPE xen_backends_rd_req_total counter\nxen_backends_rd_req_total{domid=\"3\",guest=\"web\\\"1\",kind=\"vbd\",devid=\"51712\"} 10\n", text, StringComparison.Ordinal);
        Assert.Contains("xen_backends_device_connected{domid=\"3\",guest=\"web\\\"1\",kind=\"vif\",devid=\"0\"} 0\n", text, StringComparison.Ordinal);
        Assert.Contains("xen_backends_worker_restarts_total{domid=\"4\",guest=\"\"} 3\n", text, StringComparison.Ordinal);
        Assert.Contains("xen_backends_guests 2\n", text, StringComparison.Ordinal);
        Assert.Single(text.Split('\n'), l => l == "# TYPE xen_backends_wr_req_total counter");
    }

    [Fact]
    public void A_device_distribution_is_a_Prometheus_histogram_with_le_last_and_sum_and_count()
    {
        string text = PrometheusText.Render(Sample());
        const string labels = "domid=\"3\",guest=\"web\\\"1\",kind=\"vbd\",devid=\"51712\"";
        Assert.Contains(
            "# HELP xen_backends_request_latency_seconds Backend distribution request_latency_seconds.\n" +
            "# TYPE xen_backends_request_latency_seconds histogram\n" +
            $"xen_backends_request_latency_seconds_bucket{{{labels},le=\"0.000001\"}} 0\n" +
            $"xen_backends_request_latency_seconds_bucket{{{labels},le=\"0.000512\"}} 12\n" +
            $"xen_backends_request_latency_seconds_bucket{{{labels},le=\"+Inf\"}} 17\n" +
            $"xen_backends_request_latency_seconds_sum{{{labels}}} 0.0125\n" +
            $"xen_backends_request_latency_seconds_count{{{labels}}} 17\n", text, StringComparison.Ordinal);
        // The vif has no distribution: no histogram lines for it.
        Assert.DoesNotContain(text.Split('\n'), l => l.StartsWith("xen_backends_request_latency_seconds", StringComparison.Ordinal) && l.Contains("kind=\"vif\"", StringComparison.Ordinal));
        Assert.Single(text.Split('\n'), l => l == "# TYPE xen_backends_request_latency_seconds histogram");
    }

    [Fact]
    public async Task The_metrics_endpoint_serves_GET_metrics_on_loopback()
    {
        await using var server = new MetricsServer(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0), Sample, NullLogger.Instance);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var response = await http.GetAsync($"http://127.0.0.1:{server.EndPoint.Port}/metrics");
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType!.ToString());
        Assert.Equal(PrometheusText.Render(Sample()), await response.Content.ReadAsStringAsync());
        var missing = await http.GetAsync($"http://127.0.0.1:{server.EndPoint.Port}/other");
        Assert.Equal(System.Net.HttpStatusCode.NotFound, missing.StatusCode);
    }
}
