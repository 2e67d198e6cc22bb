using XenBackends.Native;

namespace XenBackends.Backend.Net;

/// <summary>What a <see cref="NetDevice"/> needs from its host process.</summary>
public sealed record NetDeviceOptions
{
    public required IGrantMapper Grants { get; init; }

    /// <summary>Opens a fresh event-channel handle; each queue gets its own so its poll fd reports only its ports.</summary>
    public required Func<IEventChannels> OpenEventChannels { get; init; }

    /// <summary>multi-queue-max-queues (Linux: min(8, online CPUs)).</summary>
    public int MaxQueues { get; init; } = 1;

    /// <summary>
    /// Wait for the hotplug script's hotplug-status=connected before Connected (libxl writes "" to
    /// force this). Only a host without a toolstack script turns it off.
    /// </summary>
    public bool WaitForHotplugStatus { get; init; } = true;

    /// <summary>The dom0-side MAC of the tap; fe:ff:ff:ff:ff:ff as Linux netback, so a bridge never adopts it.</summary>
    public byte[] TapMac { get; init; } = [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

    /// <summary>
    /// The guest-TX rate for a vif whose backend has no <c>rate</c> key (the service's configured
    /// default): bytes per window and the window in microseconds, with the key's credit rules. A key the
    /// toolstack wrote always wins, whatever its value; null here means unlimited.
    /// </summary>
    public (ulong Bytes, ulong Microseconds)? DefaultRate { get; init; }

    public NetQueueOptions Queue { get; init; } = new();

    /// <summary>
    /// How often the device tries to re-create its tap after it was deleted under it (`ip link del`).
    /// Each try is a few ioctls; between tries nothing runs for the tap.
    /// </summary>
    public TimeSpan TapRetryInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Called with the tap's name after the device re-created a deleted tap (down, on no bridge): the
    /// host redoes what the hotplug script did for the old one (the toolstack ran it once and will
    /// not run it again). Null: the error node tells the administrator to run the script.
    /// </summary>
    public Func<string, CancellationToken, Task>? TapRecreated { get; init; }

    public Action<string>? Log { get; init; }
}
