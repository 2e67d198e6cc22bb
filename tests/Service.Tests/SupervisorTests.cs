using System.Diagnostics;
using XenBackends.Service.Hosting;
using XenBackends.Service.Supervisor;
using XenBackends.XenStore;

namespace XenBackends.Service.Tests;

/// <summary>The supervisor with exec'd workers on the simulated host, across processes.</summary>
public sealed class SupervisorTests
{
    private static bool ProcessAlive(int pid) => Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal);

    [Fact]
    public async Task Worker_serves_the_guest_and_readiness_follows_the_first_scan()
    {
        await using var sim = await SimHost.CreateAsync();
        var guest = await sim.CreateGuestAsync(5, "web1");
        await using var harness = await SupervisorHarness.StartAsync(sim.Config(), sim.Spec, SimHost.Worker, sim.Dir);

        var first = await harness.NotificationsAsync();
        Assert.StartsWith("READY=1\nSTATUS=", first[0], StringComparison.Ordinal);
        Assert.Contains(5u, harness.Supervisor.WorkerPids().Keys);

        await guest.ConnectAsync();
        await guest.EchoAsync(41);
        await guest.EchoAsync(42);
        var status = await Eventually.ValueAsync(() => Task.FromResult(harness.Supervisor.Snapshot().Guests.SingleOrDefault(g => g.Devices.Any(d => d.Counters.GetValueOrDefault("requests") >= 2))), "status shows the device's requests");
        Assert.Equal("web1", status.Name);
        Assert.Equal("running", status.Worker);
        var device = Assert.Single(status.Devices);
        Assert.Equal("Connected", device.BackendState);
        Assert.Equal("Connected", device.FrontendState);
        Assert.Equal("xbecho", device.Kind);
    }

    [Fact]
    public async Task A_worker_killed_with_SIGKILL_is_restarted_and_its_device_reconnects()
    {
        await using var sim = await SimHost.CreateAsync();
        var guest = await sim.CreateGuestAsync(7, "db1");
        await using var harness = await SupervisorHarness.StartAsync(sim.Config(), sim.Spec, SimHost.Worker, sim.Dir);
        await guest.ConnectAsync();
        await guest.EchoAsync(1);
        int firstPid = harness.Supervisor.WorkerPids()[7];

        Process.GetProcessById(firstPid).Kill(); // SIGKILL: no chance to release anything itself

        int secondPid = 0;
        await Eventually.TrueAsync(() => harness.Supervisor.WorkerPids().TryGetValue(7, out secondPid) && secondPid != firstPid, "a new worker for domain 7");
        Assert.False(ProcessAlive(firstPid));
        var entry = harness.Supervisor.Snapshot().Guests.Single(g => g.Domid == 7);
        Assert.Equal(1, entry.Restarts);
        Assert.Equal("killed by signal 9", entry.LastExit);
        // The new worker resumes the Connected device from xenstore and serves the same ring.
        await harness.StepAsync(() => guest.EchoAsync(2));
        await guest.EchoAsync(3);
        Assert.Equal("4", await sim.ReadAsync(guest.Backend + "/state"));
    }

    [Fact]
    public async Task A_destroyed_guest_leaves_no_worker_mapping_or_xenstore_node()
    {
        await using var sim = await SimHost.CreateAsync();
        var doomed = await sim.CreateGuestAsync(9, "doomed");
        var bystander = await sim.CreateGuestAsync(10, "bystander");
        await using var harness = await SupervisorHarness.StartAsync(sim.Config(), sim.Spec, SimHost.Worker, sim.Dir);
        await doomed.ConnectAsync();
        await bystander.ConnectAsync();
        await doomed.EchoAsync(1);
        int pid = harness.Supervisor.WorkerPids()[9];
        int bystanderPid = harness.Supervisor.WorkerPids()[10];
        Assert.True(doomed.PageMappedByBackend);

        sim.ReleaseDomain(9);

        await Eventually.TrueAsync(() => !ProcessAlive(pid), "the dead guest's worker exits");
        await Eventually.TrueAsync(async () => await sim.ReadAsync("/local/domain/0/backend/xbecho/9/0/state") is null, "backend nodes removed");
        await Eventually.TrueAsync(() => !harness.Supervisor.WorkerPids().ContainsKey(9), "supervisor forgot the guest");
        Assert.False(doomed.PageMappedByBackend);
        await Assert.ThrowsAsync<XenStoreErrorException>(() => sim.Dom0.DirectoryAsync("/local/domain/0/backend/xbecho/9"));
        // The other guest is untouched.
        Assert.Equal(bystanderPid, harness.Supervisor.WorkerPids()[10]);
        await bystander.EchoAsync(5);
    }

    [Fact]
    public async Task A_guest_whose_nodes_precede_its_introduction_survives_another_domains_release()
    {
        await using var sim = await SimHost.CreateAsync();
        var leaving = await sim.CreateGuestAsync(12, "leaving");
        await using var harness = await SupervisorHarness.StartAsync(sim.Config(), sim.Spec, SimHost.Worker, sim.Dir);
        // Backend and frontend nodes written, domain not introduced yet: XS_IS_DOMAIN_INTRODUCED says F,
        // exactly as it will for a domain that died.
        var early = await sim.CreateGuestAsync(13, "early", introduce: false);
        int earlyPid = 0;
        await harness.StepAsync(() => Eventually.TrueAsync(() => harness.Supervisor.WorkerPids().TryGetValue(13, out earlyPid), "a worker for the not-yet-introduced domain 13"));
        int leavingPid = harness.Supervisor.WorkerPids()[12];

        sim.ReleaseDomain(12);

        await harness.StepAsync(() => Eventually.TrueAsync(() => !ProcessAlive(leavingPid), "the released guest's worker exits"));
        await harness.StepAsync(() => Eventually.TrueAsync(async () => await sim.ReadAsync("/local/domain/0/backend/xbecho/12/0/state") is null, "the released guest's nodes removed"));
        // The same @releaseDomain round must have left domain 13 alone: same worker, nodes in place,
        // and once introduced its device connects and is served.
        Assert.Equal(earlyPid, harness.Supervisor.WorkerPids()[13]);
        Assert.NotNull(await sim.ReadAsync(early.Backend + "/state"));
        sim.IntroduceDomain(13);
        await harness.StepAsync(() => early.ConnectAsync());
        await early.EchoAsync(1);
        Assert.Equal(earlyPid, harness.Supervisor.WorkerPids()[13]);

        // Seen introduced, then released: now it is known gone and is reaped.
        sim.ReleaseDomain(13);
        await harness.StepAsync(() => Eventually.TrueAsync(() => !ProcessAlive(earlyPid), "the early guest's worker exits once its domain is released"));
        await Eventually.TrueAsync(async () => await sim.ReadAsync(early.Backend + "/state") is null, "its nodes removed");
        Assert.False(early.PageMappedByBackend);
    }

    [Fact]
    public async Task A_worker_that_cannot_run_is_retried_with_backoff_and_the_supervisor_stays_up()
    {
        await using var sim = await SimHost.CreateAsync();
        await sim.CreateGuestAsync(11, "broken");
        var failing = new WorkerCommand("/bin/false", []);
        await using var harness = await SupervisorHarness.StartAsync(sim.Config(), sim.Spec, failing, sim.Dir);

        var guest = await Eventually.ValueAsync(() => Task.FromResult(harness.Supervisor.Snapshot().Guests.SingleOrDefault(g => g.Restarts >= 3)), "three restarts");
        Assert.Equal("exit code 1", guest.LastExit);
        Assert.False(harness.Supervisor.Completion.IsFaulted);
    }

    [Fact]
    public async Task A_missing_xenstored_is_a_clear_startup_error()
    {
        string dir = Directory.CreateTempSubdirectory("xb-noxs-").FullName;
        var spec = new HostSpec(Path.Combine(dir, "no-such-socket"), Path.Combine(dir, "no-host"));
        var config = new Config.ServiceConfig { Kinds = ["xbecho"] };
        var e = await Assert.ThrowsAsync<HostUnavailableException>(() => SupervisorHarness.StartAsync(config, spec, SimHost.Worker, dir));
        Assert.Contains("cannot reach xenstored", e.Message, StringComparison.Ordinal);
        Assert.Contains("no-such-socket", e.Message, StringComparison.Ordinal);
    }
}
