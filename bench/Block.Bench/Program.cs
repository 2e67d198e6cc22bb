using System.Globalization;
using System.IO.MemoryMappedFiles;
using Microsoft.Win32.SafeHandles;
using XenBackends.Backend.Block;
using XenBackends.Block.Bench;
using XenBackends.Native.IO;
using XenBackends.Native.Linux;
using XenBackends.Rings;

// Usage: dotnet run -c Release --project bench/Block.Bench -- [--runs 5] [--seconds 2] [--warmup 0.5]
//        [--image-mb 1024] [--filter text[,text...]] [--frontend sleep|poll|both] [--backend-poll-us 0]
// Every configuration is run --runs times, interleaved so that noise from other tenants spreads
// over all of them, and the median of each column is printed.
const string Usage = "usage: Block.Bench [--runs 5] [--seconds 2] [--warmup 0.5] [--image-mb 1024] [--filter text[,text...]] [--frontend sleep|poll|both] [--backend-poll-us 0]";
if (args is ["--help"] or ["-h"])
{
    Console.WriteLine(Usage);
    return 0;
}
BenchOptions options;
try
{
    options = BenchOptions.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
{
    Console.Error.WriteLine($"Block.Bench: {e.Message}\n{Usage}");
    return 2;
}
string imagePath = $"/dev/shm/blockbench-{Environment.ProcessId}.img";
long imageBytes = options.ImageMegabytes << 20;
var configurations = BenchConfiguration.All(imagePath, imageBytes, options.Frontends, TimeSpan.FromMicroseconds(options.BackendPollMicroseconds))
    .Where(c => options.Filters.Length == 0 || options.Filters.Any(f => c.Label.Contains(f, StringComparison.Ordinal)))
    .ToList();
Console.WriteLine($"Block.Bench: {configurations.Count} configurations x {options.Runs} runs, {options.Seconds} s each after {options.Warmup} s warm-up; {Environment.ProcessorCount} CPUs; image {options.ImageMegabytes} MiB; backend poll {options.BackendPollMicroseconds} us");

Console.WriteLine($"load average at start: {LoadAverage()}");

bool anyTmpfs = configurations.Any(c => !c.Null);
if (anyTmpfs)
    FillImage(imagePath, imageBytes);
using var bareImage = UnmanagedMemory.AllocatePages((int)(imageBytes / 4096));
bareImage.Span.Fill(0x5A);
// The tmpfs rows' own file, for the bare loops that move the same bytes to the same file pages.
using SafeFileHandle? bareFile = anyTmpfs ? File.OpenHandle(imagePath, FileMode.Open, FileAccess.ReadWrite) : null;
using MemoryMappedFile? bareMap = anyTmpfs ? MemoryMappedFile.CreateFromFile(imagePath, FileMode.Open, null, 0, MemoryMappedFileAccess.ReadWrite) : null;
using MemoryMappedViewAccessor? bareView = bareMap?.CreateViewAccessor(0, imageBytes, MemoryMappedFileAccess.ReadWrite);
nint mappedImage = bareView is null ? 0 : bareView.SafeMemoryMappedViewHandle.DangerousGetHandle() + (nint)bareView.PointerOffset;
if (mappedImage != 0)
    FaultIn(mappedImage, imageBytes);

var samples = configurations.ToDictionary(c => c, _ => new List<(RunSample Sample, long OutOfResources)>());
var bare = new Dictionary<(Workload, BareMethod), List<RunSample>>();
try
{
    for (int run = 0; run < options.Runs; run++)
    {
        foreach (var workload in Workload.All)
        {
            if (!configurations.Any(c => c.Workload == workload))
                continue;
            await using var device = await BenchDevice.ConnectAsync("null:1G", new BlockBackendOptions(), workload, pollingFrontend: false);
            var loops = new List<BareCopyLoop> { BareCopyLoop.Memcpy(workload, device.Guest, device.Front.SlotFrames, BareMethod.AnonMemcpy, bareImage.Address, imageBytes) };
            if (configurations.Any(c => c.Workload == workload && !c.Null))
            {
                loops.Add(BareCopyLoop.Syscalls(workload, device.Guest, device.Front.SlotFrames, bareFile!, imageBytes));
                loops.Add(BareCopyLoop.Memcpy(workload, device.Guest, device.Front.SlotFrames, BareMethod.FileMmapMemcpy, mappedImage, imageBytes));
            }
            foreach (var loop in loops)
            {
                var sample = loop.Run(options.Warmup, options.Seconds);
                if (!bare.TryGetValue((workload, loop.Method), out var list))
                    bare[(workload, loop.Method)] = list = [];
                list.Add(sample);
            }
        }
        foreach (var c in configurations)
        {
            await using var device = await BenchDevice.ConnectAsync(c.Parameters, c.Options, c.Workload, c.PollingFrontend);
            RunSample sample = default;
            Exception? failure = null;
            var thread = new Thread(() =>
            {
                try { sample = device.Front.Run(c.ImageBytes, options.Warmup, options.Seconds); }
                catch (TimeoutException e) { failure = e; }
            }) { Name = "bench-front" };
            thread.Start();
            thread.Join();
            if (failure is not null)
            {
                // A stall is a finding, not noise: report it with the queue's own view and go on.
                var q = device.Block.Queues.FirstOrDefault();
                Console.Error.WriteLine($"\nSTALL {c.Label}: {failure.Message}; fault={device.Block.LastFault ?? "none"}, engine={q?.IoEngineName}, worker finished={q?.Finished}");
                continue;
            }
            samples[c].Add((sample, device.Block.Statistics.OutOfResourceRequests));
            Console.Error.Write('.');
        }
        Console.Error.WriteLine($" run {run + 1}/{options.Runs}");
    }
}
finally
{
    File.Delete(imagePath);
}

Console.WriteLine($"load average at end: {LoadAverage()}");
Console.WriteLine();
Console.WriteLine("| image | data path | engine | frontend | job | QD | IOPS | GB/s | CPU us/req process | CPU us/req backend | x memcpy bare (wall) | x memcpy bare (CPU) | x file bare (wall) | x file bare (CPU) | alloc B/req | gen0 GCs | errors | oo_req |");
Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
var yardsticks = new List<string>();
foreach (var workload in Workload.All)
{
    if (!bare.TryGetValue((workload, BareMethod.AnonMemcpy), out var anon))
        continue;
    var memcpyBare = Summary.Of(anon.Select(x => x.Iops), anon.Select(x => x.ProcessCpuUsPerRequest));
    // The file yardstick is whichever way of moving the bytes to the tmpfs file costs less CPU per
    // operation (CPU, not wall clock: it is what other tenants disturb least).
    Summary? fileBare = null;
    var fileRows = new List<(string Label, Summary Summary)>();
    foreach (var (method, label) in new[] { (BareMethod.FilePreadPwrite, "pread/pwrite"), (BareMethod.FileMmapMemcpy, "memcpy to mmap") })
    {
        if (!bare.TryGetValue((workload, method), out var list))
            continue;
        var summary = Summary.Of(list.Select(x => x.Iops), list.Select(x => x.ProcessCpuUsPerRequest));
        fileRows.Add((label, summary));
        if (fileBare is null || summary.CpuUs < fileBare.CpuUs)
            fileBare = summary;
    }
    if (fileBare is not null)
        yardsticks.Add($"{workload.Name}: {fileRows.First(r => r.Summary == fileBare).Label}");

    void Row(string image, string path, string engine, string frontend, string qd, Summary s, double processCpu, string alloc, string gcs, string errors, string ooReq, bool fileRatio) =>
        Console.WriteLine($"| {image} | {path} | {engine} | {frontend} | {workload.Name} | {qd} | {F0(s.Iops)} | {F2(s.Iops * workload.BlockBytes / 1e9)} | {F3(processCpu)} | {F3(s.CpuUs)} | " +
            $"{F2(s.Iops / memcpyBare.Iops)} | {F2(memcpyBare.CpuUs / s.CpuUs)} | " +
            $"{(fileRatio && fileBare is not null ? F2(s.Iops / fileBare.Iops) : "-")} | {(fileRatio && fileBare is not null ? F2(fileBare.CpuUs / s.CpuUs) : "-")} | {alloc} | {gcs} | {errors} | {ooReq} |");

    Row("bare memcpy", "anonymous memory", "-", "-", "-", memcpyBare, memcpyBare.CpuUs, "0", "0", "0", "0", fileRatio: false);
    foreach (var (label, summary) in fileRows)
        Row("bare " + label, "tmpfs file", "-", "-", "-", summary, summary.CpuUs, "0", "0", "0", "0", fileRatio: true);
    foreach (var c in configurations.Where(c => c.Workload == workload))
    {
        var s = samples[c];
        var backend = Summary.Of(s.Select(x => x.Sample.Iops), s.Select(x => x.Sample.BackendCpuUsPerRequest));
        Row(c.Null ? "null" : "tmpfs", c.Options.DataPath.ToString(), c.Null ? "-" : c.Options.IoEngine.ToString(), c.FrontendName, workload.QueueDepth.ToString(CultureInfo.InvariantCulture),
            backend, Median(s.Select(x => x.Sample.ProcessCpuUsPerRequest)), F1(Median(s.Select(x => x.Sample.AllocatedBytesPerRequest))),
            F0(Median(s.Select(x => (double)x.Sample.Gen0Collections))), s.Sum(x => x.Sample.Errors).ToString(CultureInfo.InvariantCulture),
            F0(Median(s.Select(x => (double)x.OutOfResources))), fileRatio: !c.Null);
    }
}
if (yardsticks.Count > 0)
    Console.WriteLine($"\nfile bare loop used as the tmpfs yardstick (lower CPU per operation): {string.Join("; ", yardsticks)}");
return 0;

static void FaultIn(nint mapped, long bytes)
{
    // The cheapest memcpy to a file mapping is one that takes no page fault: touch every page
    // (read and write back the same byte, so write faults are taken too) before any timing.
    for (long at = 0; at < bytes; at += 4096)
    {
        Span<byte> page = UnmanagedSpan.FromAddress(mapped + (nint)at, 1);
        page[0] = Volatile.Read(ref page[0]);
    }
}

static string LoadAverage()
{
    try { return File.ReadAllText("/proc/loadavg").Trim(); }
    catch (IOException) { return "unknown"; }
}

static void FillImage(string path, long bytes)
{
    // Written, not sparse: reading a tmpfs hole returns the shared zero page and would flatter reads.
    using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
    var chunk = new byte[1 << 20];
    new Random(1).NextBytes(chunk);
    for (long done = 0; done < bytes; done += chunk.Length)
        file.Write(chunk);
}

static double Median(IEnumerable<double> values) => Summary.MedianOf(values);

static string F0(double v) => v.ToString("N0", CultureInfo.InvariantCulture);
static string F1(double v) => v.ToString("0.0", CultureInfo.InvariantCulture);
static string F2(double v) => v.ToString("0.00", CultureInfo.InvariantCulture);
static string F3(double v) => v.ToString("0.000", CultureInfo.InvariantCulture);

namespace XenBackends.Block.Bench
{
    internal sealed record BenchOptions(int Runs, TimeSpan Seconds, TimeSpan Warmup, long ImageMegabytes, string[] Filters, bool[] Frontends, int BackendPollMicroseconds)
    {
        public static BenchOptions Parse(string[] args)
        {
            int runs = 5, pollUs = 0;
            double seconds = 2, warmup = 0.5;
            long imageMb = 1024;
            string[] filters = [];
            bool[] frontends = [false, true];
            for (int i = 0; i < args.Length; i++)
            {
                string value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value");
                switch (args[i])
                {
                    case "--runs": runs = int.Parse(value, CultureInfo.InvariantCulture); break;
                    case "--seconds": seconds = double.Parse(value, CultureInfo.InvariantCulture); break;
                    case "--warmup": warmup = double.Parse(value, CultureInfo.InvariantCulture); break;
                    case "--image-mb": imageMb = long.Parse(value, CultureInfo.InvariantCulture); break;
                    case "--filter": filters = value.Split(','); break;
                    case "--frontend":
                        frontends = value switch
                        {
                            "sleep" => [false],
                            "poll" => [true],
                            "both" => [false, true],
                            _ => throw new ArgumentException($"--frontend {value}: not sleep, poll or both"),
                        };
                        break;
                    case "--backend-poll-us":
                        pollUs = int.Parse(value, CultureInfo.InvariantCulture);
                        if (pollUs is < 0 or > 1000) throw new ArgumentException("--backend-poll-us must be 0..1000");
                        break;
                    default: throw new ArgumentException($"unknown option {args[i]}");
                }
                i++;
            }
            return new BenchOptions(runs, TimeSpan.FromSeconds(seconds), TimeSpan.FromSeconds(warmup), imageMb, filters, frontends, pollUs);
        }
    }

    /// <summary>The medians of one row: operations per second (wall clock) and CPU microseconds per operation.</summary>
    internal sealed record Summary(double Iops, double CpuUs)
    {
        public static Summary Of(IEnumerable<double> iops, IEnumerable<double> cpuUs) => new(MedianOf(iops), MedianOf(cpuUs));

        public static double MedianOf(IEnumerable<double> values)
        {
            var sorted = values.Order().ToArray();
            if (sorted.Length == 0) return double.NaN;
            int mid = sorted.Length / 2;
            return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
        }
    }

    /// <summary>One row of the table: image, data path, engine, frontend and job.</summary>
    internal sealed record BenchConfiguration(string Parameters, long ImageBytes, bool Null, BlockBackendOptions Options, Workload Workload, bool PollingFrontend)
    {
        public string FrontendName => PollingFrontend ? "poll" : "sleep";

        public string Label => $"{(Null ? "null" : "tmpfs")}/{Options.DataPath}/{(Null ? "-" : Options.IoEngine.ToString())}/{Workload.Name}/{FrontendName}";

        public static IEnumerable<BenchConfiguration> All(string imagePath, long imageBytes, bool[] frontends, TimeSpan backendPoll)
        {
            foreach (var workload in Workload.All)
            {
                foreach (bool polling in frontends)
                {
                    foreach (var path in new[] { BlockDataPath.GrantCopy, BlockDataPath.GrantMap })
                    {
                        // A null image never reaches an engine, so one row per data path is enough.
                        yield return new BenchConfiguration($"null:{imageBytes}", imageBytes, true, new BlockBackendOptions { DataPath = path, PollTime = backendPoll }, workload, polling);
                        // Auto is what an administrator gets; it is shown for the default data path only.
                        var engines = path == BlockDataPath.GrantCopy
                            ? new[] { IoEngineKind.Auto, IoEngineKind.Inline, IoEngineKind.IoUring, IoEngineKind.Threads }
                            : new[] { IoEngineKind.Inline, IoEngineKind.IoUring, IoEngineKind.Threads };
                        foreach (var engine in engines)
                            yield return new BenchConfiguration(imagePath, imageBytes, false, new BlockBackendOptions { DataPath = path, IoEngine = engine, PollTime = backendPoll }, workload, polling);
                    }
                }
            }
        }
    }
}
