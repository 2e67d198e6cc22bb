using System.Globalization;
using System.Text;

namespace XenBackends.Service.Control;

/// <summary>Renders a status snapshot as the fixed-width table `xen-backends status` prints.</summary>
public static class StatusTable
{
    private static readonly string[] Header = ["DOMID", "NAME", "WORKER", "PID", "RESTARTS", "DEVICE", "BACKEND", "FRONTEND", "COUNTERS"];

    public static string Render(StatusSnapshot s)
    {
        var rows = new List<string[]> { Header };
        foreach (var g in s.Guests)
        {
            string[] guest = [g.Domid.ToString(CultureInfo.InvariantCulture), g.Name ?? "-", g.Worker, g.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-", g.Restarts.ToString(CultureInfo.InvariantCulture)];
            if (g.Devices.Count == 0)
                rows.Add([.. guest, "-", "-", "-", g.LastExit is null ? "" : "last exit: " + g.LastExit]);
            foreach (var d in g.Devices.OrderBy(d => d.Kind, StringComparer.Ordinal).ThenBy(d => d.DevId))
            {
                string counters = string.Join(" ", d.Counters.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key}={c.Value}"));
                if (d.Error is not null) counters = (counters + " error: " + d.Error).Trim();
                rows.Add([.. guest, $"{d.Kind}/{d.DevId}", Dash(d.BackendState), Dash(d.FrontendState), counters]);
            }
        }
        int[] widths = Enumerable.Range(0, Header.Length).Select(i => rows.Max(r => r[i].Length)).ToArray();
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"host {s.Host}, kinds {string.Join(",", s.Kinds)}, up {s.UptimeSeconds}s, {s.Guests.Count} guest(s)\n");
        foreach (var row in rows)
            text.Append(string.Join("  ", row.Select((cell, i) => i == row.Length - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd()).Append('\n');
        return text.ToString();
    }

    private static string Dash(string s) => s.Length == 0 ? "-" : s;
}
