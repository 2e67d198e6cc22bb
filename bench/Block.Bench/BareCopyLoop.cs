using System.Diagnostics;
using Microsoft.Win32.SafeHandles;
using XenBackends.Native.Linux;
using XenBackends.SimulatedHost;

namespace XenBackends.Block.Bench;

/// <summary>How a bare loop moves a job's bytes between the guest frames and the image.</summary>
internal enum BareMethod
{
    /// <summary>memcpy to or from an anonymous image-sized buffer: the floor for any backend.</summary>
    AnonMemcpy,
    /// <summary>pread/pwrite between the guest frames and the tmpfs image file: one syscall per contiguous run of frames.</summary>
    FilePreadPwrite,
    /// <summary>memcpy to or from a shared mapping of the tmpfs image file, every page faulted in before the run.</summary>
    FileMmapMemcpy,
}

/// <summary>
/// The physical limits a backend is measured against: one thread that only moves the job's bytes
/// between an image and the guest frames the frontend uses, at the same offsets and in the same
/// order, with nothing else (no ring, no grant checks). <see cref="BareMethod.AnonMemcpy"/> copies
/// to anonymous memory; the two file methods move the same bytes to and from the very tmpfs file the
/// tmpfs rows use, the cheapest two ways a process can (bench/Block.Bench/README.md says why both).
/// </summary>
internal sealed class BareCopyLoop
{
    private const int PageSize = 4096;
    private readonly Workload _workload;
    private readonly SimulatedDomain _guest;
    private readonly uint[][] _slotFrames;
    private readonly nint _image;
    private readonly long _imageBytes;
    private readonly SafeFileHandle? _file;

    private BareCopyLoop(Workload workload, SimulatedDomain guest, uint[][] slotFrames, BareMethod method, nint image, long imageBytes, SafeFileHandle? file)
    {
        _workload = workload;
        _guest = guest;
        _slotFrames = slotFrames;
        Method = method;
        _image = image;
        _imageBytes = imageBytes;
        _file = file;
    }

    /// <summary>Copies to or from memory at <paramref name="image"/> (anonymous, or a file mapping).</summary>
    public static BareCopyLoop Memcpy(Workload workload, SimulatedDomain guest, uint[][] slotFrames, BareMethod method, nint image, long imageBytes) =>
        new(workload, guest, slotFrames, method, image, imageBytes, null);

    /// <summary>pread/pwrite on <paramref name="file"/>.</summary>
    public static BareCopyLoop Syscalls(Workload workload, SimulatedDomain guest, uint[][] slotFrames, SafeFileHandle file, long imageBytes) =>
        new(workload, guest, slotFrames, BareMethod.FilePreadPwrite, 0, imageBytes, file);

    public BareMethod Method { get; }

    public RunSample Run(TimeSpan warmup, TimeSpan measure)
    {
        var offsets = new OffsetSequence(_workload, _imageBytes);
        long frequency = Stopwatch.Frequency;
        long measureFrom = Stopwatch.GetTimestamp() + (long)(warmup.TotalSeconds * frequency);
        long ops = 0, slot = 0;
        while (Stopwatch.GetTimestamp() < measureFrom)
            CopyOne(_slotFrames[slot++ % _slotFrames.Length], offsets.Next());

        long startCpu = CpuClock.ThreadNanoseconds();
        long start = Stopwatch.GetTimestamp();
        long stopAt = start + (long)(measure.TotalSeconds * frequency);
        long now;
        do
        {
            // Check the clock every 64 copies so reading it costs nothing measurable.
            for (int i = 0; i < 64; i++)
                CopyOne(_slotFrames[slot++ % _slotFrames.Length], offsets.Next());
            ops += 64;
        }
        while ((now = Stopwatch.GetTimestamp()) < stopAt);
        long cpu = CpuClock.ThreadNanoseconds() - startCpu;
        return new RunSample(ops, 0, (double)(now - start) / frequency, cpu, 0, 0, 0, ops * _workload.BlockBytes);
    }

    private void CopyOne(uint[] frames, long offset)
    {
        nint guestBase = _guest.Memory.View.Address;
        int i = 0;
        while (i < frames.Length)
        {
            // A run of consecutive guest frames is one buffer: one memcpy, or one syscall.
            int run = 1;
            while (i + run < frames.Length && frames[i + run] == frames[i] + run)
                run++;
            Span<byte> guest = UnmanagedSpan.FromAddress(guestBase + (nint)frames[i] * PageSize, run * PageSize);
            long at = offset + (long)i * PageSize;
            if (_file is not null)
            {
                if (_workload.Write)
                    RandomAccess.Write(_file, guest, at);
                else if (RandomAccess.Read(_file, guest, at) != guest.Length)
                    throw new InvalidOperationException($"short read at {at}");
            }
            else
            {
                Span<byte> disk = UnmanagedSpan.FromAddress(_image + (nint)at, run * PageSize);
                if (_workload.Write)
                    guest.CopyTo(disk);
                else
                    disk.CopyTo(guest);
            }
            i += run;
        }
    }
}
