using System.Text.Json;
using System.Text.Json.Serialization;

namespace XenBackends.Service.Config;

/// <summary>
/// The whole of /etc/xen-backends/config.json. Every property has a default so an empty object is a
/// valid configuration; <see cref="ConfigValidator"/> decides what values are acceptable.
/// </summary>
public sealed class ServiceConfig
{
    /// <summary>Backend kinds served: directories under /local/domain/0/backend.</summary>
    public List<string> Kinds { get; set; } = ["vbd", "vif"];

    /// <summary>"auto", "io_uring", "threads" or "inline" (XenBackends.Native.IO.IoEngineKind; inline only for images in memory).</summary>
    public string IoEngine { get; set; } = "auto";

    /// <summary>
    /// Workers run under a seccomp deny list (Native.Linux.SyscallFilter) after dropping capabilities.
    /// It costs every system call the kernel's seccomp entry path, ~30 ns on the build VM; false turns
    /// it off, for a host where it is in the way (the rest of the privilege drop stays).
    /// </summary>
    public bool SyscallFilter { get; set; } = true;

    public LimitsConfig Limits { get; set; } = new();

    public QosConfig Qos { get; set; } = new();

    public MetricsConfig Metrics { get; set; } = new();

    /// <summary>Unix socket the status command talks to.</summary>
    public string ControlSocket { get; set; } = "/run/xen-backends/control.sock";

    public RestartConfig Restart { get; set; } = new();

    /// <summary>
    /// Where block queues keep their request journals (Rings.Blkif.BlkifJournal): on tmpfs, so they
    /// outlive a killed worker but not the host. Null: "journal" beside the control socket
    /// (/run/xen-backends/journal by default), which keeps each service instance's files its own.
    /// </summary>
    public string? JournalDirectory { get; set; }

    /// <summary>The journal directory in force (see <see cref="JournalDirectory"/>).</summary>
    public static string JournalDirectoryOf(ServiceConfig config) =>
        config.JournalDirectory ?? Path.Combine(Path.GetDirectoryName(config.ControlSocket) is { Length: > 0 } d ? d : "/run/xen-backends", "journal");
}

public sealed class LimitsConfig
{
    /// <summary>Largest multi-queue count offered to frontends (blkif and netif).</summary>
    public int MaxQueues { get; set; } = 4;

    /// <summary>Largest ring page order offered (max-ring-page-order); 2^order pages per ring.</summary>
    public int MaxRingPageOrder { get; set; } = 4;

    /// <summary>feature-max-indirect-segments offered to blkfront (11..4096; 256 gives 1 MiB requests).</summary>
    public int MaxIndirectSegments { get; set; } = 256;

    /// <summary>
    /// Longest adaptive poll of a block ring before its worker sleeps, 0..1000 us; 0 (default) never
    /// spins (Backend.Block.BlockBackendOptions.PollTime says what it buys).
    /// </summary>
    public int BlockPollMicroseconds { get; set; }

    /// <summary>
    /// Guest-RX interrupt coalescing of every vif queue, 0..1000 us (Backend.Net.NetQueueOptions.
    /// RxCoalesceTime). Default 20: only a stream of frames closer than that waits, by at most 20 us,
    /// and is served in batches with one guest interrupt each; a lone frame or a request/response
    /// exchange is served on arrival. 0 reads the tap on every arrival, as netback does.
    /// </summary>
    public int NetRxCoalesceMicroseconds { get; set; } = 20;
}

public sealed class QosConfig
{
    /// <summary>Applied to every guest without its own entry.</summary>
    public GuestQos Defaults { get; set; } = new();

    /// <summary>Per-guest overrides, keyed by the domain's name (/local/domain/N/name) as xl shows it.</summary>
    public Dictionary<string, GuestQos> Guests { get; set; } = [];
}

public sealed class GuestQos
{
    /// <summary>Per disk; 0 means unlimited.</summary>
    public long DiskIops { get; set; }

    /// <summary>Per disk, bytes per second; 0 means unlimited.</summary>
    public long DiskBytesPerSecond { get; set; }

    /// <summary>Per vif, bytes per second, used when the toolstack wrote no rate= key; 0 means unlimited.</summary>
    public long VifBytesPerSecond { get; set; }
}

public sealed class MetricsConfig
{
    public bool Enabled { get; set; } = true;

    /// <summary>host:port of the Prometheus endpoint; must be a loopback address.</summary>
    public string Listen { get; set; } = "127.0.0.1:9465";
}

public sealed class RestartConfig
{
    /// <summary>Delay before the first restart of a crashed worker; doubles per consecutive crash.</summary>
    public int InitialDelayMs { get; set; } = 500;

    public int MaxDelayMs { get; set; } = 30_000;

    /// <summary>A worker that stayed up this long is considered healthy again: the next crash starts from InitialDelayMs.</summary>
    public int StableAfterMs { get; set; } = 60_000;
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    ReadCommentHandling = JsonCommentHandling.Skip,
    AllowTrailingCommas = true,
    WriteIndented = true)]
[JsonSerializable(typeof(ServiceConfig))]
internal sealed partial class ConfigJsonContext : JsonSerializerContext;
