using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Guest;

namespace XenBackends.Service.Tests.CrashConsistency;

/// <summary>
/// The guest side of the crash test: several writers keep random, non-overlapping, stamped writes
/// (4 KiB to 64 KiB, so indirect requests too) in flight while a flusher issues FLUSH_DISKCACHE and
/// empty WRITE_BARRIERs in turn. Requests are never abandoned: a killed worker's requests stay on the
/// ring and must be answered by the next one. Any status other than OKAY stops the load as a failure.
/// </summary>
internal sealed class GuestWriteLoad
{
    private const int SectorsPerBlock = 8;
    private readonly SimulatedBlkfront _blk;
    private readonly WriteModel _model;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops = [];
    private readonly int _seed;
    private string? _failure;

    public GuestWriteLoad(SimulatedBlkfront blk, WriteModel model, int seed)
    {
        _blk = blk;
        _model = model;
        _seed = seed;
    }

    /// <summary>Why the load stopped on its own (a non-OKAY answer, a broken ring), or null.</summary>
    public string? Failure => Volatile.Read(ref _failure);

    public void Start(int writers)
    {
        for (int w = 0; w < writers; w++)
        {
            var rng = new Random(_seed * 31 + w);
            _loops.Add(Task.Run(() => WriterAsync(rng)));
        }
        _loops.Add(Task.Run(() => FlusherAsync(new Random(_seed * 31 + 1000))));
    }

    /// <summary>Lets every request already issued complete, then returns.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_loops).WaitAsync(timeout);
    }

    private void Fail(string why) => Interlocked.CompareExchange(ref _failure, why, null);

    private async Task WriterAsync(Random rng)
    {
        int blocks = _model.Sectors / SectorsPerBlock;
        var buffer = new byte[16 * SectorsPerBlock * SectorStamp.SectorSize];
        try
        {
            while (!_stop.IsCancellationRequested && Failure is null)
            {
                int count = rng.Next(1, 17);
                int firstBlock = rng.Next(0, blocks - count + 1);
                int first = firstBlock * SectorsPerBlock, sectors = count * SectorsPerBlock;
                if (_model.TryBegin(first, sectors) is not { } version)
                {
                    await Task.Yield();
                    continue;
                }
                for (int s = 0; s < sectors; s++)
                    SectorStamp.Fill(buffer.AsSpan(s * SectorStamp.SectorSize, SectorStamp.SectorSize), first + s, version);
                // CancellationToken.None: an issued write is never taken back, whatever happens to the worker.
                short status = await _blk.WriteAsync((ulong)first, buffer.AsMemory(0, sectors * SectorStamp.SectorSize));
                if (status != BlkifRsp.Okay)
                {
                    Fail($"write v{version} of sectors {first}+{sectors} answered {status}");
                    return;
                }
                _model.Acked(version, first, sectors);
            }
        }
        catch (Exception e)
        {
            Fail("writer: " + e);
        }
    }

    private async Task FlusherAsync(Random rng)
    {
        bool barrier = false;
        try
        {
            while (!_stop.IsCancellationRequested && Failure is null)
            {
                await Task.Delay(rng.Next(1, 15));
                var covered = _model.FlushIssued();
                short status = barrier ? await _blk.BarrierAsync(0, ReadOnlyMemory<byte>.Empty) : await _blk.FlushAsync();
                if (status != BlkifRsp.Okay)
                {
                    Fail($"{(barrier ? "barrier" : "flush")} answered {status}");
                    return;
                }
                _model.FlushAcked(covered);
                barrier = !barrier;
            }
        }
        catch (Exception e)
        {
            Fail("flusher: " + e);
        }
    }
}
