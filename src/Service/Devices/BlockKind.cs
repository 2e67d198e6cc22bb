using XenBackends.Backend.Block;
using XenBackends.Service.Config;
using XenBackends.Service.Control;

namespace XenBackends.Service.Devices;

/// <summary>backend/vbd served by the user-space blkback, with Linux blkback's statistic names.</summary>
internal static class BlockKind
{
    public static DeviceKind Kind { get; } = new("vbd", Create, Counters, Histograms);

    private static BlockDevice Create(DeviceContext ctx) =>
        new(ctx.Grants, ctx.Host.OpenEventChannels, Options(ctx.Config, ctx.Qos), ctx.Log);

    /// <summary>Fresh options per disk: each gets its own QoS limiter (the limits are per disk).</summary>
    internal static BlockBackendOptions Options(ServiceConfig config, GuestQos qos)
    {
        ConfigValidator.TryParseEngine(config.IoEngine, out var engine);
        return new BlockBackendOptions
        {
            MaxQueues = config.Limits.MaxQueues,
            MaxRingPageOrder = config.Limits.MaxRingPageOrder,
            MaxIndirectSegments = config.Limits.MaxIndirectSegments,
            IoEngine = engine,
            PollTime = TimeSpan.FromMicroseconds(config.Limits.BlockPollMicroseconds),
            RateLimiter = IoRateLimiter.Create(qos.DiskIops, qos.DiskBytesPerSecond),
            // A worker restarted under a live guest serves again what its predecessor left unanswered.
            JournalDirectory = ServiceConfig.JournalDirectoryOf(config),
        };
    }

    /// <summary>Time of every request from being taken off the ring to its response (BlockQueue: Accept to Finish).</summary>
    private static Dictionary<string, HistogramStatus> Histograms(Xenbus.IBackendDevice device) =>
        new() { ["request_latency_seconds"] = LatencyBuckets.ToStatus(((BlockDevice)device).Statistics.Latency) };

    private static IReadOnlyDictionary<string, long> Counters(Xenbus.IBackendDevice device)
    {
        var s = ((BlockDevice)device).Statistics;
        return new Dictionary<string, long>
        {
            ["rd_req"] = s.ReadRequests,
            ["wr_req"] = s.WriteRequests,
            ["f_req"] = s.FlushRequests,
            ["ds_req"] = s.DiscardRequests,
            ["rd_sect"] = s.ReadSectors,
            ["wr_sect"] = s.WriteSectors,
            ["oo_req"] = s.OutOfResourceRequests,
            ["errors"] = s.ErrorResponses,
            ["io_errors"] = s.IoErrors,
            ["ring_faults"] = s.RingFaults,
            ["sleeps"] = s.Sleeps,
            ["poll_hits"] = s.PollHits,
        };
    }
}
