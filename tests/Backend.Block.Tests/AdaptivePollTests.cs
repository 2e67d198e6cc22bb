namespace XenBackends.Backend.Block.Tests;

/// <summary>The poll window's policy (KVM halt-polling style), on plain numbers.</summary>
public sealed class AdaptivePollTests
{
    [Fact]
    public void WithoutAMaximumTheQueueNeverPolls()
    {
        var poll = new AdaptivePoll(0);
        Assert.False(poll.Enabled);
        poll.Idled(1);
        poll.Idled(0);
        Assert.Equal(0, poll.Window);
    }

    [Fact]
    public void ShortIdleSpellsGrowTheWindowToTheMaximumAndNoFurther()
    {
        var poll = new AdaptivePoll(1000);
        Assert.True(poll.Enabled);
        Assert.Equal(0, poll.Window);
        poll.Idled(100);
        Assert.Equal(250, poll.Window);
        poll.Idled(100);
        Assert.Equal(500, poll.Window);
        poll.Idled(1000);
        Assert.Equal(1000, poll.Window);
        poll.Idled(10);
        Assert.Equal(1000, poll.Window);
    }

    [Fact]
    public void AGuestThatGoesQuietCostsNoSpinningSoon()
    {
        var poll = new AdaptivePoll(1000);
        for (int i = 0; i < 3; i++)
            poll.Idled(1);
        Assert.Equal(1000, poll.Window);
        poll.Idled(5_000_000);
        Assert.Equal(500, poll.Window);
        poll.Idled(5_000_000);
        Assert.Equal(250, poll.Window);
        poll.Idled(5_000_000);
        Assert.Equal(125, poll.Window);
        poll.Idled(5_000_000);
        Assert.Equal(0, poll.Window);
        poll.Idled(5_000_000);
        Assert.Equal(0, poll.Window);
    }
}
