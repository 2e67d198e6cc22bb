using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;

using XenBackends.Service.Config;
using XenBackends.Service.Hosting;
using XenBackends.Service.Supervisor;
using XenBackends.Service.Systemd;

namespace XenBackends.Service.Tests;

/// <summary>A supervisor in the test process (workers are real exec'd processes) with a fake NOTIFY_SOCKET.</summary>
internal sealed class SupervisorHarness : IAsyncDisposable
{
    private readonly Socket _notifySocket;

    private SupervisorHarness(Supervisor.Supervisor supervisor, Socket notifySocket, SdNotifier notifier, ListLogger log)
    {
        Log = log;
        Supervisor = supervisor;
        _notifySocket = notifySocket;
        Notifier = notifier;
    }

    public Supervisor.Supervisor Supervisor { get; }
    public SdNotifier Notifier { get; }

    public ListLogger Log { get; } = new();

    /// <summary>Runs a step; a failure carries the supervisor's and workers' log, the only view into the worker processes.</summary>
    public async Task StepAsync(Func<Task> step)
    {
        try
        {
            await step();
        }
        catch (Exception e) when (e is TimeoutException or Xunit.Sdk.XunitException)
        {
            throw new TimeoutException(e.Message + "\nlog:\n" + string.Join("\n", Log.Lines), e);
        }
    }

    public static async Task<SupervisorHarness> StartAsync(ServiceConfig config, HostSpec host, WorkerCommand command, string dir)
    {
        string notifyPath = Path.Combine(dir, "notify");
        var notifySocket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        notifySocket.Bind(new UnixDomainSocketEndPoint(notifyPath));
        var notifier = new SdNotifier(notifyPath);
        var log = new ListLogger();
        var supervisor = new Supervisor.Supervisor(config, host, command, log, notifier, new SupervisorHealth(TimeProvider.System), TimeProvider.System);
        var harness = new SupervisorHarness(supervisor, notifySocket, notifier, log);
        await supervisor.StartAsync(CancellationToken.None);
        return harness;
    }

    /// <summary>Every datagram received so far (waits briefly for at least one).</summary>
    public async Task<List<string>> NotificationsAsync()
    {
        var messages = new List<string>();
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        int n = await _notifySocket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
        messages.Add(Encoding.UTF8.GetString(buffer, 0, n));
        while (_notifySocket.Available > 0)
        {
            n = _notifySocket.Receive(buffer);
            messages.Add(Encoding.UTF8.GetString(buffer, 0, n));
        }
        return messages;
    }

    public async ValueTask DisposeAsync()
    {
        await Supervisor.DisposeAsync();
        Notifier.Dispose();
        _notifySocket.Dispose();
    }
}
