using System.Globalization;
using System.Text;
using XenBackends.Service.Control;

namespace XenBackends.Service.Metrics;

/// <summary>
/// The Prometheus text exposition format (version 0.0.4) of a status snapshot: one counter family per
/// backend counter name (xen_backends_&lt;name&gt;_total), labelled by guest and device, plus worker restarts,
/// and one histogram family per device distribution (xen_backends_&lt;name&gt;: _bucket with cumulative
/// counts per le, _sum, _count; the unit is part of the name, e.g. request_latency_seconds).
/// </summary>
public static class PrometheusText
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    public static string Render(StatusSnapshot s)
    {
        var text = new StringBuilder();
        text.Append("# HELP xen_backends_guests Guests with a worker.\n# TYPE xen_backends_guests gauge\n");
        text.Append(CultureInfo.InvariantCulture, $"xen_backends_guests {s.Guests.Count}\n");
        text.Append("# HELP xen_backends_worker_restarts_total Worker restarts after a crash, per guest.\n# TYPE xen_backends_worker_restarts_total counter\n");
        foreach (var g in s.Guests)
            text.Append(CultureInfo.InvariantCulture, $"xen_backends_worker_restarts_total{{domid=\"{g.Domid}\",guest=\"{Escape(g.Name ?? "")}\"}} {g.Restarts}\n");
        text.Append("# HELP xen_backends_device_connected 1 when the device's backend is Connected.\n# TYPE xen_backends_device_connected gauge\n");
        foreach (var (g, d) in Devices(s))
            text.Append(CultureInfo.InvariantCulture, $"xen_backends_device_connected{Labels(g, d)} {(d.BackendState == "Connected" ? 1 : 0)}\n");
        foreach (var family in Devices(s).SelectMany(x => x.Device.Counters.Keys).Distinct().Order(StringComparer.Ordinal))
        {
            string name = "xen_backends_" + Sanitize(family) + "_total";
            text.Append(CultureInfo.InvariantCulture, $"# HELP {name} Backend counter {family}.\n# TYPE {name} counter\n");
            foreach (var (g, d) in Devices(s))
                if (d.Counters.TryGetValue(family, out long value))
                    text.Append(CultureInfo.InvariantCulture, $"{name}{Labels(g, d)} {value}\n");
        }
        foreach (var family in Devices(s).SelectMany(x => x.Device.Histograms?.Keys ?? Enumerable.Empty<string>()).Distinct().Order(StringComparer.Ordinal))
        {
            string name = "xen_backends_" + Sanitize(family);
            text.Append(CultureInfo.InvariantCulture, $"# HELP {name} Backend distribution {family}.\n# TYPE {name} histogram\n");
            foreach (var (g, d) in Devices(s))
            {
                if (d.Histograms is null || !d.Histograms.TryGetValue(family, out var h)) continue;
                string labels = Labels(g, d);
                // le goes last among the device's labels, as client libraries write it.
                string prefix = labels[..^1] + ",le=\"";
                foreach (var b in h.Buckets)
                    text.Append(CultureInfo.InvariantCulture, $"{name}_bucket{prefix}{Escape(b.Le)}\"}} {b.Count}\n");
                text.Append(CultureInfo.InvariantCulture, $"{name}_sum{labels} {h.Sum:R}\n");
                text.Append(CultureInfo.InvariantCulture, $"{name}_count{labels} {h.Count}\n");
            }
        }
        return text.ToString();
    }

    private static IEnumerable<(GuestStatus Guest, DeviceStatus Device)> Devices(StatusSnapshot s) =>
        s.Guests.SelectMany(g => g.Devices.Select(d => (g, d)));

    private static string Labels(GuestStatus g, DeviceStatus d) =>
        string.Create(CultureInfo.InvariantCulture, $"{{domid=\"{g.Domid}\",guest=\"{Escape(g.Name ?? "")}\",kind=\"{Escape(d.Kind)}\",devid=\"{d.DevId}\"}}");

    // Guest names come from xenstore, which the guest's owner chose: escape what the format requires.
    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private static string Sanitize(string name)
    {
        var s = new StringBuilder(name.Length);
        foreach (char c in name) s.Append(char.IsAsciiLetterOrDigit(c) ? char.ToLowerInvariant(c) : '_');
        return s.ToString();
    }
}
