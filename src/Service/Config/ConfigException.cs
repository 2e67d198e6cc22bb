namespace XenBackends.Service.Config;

/// <summary>A configuration that cannot be used; <see cref="Errors"/> lists every problem, each naming its key.</summary>
public sealed class ConfigException(string source, IReadOnlyList<string> errors)
    : Exception($"{source}: invalid configuration:" + string.Concat(errors.Select(e => Environment.NewLine + "  - " + e)))
{
    public string ConfigSource { get; } = source;

    public IReadOnlyList<string> Errors { get; } = errors;
}
