namespace XenBackends.SimulatedHost.Hostile;

/// <summary>
/// Bounded polling for hostile tests: waits for a condition and fails (throws) when the bound runs
/// out. A hostile peer gets no events it could trust, so it polls shared state instead.
/// </summary>
public static class Bounded
{
    public static Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what) =>
        UntilAsync(condition, timeout, () => what);

    /// <summary>Like the others, with a description built when the bound runs out, so it can report the state then.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string> what)
    {
        DateTime end = DateTime.UtcNow + timeout;
        int delay = 1;
        while (true)
        {
            if (await condition().ConfigureAwait(false))
                return;
            if (DateTime.UtcNow > end)
                throw new TimeoutException($"waited {timeout.TotalSeconds:0.#} s for {what()}");
            await Task.Delay(delay).ConfigureAwait(false);
            delay = Math.Min(delay * 2, 50);
        }
    }

    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what) =>
        UntilAsync(() => Task.FromResult(condition()), timeout, () => what);

    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, Func<string> what) =>
        UntilAsync(() => Task.FromResult(condition()), timeout, what);
}
