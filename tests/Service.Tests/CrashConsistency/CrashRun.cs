using System.Diagnostics;
using System.Globalization;
using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;

namespace XenBackends.Service.Tests.CrashConsistency;

/// <summary>
/// Kills the real vbd worker process (exec'd by the supervisor, as in production) with SIGKILL at
/// random points while a guest writes and flushes, and after every kill compares the image file
/// with what the guest was told. The simulated host (grant tables, guest memory, event channels,
/// xenstored) lives in this process behind its sockets, so it survives every worker's death, as Xen
/// and the guest do.
/// </summary>
/// <remarks>
/// What this proves, and what it cannot: the worker is killed, the kernel is not. Data a killed
/// process handed to write(2) is in the page cache and survives it (the next reader sees it), so on a
/// buffered image an acknowledged write is on the image after a process crash whether or not a flush
/// followed; the flush contract is checked all the same (FlushedLosses) and is what a guest relies
/// on. With direct-io-safe=1 (O_DIRECT) an acknowledged write has reached the device. Neither run says
/// anything about a host crash or power loss: whether fdatasync really reached stable media is the
/// filesystem's and the disk's promise, which a test that keeps the kernel running cannot observe.
/// The per-sector guarantee that IS checked: after the kill every sector holds exactly one write's
/// data, that write not older than the last one acknowledged (and so not older than the last one an
/// acknowledged flush covered) and not newer than the last one issued. A multi-sector write in
/// flight at the kill may be torn between sectors (some new, some old): blkif promises nothing for
/// an unacknowledged request, and the guest did not see it complete.
/// </remarks>
internal static class CrashRun
{
    public sealed record Options(int Cycles, bool DirectIo, int Seed, int Writers = 6, int ImageMiB = 8);

    public sealed class Result
    {
        public int Cycles;
        public int KillsDuringStartup;
        public long WritesAcked;
        public long WritesMadeDurable;
        public long Flushes;
        public ImageCheck Checks = new();
        public ImageCheck Final = new();
        public TimeSpan Elapsed;
        /// <summary>Connects that took over a live ring from the killed worker's journal, and the requests they served again.</summary>
        public int JournalResumes;
        public int RequestsServedAgain;

        public string Summary(Options o) => string.Create(CultureInfo.InvariantCulture,
            $"crash-consistency ({(o.DirectIo ? "O_DIRECT" : "buffered")} image, seed {o.Seed}): {Cycles} SIGKILL cycles ({KillsDuringStartup} during worker startup) in {Elapsed.TotalSeconds:0.0} s; " +
            $"writes acknowledged {WritesAcked}, made durable by an acknowledged flush {WritesMadeDurable}, flushes/barriers acknowledged {Flushes}; " +
            $"after kills: write checks {Checks.AckedWritesChecked} (acknowledged writes verified intact, summed over kills), of which covered by an acknowledged flush {Checks.DurableWritesChecked}; " +
            $"sector checks {Checks.SectorsChecked} (of which covered by a flush {Checks.DurableSectorsChecked}); " +
            $"flushed-write losses {Checks.FlushedLosses}, acknowledged-write losses {Checks.AckedLosses}, garbage sectors {Checks.Garbage}, phantom sectors {Checks.Phantoms}; " +
            $"in-flight sectors already landed at a kill {Checks.InFlightLanded}; " +
            $"resumes from the request journal {JournalResumes}, requests served again from it {RequestsServedAgain}; final image check: {(Final.Clean && Final.InFlightLanded == 0 ? "exact" : "MISMATCH")}");
    }

    private const ushort Domid = 31;

