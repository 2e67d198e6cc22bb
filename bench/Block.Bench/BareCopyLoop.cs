using System.Diagnostics;
using XenBackends.SimulatedHost;

namespace XenBackends.Block.Bench;

/// <summary>
/// The physical limit a backend is measured against: one thread that only copies the job's bytes
/// between an image-sized buffer and the guest frames the frontend uses, at the same offsets and in
/// the same order, with nothing else (no ring, no grant checks, no syscalls).
/// </summary>
internal static class BareCopyLoop
{
    public static RunSample Run(Workload workload, SimulatedDomain guest, uint[][] slotFrames, Span<byte> image, TimeSpan warmup, TimeSpan measure)
    {
        var offsets = new OffsetSequence(workload, image.Length);
        long frequency = Stopwatch.Frequency;
        long measureFrom = Stopwatch.GetTimestamp() + (long)(warmup.TotalSeconds * frequency);
        long ops = 0, slot = 0;
        while (Stopwatch.GetTimestamp() < measureFrom)
            CopyOne(workload, guest, slotFrames[slot++ % slotFrames.Length], image, offsets.Next());

        long startCpu = CpuClock.ThreadNanoseconds();
        long start = Stopwatch.GetTimestamp();
        long stopAt = start + (long)(measure.TotalSeconds * frequency);
        long now;
        do
        {
            // Check the clock every 64 copies so reading it costs nothing measurable.
            for (int i = 0; i < 64; i++)
                CopyOne(workload, guest, slotFrames[slot++ % slotFrames.Length], image, offsets.Next());
            ops += 64;
        }
        while ((now = Stopwatch.GetTimestamp()) < stopAt);
        long cpu = CpuClock.ThreadNanoseconds() - startCpu;
        return new RunSample(ops, 0, (double)(now - start) / frequency, cpu, 0, 0, 0, ops * workload.BlockBytes);
    }

    private static void CopyOne(Workload workload, SimulatedDomain guest, uint[] frames, Span<byte> image, long offset)
    {
        for (int i = 0; i < frames.Length; i++)
        {
            Span<byte> disk = image.Slice((int)(offset + i * 4096L), 4096);
            Span<byte> page = guest.Memory.Page(frames[i]);
            if (workload.Write)
                page.CopyTo(disk);
            else
                disk.CopyTo(page);
        }
    }
}
