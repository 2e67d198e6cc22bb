using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using XenBackends.Backend.Net.Tests.Infra;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.Xenbus;
using Xunit.Abstractions;

namespace XenBackends.Migration.Tests;

/// <summary>
/// xl save/restore and same-host xl migrate of a guest whose Linux-like netfront runs traffic both
/// ways through the real <see cref="Backend.Net.NetDevice"/> and a real tap, with frames in flight
/// at every suspend.
/// </summary>
public class NetSaveRestoreTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Connect = TimeSpan.FromSeconds(30);
    private const ushort EtherType = 0x88B5; // IEEE local experimental: nothing else on the tap uses it
    private const byte FromGuest = 0x47, FromWire = 0x57;

    /// <summary>
    /// Every frame carries a direction and a sequence number, so a frame delivered twice (by a
    /// backend reading a stale ring, or by a frontend re-sending what Linux drops) is seen.
    /// A tx rate limit on the vif (xl's rate=) keeps guest frames waiting in the tx ring, so some
    /// are in flight at each suspend; the wire keeps sending into whatever tap exists, so some
    /// frames land in the old rx ring while the guest is frozen.
    /// </summary>
    [Fact]
    public async Task Netfront_resumes_on_fresh_rings_and_nothing_is_delivered_twice_or_from_a_stale_buffer()
    {
        const int Cycles = 4;
        await using var h = await MigrationHost.StartAsync(nics: true);
        ushort domid = 30;
        await h.Toolstack.CreateDomainAsync(new DomainSpec(domid, "guest") { Pages = 16384, GrantEntries = 16384 });
        var nic = await h.Toolstack.AddNicAsync(domid, new NicSpec { Rate = (16384, 50_000) });
        await using var front = await SimulatedNetfront.AttachAsync(h.Toolstack.GetGuest(domid), nic.DevId, new NetfrontOptions { MaxQueues = 2 });
        await front.WaitConnectedAsync(Connect);
        await WaitUntil(() => h.IsServing(nic.Path) && h.Nic(nic.Path).Lifecycle.RingsUp, "the backend to connect");
        string mac = front.Mac;
        byte[] guestMac = MacBytes(mac);
        Assert.Equal(1, front.Generation);

        using var stop = new CancellationTokenSource();
        // The guest's side: what it received, in order, with the connection that delivered it.
        var received = new List<(int Seq, int Generation)>();
        var receiver = Task.Run(async () =>
        {
            while (true)
            {
                ReceivedFrame frame;
                try { frame = await front.ReceiveAsync(stop.Token); }
                catch (OperationCanceledException)
                {
                    if (!front.TryReceive(out frame)) return; // drain what was delivered before the stop
                }
                var (dir, seq) = Tag(frame.Data);
                Assert.Equal(FromWire, dir);
                lock (received) received.Add((seq, frame.Generation));
            }
        });

        // The guest sends tagged frames continuously, many outstanding at once.
        int nextTx = 0, txOkay = 0, txDropped = 0, txOther = 0;
        var outstanding = new ConcurrentDictionary<int, Task>();
        async Task SendOneAsync(int length)
        {
            int seq = Interlocked.Increment(ref nextTx);
            var frame = Frames.Raw(length, Frames.TapMac, guestMac, EtherType);
            WriteTag(frame, FromGuest, seq);
            short status = await front.SendAsync(frame);
            if (status == NetifRsp.Okay) Interlocked.Increment(ref txOkay);
            else if (status == NetifRsp.Dropped) Interlocked.Increment(ref txDropped);
            else Interlocked.Increment(ref txOther);
        }
        var sender = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                for (int i = 0; i < 4; i++)
                {
                    var t = SendOneAsync(200);
                    outstanding[t.Id] = t;
                    _ = t.ContinueWith(done => outstanding.TryRemove(done.Id, out _), TaskScheduler.Default);
                }
                await Task.Delay(5);
            }
        });

        // The wire: one socket on the current tap at a time, reading the guest's frames and
        // sending tagged ones toward the guest.
        var onWire = new ConcurrentBag<int>();
        int nextRx = 0, wireSendFailures = 0;
        Wire wire = OpenWire(h, $"vif{domid}.{nic.DevId}", onWire, guestMac, () => Interlocked.Increment(ref nextRx), () => Interlocked.Increment(ref wireSendFailures));
        await WaitUntil(() => onWire.Count > 20 && Count(received) > 20, "traffic both ways before the first move");

        var pauses = new List<string>();
        for (int cycle = 0; cycle < Cycles; cycle++)
        {
            bool migrate = cycle % 2 == 1;
            ushort next = (ushort)(domid + 1);
            var oldPath = nic.Path;
            string oldTap = $"vif{domid}.{nic.DevId}";
            // A burst the rate limit cannot pass at once: these are in the tx ring when the guest freezes.
            var burst = Enumerable.Range(0, 120).Select(_ => SendOneAsync(1000)).ToArray();
            var clock = Stopwatch.StartNew();
            var moved = await h.Toolstack.SaveRestoreAsync(domid, new SaveRestoreSpec(next) { Migrate = migrate });
            domid = next;
            nic = moved.Devices.Single(d => d.Kind == "vif");
            await front.WaitConnectedAsync(Connect);
            int rxMark = Count(received);
            var connected = clock.Elapsed;

            // A fresh connection, under the new domid, with the MAC the guest had.
            Assert.Equal(cycle + 2, front.Generation);
            Assert.Equal($"/local/domain/{domid}/device/vif/{nic.DevId}", front.NodeName);
            Assert.Equal(mac, front.Mac);
            Assert.Null(front.Fault);

            // The old backend let go of everything: device disposed, rings unmapped, tap deleted.
            await WaitUntil(() => !h.IsServing(oldPath), $"the backend of {oldPath.Backend} to finish");
            Assert.Empty(h.Nic(oldPath).Device.Counters);
            Assert.Null(h.Nic(oldPath).Device.InterfaceName);
            Assert.DoesNotContain(oldTap + ":", h.Ns!.Ip("-o", "link", "show"));
            Assert.Null(await h.Toolstack.Dom0.TryReadStringAsync(oldPath.Backend + "/state"));

            wire.Dispose();
            await WaitUntil(() => h.IsServing(nic.Path) && h.Nic(nic.Path).Lifecycle.RingsUp, "the new backend to connect");
            int wireMark = onWire.Count;
            wire = OpenWire(h, $"vif{domid}.{nic.DevId}", onWire, guestMac, () => Interlocked.Increment(ref nextRx), () => Interlocked.Increment(ref wireSendFailures));
            await WaitUntil(() => onWire.Count > wireMark, $"a guest frame on the new tap after move {cycle}");
            var txBack = clock.Elapsed;
            await WaitUntil(() => Count(received) > rxMark, $"a wire frame in the guest after move {cycle}");
            var rxBack = clock.Elapsed;
            await Task.WhenAll(burst).WaitAsync(Connect);
            pauses.Add(string.Create(CultureInfo.InvariantCulture,
                $"{(migrate ? "migrate" : "save/restore")} {cycle}: source gone {moved.SourceDestroyed.TotalMilliseconds:0} ms, connected {connected.TotalMilliseconds:0} ms, first tx on new tap {txBack.TotalMilliseconds:0} ms, first rx in guest {rxBack.TotalMilliseconds:0} ms"));

            // Nothing from a ring of an older connection reached the guest once the new one was up.
            lock (received)
                Assert.All(received.Skip(rxMark), r => Assert.Equal(front.Generation, r.Generation));
        }

        await WaitUntil(() => onWire.Count > 0 && Count(received) > 0, "traffic after the last move");
        wire.Dispose();
        await wire.Reader;
        // The wire is quiet: once the guest has read every frame its counters show, stop reading.
        await WaitUntil(() => Count(received) == front.Counters.RxPackets, "the guest to read every frame it was given");
        stop.Cancel();
        await sender;
        await Task.WhenAll(outstanding.Values).WaitAsync(Connect);
        await receiver;

        var counters = front.Counters;
        int[] rxSeqs, rxGenerations;
        lock (received)
        {
            rxSeqs = [.. received.Select(r => r.Seq)];
            rxGenerations = [.. received.Select(r => r.Generation)];
        }
        int[] wireSeqs = [.. onWire];
        output.WriteLine(string.Join(Environment.NewLine, pauses));
        output.WriteLine($"guest tx: sent {nextTx}, okay {txOkay}, dropped at resume {txDropped}, other {txOther}; seen on the wire {wireSeqs.Length}");
        output.WriteLine($"wire tx: sent {nextRx} (failed sends while no tap {wireSendFailures}), received by the guest {rxSeqs.Length}; counters {counters}");

        // Delivered at most once, each way.
        Assert.Equal(rxSeqs.Length, rxSeqs.Distinct().Count());
        Assert.Equal(wireSeqs.Length, wireSeqs.Distinct().Count());
        // The guest only ever read rx buffers of its newest connection: generations never go back.
        Assert.True(rxGenerations.Zip(rxGenerations.Skip(1)).All(p => p.First <= p.Second), "a frame from an older connection arrived after a newer one's");
        Assert.Equal(Cycles + 1, rxGenerations.Max());
        // Every send completed once: OKAY, or DROPPED for what was in flight at a suspend.
        Assert.Equal(0, txOther);
        Assert.Equal(nextTx, txOkay + txDropped);
        Assert.True(txDropped > 0, "no frame was in flight at any suspend: the test did not test that");
        Assert.Equal(new NetfrontCounters(txOkay, counters.TxBytes, 0, rxSeqs.Length, counters.RxBytes, 0) { TxDropped = txDropped }, counters);
        // The wire saw each answered frame at most once, and never more frames than were sent.
        Assert.True(wireSeqs.Length <= nextTx);
        Assert.True(wireSeqs.All(s => s >= 1 && s <= nextTx));
    }

    private sealed class Wire(PacketSocket socket, CancellationTokenSource stop, Task reader, Task writer) : IDisposable
    {
        public Task Reader => Task.WhenAll(reader, writer);

        public void Dispose()
        {
            if (stop.IsCancellationRequested) return;
            stop.Cancel();
            Task.WhenAll(reader, writer).Wait(TimeSpan.FromSeconds(10));
            socket.Dispose();
            stop.Dispose();
        }
    }

    private static Wire OpenWire(MigrationHost h, string tap, ConcurrentBag<int> onWire, byte[] guestMac, Func<int> nextSeq, Action sendFailed)
    {
        var socket = h.Ns!.Inside(() => PacketSocket.Open(tap));
        var stop = new CancellationTokenSource();
        var token = stop.Token;
        var reader = Task.Factory.StartNew(() =>
        {
            while (!token.IsCancellationRequested)
            {
                byte[]? frame;
                try { frame = socket.Receive(50); }
                catch (InvalidOperationException) { return; } // ENETDOWN: the tap was deleted
                if (frame is null) continue;
                if (frame.Length < 19 || BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)) != EtherType) continue;
                var (dir, seq) = Tag(frame);
                if (dir == FromGuest) onWire.Add(seq);
            }
        }, TaskCreationOptions.LongRunning);
        var writer = Task.Run(async () =>
        {
            while (!token.IsCancellationRequested)
            {
                var frame = Frames.Raw(300, guestMac, Frames.TapMac, EtherType);
                WriteTag(frame, FromWire, nextSeq());
                try { socket.Send(frame); }
                catch (InvalidOperationException) { sendFailed(); } // the tap went away under us
                try { await Task.Delay(3, token); } catch (OperationCanceledException) { }
            }
        });
        return new Wire(socket, stop, reader, writer);
    }

    private static void WriteTag(byte[] frame, byte direction, int seq)
    {
        frame[14] = direction;
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(15), seq);
    }

    private static (byte Direction, int Seq) Tag(byte[] frame) => (frame[14], BinaryPrimitives.ReadInt32BigEndian(frame.AsSpan(15)));

    private static int Count(List<(int, int)> list)
    {
        lock (list) return list.Count;
    }

    private static byte[] MacBytes(string mac) => [.. mac.Split(':').Select(b => byte.Parse(b, NumberStyles.HexNumber, CultureInfo.InvariantCulture))];

    private static async Task WaitUntil(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Connect;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(5);
        }
    }
}
