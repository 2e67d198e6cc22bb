using System.Globalization;
using XenBackends.Backend.Net;
using XenBackends.Native;
using XenBackends.Native.Tap;
using XenBackends.Net.Bench;
using XenBackends.SimulatedHost;

// Net.Bench: one NetQueue (the per-queue data path) on the simulated host, guest TX and guest RX,
// with a null frame device and with a real tap in a private namespace, plus bare tap loops.
// Usage: dotnet run -c Release --project bench/Net.Bench [-- --runs 5 --seconds 1.5 --only "guest TX/64 B"]
int runs = 5;
double seconds = 1.5;
string only = "";
for (int i = 0; i + 1 < args.Length; i += 2)
{
    if (args[i] == "--runs") runs = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
    else if (args[i] == "--seconds") seconds = double.Parse(args[i + 1], CultureInfo.InvariantCulture);
    else if (args[i] == "--only") only = args[i + 1]; // e.g. "guest TX/64 B/null sink": rows whose key starts with it
}

var lab = TapLab.Create();
try
{
    var table = new List<string>
    {
        "| direction | size | path | Mpps (median) | Gbit/s | backend CPU µs/pkt | process CPU µs/pkt | alloc B/pkt | runs (Mpps) |",
        "|---|---|---|---|---|---|---|---|---|",
    };
    var medians = new Dictionary<string, double>();
    void Row(string direction, string size, string path, Func<List<Sample>> measure)
    {
        if (!$"{direction}/{size}/{path}".StartsWith(only, StringComparison.Ordinal))
            return;
        var samples = measure();
        var ordered = samples.OrderBy(s => s.Pps).ToList();
        var m = ordered[ordered.Count / 2];
        medians[$"{direction}/{size}/{path}"] = m.Pps;
        string Fmt(double v, string f) => double.IsNaN(v) ? "–" : v.ToString(f, CultureInfo.InvariantCulture);
        table.Add($"| {direction} | {size} | {path} | {Fmt(m.Pps / 1e6, "0.000")} | {Fmt(m.Pps * m.Bytes * 8 / 1e9, "0.00")} | {Fmt(m.BackendUs, "0.000")} | {Fmt(m.ProcessUs, "0.000")} | {Fmt(m.AllocPerPacket, "0.00")} | {string.Join(" ", samples.Select(s => (s.Pps / 1e6).ToString("0.000", CultureInfo.InvariantCulture)))} |");
        Console.Error.WriteLine(table[^1]);
    }
    Func<List<Sample>> Repeat(Func<Sample> run) => () => [.. Enumerable.Range(0, runs).Select(_ => run())];

    foreach (var (label, size, gso) in new[] { ("64 B", 64, false), ("1500 B", 1500, false), ("64 KiB GSO", 65535, true) })
    {
        Row("guest TX", label, "null sink", Repeat(() => Bench.Backend(tx: true, size, gso, null, seconds)));
        Row("guest TX", label, "tap", Repeat(() => Bench.Backend(tx: true, size, gso, lab, seconds)));
        Row("guest TX", label, "bare tap write loop", Repeat(() => lab.BareWrite(size, gso, seconds)));
        Row("guest RX", label, "null source", Repeat(() => Bench.Backend(tx: false, size, gso, null, seconds)));
        if (!gso)
        {
            Row("guest RX", label, "tap", Repeat(() => Bench.Backend(tx: false, size, gso, lab, seconds)));
            Row("guest RX", label, "bare tap read loop", Repeat(() => lab.BareRead(size, seconds)));
        }
    }
    Console.WriteLine($"Net.Bench: {runs} runs x {seconds} s per row, 1 queue, medians; machine: {Environment.ProcessorCount} CPUs (shared)");
    Console.WriteLine();
    foreach (string line in table)
        Console.WriteLine(line);
    Console.WriteLine();
    foreach (var (label, size) in new[] { ("64 B", 64), ("1500 B", 1500), ("64 KiB GSO", 65535) })
    {
        if (medians.TryGetValue($"guest TX/{label}/tap", out double t) && medians.TryGetValue($"guest TX/{label}/bare tap write loop", out double b))
            Console.WriteLine($"guest TX {label}: backend with tap / bare tap loop = {t / b * 100:0}%");
        if (medians.TryGetValue($"guest RX/{label}/tap", out double rt) && medians.TryGetValue($"guest RX/{label}/bare tap read loop", out double rb))
            Console.WriteLine($"guest RX {label}: backend with tap / bare tap loop = {rt / rb * 100:0}%");
    }
}
finally
{
    lab.Dispose();
}

