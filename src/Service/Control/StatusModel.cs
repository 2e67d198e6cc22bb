using System.Text.Json.Serialization;

namespace XenBackends.Service.Control;

/// <summary>One device as a worker sees it: xenbus states as xenstore has them and the backend's counters.</summary>
public sealed class DeviceStatus
{
    public string Kind { get; set; } = "";
    public uint DevId { get; set; }
    public string BackendState { get; set; } = "";
    public string FrontendState { get; set; } = "";
    public string? Error { get; set; }
    public Dictionary<string, long> Counters { get; set; } = [];

    /// <summary>Distributions by name, the unit in the name (request_latency_seconds); null when the kind has none.</summary>
    public Dictionary<string, HistogramStatus>? Histograms { get; set; }
}

/// <summary>
/// A distribution in Prometheus histogram terms: cumulative counts of observations at most each upper
/// bound (<c>le</c>, as Prometheus writes it, the last "+Inf"), their sum, their count.
/// </summary>
public sealed class HistogramStatus
{
    public List<HistogramBucket> Buckets { get; set; } = [];
    public double Sum { get; set; }
    public long Count { get; set; }
}

public sealed class HistogramBucket
{
    public string Le { get; set; } = "";
    public long Count { get; set; }
}

/// <summary>What a worker prints on stdout, one JSON object a line, about once a second.</summary>
public sealed class WorkerReport
{
    public uint Domid { get; set; }
    public string? Name { get; set; }
    public List<DeviceStatus> Devices { get; set; } = [];
}

/// <summary>One guest as the supervisor sees it.</summary>
public sealed class GuestStatus
{
    public uint Domid { get; set; }
    public string? Name { get; set; }
    /// <summary>"running", "restarting", "stopping".</summary>
    public string Worker { get; set; } = "";
    public int? Pid { get; set; }
    public int Restarts { get; set; }
    public string? LastExit { get; set; }
    public List<DeviceStatus> Devices { get; set; } = [];
}

/// <summary>The answer to the control socket's "status" request.</summary>
public sealed class StatusSnapshot
{
    public string Host { get; set; } = "";
    public List<string> Kinds { get; set; } = [];
    public long UptimeSeconds { get; set; }
    public List<GuestStatus> Guests { get; set; } = [];
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(WorkerReport))]
[JsonSerializable(typeof(StatusSnapshot))]
internal sealed partial class StatusJsonContext : JsonSerializerContext;
