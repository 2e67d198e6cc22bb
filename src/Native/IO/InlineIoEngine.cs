namespace XenBackends.Native.IO;

/// <summary>
/// Runs every request to completion inside <see cref="TryEnqueue"/>, with a blocking syscall on the
/// caller's own thread: no hand-off, no wake-up, no completion eventfd write. Only right for an
/// image whose data already lives in memory (tmpfs, ramfs): there a preadv/pwritev is a memcpy to
/// or from the page cache and cannot wait for a device, while handing it to another thread costs a
/// futex wake-up, an eventfd write and a context switch, more than the copy itself (Block.Bench,
/// backend CPU per 4 KiB request on tmpfs: 2.7-4.1 us through <see cref="ThreadIoEngine"/>,
/// 1.25-1.3 us inline). On a disk
/// filesystem one slow request would stall the whole ring, which is why Auto never picks it there.
/// </summary>
/// <remarks>
/// tmpfs pages can be swapped out; a read of a swapped page then blocks the ring for the swap-in,
/// as it would block a thread engine's worker. That is the price of the shortcut, accepted because
/// an image on tmpfs is chosen for speed and swapped tmpfs is already slow for every user.
/// </remarks>
public sealed class InlineIoEngine(int capacity = 256) : SynchronousIoEngine(capacity)
{
    public override string Name => "inline";

    protected override int Execute(in IoRequest request) => Syscall.Execute(request);
}
