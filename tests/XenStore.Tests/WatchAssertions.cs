using System.Threading.Channels;

namespace XenBackends.XenStore.Tests;

/// <summary>Bounded waits on watch events: a missing event fails the test instead of hanging it.</summary>
public static class WatchAssertions
{
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    public static async Task<XenStoreWatchEvent> NextEventAsync(this XenStoreClient client)
    {
        using var cts = new CancellationTokenSource(Bound);
        try
        {
            return await client.WatchEvents.ReadAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new Xunit.Sdk.XunitException($"no watch event within {Bound}");
        }
    }

    /// <summary>Waits for the next event carrying <paramref name="token"/>, failing on any event of another token.</summary>
    public static async Task<XenStoreWatchEvent> ExpectEventAsync(this XenStoreClient client, string token, string path)
    {
        var next = await client.NextEventAsync();
        // A barrier watch may still report a change that raced its removal; it is not the event under test.
        while (next.Token.StartsWith("barrier-", StringComparison.Ordinal)) next = await client.NextEventAsync();
        Assert.Equal((path, token), (next.Path, next.Token));
        return next;
    }

    /// <summary>
    /// Proves no event is pending: a new watch fires once at registration, and events on one connection
    /// arrive in order, so everything queued earlier arrives before that initial event.
    /// Returns the events that came first (expected: none).
    /// </summary>
    public static async Task<List<XenStoreWatchEvent>> DrainUntilBarrierAsync(this XenStoreClient client, string existingPath)
    {
        var token = "barrier-" + Guid.NewGuid().ToString("N");
        await client.WatchAsync(existingPath, token);
        var before = new List<XenStoreWatchEvent>();
        while (true)
        {
            var next = await client.NextEventAsync();
            if (next.Token == token) break;
            before.Add(next);
        }
        await client.UnwatchAsync(existingPath, token);
        return before;
    }
}
