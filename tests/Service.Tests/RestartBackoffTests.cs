using XenBackends.Service.Config;
using XenBackends.Service.Supervisor;

namespace XenBackends.Service.Tests;

public sealed class RestartBackoffTests
{
    [Fact]
    public void Doubles_per_consecutive_crash_up_to_the_maximum_and_starts_over_after_a_stable_run()
    {
        var b = new RestartBackoff(new RestartConfig { InitialDelayMs = 100, MaxDelayMs = 1000, StableAfterMs = 60_000 });
        var quick = TimeSpan.FromSeconds(1);
        Assert.Equal([100, 200, 400, 800, 1000, 1000], Enumerable.Range(0, 6).Select(_ => (int)b.NextDelay(quick).TotalMilliseconds).ToArray());
        Assert.Equal(100, (int)b.NextDelay(TimeSpan.FromMinutes(5)).TotalMilliseconds);
        Assert.Equal(200, (int)b.NextDelay(quick).TotalMilliseconds);
    }
}
