using System.Net;
using XenBackends.Native.IO;

namespace XenBackends.Service.Config;

/// <summary>Semantic checks, each error naming the key as written in the file and the accepted range.</summary>
public static class ConfigValidator
{
    public static IReadOnlyList<string> Check(ServiceConfig c)
    {
        var errors = new List<string>();
        if (c.Kinds is null || c.Kinds.Count == 0)
            errors.Add("kinds: must list at least one backend kind (e.g. [\"vbd\", \"vif\"])");
        else
        {
            foreach (string kind in c.Kinds)
            {
                if (!Devices.DeviceKinds.IsKnown(kind))
                    errors.Add($"kinds: \"{kind}\" is not a kind this build serves (known: {string.Join(", ", Devices.DeviceKinds.KnownNames)})");
            }
            foreach (var dup in c.Kinds.GroupBy(k => k).Where(g => g.Count() > 1))
                errors.Add($"kinds: \"{dup.Key}\" is listed twice");
        }
        if (!TryParseEngine(c.IoEngine, out _))
            errors.Add($"ioEngine: \"{c.IoEngine}\" is not one of auto, io_uring, threads, inline");
        if (c.Limits is null) errors.Add("limits: must be an object");
        else
        {
            Range(errors, "limits.maxQueues", c.Limits.MaxQueues, 1, 64);
            Range(errors, "limits.maxRingPageOrder", c.Limits.MaxRingPageOrder, 0, 4);
            Range(errors, "limits.maxIndirectSegments", c.Limits.MaxIndirectSegments, 11, 4096);
            Range(errors, "limits.blockPollMicroseconds", c.Limits.BlockPollMicroseconds, 0, 1000);
            Range(errors, "limits.netRxCoalesceMicroseconds", c.Limits.NetRxCoalesceMicroseconds, 0, 1000);
        }
        if (c.Qos?.Defaults is null || c.Qos.Guests is null) errors.Add("qos: must have defaults and guests objects");
        else
        {
            CheckQos(errors, "qos.defaults", c.Qos.Defaults);
            foreach (var (name, qos) in c.Qos.Guests)
            {
                if (string.IsNullOrWhiteSpace(name)) errors.Add("qos.guests: a guest name is empty");
                if (qos is null) errors.Add($"qos.guests.{name}: must be an object");
                else CheckQos(errors, $"qos.guests.{name}", qos);
            }
        }
        if (c.Metrics is null) errors.Add("metrics: must be an object");
        else if (c.Metrics.Enabled && !TryParseLoopback(c.Metrics.Listen, out _, out string? why))
            errors.Add($"metrics.listen: \"{c.Metrics.Listen}\" {why}");
        if (string.IsNullOrWhiteSpace(c.ControlSocket) || !c.ControlSocket.StartsWith('/'))
            errors.Add($"controlSocket: \"{c.ControlSocket}\" must be an absolute path");
        else if (System.Text.Encoding.UTF8.GetByteCount(c.ControlSocket) > 107)
            errors.Add("controlSocket: longer than a unix socket path may be (107 bytes)");
        if (c.JournalDirectory is { } journal && !journal.StartsWith('/'))
            errors.Add($"journalDirectory: \"{journal}\" must be an absolute path (on tmpfs, e.g. /run/xen-backends/journal)");
        if (c.Restart is null) errors.Add("restart: must be an object");
        else
        {
            Range(errors, "restart.initialDelayMs", c.Restart.InitialDelayMs, 10, 600_000);
            Range(errors, "restart.maxDelayMs", c.Restart.MaxDelayMs, 10, 3_600_000);
            Range(errors, "restart.stableAfterMs", c.Restart.StableAfterMs, 100, 86_400_000);
            if (c.Restart.MaxDelayMs < c.Restart.InitialDelayMs)
                errors.Add("restart.maxDelayMs: must not be below restart.initialDelayMs");
        }
        return errors;
    }

    public static bool TryParseEngine(string? value, out IoEngineKind kind)
    {
        kind = value switch { "auto" => IoEngineKind.Auto, "io_uring" => IoEngineKind.IoUring, "threads" => IoEngineKind.Threads, "inline" => IoEngineKind.Inline, _ => (IoEngineKind)(-1) };
        return (int)kind >= 0;
    }

    /// <summary>Metrics carry guest names and traffic figures: they are only ever served on loopback.</summary>
    public static bool TryParseLoopback(string? value, out IPEndPoint endPoint, out string? why)
    {
        endPoint = new IPEndPoint(IPAddress.Loopback, 0);
        if (!IPEndPoint.TryParse(value ?? "", out var parsed) || parsed.Port == 0)
        {
            why = "is not host:port with a numeric address and a port (e.g. 127.0.0.1:9465)";
            return false;
        }
        if (!IPAddress.IsLoopback(parsed.Address))
        {
            why = "is not a loopback address; metrics are only served on 127.0.0.1 or [::1]";
            return false;
        }
        endPoint = parsed;
        why = null;
        return true;
    }

    private static void CheckQos(List<string> errors, string key, GuestQos q)
    {
        NonNegative(errors, key + ".diskIops", q.DiskIops);
        NonNegative(errors, key + ".diskBytesPerSecond", q.DiskBytesPerSecond);
        NonNegative(errors, key + ".vifBytesPerSecond", q.VifBytesPerSecond);
    }

    private static void NonNegative(List<string> errors, string key, long value)
    {
        if (value < 0) errors.Add($"{key}: must be 0 (unlimited) or positive (got {value})");
    }

    private static void Range(List<string> errors, string key, int value, int min, int max)
    {
        if (value < min || value > max) errors.Add($"{key}: must be {min}..{max} (got {value})");
    }
}
