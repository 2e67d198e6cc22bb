using System.Diagnostics;
using System.Globalization;

namespace XenBackends.Service.Sim;

/// <summary>
/// `sim`: the service on a simulated Xen host, with a guest that drives a disk and a NIC through it
/// for a bounded time, live figures, a verified summary and a clean teardown. Exit 0 when every byte
/// read back was what was written; 1 when verification failed or teardown left something behind;
/// 3 when the demo could not be set up or run; 130 when interrupted before the traffic started
/// (interrupted during the traffic, it stops early and summarises what ran).
/// </summary>
internal static class SimCommand
{
    public const int ExitVerificationFailed = 1;
    public const int ExitSetupFailed = 3;
    public const int ExitInterrupted = 130;
    public static async Task<int> RunAsync(int seconds, int queueDepth, bool showLog, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var log = new MemoryLog(showLog ? error : null);
        var clock = Stopwatch.StartNew();
        output.WriteLine("xen-backends sim: simulated Xen host + the service (supervisor, one worker process per guest) + a guest with a disk and a NIC");
        SimMachine machine;
        try
        {
            machine = await SimMachine.StartAsync(log, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return Fail(error, log, "could not start the simulated host and the service: " + e.Message, ExitSetupFailed);
        }
        var run = new SimRun(machine, output, error);
        int exit;
        try
        {
            exit = await run.ExecuteAsync(seconds, queueDepth, clock, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            error.WriteLine("xen-backends sim: interrupted before the traffic started; tearing down");
            exit = ExitInterrupted;
        }
        catch (Exception e)
        {
            exit = Fail(error, log, "the demo failed: " + e.Message, ExitSetupFailed);
        }
        var teardown = await run.TeardownAsync().ConfigureAwait(false);
        string dir = machine.Dir;
        await machine.DisposeAsync().ConfigureAwait(false);
        bool tapLeft = run.TapName is { } tap && Directory.Exists($"/sys/class/net/{tap}");
        bool dirLeft = Directory.Exists(dir);
        output.WriteLine($"  teardown: {teardown.Description}" +
            (run.TapName is null ? "" : tapLeft ? $", TAP {run.TapName} STILL PRESENT" : $", tap {run.TapName} gone") +
            (dirLeft ? $", temp dir {dir} STILL PRESENT" : ", temp dir removed"));
        if (exit == 0 && (!teardown.Clean || tapLeft || dirLeft))
            exit = Fail(error, log, "teardown left something behind", ExitVerificationFailed);
        output.WriteLine(exit == 0 ? "RESULT: OK" : "RESULT: FAILED");
        return exit;
    }

    private static int Fail(TextWriter error, MemoryLog log, string message, int exit)
    {
        error.WriteLine("xen-backends sim: " + message);
        var tail = log.Lines.TakeLast(40).ToList();
        if (tail.Count > 0)
        {
            error.WriteLine("last service log lines:");
            foreach (string line in tail) error.WriteLine("  " + line);
        }
        return exit;
    }

    /// <summary>A domid whose tap name is free, so two demos (or a demo and a test) never fight over vif&lt;domid&gt;.0.</summary>
    internal static ushort PickDomid()
    {
        for (int i = 0; i < 30000; i++)
        {
            ushort domid = (ushort)(1 + (Environment.ProcessId + i) % 30000);
            if (!Directory.Exists($"/sys/class/net/vif{domid}.0")) return domid;
        }
        throw new InvalidOperationException("no free vif name");
    }

    /// <summary>Why the NIC part cannot run here, or null.</summary>
    internal static string? NetworkUnavailable()
    {
        if (!Environment.IsPrivilegedProcess)
            return "creating the guest's tap needs root (CAP_NET_ADMIN); run as root for the network part";
        if (!File.Exists("/dev/net/tun"))
            return "/dev/net/tun is missing (modprobe tun)";
        return null;
    }

    internal static string N(double value) => value.ToString("#,0", CultureInfo.InvariantCulture);

    internal static string Mb(double bytes) => (bytes / 1e6).ToString("#,0.0", CultureInfo.InvariantCulture);
}
