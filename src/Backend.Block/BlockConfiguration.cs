using XenBackends.Xenbus;

namespace XenBackends.Backend.Block;

/// <summary>
/// The toolstack's keys in the backend directory (libxl_disk.c), parsed strictly. These are written
/// by dom0, not the guest, but a typo must still refuse the device with a message, not crash.
/// </summary>
/// <param name="NullImageBytes">
/// Set for "null:[size]": a benchmark-only device with no image behind it (see <see cref="BlockImage"/>).
/// </param>
public sealed record BlockConfiguration(string Path, bool Writable, bool CdRom, bool DiscardEnabled, bool DirectIo, long? NullImageBytes = null)
{
    /// <summary>Size of a "null:" device when the parameter gives none.</summary>
    public const long DefaultNullImageBytes = 1L << 40;

    public static async Task<BlockConfiguration> ReadAsync(XenbusDevice device, CancellationToken cancellationToken)
    {
        string backend = device.BackendPath;
        string? rawParams = await device.ReadBackendAsync("params", cancellationToken).ConfigureAwait(false);
        string? mode = await device.ReadBackendAsync("mode", cancellationToken).ConfigureAwait(false);
        string? deviceType = await device.ReadBackendAsync("device-type", cancellationToken).ConfigureAwait(false);
        string? discard = await device.ReadBackendAsync("discard-enable", cancellationToken).ConfigureAwait(false);
        string? direct = await device.ReadBackendAsync("direct-io-safe", cancellationToken).ConfigureAwait(false);
        return Parse(backend, rawParams, mode, deviceType, discard, direct);
    }

    public static BlockConfiguration Parse(string backend, string? rawParams, string? mode, string? deviceType, string? discardEnable, string? directIoSafe)
    {
        long? nullBytes = null;
        string path;
        if (rawParams is not null && rawParams.StartsWith("null:", StringComparison.Ordinal))
        {
            nullBytes = ParseNullSize(backend + "/params", rawParams);
            path = rawParams;
        }
        else
        {
            path = ParsePath(backend + "/params", rawParams);
        }
        // libxl writes "w" or "r"; Linux blkback treats anything without 'w' as read-only, and so
        // do we for "r"/"ro", but an unknown word is refused rather than guessed.
        bool writable = mode switch
        {
            null or "w" or "rw" => true,
            "r" or "ro" => false,
            _ => throw new FrontendConfigurationException(backend + "/mode", mode, "must be r or w"),
        };
        bool cdrom = deviceType switch
        {
            null or "disk" => false,
            "cdrom" => true,
            _ => throw new FrontendConfigurationException(backend + "/device-type", deviceType, "must be disk or cdrom"),
        };
        // A CD-ROM is always read-only (QEMU's xen-cdrom, VDISK_CDROM|VDISK_READONLY).
        if (cdrom) writable = false;
        bool discard = ParseFlag(backend + "/discard-enable", discardEnable, fallback: true);
        bool directIo = ParseFlag(backend + "/direct-io-safe", directIoSafe, fallback: false);
        return new BlockConfiguration(path, writable, cdrom, discard && writable, directIo, nullBytes);
    }

    /// <summary>
    /// "null:" or "null:&lt;bytes&gt;[K|M|G|T]". It is spelled out in params on purpose: a null device
    /// silently loses every write, so it must never be what a typo or a missing file falls back to.
    /// </summary>
    private static long ParseNullSize(string key, string value)
    {
        ReadOnlySpan<char> size = value.AsSpan("null:".Length);
        if (size.IsEmpty)
            return DefaultNullImageBytes;
        int shift = char.ToUpperInvariant(size[^1]) switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, _ => 0 };
        if (shift != 0)
            size = size[..^1];
        if (!long.TryParse(size, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long number)
            || number <= 0 || number > (long.MaxValue >> 9 >> shift))
            throw new FrontendConfigurationException(key, value, "null: takes an optional positive size in bytes with an optional K/M/G/T suffix");
        long bytes = number << shift;
        if (bytes % 512 != 0)
            throw new FrontendConfigurationException(key, value, "the null device size must be a multiple of 512 bytes");
        return bytes;
    }

    /// <summary>
    /// "params" is a bare path for type=phy (the block script's input) and "&lt;format&gt;:&lt;path&gt;"
    /// for qdisk; only raw formats are served here, anything else is a clear refusal.
    /// </summary>
    private static string ParsePath(string key, string? value)
    {
        if (string.IsNullOrEmpty(value))
            throw new FrontendConfigurationException(key, value, "missing (no image to serve)");
        string path = value;
        if (!value.StartsWith('/'))
        {
            int colon = value.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
                throw new FrontendConfigurationException(key, value, "must be an absolute path or <format>:<absolute path>");
            string format = value[..colon];
            if (format is not ("raw" or "aio" or "file" or "phy"))
                throw new FrontendConfigurationException(key, value, $"image format \"{format}\" is not supported (raw only)");
            path = value[(colon + 1)..];
        }
        if (!path.StartsWith('/') || path.Contains('\0', StringComparison.Ordinal))
            throw new FrontendConfigurationException(key, value, "the image path must be absolute");
        return path;
    }

    private static bool ParseFlag(string key, string? value, bool fallback) => value switch
    {
        null => fallback,
        "0" => false,
        "1" => true,
        _ => throw new FrontendConfigurationException(key, value, "must be 0 or 1"),
    };
}