internal readonly record struct Sample(double Pps, int Bytes, double BackendUs, double ProcessUs, double AllocPerPacket);

internal static class Bench
{
    private const ushort Domid = 9;

    /// <summary>One timed run of the real NetQueue; the frontend floods, counters of the queue are the measure.</summary>
    public static Sample Backend(bool tx, int size, bool gso, TapLab? lab, double seconds)
    {
        using var host = new SimulatedXenHost();
        var dom = host.CreateDomain(Domid, 2048, 2048);
        byte[] frame = gso ? Frames.Tcp(size, tx ? Frames.ElsewhereMac : Frames.GuestMac, tx ? Frames.GuestMac : Frames.TapMac)
            : Frames.Udp(size, tx ? Frames.ElsewhereMac : Frames.GuestMac, tx ? Frames.GuestMac : Frames.TapMac);
        var front = new BenchFrontend(dom, frame, gso && tx);
        var grants = host.CreateGrantMapper(0);
        var evtchn = host.OpenEventChannels(0);
        uint port = evtchn.BindInterdomain(Domid, front.Port);
        var txMemory = grants.Map(Domid, [front.TxRef], writable: true);
        var rxMemory = grants.Map(Domid, [front.RxRef], writable: true);

        using var sink = new NullSink();
        CreditSource? source = null;
        ITapQueue device;
        if (lab is not null)
            device = lab.Queue;
        else if (tx)
            device = sink;
        else
        {
            var header = new VirtioNetHeader();
            if (gso)
                header = new VirtioNetHeader { Flags = VirtioNetHeader.FlagNeedsCsum, CsumStart = 34, CsumOffset = 16, GsoType = VirtioNetHeader.GsoTcpV4, GsoSize = 1448, HdrLen = 54 };
            byte[] record = new byte[VirtioNetHeader.Size + frame.Length];
            header.WriteTo(record);
            frame.CopyTo(record, VirtioNetHeader.Size);
            source = new CreditSource(record);
            source.AddCredit(512);
            device = source;
        }
        var features = new NetFrontendFeatures { Sg = true, GsoTcpV4 = true, GsoTcpV6 = true, Ipv6CsumOffload = true, RxNotify = true };
        var vif = new VifShared(new MulticastFilter(false), null, null);
        string? fatal = null;
        var queue = new NetQueue(0, Domid, grants, evtchn, port, port, txMemory, rxMemory, device, features, new NetQueueOptions(), vif, null, (_, m) => fatal = m);
        vif.Queues = [queue];
        queue.Start();
        var stop = new StopFlag();
        var frontend = new Thread(() =>
        {
            if (tx) front.FloodTx(ref stop.Value);
            else front.FloodRx(ref stop.Value, source is null ? null : source.AddCredit);
        }) { IsBackground = true, Name = "bench frontend" };
        frontend.Start();
        Generator? generator = !tx && lab is not null ? lab.StartGenerator(size) : null;
        try
        {
            Thread.Sleep(300); // warm-up: JIT tiers, ring in steady state
            int tid = Os.FindThread($"netback d{Domid} q0");
            var sample = Measure(() => tx ? queue.Counters.TxPackets : queue.Counters.RxPackets, tid, size, seconds);
            if (fatal is not null)
                throw new InvalidOperationException("the queue went fatal: " + fatal);
            return sample;
        }
        finally
        {
            generator?.Dispose();
            stop.Value = true;
            frontend.Join();
            queue.Dispose();
            source?.Dispose();
            grants.Dispose();
        }
    }

