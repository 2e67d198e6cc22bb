using System.Globalization;
using XenBackends.Backend.Net;
using XenBackends.Native;
using XenBackends.Native.Tap;
using XenBackends.Net.Bench;
using XenBackends.SimulatedHost;

// Net.Bench: one NetQueue (the per-queue data path) on the simulated host, guest TX and guest RX,
// with a null frame device and with a real tap in a private namespace, plus bare tap loops.
// Usage: dotnet run -c Release --project bench/Net.Bench [-- --runs 5 --seconds 1.5 --only "guest TX/64 B" --old-batch]
int runs = 5;
double seconds = 1.5;
string only = "";
// --frontend auto|spin|interrupt: how the simulated guest waits when a pass finds nothing to do.
// auto (default): interrupt-driven on the tap rows, busy-yield on the null rows. Through the tap
// the tap sets the pace and a spinning guest mostly burns the shared CPUs (measured up to 1.6
// µs/packet at guest TX 64 B and 46 µs/packet at guest RX 64 KiB); on the null rows the backend
// sets the pace and a spinning guest nearly always finds work (0.02 µs/packet against 0.09).
string frontendMode = "auto";
// Options take a value; --old-batch and --probe-map are switches, read with args.Contains below.
for (int i = 0; i < args.Length; i++)
{
    if (args[i] is "--old-batch" or "--probe-map" || i + 1 == args.Length)
        continue;
    string value = args[++i];
    if (args[i - 1] == "--runs") runs = int.Parse(value, CultureInfo.InvariantCulture);
    else if (args[i - 1] == "--seconds") seconds = double.Parse(value, CultureInfo.InvariantCulture);
    else if (args[i - 1] == "--frontend") frontendMode = value;
    else if (args[i - 1] == "--rx-coalesce-us") Bench.QueueOptions = new NetQueueOptions { RxCoalesceTime = TimeSpan.FromMicroseconds(int.Parse(value, CultureInfo.InvariantCulture)) };
    else if (args[i - 1] == "--only") only = value; // e.g. "guest TX/64 B/null sink": rows whose key starts with it
}

if (args.Contains("--probe-map"))
{
    // Would mapping a 64 KiB guest-TX frame beat copying it? (Linux netback maps fragments.)
    MapProbe.Run();
    return;
}
if (frontendMode is not ("auto" or "spin" or "interrupt"))
    throw new ArgumentException($"--frontend {frontendMode}: auto, spin or interrupt");
