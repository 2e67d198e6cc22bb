using System.Diagnostics;
using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost.Guest;

namespace XenBackends.Service.Sim;

/// <summary>
/// The guest's disk traffic: <c>queueDepth</c> loops of random 4 KiB reads and writes over the first
/// three quarters of the disk and one loop writing 1 MiB sequentially over the rest and reading each
/// chunk back. Every block's last written generation is tracked, so every read is verified; a block is
/// claimed while a request for it is in flight, as a filesystem would never overlap them.
/// </summary>
internal sealed class DiskWorkload
{
    private const int SeqBlocks = 256; // 1 MiB
    private readonly SimulatedBlkfront _disk;
    private readonly int[] _generation;
    private readonly int[] _busy;
    private readonly long _randomBlocks;
    private long _reads, _writes, _readBytes, _writeBytes, _verifiedBlocks, _mismatches, _errors;

    public DiskWorkload(SimulatedBlkfront disk)
    {
        _disk = disk;
        long blocks = (long)(disk.Sectors * disk.SectorSize / BlockPattern.BlockSize);
        _generation = new int[blocks];
        _busy = new int[blocks];
        _randomBlocks = blocks / 4 * 3;
    }

    public LatencyRecorder RandomReadLatency { get; } = new();
    public LatencyRecorder RandomWriteLatency { get; } = new();
    public LatencyRecorder SequentialLatency { get; } = new();

    public long Reads => Interlocked.Read(ref _reads);
    public long Writes => Interlocked.Read(ref _writes);
    public long Bytes => Interlocked.Read(ref _readBytes) + Interlocked.Read(ref _writeBytes);
    public long ReadBytes => Interlocked.Read(ref _readBytes);
    public long WriteBytes => Interlocked.Read(ref _writeBytes);
    public long VerifiedBlocks => Interlocked.Read(ref _verifiedBlocks);
    public long Mismatches => Interlocked.Read(ref _mismatches);

    /// <summary>Requests the backend answered with anything but BLKIF_RSP_OKAY.</summary>
    public long Errors => Interlocked.Read(ref _errors);

    public async Task RunAsync(int queueDepth, CancellationToken stop)
    {
        var loops = Enumerable.Range(0, queueDepth).Select(i => Task.Run(() => RandomLoopAsync(i, stop), CancellationToken.None)).ToList();
        loops.Add(Task.Run(() => SequentialLoopAsync(stop), CancellationToken.None));
        await Task.WhenAll(loops).ConfigureAwait(false);
        if (await _disk.FlushAsync().ConfigureAwait(false) != BlkifRsp.Okay) Interlocked.Increment(ref _errors);
    }

    private async Task RandomLoopAsync(int seed, CancellationToken stop)
    {
        var rng = new Random(seed * 7919 + Environment.ProcessId);
        var buffer = new byte[BlockPattern.BlockSize];
        var scratch = new byte[BlockPattern.BlockSize];
        while (!stop.IsCancellationRequested)
        {
            long block = rng.NextInt64(_randomBlocks);
            if (Interlocked.CompareExchange(ref _busy[block], 1, 0) != 0) continue;
            try
            {
                ulong sector = (ulong)(block * BlockPattern.BlockSize / 512);
                long started = Stopwatch.GetTimestamp();
                if (rng.Next(2) == 0)
                {
                    int generation = _generation[block] + 1;
                    BlockPattern.Fill(buffer, block, generation);
                    short status = await _disk.WriteAsync(sector, buffer).ConfigureAwait(false);
                    RandomWriteLatency.Add(Stopwatch.GetElapsedTime(started));
                    if (status != BlkifRsp.Okay) { Interlocked.Increment(ref _errors); continue; }
                    _generation[block] = generation;
                    Interlocked.Increment(ref _writes);
                    Interlocked.Add(ref _writeBytes, buffer.Length);
                }
                else
                {
                    short status = await _disk.ReadAsync(sector, buffer).ConfigureAwait(false);
                    RandomReadLatency.Add(Stopwatch.GetElapsedTime(started));
                    if (status != BlkifRsp.Okay) { Interlocked.Increment(ref _errors); continue; }
                    Interlocked.Increment(ref _reads);
                    Interlocked.Add(ref _readBytes, buffer.Length);
                    Verify(buffer, block, scratch);
                }
            }
            finally
            {
                Volatile.Write(ref _busy[block], 0);
            }
        }
    }

    private async Task SequentialLoopAsync(CancellationToken stop)
    {
        long first = _randomBlocks, count = _generation.Length - _randomBlocks;
        var chunk = new byte[SeqBlocks * BlockPattern.BlockSize];
        var scratch = new byte[BlockPattern.BlockSize];
        long position = 0;
        while (!stop.IsCancellationRequested && count >= SeqBlocks)
        {
            long start = first + position;
            ulong sector = (ulong)(start * BlockPattern.BlockSize / 512);
            for (int i = 0; i < SeqBlocks; i++)
                BlockPattern.Fill(chunk.AsSpan(i * BlockPattern.BlockSize, BlockPattern.BlockSize), start + i, _generation[start + i] + 1);
            long started = Stopwatch.GetTimestamp();
            short status = await _disk.WriteAsync(sector, chunk).ConfigureAwait(false);
            SequentialLatency.Add(Stopwatch.GetElapsedTime(started));
            if (status != BlkifRsp.Okay) { Interlocked.Increment(ref _errors); continue; }
            for (int i = 0; i < SeqBlocks; i++) _generation[start + i]++;
            Interlocked.Increment(ref _writes);
            Interlocked.Add(ref _writeBytes, chunk.Length);

            // Read the chunk back into a cleared buffer: stale data cannot pass for the new content.
            Array.Clear(chunk);
            started = Stopwatch.GetTimestamp();
            status = await _disk.ReadAsync(sector, chunk).ConfigureAwait(false);
            SequentialLatency.Add(Stopwatch.GetElapsedTime(started));
            if (status != BlkifRsp.Okay) { Interlocked.Increment(ref _errors); continue; }
            Interlocked.Increment(ref _reads);
            Interlocked.Add(ref _readBytes, chunk.Length);
            for (int i = 0; i < SeqBlocks; i++)
                Verify(chunk.AsSpan(i * BlockPattern.BlockSize, BlockPattern.BlockSize), start + i, scratch);
            position = (position + SeqBlocks) % (count - count % SeqBlocks);
        }
    }

    private void Verify(ReadOnlySpan<byte> data, long block, Span<byte> scratch)
    {
        if (BlockPattern.Matches(data, block, _generation[block], scratch))
            Interlocked.Increment(ref _verifiedBlocks);
        else
            Interlocked.Increment(ref _mismatches);
    }
}
