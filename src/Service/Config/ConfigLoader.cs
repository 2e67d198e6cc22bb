using System.Text.Json;

namespace XenBackends.Service.Config;

/// <summary>Reads and validates a configuration; every failure is a <see cref="ConfigException"/> naming the key or line.</summary>
public static class ConfigLoader
{
    public const string DefaultPath = "/etc/xen-backends/config.json";

    /// <summary>
    /// Loads <paramref name="path"/>. A missing file at the default path means "all defaults" (a fresh
    /// install works without one); a missing file the administrator named explicitly is an error.
    /// </summary>
    public static ServiceConfig Load(string? path)
    {
        string file = path ?? DefaultPath;
        string text;
        try
        {
            text = File.ReadAllText(file);
        }
        catch (Exception e) when (path is null && e is FileNotFoundException or DirectoryNotFoundException)
        {
            return Validate(new ServiceConfig(), file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException(file, [$"cannot read the file: {e.Message}"]);
        }
        return Parse(text, file);
    }

    public static ServiceConfig Parse(string json, string source)
    {
        ServiceConfig? config;
        try
        {
            config = JsonSerializer.Deserialize(json, ConfigJsonContext.Default.ServiceConfig);
        }
        catch (JsonException e)
        {
            throw new ConfigException(source, [Describe(e)]);
        }
        if (config is null)
            throw new ConfigException(source, ["the file holds null; expected a JSON object"]);
        return Validate(config, source);
    }

    public static string Serialize(ServiceConfig config) => JsonSerializer.Serialize(config, ConfigJsonContext.Default.ServiceConfig);

    private static ServiceConfig Validate(ServiceConfig config, string source)
    {
        var errors = ConfigValidator.Check(config);
        if (errors.Count > 0) throw new ConfigException(source, errors);
        return config;
    }

    // System.Text.Json's messages name CLR types; say where in the file and what was wrong instead.
    private static string Describe(JsonException e)
    {
        string where = e.LineNumber is { } line ? $"line {line + 1}, column {(e.BytePositionInLine ?? 0) + 1}" : "input";
        string key = string.IsNullOrEmpty(e.Path) || e.Path == "$" ? "" : $" at {e.Path.TrimStart('$', '.')}";
        string message = e.Message;
        if (message.Contains("could not be mapped", StringComparison.Ordinal))
            message = "unknown key (check its spelling; keys are camelCase)";
        else if (message.Contains("could not be converted", StringComparison.Ordinal))
            message = "wrong type of value for this key";
        else
        {
            int cut = message.IndexOf(" Path:", StringComparison.Ordinal);
            if (cut > 0) message = message[..cut];
        }
        return $"{where}{key}: {message}";
    }
}
