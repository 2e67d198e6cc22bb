using XenBackends.Service.Config;
using XenBackends.Service.Devices;

namespace XenBackends.Service.Tests;

/// <summary>The guest's QoS from the configuration reaches each of its disks as a limiter of its own.</summary>
public sealed class DiskQosTests
{
    [Fact]
    public void Each_disk_gets_its_own_limiter_with_the_guests_rates_and_none_when_unlimited()
    {
        var config = new ServiceConfig();
        var qos = new GuestQos { DiskIops = 2000, DiskBytesPerSecond = 50_000_000 };

        var first = BlockKind.Options(config, qos);
        var second = BlockKind.Options(config, qos);

        Assert.NotNull(first.RateLimiter);
        Assert.Equal(2000, first.RateLimiter.Iops);
        Assert.Equal(50_000_000, first.RateLimiter.BytesPerSecond);
        Assert.NotSame(first.RateLimiter, second.RateLimiter); // limits are per disk, not shared
        Assert.Null(BlockKind.Options(config, new GuestQos()).RateLimiter);
        Assert.Equal(config.Limits.MaxIndirectSegments, first.MaxIndirectSegments);
    }
}
