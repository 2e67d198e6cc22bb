using System.Diagnostics;
using System.Runtime.InteropServices;
using XenBackends.Native;
using XenBackends.SimulatedHost;

namespace XenBackends.Net.Bench;

/// <summary>
/// <c>--probe-map</c>: the cost of the two ways to reach the 16 pages of a 64 KiB guest-TX frame on
/// the simulated host: grant-map them (read-only), touch each page once as the tap's copy would, and
/// unmap (what a zero-copy writev from guest pages would pay per packet), versus one batched grant
/// copy of the same 16 pages into a local buffer (what NetQueue does).
/// </summary>
internal static class MapProbe
{
    public static void Run()
    {
        using var host = new SimulatedXenHost();
        var dom = host.CreateDomain(9, 2048, 2048);
        using var front = new BenchFrontend(dom, host.OpenEventChannels(9), Frames.Tcp(65535, Frames.ElsewhereMac, Frames.GuestMac), gso: true, spin: true);
        using var grants = host.CreateGrantMapper(0);
        uint[] refs = front.FrameRefs;
        var segments = new GrantCopySegment[refs.Length];
        byte[] destination = GC.AllocateArray<byte>(refs.Length * 4096, pinned: true);
        nint address = Marshal.UnsafeAddrOfPinnedArrayElement(destination, 0);
        const int N = 20000;
        for (int round = 0; round < 3; round++)
        {
            long sum = 0;
            var watch = Stopwatch.StartNew();
            for (int i = 0; i < N; i++)
            {
                GrantPages pages = grants.MapPages(9, refs, writable: false);
                for (int k = 0; k < refs.Length; k++)
                    sum += Marshal.ReadByte(pages.Address, k * 4096 + 100);
                grants.UnmapPages(pages);
            }
            double map = watch.Elapsed.TotalMicroseconds / N;
            watch.Restart();
            for (int i = 0; i < N; i++)
            {
                for (int k = 0; k < refs.Length; k++)
                    segments[k] = GrantCopySegment.FromGuest(9, refs[k], 0, address + k * 4096, 4096);
                grants.Copy(segments);
            }
            double copy = watch.Elapsed.TotalMicroseconds / N;
            Console.WriteLine($"64 KiB (16 pages): map + touch + unmap {map:0.00} µs, grant copy {copy:0.00} µs (checksum {sum})");
        }
    }
}
