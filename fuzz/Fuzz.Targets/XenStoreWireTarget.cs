using System.Buffers.Binary;
using System.Threading.Channels;
using XenBackends.XenStore;

namespace XenBackends.Fuzz;

/// <summary>
/// Target 5, xenstore-wire: the real <see cref="XenStoreClient"/> (its reader loop, frame parser,
/// dispatcher and the reply parsers of each operation) with eight requests in flight (req_id 1-8)
/// and a daemon stream the input writes, delivered in chunks of an input-chosen size.
/// Oracle: the frames are walked independently (xs_wire.h) up to the first protocol violation
/// (len over XENSTORE_PAYLOAD_MAX, unknown type, a reply nobody waits for or of the wrong type, a
/// watch event without path and token, a frame cut by end of stream); at that point every
/// still-waiting request must fail with <see cref="XenStoreConnectionException"/>.
/// Invariants: no hang; every call ends with its result or a documented exception (the
/// XenStoreException family; FormatException from ReadInt64Async); XS_ERROR replies become
/// <see cref="XenStoreErrorException"/> with the daemon's errno name; a READ answered before the
/// violation returns exactly the payload; the watch events delivered are exactly the well-formed ones
/// before the violation, in order.
/// </summary>
internal sealed class XenStoreWireTarget : FuzzTarget
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    /// <summary>The request types issued, by req_id - 1.</summary>
    private static readonly XsdSockmsgType[] Issued =
    [
        XsdSockmsgType.XS_READ, XsdSockmsgType.XS_DIRECTORY, XsdSockmsgType.XS_GET_PERMS, XsdSockmsgType.XS_WATCH,
        XsdSockmsgType.XS_TRANSACTION_START, XsdSockmsgType.XS_IS_DOMAIN_INTRODUCED, XsdSockmsgType.XS_READ, XsdSockmsgType.XS_GET_DOMAIN_PATH,
    ];

    public override string Name => "xenstore-wire";

    private sealed record Outcome(bool Answered, bool Error, string? ErrnoName, byte[] Payload);

    protected override void Execute(ReadOnlySpan<byte> data)
    {
        var input = new FuzzInput(data);
        int chunk = input.Byte() is var c && c == 0 ? int.MaxValue : c;
        byte[] script = input.Rest().ToArray();
        var (outcomes, events) = Oracle(script);

        var stream = new ScriptedStream(script, chunk, Issued.Length);
        var client = XenStoreClient.Create(new XenStoreTransport(stream, "fuzz script"));
        Task[] calls =
        [
            client.ReadAsync("/a"),
            client.DirectoryAsync("/b"),
            client.GetPermissionsAsync("/c"),
            client.WatchAsync("/d", "token"),
            client.StartTransactionAsync(),
            client.IsDomainIntroducedAsync(1),
            client.ReadInt64Async("/e"),
            client.GetDomainPathAsync(3),
        ];
        var received = new List<XenStoreWatchEvent>();
        Task drain = Task.Run(async () =>
        {
            try
            {
                await foreach (var e in client.WatchEvents.ReadAllAsync().ConfigureAwait(false))
                    received.Add(e);
            }
            catch (Exception e) when (e is XenStoreConnectionException || e is ChannelClosedException { InnerException: XenStoreConnectionException })
            {
                // The documented end of the event stream when the connection dies (the reason
                // itself, or wrapped, depending on which channel call saw it).
            }
        });
        try
        {
            bool done = Task.WhenAll(calls.Append(drain)).ContinueWith(_ => { }, TaskScheduler.Default).Wait(Bound);
            InvariantViolation.Check(done, "a call or the watch event stream did not end after the daemon's stream did");
            InvariantViolation.Check(drain.IsCompletedSuccessfully, () => $"the watch event stream ended with {drain.Exception?.InnerException?.GetType().Name}: {drain.Exception?.InnerException?.Message}");
            for (int i = 0; i < calls.Length; i++)
                CheckCall(i, calls[i], outcomes[i]);
            InvariantViolation.Check(received.Count == events.Count, () => $"{received.Count} watch events delivered, {events.Count} sent before the violation");
            for (int i = 0; i < events.Count; i++)
                InvariantViolation.Check(received[i].Path == events[i].Path && received[i].Token == events[i].Token, () => $"watch event {i} altered");
        }
        finally
        {
            client.DisposeAsync().AsTask().Wait(Bound);
        }
    }

    private static void CheckCall(int i, Task call, Outcome? expected)
    {
        Exception? e = call.Exception?.InnerException;
        string what = $"{Issued[i]} (req_id {i + 1})";
        if (expected is null)
        {
            InvariantViolation.Check(e is XenStoreConnectionException, () => $"{what} was never answered yet ended with {Describe(call)}");
            return;
        }
        if (expected.Error)
        {
            InvariantViolation.Check(e is XenStoreErrorException x && x.ErrnoName == expected.ErrnoName, () => $"{what} answered XS_ERROR {expected.ErrnoName} but ended with {Describe(call)}");
            return;
        }
        // Answered with a payload of the right type: the operation's own parser decides.
        InvariantViolation.Check(e is null or XenStoreException || (e is FormatException && i == 6), () => $"{what} ended with {Describe(call)}");
        InvariantViolation.Check(e is not XenStoreConnectionException, () => $"{what} was answered yet failed as a dead connection: {e!.Message}");
        if (i == 0)
            InvariantViolation.Check(((Task<byte[]>)call).Result.AsSpan().SequenceEqual(expected.Payload), "a READ returned other bytes than its reply carried");
    }

    private static string Describe(Task call) => call.Exception?.InnerException is { } e ? $"{e.GetType().Name}: {e.Message}" : "success";

    /// <summary>xs_wire.h framing, walked without the product's parser.</summary>
    private static (Outcome?[] Outcomes, List<(string Path, string Token)> Events) Oracle(byte[] script)
    {
        var outcomes = new Outcome?[Issued.Length];
        var events = new List<(string, string)>();
        int at = 0;
        while (script.Length - at >= 16)
        {
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(script.AsSpan(at));
            uint reqId = BinaryPrimitives.ReadUInt32LittleEndian(script.AsSpan(at + 4));
            uint len = BinaryPrimitives.ReadUInt32LittleEndian(script.AsSpan(at + 12));
            if (len > 4096 || type >= 23 || type == 20 || script.Length - at - 16 < len)
                break;
            byte[] payload = script.AsSpan(at + 16, (int)len).ToArray();
            at += 16 + (int)len;
            if (type == (uint)XsdSockmsgType.XS_WATCH_EVENT)
            {
                List<string> parts = XsPayload.Split(payload);
                if (parts.Count < 2)
                    break;
                events.Add((parts[0], parts[1]));
                continue;
            }
            if (reqId is < 1 or > 8 || outcomes[reqId - 1] is not null)
                break;
            if (type == (uint)XsdSockmsgType.XS_ERROR)
            {
                outcomes[reqId - 1] = new Outcome(true, true, XsPayload.SingleString(payload), payload);
                continue;
            }
            if (type != (uint)Issued[reqId - 1])
                break;
            outcomes[reqId - 1] = new Outcome(true, false, null, payload);
        }
        return (outcomes, events);
    }

    public override IEnumerable<(string Name, byte[] Data)> Seeds()
    {
        byte[] Frame(XsdSockmsgType type, uint reqId, params string[] strings) => XsdSockmsg.Frame(type, reqId, 0, XsPayload.Strings(strings));
        byte[] Script(int chunk, params byte[][] frames) => [(byte)chunk, .. frames.SelectMany(f => f)];
        yield return ("all-answered", Script(0,
            XsdSockmsg.Frame(XsdSockmsgType.XS_READ, 1, 0, "value"u8),
            Frame(XsdSockmsgType.XS_DIRECTORY, 2, "x", "y", "z"),
            Frame(XsdSockmsgType.XS_GET_PERMS, 3, "b0", "r5", "n7"),
            Frame(XsdSockmsgType.XS_WATCH, 4, "OK"),
            Frame(XsdSockmsgType.XS_WATCH_EVENT, 0, "/d", "token"),
            Frame(XsdSockmsgType.XS_TRANSACTION_START, 5, "17"),
            Frame(XsdSockmsgType.XS_IS_DOMAIN_INTRODUCED, 6, "T"),
            XsdSockmsg.Frame(XsdSockmsgType.XS_READ, 7, 0, "-42"u8),
            Frame(XsdSockmsgType.XS_GET_DOMAIN_PATH, 8, "/local/domain/3")));
        yield return ("errors-out-of-order", Script(7,
            Frame(XsdSockmsgType.XS_ERROR, 8, "ENOENT"),
            Frame(XsdSockmsgType.XS_ERROR, 1, "EACCES"),
            Frame(XsdSockmsgType.XS_ERROR, 5, "EAGAIN"),
            XsdSockmsg.Frame(XsdSockmsgType.XS_READ, 7, 0, "twelve"u8),
            Frame(XsdSockmsgType.XS_GET_PERMS, 3, "q1")));
        yield return ("violation-unknown-req-id", Script(3,
            Frame(XsdSockmsgType.XS_DIRECTORY, 2),
            Frame(XsdSockmsgType.XS_READ, 99, "?"),
            Frame(XsdSockmsgType.XS_IS_DOMAIN_INTRODUCED, 6, "F")));
        yield return ("violation-type-mismatch", Script(0, Frame(XsdSockmsgType.XS_WATCH_EVENT, 0, "/d", "t"), Frame(XsdSockmsgType.XS_RM, 4, "OK")));
        var oversized = new byte[16];
        new XsdSockmsg(XsdSockmsgType.XS_READ, 1, 0, 5000).WriteTo(oversized);
        yield return ("violation-oversized", Script(16, Frame(XsdSockmsgType.XS_TRANSACTION_START, 5, "0"), oversized));
        yield return ("cut-frame", Script(1, Frame(XsdSockmsgType.XS_GET_DOMAIN_PATH, 8, "/local/domain/3"), Frame(XsdSockmsgType.XS_READ, 1, "abc")[..20]));
    }
}
