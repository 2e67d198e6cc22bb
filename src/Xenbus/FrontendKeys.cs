using System.Globalization;

namespace XenBackends.Xenbus;

/// <summary>Validated reads of guest-written keys: anything out of range is a <see cref="FrontendConfigurationException"/>.</summary>
public static class FrontendKeys
{
    /// <summary>
    /// An unsigned decimal in [min, max]; <paramref name="fallback"/> when the key is absent (null
    /// fallback: the key is mandatory). Leading zeros, signs, spaces and hex are refused: Linux's
    /// xenbus_scanf would accept some of them, but no real frontend writes them.
    /// </summary>
    public static async Task<uint> ReadUInt32Async(XenbusDevice device, string key, uint min, uint max, uint? fallback, CancellationToken cancellationToken = default)
    {
        string? value = await device.ReadFrontendAsync(key, cancellationToken).ConfigureAwait(false);
        return ParseUInt32(device.FrontendPath + "/" + key, value, min, max, fallback);
    }

    public static uint ParseUInt32(string path, string? value, uint min, uint max, uint? fallback)
    {
        if (value is null)
            return fallback ?? throw new FrontendConfigurationException(path, null, "missing");
        if (!DevicePath.TryId(value, out uint n))
            throw new FrontendConfigurationException(path, value, "not an unsigned decimal number");
        if (n < min || n > max)
            throw new FrontendConfigurationException(path, value, $"must be between {min} and {max}");
        return n;
    }

    /// <summary>A 0/1 feature flag; absent means <paramref name="fallback"/>.</summary>
    public static async Task<bool> ReadFlagAsync(XenbusDevice device, string key, bool fallback, CancellationToken cancellationToken = default)
    {
        string? value = await device.ReadFrontendAsync(key, cancellationToken).ConfigureAwait(false);
        return value switch
        {
            null => fallback,
            "0" => false,
            "1" => true,
            _ => throw new FrontendConfigurationException(device.FrontendPath + "/" + key, value, "must be 0 or 1"),
        };
    }

    public static string FormatUInt(ulong value) => value.ToString(CultureInfo.InvariantCulture);
}
