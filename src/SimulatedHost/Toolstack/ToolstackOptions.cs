namespace XenBackends.SimulatedHost.Toolstack;

/// <summary>How long the simulated toolstack waits; defaults are libxl's (libxl_internal.h).</summary>
public sealed class ToolstackOptions
{
    /// <summary>LIBXL_INIT_TIMEOUT: backend to reach InitWait after a device is added.</summary>
    public TimeSpan InitTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>LIBXL_HOTPLUG_TIMEOUT: one hotplug script run.</summary>
    public TimeSpan HotplugTimeout { get; init; } = TimeSpan.FromSeconds(40);

    /// <summary>LIBXL_DESTROY_TIMEOUT: backend to reach Closed after detach or destroy.</summary>
    public TimeSpan DestroyTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>What "running the hotplug script" does; <see cref="DefaultHotplugScripts"/> when null.</summary>
    public IHotplugScripts? HotplugScripts { get; init; }

    /// <summary>Where the per-domain xenstored sockets go; a fresh temp directory when null.</summary>
    public string? SocketDirectory { get; init; }
}
