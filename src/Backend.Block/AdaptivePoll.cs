namespace XenBackends.Backend.Block;

/// <summary>
/// How long a queue watches its ring before sleeping, adapted like KVM's halt polling: a sleep
/// that ended within the maximum window would have been caught by polling, so the window grows;
/// a longer sleep means the guest went quiet, so it shrinks towards zero, and an idle guest costs
/// no spinning. Pure arithmetic on clock ticks, so the policy is testable without a clock.
/// </summary>
internal struct AdaptivePoll
{
    private readonly long _max;
    private readonly long _start;

    public AdaptivePoll(long maxTicks)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxTicks);
        _max = maxTicks;
        _start = maxTicks / 4;
    }

    /// <summary>False when the maximum is zero: the queue never polls and needs no idle timing.</summary>
    public readonly bool Enabled => _max != 0;

    /// <summary>Ticks to poll before the next sleep; 0 means sleep at once.</summary>
    public long Window { get; private set; }

    /// <summary>
    /// Called after each idle spell (poll, then sleep) that only the guest could end, with its
    /// length: polling that long would have avoided the sleep.
    /// </summary>
    public void Idled(long ticks)
    {
        if (_max == 0)
            return;
        if (ticks <= _max)
            Window = Math.Min(_max, Math.Max(_start, Window * 2));
        else
            Window = Window / 2 < _start / 2 ? 0 : Window / 2;
    }
}
