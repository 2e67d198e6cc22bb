using System.Globalization;

namespace XenBackends.SimulatedHost.Toolstack;

/// <summary>
/// The devid of a virtual disk name, as xen-vbd-interface(7) defines it and libxl computes it
/// (<c>libxl__device_disk_dev_number</c>): xvda is 51712, xvdb 51728, xvda1 51713, xvdq (disk 16) 268439552.
/// </summary>
public static class VirtualDiskNumber
{
    public static int Parse(string vdev) =>
        TryParse(vdev, out int devid) ? devid : throw new ArgumentException($"'{vdev}' is not a virtual disk name (xvdX, dNpM, hdX, sdX or a number)", nameof(vdev));

    public static bool TryParse(string vdev, out int devid)
    {
        ArgumentNullException.ThrowIfNull(vdev);
        devid = -1;
        if (TryDiskPartition(vdev, out int disk, out int part) || TryLetters(vdev, "xvd", (1 << 20) - 1, 255, out disk, out part))
        {
            // Small numbers keep the Linux-compatible 202 major; the rest need the extended form.
            devid = disk <= 15 && part <= 15 ? (202 << 8) | (disk << 4) | part : (1 << 28) | (disk << 8) | part;
            return true;
        }
        if (vdev.Length > 0 && char.IsAsciiDigit(vdev[0]) && int.TryParse(vdev, NumberStyles.None, CultureInfo.InvariantCulture, out int raw))
        {
            devid = raw;
            return true;
        }
        if (TryLetters(vdev, "hd", 3, 63, out disk, out part))
        {
            devid = ((disk < 2 ? 3 : 22) << 8) | ((disk & 1) << 6) | part;
            return true;
        }
        if (TryLetters(vdev, "sd", 15, 15, out disk, out part))
        {
            devid = (8 << 8) | (disk << 4) | part;
            return true;
        }
        return false;
    }

    // "d<disk>p<partition>"
    private static bool TryDiskPartition(string vdev, out int disk, out int part)
    {
        disk = part = 0;
        if (vdev.Length < 4 || vdev[0] != 'd') return false;
        int p = vdev.IndexOf('p', 1);
        return p > 1
            && int.TryParse(vdev.AsSpan(1, p - 1), NumberStyles.None, CultureInfo.InvariantCulture, out disk)
            && int.TryParse(vdev.AsSpan(p + 1), NumberStyles.None, CultureInfo.InvariantCulture, out part)
            && disk < (1 << 20) && part < 256;
    }

    // Letters count in bijective base 26 (a..z, aa..), then an optional partition number without leading zero.
    private static bool TryLetters(string vdev, string prefix, int maxDisk, int maxPart, out int disk, out int part)
    {
        disk = -1;
        part = 0;
        if (!vdev.StartsWith(prefix, StringComparison.Ordinal)) return false;
        int i = prefix.Length;
        while (i < vdev.Length && vdev[i] is >= 'a' and <= 'z')
        {
            disk = (disk + 1) * 26 + (vdev[i] - 'a');
            if (disk > maxDisk) return false;
            i++;
        }
        if (disk < 0) return false;
        if (i == vdev.Length) return true;
        if (vdev[i] == '0') return false;
        return int.TryParse(vdev.AsSpan(i), NumberStyles.None, CultureInfo.InvariantCulture, out part) && part <= maxPart;
    }
}
