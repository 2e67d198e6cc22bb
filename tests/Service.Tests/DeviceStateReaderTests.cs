using XenBackends.Service.Worker;
using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.Service.Tests;

/// <summary>The status line's xenstore reader against a real (simulated) xenstored.</summary>
public sealed class DeviceStateReaderTests
{
    [Fact]
    public async Task Follows_a_rewritten_frontend_key_and_keeps_watching_only_the_current_frontend()
    {
        // The toolstack may point the backend's frontend key somewhere else (a frontend recreated
        // under another path). Each move must cost the old path's watch, not add one: a watch left
        // behind lives as long as the device, in our router and in xenstored, and keeps firing.
        await using var sim = await SimHost.CreateAsync();
        await using var store = await XenStoreClient.OpenSocketAsync(sim.XenStoreSocket);
        await using var watches = new WatchRouter(store);
        var path = new DevicePath(0, "vif", 7, 0);
        string[] frontends = ["/local/domain/7/device/vif/0", "/local/domain/7/device/vif/9"];
        await sim.Dom0.WriteAsync(frontends[0] + "/state", "3");
        await sim.Dom0.WriteAsync(frontends[1] + "/state", "4");
        await sim.Dom0.WriteAsync(path.Backend + "/state", "4");

        await using var reader = await DeviceStateReader.OpenAsync(watches, path, CancellationToken.None);
        for (int i = 0; i < 200; i++)
        {
            await sim.Dom0.WriteAsync(path.Backend + "/frontend", frontends[i % 2]);
            // The watch event comes asynchronously; a report before it still shows the last state.
            string expected = i % 2 == 0 ? "3" : "4";
            await Eventually.TrueAsync(async () =>
            {
                await reader.RefreshAsync(CancellationToken.None);
                return reader.FrontendState == expected;
            }, $"move {i}: the state of {frontends[i % 2]}");
            Assert.Equal("4", reader.BackendState);
        }

        // backend, error node and the current frontend's state: nothing left over from the moves.
        Assert.Equal(3, watches.SubscriptionCount);
        // And the current frontend's state is still watched: a change there is read at the next report.
        await sim.Dom0.WriteAsync(frontends[1] + "/state", "5");
        await Eventually.TrueAsync(async () =>
        {
            await reader.RefreshAsync(CancellationToken.None);
            return reader.FrontendState == "5";
        }, "the current frontend's state change is reported");

        // A removed frontend key drops the last frontend watch too.
        await sim.Dom0.RemoveAsync(path.Backend + "/frontend");
        await Eventually.TrueAsync(async () =>
        {
            await reader.RefreshAsync(CancellationToken.None);
            return reader.FrontendState is null;
        }, "no frontend state without a frontend key");
        Assert.Equal(2, watches.SubscriptionCount);
    }
}
