using XenBackends.Service.Config;

namespace XenBackends.Service.Supervisor;

/// <summary>
/// Delay before restarting a crashed worker: doubles with each consecutive crash up to the maximum, and
/// starts over once a worker has stayed up for StableAfterMs, so a guest that crashes its worker in a
/// loop costs little while a one-off crash is repaired at once.
/// </summary>
public sealed class RestartBackoff(RestartConfig config)
{
    private int _consecutive;

    public int Consecutive => _consecutive;

    /// <summary>Records a crash of a worker that ran for <paramref name="uptime"/>; returns how long to wait.</summary>
    public TimeSpan NextDelay(TimeSpan uptime)
    {
        if (uptime >= TimeSpan.FromMilliseconds(config.StableAfterMs)) _consecutive = 0;
        double ms = config.InitialDelayMs * Math.Pow(2, Math.Min(_consecutive, 30));
        _consecutive++;
        return TimeSpan.FromMilliseconds(Math.Min(ms, config.MaxDelayMs));
    }
}
