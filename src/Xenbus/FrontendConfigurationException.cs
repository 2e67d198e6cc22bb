namespace XenBackends.Xenbus;

/// <summary>
/// A frontend (guest-written) or toolstack value the backend cannot accept. The lifecycle reports it
/// through the xenbus error node and refuses to connect, as Linux's xenbus_dev_fatal does.
/// </summary>
public sealed class FrontendConfigurationException(string path, string? value, string reason)
    : Exception(value is null ? $"{path}: {reason}" : $"{path} = \"{Truncate(value)}\": {reason}")
{
    public string Path { get; } = path;

    public string? Value { get; } = value;

    private static string Truncate(string value) => value.Length <= 64 ? value : value[..64] + "...";
}
