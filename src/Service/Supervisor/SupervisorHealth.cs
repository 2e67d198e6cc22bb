namespace XenBackends.Service.Supervisor;

/// <summary>When the supervisor's loop last completed a round; the systemd watchdog is only fed while this is recent.</summary>
public sealed class SupervisorHealth(TimeProvider time)
{
    private long _lastBeat = time.GetTimestamp();

    public void Beat() => Interlocked.Exchange(ref _lastBeat, time.GetTimestamp());

    public bool IsAlive(TimeSpan maxAge) => time.GetElapsedTime(Interlocked.Read(ref _lastBeat)) <= maxAge;
}
