namespace XenBackends.Backend.Net;

/// <summary>Tunables of one data-path queue; the defaults follow Linux netback.</summary>
public sealed record NetQueueOptions
{
    /// <summary>Bytes of tap frames held for a guest without rx buffers (XENVIF_RX_QUEUE_BYTES, XSA-392).</summary>
    public int RxQueueBytes { get; init; } = 512 * 1024;

    /// <summary>
    /// How long the oldest queued frame may wait for enough rx slots before the queue is declared
    /// stalled: queued frames are dropped and new ones dropped on arrival until the guest posts
    /// enough buffers for a maximal frame. Counted against the slots the head frame needs, so a guest
    /// keeping one buffer posted still stalls (CVE-2021-28714).
    /// </summary>
    public TimeSpan RxStallTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Guest packets per TX grant-copy batch.</summary>
    public int TxBatchPackets { get; init; } = 64;

    /// <summary>
    /// Room in one TX grant-copy batch for this many maximal (64 KiB) frames, on top of
    /// <see cref="TxBatchPackets"/> × 2 KiB for small ones: the batch's pinned arena. A batch is one
    /// grant-copy call and one response push, which usually wakes the guest, so with 64 KiB GSO frames
    /// a batch of 2 (the old size) paid that per 2 frames. Measured in Net.Bench (README, 2026-11-24
    /// netpipe): guest TX 64 KiB through the tap went from ~0.15 to ~0.20 Mpps with 7.
    /// </summary>
    public int TxBatchLargeFrames { get; init; } = 7;

    /// <summary>
    /// Guest-RX interrupt coalescing: after a pass that read frames from the tap, the queue thread
    /// stops waiting for the tap to become readable and reads it again after this long, so frames
    /// that keep arriving are served (and the guest notified) in batches instead of one wake-up of
    /// the queue and one of the guest every few frames. Kicks, stop and wake requests are still
    /// served at once, and a pass that reads nothing puts the tap back in the wait set, so a lone
    /// frame (a ping reply) is never delayed: only a stream is, by at most this much.
    /// Zero (this type's default, netback's way) turns it off; the service's default is 20 us
    /// (limits.netRxCoalesceMicroseconds). Linux's equivalent is napi_defer_hard_irqs with
    /// gro_flush_timeout, a NIC's is rx-usecs; netback has none. Net.Bench (README) measured guest RX
    /// of 64 B frames through a tap at 0.41 Mpps without it and 0.61 with 20 us, the guest's CPU per
    /// frame 0.68 -> 0.16 us.
    /// </summary>
    public TimeSpan RxCoalesceTime { get; init; }

    /// <summary>Monotonic microseconds for rate limiting; null is the Stopwatch (tests inject a manual clock).</summary>
    public Func<long>? ClockMicroseconds { get; init; }
}
