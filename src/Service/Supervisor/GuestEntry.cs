namespace XenBackends.Service.Supervisor;

/// <summary>The supervisor's record of one guest: its worker (if running), restart schedule and history.</summary>
internal sealed class GuestEntry(uint domid, RestartBackoff backoff)
{
    public uint Domid { get; } = domid;
    public RestartBackoff Backoff { get; } = backoff;
    public WorkerProcess? Process { get; set; }
    public DateTime? RestartAt { get; set; }
    public int Restarts { get; set; }
    public string? LastExit { get; set; }
    public bool Stopping { get; set; }
    public string? Name { get; set; }
}