    public static async Task<Result> RunAsync(Options o, Action<string>? progress = null, Action<string>? trace = null)
    {
        trace ??= _ => { };
        var result = new Result();
        var clock = Stopwatch.StartNew();
        var rng = new Random(o.Seed);
        await using var sim = await ToolstackHost.CreateAsync();
        var config = sim.Config("vbd", initialRestartDelayMs: 150);
        // No growing backoff: every kill here is deliberate, and cycles must stay short.
        config.Restart.MaxDelayMs = config.Restart.InitialDelayMs;
        await using var harness = await SupervisorHarness.StartAsync(config, sim.Spec, SimHost.Worker, sim.Dir);
        var guest = await sim.CreateGuestAsync(Domid, "crash");
        string image = sim.CreateImage((long)o.ImageMiB << 20);
        var disk = await sim.Toolstack.AddDiskAsync(Domid, new DiskSpec("xvda", image) { Script = "block-xen-backends", DirectIoSafe = o.DirectIo });
        var blk = await SimulatedBlkfront.AttachAsync(guest, disk.DevId, new BlkfrontOptions { MaxQueues = 2 });
        await harness.StepAsync(() => blk.WaitConnectedAsync(TimeSpan.FromSeconds(60)));

        var model = new WriteModel(checked((int)((long)o.ImageMiB << 20) / SectorStamp.SectorSize));
        var load = new GuestWriteLoad(blk, model, o.Seed);
        load.Start(o.Writers);
        int previousPid = 0;
        try
        {
            for (int cycle = 1; cycle <= o.Cycles; cycle++)
            {
                int pid = 0;
                await Step(harness, load, blk, () => Eventually.TrueAsync(() => harness.Supervisor.WorkerPids().TryGetValue(Domid, out pid) && pid != previousPid, $"cycle {cycle}: a new worker"));
                // Random kill points: a quarter of the kills land anywhere in the new worker's
                // startup (exec, xenstore scan, ring attach, replay of the dead worker's requests),
                // the rest at a random moment after it has answered the guest again.
                if (rng.Next(4) == 0)
                {
                    result.KillsDuringStartup++;
                    await Task.Delay(rng.Next(0, 400));
                }
                else
                {
                    long acked = model.WritesAcked;
                    await Step(harness, load, blk, () => Eventually.TrueAsync(() => model.WritesAcked > acked || load.Failure is not null, $"cycle {cycle}: worker {pid} serves the guest"));
                    await Task.Delay(rng.Next(0, 150));
                }
                trace($"cycle {cycle}: killing worker {pid}, {model.WritesAcked} acked");
                if (load.Failure is { } failure)
                    throw new InvalidOperationException($"cycle {cycle}: {failure}\nlog:\n{string.Join("\n", harness.Log.Lines)}");

                Process.GetProcessById(pid).Kill(); // SIGKILL
                await Step(harness, load, blk, () => Eventually.TrueAsync(() => !Processes.Alive(pid), $"cycle {cycle}: worker {pid} dead", seconds: 10));
                var before = model.Take();
                byte[] bytes = await File.ReadAllBytesAsync(image);
                var after = model.Take();
                // The check is only exact if no successor touched the image while it was read.
                if (harness.Supervisor.WorkerPids().TryGetValue(Domid, out int next) && next != pid)
                    throw new InvalidOperationException($"cycle {cycle}: worker {next} started while the image was being read; raise the restart delay");
                result.Checks.Run(bytes, before, after);
                trace($"cycle {cycle}: checked");
                if (!result.Checks.Clean)
                    throw new InvalidOperationException($"cycle {cycle}: image check failed: {string.Join("; ", result.Checks.Examples)}");
                previousPid = pid;
                result.Cycles = cycle;
                if (cycle % 25 == 0)
                    progress?.Invoke($"{cycle} cycles, {model.WritesAcked} writes acknowledged, {model.WritesMadeDurable} made durable, {clock.Elapsed.TotalSeconds:0} s");
            }

            // The last worker answers everything still in flight; then all of it is flushed and the
            // image must hold exactly the last acknowledged write in every sector.
            trace("final: waiting for the last worker");
            long ackedNow = model.WritesAcked;
            await Step(harness, load, blk, () => Eventually.TrueAsync(() => model.WritesAcked > ackedNow || load.Failure is not null, "the last worker serves the guest"));
            await load.StopAsync(TimeSpan.FromSeconds(60));
            if (load.Failure is { } end)
                throw new InvalidOperationException(end);
            trace("final: load stopped");
            var covered = model.FlushIssued();
            Assert.Equal(BlkifRsp.Okay, await blk.FlushAsync().WaitAsync(TimeSpan.FromSeconds(30)));
            model.FlushAcked(covered);
            var final = model.Take();
            result.Final.Run(await File.ReadAllBytesAsync(image), final, final);
            if (!result.Final.Clean || result.Final.InFlightLanded != 0)
                throw new InvalidOperationException("final image check failed: " + string.Join("; ", result.Final.Examples));
            // And the guest reads the whole disk back through the last worker, in requests as large
            // as the connection allows.
            var back = new byte[(long)o.ImageMiB << 20];
            int chunk = blk.MaxSegments * 4096;
            for (int offset = 0; offset < back.Length; offset += chunk)
            {
                short read = await blk.ReadAsync((ulong)(offset / SectorStamp.SectorSize), back.AsMemory(offset, Math.Min(chunk, back.Length - offset))).WaitAsync(TimeSpan.FromSeconds(30));
                Assert.Equal(BlkifRsp.Okay, read);
            }
            var readCheck = new ImageCheck();
            readCheck.Run(back, final, final);
            if (!readCheck.Clean || readCheck.InFlightLanded != 0)
                throw new InvalidOperationException("guest read-back failed: " + string.Join("; ", readCheck.Examples));

            trace("final: checked");
            // Every restarted worker must have taken the ring over from its predecessor's journal;
            // one that could not may have lost a request the guest still waits for.
            foreach (string line in harness.Log.Lines)
            {
                if (line.Contains("cannot be served again", StringComparison.Ordinal) || line.Contains("does not fit the ring", StringComparison.Ordinal))
                    throw new InvalidOperationException("a restarted worker could not use the journal: " + line);
                foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(line, @"q\d+: (\d+) request\(s\) served again"))
                {
                    result.JournalResumes++;
                    result.RequestsServedAgain += int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
                }
            }
            result.WritesAcked = model.WritesAcked;
            result.WritesMadeDurable = model.WritesMadeDurable;
            result.Flushes = model.FlushesAcked;
            result.Elapsed = clock.Elapsed;
            return result;
        }
        catch (Exception e)
        {
            trace("failed: " + e.Message);
            throw;
        }
        finally
        {
            // Idempotent after a clean end; after a failure it stops the remaining loops (bounded).
            await load.StopAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
            // Bounded: after a failure the frontend may wait for a backend that will never answer.
            await blk.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30)).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    private static Task Step(SupervisorHarness harness, GuestWriteLoad load, SimulatedBlkfront blk, Func<Task> step) =>
        harness.StepAsync(async () =>
        {
            try
            {
                await step();
            }
            catch (TimeoutException e)
            {
                var supervisor = harness.Supervisor.Completion;
                throw new TimeoutException($"{e.Message}; guest load failure: {load.Failure ?? "none"}; blkfront fault: {blk.Fault?.Message ?? "none"}; " +
                    $"supervisor {supervisor.Status} {supervisor.Exception?.GetBaseException()}; workers [{string.Join(",", harness.Supervisor.WorkerPids().Values)}]; rings: {Rings(blk)}", e);
            }
        });

    /// <summary>Where each ring stands: the first thing to look at when a worker stops answering.</summary>
    private static string Rings(SimulatedBlkfront blk) => string.Join(", ", blk.Hostile.Rings.Select((r, q) =>
        string.Create(CultureInfo.InvariantCulture, $"q{q} req_prod {r.Raw.ReqProd} req_event {r.Raw.ReqEvent} rsp_prod {r.Raw.RspProd} rsp_event {r.Raw.RspEvent} rsp_cons {r.RspCons}")));
}
