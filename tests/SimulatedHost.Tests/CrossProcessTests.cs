using System.Diagnostics;
using static XenBackends.SimulatedHost.GrantTableFlags;

namespace XenBackends.SimulatedHost.Tests;

public sealed class CrossProcessTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(90);
    private readonly string _dir = Directory.CreateTempSubdirectory("simhost-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_child_process_maps_grants_and_exchanges_events_with_fds_received_over_the_socket()
    {
        using var host = new SimulatedXenHost();
        var guest = host.CreateDomain(3, pageCount: 8);
        uint roFrame = guest.Memory.AllocatePage(), rwFrame = guest.Memory.AllocatePage();
        guest.Memory.Page(roFrame).Fill(0x5A);
        uint roRef = guest.Grants.GrantAccess(0, roFrame, readOnly: true);
        uint rwRef = guest.Grants.GrantAccess(0, rwFrame, readOnly: false);
        uint guestPort = guest.EventChannels.BindUnboundPort(0);
        using var server = new HostServer(host, Path.Combine(_dir, "host.sock"));

        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (string a in new[] { typeof(WorkerProgram).Assembly.Location, WorkerProgram.Verb, server.SocketPath, "3", $"{roRef}", $"{rwRef}", $"{guestPort}" })
            start.ArgumentList.Add(a);
        using var child = Process.Start(start) ?? throw new InvalidOperationException("could not start the worker");
        var stderr = child.StandardError.ReadToEndAsync();
        var stdout = child.StandardOutput.ReadToEndAsync();
        try
        {
            using var timeout = new CancellationTokenSource(Bound);
            var kick = guest.EventChannels.WaitPendingAsync(timeout.Token).AsTask();
            var exited = child.WaitForExitAsync(timeout.Token);
            if (await Task.WhenAny(kick, exited) != kick)
                Assert.Fail($"the worker exited ({child.ExitCode}) before notifying: {await stderr}{await stdout}");
            Assert.Equal(guestPort, await kick);
            Assert.True(guest.Memory.Page(rwFrame).StartsWith(WorkerProgram.Reply), "the child's write did not reach guest memory");
            Assert.True(host.Switch.IsInterdomain(3, guestPort));
            guest.EventChannels.Notify(guestPort);
            await exited;
            Assert.True(child.ExitCode == 0, $"worker failed ({child.ExitCode}): {await stderr}{await stdout}");
        }
        finally
        {
            if (!child.HasExited)
                child.Kill();
        }
        // The worker's mappings are gone with it, so the guest can end both grants; its port closed with its connection.
        Assert.True(guest.Grants.EndAccess(roRef));
        Assert.True(guest.Grants.EndAccess(rwRef));
        await WaitUntil(() => !host.Switch.IsInterdomain(3, guestPort));
        Assert.Equal(0, guest.Grants.ReadEntry(rwRef).Flags & (GTF_reading | GTF_writing));
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        // The host notices the closed connection on its own thread; give it a bounded moment.
        var deadline = DateTime.UtcNow + Bound;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached within the bound");
            await Task.Delay(10);
        }
    }
}