Bench.FrontendMode = frontendMode;
var lab = TapLab.Create();
try
{
    var table = new List<string>
    {
        "| direction | size | path | Mpps (median) | Gbit/s | backend CPU µs/pkt | frontend CPU µs/pkt | process CPU µs/pkt | alloc B/pkt | runs (Mpps) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    };
    var medians = new Dictionary<string, Sample>();
    // Paired ratios: each with-tap run is followed at once by its bare-loop run, so a change in the
    // machine's load between the two halves of a row pair moves both (the small-frame RX ratios
    // swung from 63 % to 88 % between full runs when the rows ran one after the other).
    var paired = new Dictionary<string, (List<double> Ratios, string BarePath)>();
    bool Wanted(string direction, string size, string path) => $"{direction}/{size}/{path}".StartsWith(only, StringComparison.Ordinal);
    string Fmt(double v, string f) => double.IsNaN(v) ? "–" : v.ToString(f, CultureInfo.InvariantCulture);
    void AddRow(string direction, string size, string path, List<Sample> samples)
    {
        var ordered = samples.OrderBy(s => s.Pps).ToList();
        var m = ordered[ordered.Count / 2];
        medians[$"{direction}/{size}/{path}"] = m;
        table.Add($"| {direction} | {size} | {path} | {Fmt(m.Pps / 1e6, "0.000")} | {Fmt(m.Pps * m.Bytes * 8 / 1e9, "0.00")} | {Fmt(m.BackendUs, "0.000")} | {Fmt(m.FrontendUs, "0.000")} | {Fmt(m.ProcessUs, "0.000")} | {Fmt(m.AllocPerPacket, "0.00")} | {string.Join(" ", samples.Select(s => (s.Pps / 1e6).ToString("0.000", CultureInfo.InvariantCulture)))} |");
        Console.Error.WriteLine(table[^1]);
    }
    void Row(string direction, string size, string path, Func<Sample> run)
    {
        if (Wanted(direction, size, path))
            AddRow(direction, size, path, [.. Enumerable.Range(0, runs).Select(_ => run())]);
    }
    // The backend through the tap and its bare loop, run by run in turns; optionally a third row
    // (the copy ceiling) in the same turns, paired with the same bare runs.
    void Pair(string direction, string size, string tapPath, string barePath, Func<Sample> backend, Func<Sample> bare, (string Path, Func<Sample> Run)? third = null)
    {
        bool wantTap = Wanted(direction, size, tapPath), wantBare = Wanted(direction, size, barePath);
        bool wantThird = third is { } th && Wanted(direction, size, th.Path);
        var t = new List<Sample>();
        var b = new List<Sample>();
        var c = new List<Sample>();
        for (int i = 0; i < runs; i++)
        {
            if (wantTap) t.Add(backend());
            if (wantBare) b.Add(bare());
            if (wantThird) c.Add(third!.Value.Run());
        }
        if (wantTap) AddRow(direction, size, tapPath, t);
        if (wantBare) AddRow(direction, size, barePath, b);
        if (wantThird) AddRow(direction, size, third!.Value.Path, c);
        if (wantTap && wantBare)
            paired[$"{direction}/{size}/{tapPath}"] = ([.. t.Zip(b, (x, y) => x.Pps / y.Pps)], barePath);
        if (wantThird && wantBare)
            paired[$"{direction}/{size}/{third!.Value.Path}"] = ([.. c.Zip(b, (x, y) => x.Pps / y.Pps)], barePath);
    }

    // --old-batch: guest TX also with the old batch arena (room for one 64 KiB frame beyond 64 x
    // 2 KiB), the before/after of the netpipe change; only the 64 KiB rows can differ.
    bool oldBatchRows = args.Contains("--old-batch");
    const string CopyCeiling = "bare tap write loop, copy first";
    var oldBatch = Bench.QueueOptions with { TxBatchLargeFrames = 1 };
    foreach (var (label, size, gso) in new[] { ("64 B", 64, false), ("1500 B", 1500, false), ("64 KiB GSO", 65535, true) })
    {
        Row("guest TX", label, "null sink", () => Bench.Backend(tx: true, size, gso, null, seconds));
        if (oldBatchRows)
        {
            Row("guest TX", label, "null sink, old batch", () => Bench.Backend(tx: true, size, gso, null, seconds, options: oldBatch));
            Row("guest TX", label, "tap, old batch", () => Bench.Backend(tx: true, size, gso, lab, seconds, options: oldBatch));
        }
        // For 64 KiB, also the ceiling of any backend that copies guest TX frames (dom0 cannot
        // address guest pages without a grant): the bare loop plus one plain memcpy of each frame
        // from a hot buffer, with no grant checks, ring or notifications.
        Pair("guest TX", label, "tap", "bare tap write loop", () => Bench.Backend(tx: true, size, gso, lab, seconds), () => lab.BareWrite(size, gso, seconds),
            gso ? (CopyCeiling, () => lab.BareWrite(size, gso, seconds, copyFirst: true)) : null);
        Row("guest RX", label, "null source", () => Bench.Backend(tx: false, size, gso, null, seconds));
        Pair("guest RX", label, "tap", "bare tap read loop", () => Bench.Backend(tx: false, size, gso, lab, seconds), () => lab.BareRead(size, gso, seconds));
    }
    // Two queues of one vif, each with its own thread, rings and flood frontend: the Mpps column is
    // the sum over both queues. On 2 shared CPUs this shows contention, not scaling.
    Row("guest TX", "64 B", "null sink, 2 queues (sum)", () => Bench.Backend(tx: true, 64, false, null, seconds, queues: 2));
    Row("guest RX", "64 B", "null source, 2 queues (sum)", () => Bench.Backend(tx: false, 64, false, null, seconds, queues: 2));
    // The same two queues through a two-queue tap (IFF_MULTI_QUEUE, one fd per queue), against bare
    // loops with one thread per fd. Guest RX: the generator sends 8 UDP flows, each through one of
    // the queue fds, and tun sends each flow back out through the queue that wrote it. Its own tap and namespace, so the one-queue rows
    // above keep a one-queue tap.
    const string TxMq = "tap, 2 queues (sum)", TxMqBare = "bare tap write loop, 2 queues (sum)", RxMqBare = "bare tap read loop, 2 queues (sum)";
    if (Wanted("guest TX", "64 B", TxMq) || Wanted("guest TX", "64 B", TxMqBare) || Wanted("guest RX", "64 B", TxMq) || Wanted("guest RX", "64 B", RxMqBare))
    {
        using var lab2 = TapLab.Create(queues: 2);
        Pair("guest TX", "64 B", TxMq, TxMqBare, () => Bench.Backend(tx: true, 64, false, lab2, seconds, queues: 2), () => lab2.BareWrite(64, false, seconds));
        Pair("guest RX", "64 B", TxMq, RxMqBare, () => Bench.Backend(tx: false, 64, false, lab2, seconds, queues: 2), () => lab2.BareRead(64, false, seconds));
    }
    Console.WriteLine($"Net.Bench: {runs} runs x {seconds} s per row, 1 queue, medians, rx coalescing {Bench.QueueOptions.RxCoalesceTime.TotalMicroseconds} us, frontend {frontendMode}{(frontendMode == "auto" ? " (interrupt-driven through the tap, busy-yield on the null rows)" : "")}; machine: {Environment.ProcessorCount} CPUs (shared), load average {File.ReadAllText("/proc/loadavg")[..14]}");
    Console.WriteLine();
    foreach (string line in table)
        Console.WriteLine(line);
    Console.WriteLine();
    // The target is the packets/s ratio, taken run by run (each tap run against the bare run right
    // after it) and reported as the median of those pairs. The CPU ratio (bare loop's thread /
    // backend thread, per packet, from the row medians) says how much of a gap is the backend's own
    // work rather than the CPUs it shares with the simulated frontend and the generator.
    foreach (var (key, (ratios, bare)) in paired)
    {
        double median = ratios.OrderBy(r => r).ElementAt(ratios.Count / 2);
        string[] parts = key.Split('/');
        Sample t = medians[key], b = medians[$"{parts[0]}/{parts[1]}/{bare}"];
        string who = parts[2] == CopyCeiling ? "bare loop copying first" : "backend with tap";
        Console.WriteLine($"{parts[0]} {parts[1]}{(parts[2] == "tap" ? "" : $" ({parts[2]})")}: {who} / bare tap loop = {median * 100:0}% of packets/s (median of {ratios.Count} paired runs: {string.Join(" ", ratios.Select(r => (r * 100).ToString("0", CultureInfo.InvariantCulture)))}); CPU per packet bare / backend = {b.BackendUs / t.BackendUs * 100:0}%");
    }
    foreach (var label in new[] { "64 B", "1500 B", "64 KiB GSO" })
    {
        if (oldBatchRows && medians.TryGetValue($"guest TX/{label}/tap, old batch", out Sample o) && medians.TryGetValue($"guest TX/{label}/bare tap write loop", out Sample bw))
            Console.WriteLine($"guest TX {label}: backend with tap, old batch / bare tap loop = {o.Pps / bw.Pps * 100:0}% of packets/s (row medians)");
    }
}
finally
{
    lab.Dispose();
}

internal readonly record struct Sample(double Pps, int Bytes, double BackendUs, double FrontendUs, double ProcessUs, double AllocPerPacket);

internal static class Bench
{
    private const ushort Domid = 9;

    /// <summary>virtio_net_hdr of a TCPv4 TSO super-frame: partial checksum at 34+16, MSS 1448, headers 54 B.</summary>
    public static readonly VirtioNetHeader GsoHeader = new() { Flags = VirtioNetHeader.FlagNeedsCsum, CsumStart = 34, CsumOffset = 16, GsoType = VirtioNetHeader.GsoTcpV4, GsoSize = 1448, HdrLen = 54 };

    /// <summary>
    /// The queue's tunables for every row without its own: the service's defaults, so RX
    /// coalescing at 20 us (limits.netRxCoalesceMicroseconds); --rx-coalesce-us 0 is netback's way.
    /// </summary>
    public static NetQueueOptions QueueOptions = new() { RxCoalesceTime = TimeSpan.FromMicroseconds(20) };

    /// <summary>--frontend: auto, spin (busy-yield) or interrupt (sleep on the event channel).</summary>
    public static string FrontendMode = "auto";

    /// <summary>
    /// One timed run of the real NetQueue (or of <paramref name="queues"/> of them on one vif, each
    /// with its own rings, event channel, flood frontend and null device); the frontends flood,
    /// the queues' own counters are the measure. More than one queue: null devices only.
    /// </summary>
    public static Sample Backend(bool tx, int size, bool gso, TapLab? lab, double seconds, int queues = 1, NetQueueOptions? options = null)
    {
        if (lab is not null && queues > lab.QueueCount)
            throw new ArgumentException($"the tap has {lab.QueueCount} queue(s), not {queues}", nameof(lab));
        using var host = new SimulatedXenHost();
        var dom = host.CreateDomain(Domid, 2048, 2048);
        byte[] frame = gso ? Frames.Tcp(size, tx ? Frames.ElsewhereMac : Frames.GuestMac, tx ? Frames.GuestMac : Frames.TapMac)
            : Frames.Udp(size, tx ? Frames.ElsewhereMac : Frames.GuestMac, tx ? Frames.GuestMac : Frames.TapMac);
        bool spin = FrontendMode == "spin" || (FrontendMode == "auto" && lab is null);
        var grants = host.CreateGrantMapper(0);
        var features = new NetFrontendFeatures { Sg = true, GsoTcpV4 = true, GsoTcpV6 = true, Ipv6CsumOffload = true, RxNotify = true };
        var vif = new VifShared(new MulticastFilter(false), null, null);
        string? fatal = null;
        var fronts = new BenchFrontend[queues];
        var devices = new List<IDisposable>();
        var netQueues = new NetQueue[queues];
        var threads = new Thread[queues];
        var stop = new StopFlag();
        Generator? generator = null;
        try
        {
            for (int q = 0; q < queues; q++)
            {
                var front = fronts[q] = new BenchFrontend(dom, host.OpenEventChannels(Domid), frame, gso && tx, spin);
                var evtchn = host.OpenEventChannels(0);
                uint port = evtchn.BindInterdomain(Domid, front.Port);
                var txMemory = grants.Map(Domid, [front.TxRef], writable: true);
                var rxMemory = grants.Map(Domid, [front.RxRef], writable: true);
                CreditSource? source = null;
                long initialCredit = 0;
                ITapQueue device;
                if (lab is not null)
                    device = lab.QueueAt(q);
                else if (tx)
                {
                    var sink = new NullSink();
                    devices.Add(sink);
                    device = sink;
                }
                else
                {
                    var header = gso ? GsoHeader : new VirtioNetHeader();
                    byte[] record = new byte[VirtioNetHeader.Size + frame.Length];
                    header.WriteTo(record);
                    frame.CopyTo(record, VirtioNetHeader.Size);
                    source = new CreditSource(record);
                    // Frames in flight, granted by the frontend once its buffers are posted: 512
                    // small ones (the ring plus part of the rx queue), or a ring's worth of 64 KiB
                    // ones. Credit comes back only for delivered frames, and a queue whose guest took
                    // nothing drops what it reads: 512 credits of 64 KiB frames used to leave 8
                    // circulating after 504 drops, so that row measured an 8-frame window.
                    int slotsPerFrame = (frame.Length + 4095) / 4096 + (gso ? 1 : 0);
                    initialCredit = slotsPerFrame == 1 ? 512 : (int)front.Rx.Size / slotsPerFrame;
                    devices.Add(source);
                    device = source;
                }
                netQueues[q] = new NetQueue(q, Domid, grants, evtchn, port, port, txMemory, rxMemory, device, features, options ?? QueueOptions, vif, null, (_, m) => fatal = m);
                threads[q] = new Thread(() =>
                {
                    if (tx) front.FloodTx(ref stop.Value);
                    else front.FloodRx(ref stop.Value, source is null ? null : source.AddCredit, initialCredit);
                }) { IsBackground = true, Name = $"bench front q{q}" };
            }
            vif.Queues = netQueues;
            foreach (var queue in netQueues)
                queue.Start();
            foreach (var thread in threads)
                thread.Start();
            generator = !tx && lab is not null ? lab.StartGenerator(size, gso) : null;
            Thread.Sleep(300); // warm-up: JIT tiers, ring in steady state
            if (fatal is not null)
                throw new InvalidOperationException("the queue went fatal: " + fatal);
            int[] tids = [.. Enumerable.Range(0, queues).Select(q => Os.FindThread($"netback d{Domid} q{q}"))];
            int[] frontendTids = [.. Enumerable.Range(0, queues).Select(q => Os.FindThread($"bench front q{q}"))];
            long Packets()
            {
                long sum = 0; // a plain loop: the counter reads fall inside the allocation window
                foreach (var queue in netQueues)
                    sum += tx ? queue.Counters.TxPackets : queue.Counters.RxPackets;
                return sum;
            }
            var sample = Measure(Packets, tids, size, seconds, frontendTids);
            if (Environment.GetEnvironmentVariable("NETBENCH_DEBUG") is not null)
            {
                foreach (var queue in netQueues)
                    Console.Error.WriteLine($"{queue.Counters.Snapshot()} passes={queue.Counters.Passes}");
            }
            if (fatal is not null)
                throw new InvalidOperationException("the queue went fatal: " + fatal);
            return sample;
        }
        finally
        {
            generator?.Dispose();
            stop.Value = true;
            foreach (var thread in threads)
            {
                if (thread?.IsAlive == true)
                    thread.Join();
            }
            foreach (var queue in netQueues)
                queue?.Dispose();
            foreach (var device in devices)
                device.Dispose();
            foreach (var front in fronts)
                front?.Dispose();
            grants.Dispose();
        }
    }

    /// <summary>
    /// Counts, allocations and CPU over one window; the reads at the edges allocate outside the
    /// allocation window. CPU of several backend (and frontend) threads is summed per packet.
    /// </summary>
    public static Sample Measure(Func<long> packets, int[] tids, int size, double seconds, int[] frontendTids)
    {
        long cpu0 = CpuOf(tids);
        long front0 = CpuOf(frontendTids);
        long proc0 = Os.ProcessCpuNanoseconds();
        long alloc0 = GC.GetTotalAllocatedBytes(precise: true);
        long p0 = packets();
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        Thread.Sleep(TimeSpan.FromSeconds(seconds));
        long p1 = packets();
        long t1 = System.Diagnostics.Stopwatch.GetTimestamp();
        long alloc1 = GC.GetTotalAllocatedBytes(precise: true);
        long proc1 = Os.ProcessCpuNanoseconds();
        long cpu1 = CpuOf(tids);
        long front1 = CpuOf(frontendTids);
        double elapsed = (t1 - t0) / (double)System.Diagnostics.Stopwatch.Frequency;
        long n = Math.Max(1, p1 - p0);
        return new Sample((p1 - p0) / elapsed, size, tids.Length > 0 ? (cpu1 - cpu0) / 1000.0 / n : double.NaN,
            frontendTids.Length > 0 ? (front1 - front0) / 1000.0 / n : double.NaN, (proc1 - proc0) / 1000.0 / n, (alloc1 - alloc0) / (double)n);
    }

    private static long CpuOf(int[] tids)
    {
        long sum = 0;
        foreach (int tid in tids)
            sum += Os.ThreadCpuNanoseconds(tid);
        return sum;
    }
}

internal sealed class StopFlag
{
    public bool Value;
}

/// <summary>
/// The guest-RX load: frames written into the tap fd (as if from the wire side) addressed to the
/// guest, which the namespace forwards straight back out of the same tap, where the reader (the
/// backend or the bare loop) takes them. Write and read are the same frames on the same tap.
/// </summary>
internal sealed class Generator : IDisposable
{
    private readonly StopFlag _stop = new();
    private readonly Thread _thread;

    /// <summary>
    /// Writes <paramref name="flows"/> flows round-robin, flow f through queue fd f mod the count:
    /// a multi-queue tap sends a flow's frames out through the queue that last wrote that flow
    /// (tun's automatic flow steering), so this spreads them over the readers.
    /// </summary>
    public Generator(IReadOnlyList<TapQueue> taps, int frameSize, bool gso, int flows = 1)
    {
        byte[] neighbour = [0x02, 0x00, 0x00, 0x00, 0x00, 0x03];
        var records = new byte[flows][];
        for (int f = 0; f < flows; f++)
        {
            byte[] frame = gso ? Frames.Tcp(frameSize, Frames.TapMac, neighbour) : Frames.Udp(frameSize, Frames.TapMac, neighbour, (ushort)(4000 + f));
            byte[] record = records[f] = new byte[VirtioNetHeader.Size + frame.Length];
            // A TSO super-frame as a virtio guest would hand it over (partial checksum, MSS 1448): the
            // namespace forwards it unsegmented (each segment fits the MTU) and, with TSO4 offload on
            // the tap, the reader gets it back whole with the same virtio_net_hdr.
            if (gso)
                Bench.GsoHeader.WriteTo(record);
            frame.CopyTo(record, VirtioNetHeader.Size);
        }
        _thread = new Thread(() =>
        {
            for (int i = 0; !Volatile.Read(ref _stop.Value); i = (i + 1) % flows)
            {
                if (taps[i % taps.Count].Write(records[i]) != TapIoStatus.Ok)
                    Thread.Yield();
            }
        }) { IsBackground = true, Name = "bench generator" };
        _thread.Start();
    }

    public void Dispose()
    {
        _stop.Value = true;
        _thread.Join();
    }
}

/// <summary>A tap in a private namespace (10.203.1.1/24, guest 10.203.1.2 as a static neighbour), removed at the end.</summary>
internal sealed class TapLab : IDisposable
{
    private readonly TapDevice _tap;

    private TapLab(string ns, TapDevice tap)
    {
        Namespace = ns;
        _tap = tap;
    }

    public string Namespace { get; }

    public TapQueue Queue => _tap.Queues[0];

    public TapQueue QueueAt(int q) => _tap.Queues[q];

    public int QueueCount => _tap.Queues.Count;

    /// <summary>A tap of <paramref name="queues"/> queues (IFF_MULTI_QUEUE above one) in a namespace of its own.</summary>
    public static TapLab Create(int queues = 1)
    {
        string ns = $"xbnbench{Environment.ProcessId}q{queues}";
        string name = $"xbnb{Environment.ProcessId % 100000}q{queues}";
        Os.Run("ip", "netns", "add", ns);
        try
        {
            var tap = TapDevice.Create(name, queues, vnetHeader: true, multiQueue: queues > 1);
            tap.SetMacAddress(Frames.TapMac);
            Os.Run("ip", "link", "set", name, "netns", ns);
            Os.Run("ip", "netns", "exec", ns, "sysctl", "-qw", $"net/ipv6/conf/{name}/disable_ipv6=1");
            Os.Run("ip", "-n", ns, "link", "set", name, "up");
            Os.Run("ip", "-n", ns, "addr", "add", "10.203.1.1/24", "dev", name);
            Os.Run("ip", "-n", ns, "neigh", "replace", "10.203.1.2", "lladdr", "02:00:00:00:00:09", "dev", name, "nud", "permanent");
            // Frames the generator writes in are routed back out of the same tap: forwarding on,
            // no redirects or reverse-path checks for a same-interface hairpin.
            foreach (string key in new[] { "net/ipv4/ip_forward=1", "net/ipv4/conf/all/send_redirects=0", $"net/ipv4/conf/{name}/send_redirects=0", "net/ipv4/conf/all/rp_filter=0", $"net/ipv4/conf/{name}/rp_filter=0" })
                Os.Run("ip", "netns", "exec", ns, "sysctl", "-qw", key);
            return new TapLab(ns, tap);
        }
        catch
        {
            Os.Run("ip", "netns", "delete", ns);
            throw;
        }
    }

    /// <summary>
    /// Starts the guest-RX load. GSO rows turn on the offloads NetDevice turns on for a frontend with
    /// feature-gso-tcpv4 (TUN_F_CSUM | TUN_F_TSO4), so the tap hands 64 KiB frames over whole; other
    /// rows keep them off, as before, so their figures stay comparable.
    /// </summary>
    public Generator StartGenerator(int frameSize, bool gso)
    {
        _tap.SetOffloads(gso ? TapOffloads.Checksum | TapOffloads.Tso4 : TapOffloads.None);
        return new([.. Enumerable.Range(0, QueueCount).Select(QueueAt)], frameSize, gso, flows: QueueCount > 1 ? 8 : 1);
    }

    /// <summary>The physical limit for guest TX: one thread writing the same frame to the tap fd.</summary>
    /// <param name="copyFirst">Copy the frame from another buffer before each write (see the ceiling row).</param>
    public Sample BareWrite(int size, bool gso, double seconds, bool copyFirst = false)
    {
        byte[] frame = gso ? Frames.Tcp(size, Frames.ElsewhereMac, Frames.GuestMac) : Frames.Udp(size, Frames.ElsewhereMac, Frames.GuestMac);
        var header = gso ? Bench.GsoHeader : new VirtioNetHeader();
        byte[] record = new byte[VirtioNetHeader.Size + frame.Length];
        header.WriteTo(record);
        frame.CopyTo(record, VirtioNetHeader.Size);
        long count = 0;
        var stop = new StopFlag();
        // One writer per tap queue fd.
        var writers = Enumerable.Range(0, QueueCount).Select(q => new Thread(() =>
        {
            TapQueue queue = QueueAt(q);
            byte[] source = [.. record];
            while (!Volatile.Read(ref stop.Value))
            {
                if (copyFirst)
                    source.CopyTo(record, 0);
                if (queue.Write(record) == TapIoStatus.Ok)
                    Interlocked.Increment(ref count);
            }
        }) { IsBackground = true, Name = $"bench bare tx{q}" }).ToArray();
        foreach (var writer in writers)
            writer.Start();
        Thread.Sleep(300);
        int[] tids = [.. Enumerable.Range(0, QueueCount).Select(q => Os.FindThread($"bench bare tx{q}"))];
        var sample = Bench.Measure(() => Interlocked.Read(ref count), tids, size, seconds, []);
        stop.Value = true;
        foreach (var writer in writers)
            writer.Join();
        return sample;
    }

    /// <summary>The physical limit for guest RX: the same generator, one thread reading the tap fd (sleeping in epoll when empty).</summary>
    public Sample BareRead(int size, bool gso, double seconds)
    {
        long count = 0;
        var stop = new StopFlag();
        // One reader per tap queue fd.
        var readers = Enumerable.Range(0, QueueCount).Select(q => new Thread(() =>
        {
            TapQueue queue = QueueAt(q);
            using var poll = new QueuePoll();
            poll.Add(queue.PollFd, 0);
            byte[] buffer = new byte[70000];
            while (!Volatile.Read(ref stop.Value))
            {
                TapIoStatus status = queue.Read(buffer, out _);
                if (status == TapIoStatus.Ok)
                    Interlocked.Increment(ref count);
                else
                    poll.Wait(50);
            }
        }) { IsBackground = true, Name = $"bench bare rx{q}" }).ToArray();
        foreach (var reader in readers)
            reader.Start();
        using var generator = StartGenerator(size, gso);
        Thread.Sleep(300);
        int[] tids = [.. Enumerable.Range(0, QueueCount).Select(q => Os.FindThread($"bench bare rx{q}"))];
        var sample = Bench.Measure(() => Interlocked.Read(ref count), tids, size, seconds, []);
        stop.Value = true;
        foreach (var reader in readers)
            reader.Join();
        return sample;
    }

    public void Dispose()
    {
        _tap.Dispose();
        try
        {
            Os.Run("ip", "netns", "delete", Namespace);
        }
        catch (InvalidOperationException)
        {
        }
    }
}
