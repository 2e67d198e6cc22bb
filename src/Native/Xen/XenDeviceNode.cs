namespace XenBackends.Native.Xen;

/// <summary>The check made before a library opens its device, so "not a dom0" reads as such.</summary>
internal static class XenDeviceNode
{
    /// <summary>Throws <see cref="XenUnavailableException"/> when <paramref name="path"/> does not exist.</summary>
    public static void RequirePresent(string path, string kernelModule)
    {
        // Path.Exists, not File.Exists: a device node is neither a regular file nor a directory to us.
        if (!Path.Exists(path))
            throw new XenUnavailableException(
                $"{path} not found: not running in a Xen dom0 (is the {kernelModule} module loaded?)");
    }
}
