namespace XenBackends.Backend.Net;

/// <summary>
/// Guest-TX rate limiting from the backend's <c>rate</c> key ("bytes,usec"), with netback's credit
/// semantics (tx_credit_exceeded / tx_add_credit / xen_net_rate_changed): a packet goes when its
/// size fits the remaining credit; otherwise the queue defers it (never drops, 4.1 row 3) until the
/// end of the current window, when one window's worth of credit is added. Credit accumulates up to
/// max(128 KiB, bytes per window), so a packet larger than one window's credit (up to 64 KiB) still
/// goes after enough windows instead of seizing the interface. Time is in microseconds from an
/// injected clock. Owned by one queue thread.
/// </summary>
internal sealed class TxCredit
{
    private const ulong MaxBurstFloor = 131072;
    private const long NoTimer = long.MinValue;

    private ulong _creditBytes = ulong.MaxValue;
    private ulong _creditUsec;
    private ulong _remaining = ulong.MaxValue;
    private long _windowStart;
    private long _timerDue = NoTimer;

    /// <summary>Connect (xenvif_connect_data): a full window of credit from now.</summary>
    public TxCredit((ulong Bytes, ulong Microseconds)? rate, long now)
    {
        _windowStart = now;
        if (rate is { Microseconds: > 0 } r)
        {
            _creditBytes = _remaining = r.Bytes;
            _creditUsec = r.Microseconds;
        }
    }

    public ulong Remaining => _remaining;

    public bool IsUnlimited => _creditUsec == 0;

    /// <summary>When a deferred packet may be retried (valid after <see cref="TryConsume"/> returned false).</summary>
    public long RetryAt => _timerDue;

    /// <summary>A changed <c>rate</c> key (xen_net_rate_changed); null is unlimited (Linux: bytes ~0, usec 0).</summary>
    public void SetRate((ulong Bytes, ulong Microseconds)? rate, long now)
    {
        bool wasUnlimited = _creditUsec == 0;
        _creditBytes = rate?.Bytes ?? ulong.MaxValue;
        _creditUsec = rate?.Microseconds ?? 0;
        if (_creditUsec == 0)
        {
            _remaining = ulong.MaxValue;
            _timerDue = NoTimer;
            return;
        }
        if (wasUnlimited)
        {
            // Unlimited credit never ran down: start a fresh window rather than keep ~0 bytes of credit.
            _remaining = _creditBytes;
            _windowStart = now;
            return;
        }
        // xen_net_rate_changed: without a pending refill, never keep more than the new window allows.
        if (_timerDue == NoTimer && _remaining > _creditBytes)
            _remaining = _creditBytes;
    }

    /// <summary>
    /// Takes <paramref name="size"/> bytes of credit, or returns false and leaves the packet for
    /// later (see <see cref="RetryAt"/>).
    /// </summary>
    public bool TryConsume(uint size, long now)
    {
        if (_creditUsec == 0)
            return true;
        if (_timerDue != NoTimer)
        {
            // The credit timer (xenvif_tx_credit_callback) adds one window when it fires.
            if (now < _timerDue)
                return false;
            _timerDue = NoTimer;
            AddCredit();
        }
        if (size > _remaining)
        {
            long nextCredit = _windowStart + (long)Math.Min(_creditUsec, long.MaxValue / 2);
            if (now >= nextCredit)
            {
                _windowStart = now;
                AddCredit();
            }
            if (size > _remaining)
            {
                _timerDue = nextCredit;
                _windowStart = nextCredit;
                return false;
            }
        }
        _remaining -= size;
        return true;
    }

    private void AddCredit()
    {
        ulong maxBurst = Math.Max(MaxBurstFloor, _creditBytes);
        ulong maxCredit = _remaining + _creditBytes;
        if (maxCredit < _remaining)
            maxCredit = ulong.MaxValue;
        _remaining = Math.Min(maxCredit, maxBurst);
    }
}
