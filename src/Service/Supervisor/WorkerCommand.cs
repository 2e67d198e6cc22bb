namespace XenBackends.Service.Supervisor;

/// <summary>
/// How to exec a worker: this very executable with the `worker` subcommand. Under `dotnet xen-backends.dll`
/// (development) the dll must be passed to the host again; the published NativeAOT binary runs itself.
/// </summary>
public sealed record WorkerCommand(string FileName, IReadOnlyList<string> PrefixArguments)
{
    public static WorkerCommand ForThisProcess()
    {
        string path = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell this executable's path to start workers");
        if (Path.GetFileNameWithoutExtension(path) == "dotnet")
        {
            string dll = Path.Combine(AppContext.BaseDirectory, "xen-backends.dll");
            return new WorkerCommand(path, [dll]);
        }
        return new WorkerCommand(path, []);
    }
}
