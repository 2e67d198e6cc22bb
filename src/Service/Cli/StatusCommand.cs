using System.Text.Json;
using XenBackends.Service.Config;
using XenBackends.Service.Control;

namespace XenBackends.Service.Cli;

/// <summary>`status`: asks the running supervisor over its control socket.</summary>
internal static class StatusCommand
{
    public static async Task<int> RunAsync(string? configPath, string? socket, bool json, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        try
        {
            socket ??= ConfigLoader.Load(configPath).ControlSocket;
            var snapshot = await StatusClient.QueryAsync(socket, cancellationToken).ConfigureAwait(false);
            await output.WriteAsync(json
                ? JsonSerializer.Serialize(snapshot, StatusJsonContext.Default.StatusSnapshot) + "\n"
                : StatusTable.Render(snapshot)).ConfigureAwait(false);
            return 0;
        }
        catch (ConfigException e)
        {
            await error.WriteLineAsync(e.Message).ConfigureAwait(false);
            return ServeCommand.ExitBadConfig;
        }
        catch (IOException e)
        {
            await error.WriteLineAsync(e.Message).ConfigureAwait(false);
            return 1;
        }
    }
}
