namespace XenBackends.SimulatedHost.Toolstack;

/// <summary>One <c>vif=[...]</c> entry of an xl config for a PV guest (type forced to vif).</summary>
public sealed record NicSpec
{
    /// <summary>Null: libxl picks 00:16:3e plus three random bytes; here they come from domid and devid, so tests are repeatable.</summary>
    public string? Mac { get; init; }

    /// <summary>Null: the next free devid (one past the highest in /libxl/&lt;domid&gt;/device/vif).</summary>
    public int? DevId { get; init; }

    public string Bridge { get; init; } = "xenbr0";

    public string Script { get; init; } = "vif-bridge";

    /// <summary>Written to the backend only when not 1500, always to the frontend (read-only to the guest).</summary>
    public int Mtu { get; init; } = 1500;

    public string? Ip { get; init; }

    public string? GatewayDev { get; init; }

    public string? VifName { get; init; }

    /// <summary>xl's <c>rate=</c> already converted: bytes per interval and the interval in microseconds.</summary>
    public (ulong BytesPerInterval, uint IntervalMicroseconds)? Rate { get; init; }

    public bool Trusted { get; init; } = true;

    public ushort BackendDomid { get; init; }
}
