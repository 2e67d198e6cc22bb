using XenBackends.XenStore;
using XenBackends.Xenbus;

namespace XenBackends.SimulatedHost.Toolstack;

/// <summary>A backend did not reach the state libxl waited for in time (libxl logs "timed out").</summary>
public sealed class DeviceStateTimeoutException(string statePath, XenbusState wanted, XenbusState last, TimeSpan timeout)
    : TimeoutException($"{statePath}: wanted state {(int)wanted} ({wanted}) within {timeout.TotalSeconds:0.###} s, last saw {(int)last} ({last})")
{
    public XenbusState Last { get; } = last;
}

/// <summary>
/// <c>libxl__ev_devstate_wait</c>: waits for one exact state value, re-reading the node on every watch
/// event. Like libxl it can miss a state the backend passes through between two reads (that is why libxl
/// writes an empty hotplug-status for vifs), and a removed node ends the wait with an error.
/// </summary>
internal static class DeviceStateWait
{
    public static async Task WaitAsync(WatchRouter router, string statePath, XenbusState wanted, TimeSpan timeout, CancellationToken ct)
    {
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timer.CancelAfter(timeout);
        await using var watch = await router.SubscribeAsync(statePath, ct).ConfigureAwait(false);
        var last = XenbusState.Unknown;
        while (true)
        {
            string? value = await router.Store.TryReadStringAsync(statePath, ct).ConfigureAwait(false);
            if (value is null)
                throw new InvalidOperationException($"{statePath}: wanted state {(int)wanted} but the node was removed");
            last = XenbusStates.Parse(value);
            if (last == wanted) return;
            try
            {
                await watch.WaitAsync(timer.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new DeviceStateTimeoutException(statePath, wanted, last, timeout);
            }
        }
    }
}
