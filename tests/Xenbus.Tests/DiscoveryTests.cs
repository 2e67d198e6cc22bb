namespace XenBackends.Xenbus.Tests;

public class DiscoveryTests
{
    [Fact]
    public async Task Reports_devices_as_the_toolstack_adds_and_removes_them()
    {
        await using var xs = await XenstoreFixture.CreateAsync();
        var discovery = new BackendDiscovery(xs.Watches, 0, new[] { "vbd", "vif" });
        var snapshots = new List<IReadOnlySet<DevicePath>>();
        using var cts = new CancellationTokenSource();
        var run = discovery.RunAsync(set => { lock (snapshots) snapshots.Add(set); return Task.CompletedTask; }, cts.Token);

        async Task WaitFor(Func<IReadOnlySet<DevicePath>, bool> p)
        {
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (true)
            {
                lock (snapshots) if (snapshots.Count > 0 && p(snapshots[^1])) return;
                Assert.True(DateTime.UtcNow < deadline, "discovery never reported the expected set");
                await Task.Delay(5);
            }
        }

        await WaitFor(s => s.SetEquals(new[] { XenstoreFixture.Device }));
        await xs.Dom0.WriteAsync("/local/domain/0/backend/vif/5/0/state", "1");
        await xs.Dom0.WriteAsync("/local/domain/0/backend/vif/junk/0/state", "1"); // ignored: not a domid
        var vif = new DevicePath(0, "vif", 5, 0);
        await WaitFor(s => s.SetEquals(new[] { XenstoreFixture.Device, vif }));
        await xs.Dom0.RemoveAsync(XenstoreFixture.Device.Backend);
        await WaitFor(s => s.SetEquals(new[] { vif }));
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }
}
