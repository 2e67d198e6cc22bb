using Microsoft.Extensions.Hosting;
using XenBackends.Service.Supervisor;

namespace XenBackends.Service.Systemd;

/// <summary>
/// Sends WATCHDOG=1 at half of WatchdogSec, but only while the supervisor's loop is alive: a
/// supervisor stuck on a dead xenstored stops petting and systemd restarts it.
/// </summary>
internal sealed class WatchdogService(SdNotifier notifier, SupervisorHealth health, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = SdNotifier.WatchdogInterval(
            Environment.GetEnvironmentVariable("WATCHDOG_USEC"), Environment.GetEnvironmentVariable("WATCHDOG_PID"), Environment.ProcessId);
        if (interval is null || !notifier.Enabled) return;
        using var timer = new PeriodicTimer(interval.Value, time);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            if (health.IsAlive(interval.Value * 2))
                notifier.Notify("WATCHDOG=1");
    }
}
