using Xunit.Abstractions;
using System.Globalization;

namespace XenBackends.Service.Tests.CrashConsistency;

/// <summary>
/// The CI variant of scripts/crash-consistency: the same run with few cycles. XB_CRASH_CYCLES,
/// XB_CRASH_SEED and XB_CRASH_REPORT (a file the summary line is appended to) let the script run it long.
/// </summary>
public sealed class CrashConsistencyTests(ITestOutputHelper output)
{
    private static int Env(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v : fallback;

    private async Task RunAsync(bool directIo, int defaultCycles, int defaultSeed)
    {
        var options = new CrashRun.Options(Env("XB_CRASH_CYCLES", defaultCycles), directIo, Env("XB_CRASH_SEED", defaultSeed));
        string? tracePath = Environment.GetEnvironmentVariable("XB_CRASH_TRACE");
        Action<string>? trace = tracePath is { Length: > 0 } ? line => File.AppendAllText(tracePath, $"{DateTime.UtcNow:HH:mm:ss.fff} {line}\n") : null;
        var result = await CrashRun.RunAsync(options, line => output.WriteLine(line), trace);
        string summary = result.Summary(options);
        output.WriteLine(summary);
        if (Environment.GetEnvironmentVariable("XB_CRASH_REPORT") is { Length: > 0 } report)
            await File.AppendAllTextAsync(report, summary + "\n");
        Assert.Equal(options.Cycles, result.Cycles);
        Assert.True(result.Checks.Clean);
        Assert.True(result.Checks.DurableSectorsChecked > 0, "no flushed write was ever checked: the test proved nothing");
        Assert.True(result.WritesMadeDurable >= options.Cycles, $"only {result.WritesMadeDurable} writes were made durable in {options.Cycles} cycles");
    }

    [Fact]
    public Task Acknowledged_and_flushed_writes_survive_SIGKILLed_vbd_workers_on_a_buffered_image() =>
        RunAsync(directIo: false, defaultCycles: 16, defaultSeed: 1);

    [Fact]
    public Task Acknowledged_and_flushed_writes_survive_SIGKILLed_vbd_workers_on_an_O_DIRECT_image() =>
        RunAsync(directIo: true, defaultCycles: 10, defaultSeed: 2);
}
