using XenBackends.Backend.Block;
using XenBackends.Service.Config;

namespace XenBackends.Service.Devices;

/// <summary>backend/vbd served by the user-space blkback, with Linux blkback's statistic names.</summary>
internal static class BlockKind
{
    public static DeviceKind Kind { get; } = new("vbd", Create, Counters);

    private static BlockDevice Create(DeviceContext ctx)
    {
        ConfigValidator.TryParseEngine(ctx.Config.IoEngine, out var engine);
        var options = new BlockBackendOptions
        {
            MaxQueues = ctx.Config.Limits.MaxQueues,
            MaxRingPageOrder = ctx.Config.Limits.MaxRingPageOrder,
            MaxIndirectSegments = ctx.Config.Limits.MaxIndirectSegments,
            IoEngine = engine,
        };
        return new BlockDevice(ctx.Grants, ctx.Host.OpenEventChannels, options, ctx.Log);
    }

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
            ["ring_faults"] = s.RingFaults,
        };
    }
}