    /// <summary>Counts, allocations and CPU over one window; the reads at the edges allocate outside the allocation window.</summary>
    public static Sample Measure(Func<long> packets, int tid, int size, double seconds)
    {
        long cpu0 = tid > 0 ? Os.ThreadCpuNanoseconds(tid) : 0;
        long proc0 = Os.ProcessCpuNanoseconds();
        long alloc0 = GC.GetTotalAllocatedBytes(precise: true);
        long p0 = packets();
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        Thread.Sleep(TimeSpan.FromSeconds(seconds));
        long p1 = packets();
        long t1 = System.Diagnostics.Stopwatch.GetTimestamp();
        long alloc1 = GC.GetTotalAllocatedBytes(precise: true);
        long proc1 = Os.ProcessCpuNanoseconds();
        long cpu1 = tid > 0 ? Os.ThreadCpuNanoseconds(tid) : 0;
        double elapsed = (t1 - t0) / (double)System.Diagnostics.Stopwatch.Frequency;
        long n = Math.Max(1, p1 - p0);
        return new Sample((p1 - p0) / elapsed, size, tid > 0 ? (cpu1 - cpu0) / 1000.0 / n : double.NaN, (proc1 - proc0) / 1000.0 / n, (alloc1 - alloc0) / (double)n);
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

    public Generator(TapQueue tap, int frameSize)
    {
        byte[] frame = Frames.Udp(frameSize, Frames.TapMac, [0x02, 0x00, 0x00, 0x00, 0x00, 0x03]);
        byte[] record = new byte[VirtioNetHeader.Size + frame.Length];
        frame.CopyTo(record, VirtioNetHeader.Size);
        _thread = new Thread(() =>
        {
            while (!Volatile.Read(ref _stop.Value))
            {
                if (tap.Write(record) != TapIoStatus.Ok)
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

    public static TapLab Create()
    {
        string ns = $"xbnbench{Environment.ProcessId}";
        string name = $"xbnb{Environment.ProcessId % 100000}";
        Os.Run("ip", "netns", "add", ns);
        try
        {
            var tap = TapDevice.Create(name, 1, vnetHeader: true);
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

    public Generator StartGenerator(int frameSize) => new(Queue, frameSize);

    /// <summary>The physical limit for guest TX: one thread writing the same frame to the tap fd.</summary>
    public Sample BareWrite(int size, bool gso, double seconds)
    {
        byte[] frame = gso ? Frames.Tcp(size, Frames.ElsewhereMac, Frames.GuestMac) : Frames.Udp(size, Frames.ElsewhereMac, Frames.GuestMac);
        var header = gso
            ? new VirtioNetHeader { Flags = VirtioNetHeader.FlagNeedsCsum, CsumStart = 34, CsumOffset = 16, GsoType = VirtioNetHeader.GsoTcpV4, GsoSize = 1448, HdrLen = 54 }
            : new VirtioNetHeader();
        byte[] record = new byte[VirtioNetHeader.Size + frame.Length];
        header.WriteTo(record);
        frame.CopyTo(record, VirtioNetHeader.Size);
        long count = 0;
        var stop = new StopFlag();
        var writer = new Thread(() =>
        {
            while (!Volatile.Read(ref stop.Value))
            {
                if (Queue.Write(record) == TapIoStatus.Ok)
                    Interlocked.Increment(ref count);
            }
        }) { IsBackground = true, Name = "bench bare tx" };
        writer.Start();
        Thread.Sleep(300);
        var sample = Bench.Measure(() => Interlocked.Read(ref count), Os.FindThread("bench bare tx"), size, seconds);
        stop.Value = true;
        writer.Join();
        return sample;
    }

    /// <summary>The physical limit for guest RX: the same generator, one thread reading the tap fd (sleeping in epoll when empty).</summary>
    public Sample BareRead(int size, double seconds)
    {
        long count = 0;
        var stop = new StopFlag();
        var reader = new Thread(() =>
        {
            using var poll = new QueuePoll();
            poll.Add(Queue.PollFd, 0);
            byte[] buffer = new byte[70000];
            while (!Volatile.Read(ref stop.Value))
            {
                TapIoStatus status = Queue.Read(buffer, out _);
                if (status == TapIoStatus.Ok)
                    Interlocked.Increment(ref count);
                else
                    poll.Wait(50);
            }
        }) { IsBackground = true, Name = "bench bare rx" };
        reader.Start();
        using var generator = StartGenerator(size);
        Thread.Sleep(300);
        var sample = Bench.Measure(() => Interlocked.Read(ref count), Os.FindThread("bench bare rx"), size, seconds);
        stop.Value = true;
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
