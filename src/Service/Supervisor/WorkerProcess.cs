using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using XenBackends.Service.Control;
using XenBackends.Service.Hosting;
using XenBackends.Service.Worker;

namespace XenBackends.Service.Supervisor;

/// <summary>
/// One exec'd worker: its latest report (stdout), its log (stderr, forwarded to the supervisor's log)
/// and its exit. Closing its stdin asks it to stop; killing is the fallback.
/// </summary>
internal sealed class WorkerProcess : IDisposable
{
    private readonly Process _process;
    private readonly ILogger _logger;
    private readonly Task _stdout;
    private readonly Task _stderr;
    private WorkerReport? _lastReport;

    private WorkerProcess(Process process, uint domid, ILogger logger, DateTime started)
    {
        _process = process;
        Domid = domid;
        _logger = logger;
        Started = started;
        Pid = process.Id;
        _stdout = Task.Run(ReadReportsAsync);
        _stderr = Task.Run(ForwardLogAsync);
        Exited = WaitAsync();
    }

    public uint Domid { get; }

    public int Pid { get; }

    public DateTime Started { get; }

    /// <summary>Completes with the exit description ("exit code 1", "killed by signal 9") once the process and its pipes are done.</summary>
    public Task<string> Exited { get; }

    public bool HasExited => Exited.IsCompleted;

    public WorkerReport? LastReport => Volatile.Read(ref _lastReport);

    public static WorkerProcess Start(WorkerCommand command, uint domid, HostSpec host, string configJson, ILogger logger)
    {
        var info = new ProcessStartInfo(command.FileName)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in command.PrefixArguments) info.ArgumentList.Add(a);
        info.ArgumentList.Add("worker");
        info.ArgumentList.Add("--domid");
        info.ArgumentList.Add(domid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach (string a in host.ToArguments()) info.ArgumentList.Add(a);
        info.Environment[WorkerOptions.ConfigVariable] = configJson;
        // Journald adds its own timestamps; the worker's lines are re-logged by the supervisor.
        info.Environment.Remove("NOTIFY_SOCKET");
        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {command.FileName}");
        return new WorkerProcess(process, domid, logger, DateTime.UtcNow);
    }

    private async Task ReadReportsAsync()
    {
        while (await _process.StandardOutput.ReadLineAsync().ConfigureAwait(false) is { } line)
        {
            try
            {
                if (JsonSerializer.Deserialize(line, StatusJsonContext.Default.WorkerReport) is { } report && report.Domid == Domid)
                    Volatile.Write(ref _lastReport, report);
            }
            catch (JsonException)
            {
                // A worker is as untrusted as the guest it serves: a garbled report is dropped, never fatal.
                _logger.LogWarning("worker for domain {Domid} (pid {Pid}) printed an unreadable report", Domid, Pid);
            }
        }
    }

    private async Task ForwardLogAsync()
    {
        while (await _process.StandardError.ReadLineAsync().ConfigureAwait(false) is { } line)
            _logger.LogInformation("domain {Domid} worker[{Pid}]: {Line}", Domid, Pid, line);
    }

    private async Task<string> WaitAsync()
    {
        await _process.WaitForExitAsync().ConfigureAwait(false);
        await Task.WhenAll(_stdout, _stderr).ConfigureAwait(false);
        int code = _process.ExitCode;
        // .NET reports death by signal N as 128+N.
        return code > 128 ? $"killed by signal {code - 128}" : $"exit code {code}";
    }

    /// <summary>Asks the worker to stop (stdin closed: it releases rings and exits); kills it if it has not within <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        try { _process.StandardInput.Close(); } catch (IOException) { }
        if (await Task.WhenAny(Exited, Task.Delay(grace)).ConfigureAwait(false) != Exited)
        {
            _logger.LogWarning("worker for domain {Domid} (pid {Pid}) did not stop within {Grace}; killing it", Domid, Pid, grace);
            Kill();
            await Exited.ConfigureAwait(false);
        }
    }

    public void Kill()
    {
        try { _process.Kill(); } catch (InvalidOperationException) { }
    }

    public void Dispose() => _process.Dispose();
}
