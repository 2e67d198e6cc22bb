using System.Globalization;
using XenBackends.Backend.Block;
using XenBackends.Block.Bench;
using XenBackends.Native.IO;
using XenBackends.Rings;

// Usage: dotnet run -c Release --project bench/Block.Bench -- [--runs 5] [--seconds 2] [--warmup 0.5]
//        [--image-mb 1024] [--filter text[,text...]]
// Every configuration is run --runs times, interleaved so that noise from other tenants spreads
// over all of them, and the median of each column is printed.
var options = BenchOptions.Parse(args);
string imagePath = $"/dev/shm/blockbench-{Environment.ProcessId}.img";
long imageBytes = options.ImageMegabytes << 20;
var configurations = BenchConfiguration.All(imagePath, imageBytes)
    .Where(c => options.Filters.Length == 0 || options.Filters.Any(f => c.Label.Contains(f, StringComparison.Ordinal)))
    .ToList();
Console.WriteLine($"Block.Bench: {configurations.Count} configurations x {options.Runs} runs, {options.Seconds} s each after {options.Warmup} s warm-up; {Environment.ProcessorCount} CPUs; image {options.ImageMegabytes} MiB");

if (configurations.Any(c => !c.Null))
    FillImage(imagePath, imageBytes);
using var bareImage = UnmanagedMemory.AllocatePages((int)(imageBytes / 4096));
bareImage.Span.Fill(0x5A);

var samples = configurations.ToDictionary(c => c, _ => new List<(RunSample Sample, long OutOfResources)>());
var bare = Workload.All.ToDictionary(w => w, _ => new List<RunSample>());
try
{
    for (int run = 0; run < options.Runs; run++)
    {
        foreach (var workload in Workload.All)
        {
            if (!configurations.Any(c => c.Workload == workload))
                continue;
            await using var device = await BenchDevice.ConnectAsync("null:1G", new BlockBackendOptions(), workload);
            bare[workload].Add(BareCopyLoop.Run(workload, device.Guest, device.Front.SlotFrames, bareImage.Span, options.Warmup, options.Seconds));
        }
        foreach (var c in configurations)
        {
            await using var device = await BenchDevice.ConnectAsync(c.Parameters, c.Options, c.Workload);
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

Console.WriteLine();
Console.WriteLine("| image | data path | engine | job | QD | IOPS | GB/s | x bare (wall) | CPU us/req process | CPU us/req backend | x bare (CPU) | alloc B/req | gen0 GCs | errors | oo_req |");
Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
foreach (var workload in Workload.All)
{
    if (bare[workload].Count == 0)
        continue;
    var b = bare[workload];
    double bareIops = Median(b.Select(s => s.Iops));
    double bareCpu = Median(b.Select(s => s.ProcessCpuUsPerRequest));
    Console.WriteLine($"| bare copy | - | - | {workload.Name} | - | {F0(bareIops)} | {F2(Median(b.Select(s => s.GBps)))} | 1.00 | {F3(bareCpu)} | {F3(bareCpu)} | 1.00 | 0 | 0 | 0 | 0 |");
    foreach (var c in configurations.Where(c => c.Workload == workload))
    {
        var s = samples[c];
        double iops = Median(s.Select(x => x.Sample.Iops));
        double backendCpu = Median(s.Select(x => x.Sample.BackendCpuUsPerRequest));
        Console.WriteLine($"| {(c.Null ? "null" : "tmpfs")} | {c.Options.DataPath} | {(c.Null ? "-" : c.Options.IoEngine.ToString())} | {workload.Name} | {workload.QueueDepth} | " +
            $"{F0(iops)} | {F2(Median(s.Select(x => x.Sample.GBps)))} | {F2(iops / bareIops)} | {F3(Median(s.Select(x => x.Sample.ProcessCpuUsPerRequest)))} | " +
            $"{F3(backendCpu)} | {F2(bareCpu / backendCpu)} | {F1(Median(s.Select(x => x.Sample.AllocatedBytesPerRequest)))} | " +
            $"{F0(Median(s.Select(x => (double)x.Sample.Gen0Collections)))} | {s.Sum(x => x.Sample.Errors)} | {F0(Median(s.Select(x => (double)x.OutOfResources)))} |");
    }
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

static double Median(IEnumerable<double> values)
{
    var sorted = values.Order().ToArray();
    if (sorted.Length == 0) return double.NaN;
    int mid = sorted.Length / 2;
    return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

static string F0(double v) => v.ToString("N0", CultureInfo.InvariantCulture);
static string F1(double v) => v.ToString("0.0", CultureInfo.InvariantCulture);
static string F2(double v) => v.ToString("0.00", CultureInfo.InvariantCulture);
static string F3(double v) => v.ToString("0.000", CultureInfo.InvariantCulture);

namespace XenBackends.Block.Bench
{
    internal sealed record BenchOptions(int Runs, TimeSpan Seconds, TimeSpan Warmup, long ImageMegabytes, string[] Filters)
    {
        public static BenchOptions Parse(string[] args)
        {
            int runs = 5;
            double seconds = 2, warmup = 0.5;
            long imageMb = 1024;
            string[] filters = [];
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
                    default: throw new ArgumentException($"unknown option {args[i]}");
                }
                i++;
            }
            return new BenchOptions(runs, TimeSpan.FromSeconds(seconds), TimeSpan.FromSeconds(warmup), imageMb, filters);
        }
    }

    /// <summary>One row of the table: image, data path, engine and job.</summary>
    internal sealed record BenchConfiguration(string Parameters, long ImageBytes, bool Null, BlockBackendOptions Options, Workload Workload)
    {
        public string Label => $"{(Null ? "null" : "tmpfs")}/{Options.DataPath}/{(Null ? "-" : Options.IoEngine.ToString())}/{Workload.Name}";

        public static IEnumerable<BenchConfiguration> All(string imagePath, long imageBytes)
        {
            foreach (var workload in Workload.All)
            {
                foreach (var path in new[] { BlockDataPath.GrantCopy, BlockDataPath.GrantMap })
                {
                    // A null image never reaches an engine, so one row per data path is enough.
                    yield return new BenchConfiguration($"null:{imageBytes}", imageBytes, true, new BlockBackendOptions { DataPath = path }, workload);
                    // Auto is what an administrator gets; it is shown for the default data path only.
                    var engines = path == BlockDataPath.GrantCopy
                        ? new[] { IoEngineKind.Auto, IoEngineKind.IoUring, IoEngineKind.Threads }
                        : new[] { IoEngineKind.IoUring, IoEngineKind.Threads };
                    foreach (var engine in engines)
                        yield return new BenchConfiguration(imagePath, imageBytes, false, new BlockBackendOptions { DataPath = path, IoEngine = engine }, workload);
                }
            }
        }
    }
}
