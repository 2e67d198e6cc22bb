using System.Globalization;
using XenBackends.Native;
using XenBackends.Native.IO;
using XenBackends.Native.Linux;
using XenBackends.Rings;
using XenBackends.Rings.Blkif;
using XenBackends.Xenbus;

namespace XenBackends.Backend.Block;

/// <summary>
/// One virtual block device (vbd/qdisk) seen from dom0: the xenbus handshake of blkif.h and Linux
/// blkback's xenbus.c, and the queues that serve its rings. <see cref="BackendLifecycle"/> calls it
/// one step at a time.
/// </summary>
public sealed class BlockDevice : IBackendDevice
{
    private readonly IGrantMapper _grants;
    private readonly Func<IEventChannels> _openEventChannels;
    private readonly BlockBackendOptions _options;
    private readonly Action<string>? _log;
    private XenbusDevice? _device;
    private BlockImage? _image;
    private BlockQueue[] _queues = [];
    /// <summary>Each queue's journal, kept across reconnects (a queue resumes from its predecessor's).</summary>
    private BlkifJournal?[] _journals = [];

    /// <param name="grants">Shared by all queues (gntdev copy and map are safe from several threads).</param>
    /// <param name="openEventChannels">
    /// Opens one event-channel handle per queue, so each worker's pending ports are its own.
    /// </param>
    public BlockDevice(IGrantMapper grants, Func<IEventChannels> openEventChannels, BlockBackendOptions? options = null, Action<string>? log = null)
    {
        _grants = grants;
        _openEventChannels = openEventChannels;
        _options = options ?? new BlockBackendOptions();
        _options.Validate();
        _log = log;
    }

    public BlockStatistics Statistics { get; } = new();

    public BlockImage? Image => _image;

    /// <summary>The running queues (empty while not connected).</summary>
    public IReadOnlyList<BlockQueue> Queues => _queues;

    /// <summary>The last thing that stopped a queue (a hostile ring, a failed worker), for status output.</summary>
    public string? LastFault { get; private set; }

    public async Task PrepareAsync(XenbusDevice device, CancellationToken cancellationToken)
    {
        _device = device;
        var configuration = await BlockConfiguration.ReadAsync(device, cancellationToken).ConfigureAwait(false);
        _image?.Dispose();
        _image = null;
        if (configuration.NullImageBytes is { } nullBytes)
        {
            _image = new BlockImage(nullBytes, configuration);
            _log?.Invoke($"{device.Path}: serving a NULL image (benchmark only: writes are discarded, reads return zeros)");
        }
        else
        {
            ImageFile file = ImageFile.Open(configuration.Path, configuration.Writable, configuration.DirectIo);
            try
            {
                _image = new BlockImage(file, configuration, _options.SectorSizeOverride);
            }
            catch
            {
                file.Dispose();
                throw;
            }
            // Auto on the grant-copy path: an image in memory is copied to and from through a mapping.
            if (_options is { IoEngine: IoEngineKind.Auto, DataPath: BlockDataPath.GrantCopy, IoEngineFactory: null } && file.IsMemoryResident)
            {
                string mapping = _image.TryMapIntoMemory();
                _log?.Invoke($"{device.Path}: image mapping: {mapping}");
            }
        }
        // What the frontend needs before it sizes its rings and requests (blkback's probe).
        await device.Store.RunTransactionAsync(async t =>
        {
            string b = device.BackendPath + "/";
            await t.WriteAsync(b + "feature-max-indirect-segments", Format(_options.MaxIndirectSegments), cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "max-ring-page-order", Format(_options.MaxRingPageOrder), cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "multi-queue-max-queues", Format(_options.MaxQueues), cancellationToken).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
    }

    public async Task ConnectAsync(XenbusDevice device, CancellationToken cancellationToken)
    {
        BlockImage image = _image ?? throw new InvalidOperationException("ConnectAsync before PrepareAsync");
        _device = device;
        // A frontend that reconnects without closing first (kexec, XSA-350 flapping) gets fresh rings.
        await DisconnectAsync(cancellationToken).ConfigureAwait(false);

        var layout = await ReadRingLayoutAsync(device, cancellationToken).ConfigureAwait(false);
        // Connected already: a worker restarted under a live guest (or a frontend re-initialising
        // without closing first). Only then may a queue take over the ring from its journal; a
        // fresh connection starts its journals over, whatever they hold.
        bool resume = await device.ReadBackendStateAsync(cancellationToken).ConfigureAwait(false) == XenbusState.Connected;
        var queues = new List<BlockQueue>(layout.Queues.Length);
        try
        {
            ushort domid = checked((ushort)device.FrontendId);
            for (int q = 0; q < layout.Queues.Length; q++)
                queues.Add(OpenQueue(q, domid, layout.Abi, layout.Queues[q], image, resume));
            await PublishGeometryAsync(device, image, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            foreach (var queue in queues) queue.Dispose();
            throw;
        }
        _queues = [.. queues];
        foreach (var queue in _queues) queue.Start();
        _log?.Invoke($"{device.Path}: connected, {_queues.Length} queue(s), {layout.Abi}, ring order {layout.RingPageOrder}, {_options.DataPath}{(_queues[0].CopiesThroughImageMapping ? " through the image mapping" : "")}, I/O {_queues[0].IoEngineName}{Resumed()}");
        foreach (var queue in _queues)
        {
            if (queue.ResumeProblem is { } problem)
                _log?.Invoke($"{device.Path}: queue {queue.Index}: {problem}");
        }
    }

    /// <summary>For the connect log: which queues took over from a predecessor's journal.</summary>
    private string Resumed()
    {
        var resumed = _queues.Where(q => q.Resumed).ToArray();
        return resumed.Length == 0 ? "" : "; resumed from the journal (" + string.Join(", ", resumed.Select(q => $"q{q.Index}: {q.ReplayedRequests} request(s) served again")) + ")";
    }

    /// <summary>The journal file of queue <paramref name="index"/> of a vbd (the supervisor removes a dead domain's by the domid prefix).</summary>
    public static string JournalFileName(DevicePath path, int index) =>
        string.Create(CultureInfo.InvariantCulture, $"{path.FrontendDomId}-{path.Kind}-{path.DevId}-q{index}");

    /// <summary>
    /// Queue <paramref name="index"/>'s journal for a ring of <paramref name="slots"/>: the one kept
    /// from the last connection, the file a killed worker left, or a new one.
    /// </summary>
    private BlkifJournal OpenJournal(int index, uint slots)
    {
        if (_journals.Length <= index)
            Array.Resize(ref _journals, index + 1);
        if (_journals[index] is { } kept && kept.Slots == slots)
            return kept;
        _journals[index]?.Dispose();
        _journals[index] = null;
        int length = BlkifJournal.LengthFor(slots);
        SharedMemory memory = _options.JournalDirectory is { } directory && _device is { } device
            ? MappedFile.Open(Path.Combine(directory, JournalFileName(device.Path, index)), length)
            : UnmanagedMemory.AllocatePages(length / SharedRing.PageSize);
        return _journals[index] = new BlkifJournal(memory, slots);
    }

    /// <summary>What makes a ring this ring: its domain, ABI, event channel and grant references.</summary>
    private static byte[] JournalIdentity(ushort domid, BlkifAbi abi, QueueKeys keys)
    {
        var identity = new byte[12 + 4 * keys.Refs.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(identity, domid);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(identity.AsSpan(4), (uint)abi);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(identity.AsSpan(8), keys.RemotePort);
        for (int i = 0; i < keys.Refs.Length; i++)
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(identity.AsSpan(12 + 4 * i), keys.Refs[i]);
        return identity;
    }

    private sealed record QueueKeys(string Path, uint[] Refs, uint RemotePort);

    private sealed record RingLayout(BlkifAbi Abi, int RingPageOrder, QueueKeys[] Queues);

    /// <summary>Every guest-written ring key, validated before anything is mapped (blkback's connect_ring).</summary>
    private async Task<RingLayout> ReadRingLayoutAsync(XenbusDevice device, CancellationToken cancellationToken)
    {
        string? protocol = await device.ReadFrontendAsync("protocol", cancellationToken).ConfigureAwait(false);
        if (!BlkifProtocol.TryParse(protocol, out BlkifAbi abi))
            throw new FrontendConfigurationException(device.FrontendPath + "/protocol", protocol, "unknown blkif protocol");
        uint order = await FrontendKeys.ReadUInt32Async(device, "ring-page-order", 0, (uint)_options.MaxRingPageOrder, 0, cancellationToken).ConfigureAwait(false);
        uint queueCount = await FrontendKeys.ReadUInt32Async(device, "multi-queue-num-queues", 1, (uint)_options.MaxQueues, 1, cancellationToken).ConfigureAwait(false);
        int pages = 1 << (int)order;
        var queues = new QueueKeys[queueCount];
        for (int q = 0; q < queueCount; q++)
        {
            // One queue keeps the flat layout; more put each ring under queue-N/ (blkif.h).
            string prefix = queueCount == 1 ? "" : $"queue-{q}/";
            var refs = new uint[pages];
            for (int i = 0; i < pages; i++)
            {
                string key = order == 0 ? prefix + "ring-ref" : prefix + "ring-ref" + Format(i);
                string? value = await device.ReadFrontendAsync(key, cancellationToken).ConfigureAwait(false);
                if (value is null && order == 0)
                {
                    // Linux's read_per_ring_refs accepts ring-ref0 for a one-page ring too.
                    key = prefix + "ring-ref0";
                    value = await device.ReadFrontendAsync(key, cancellationToken).ConfigureAwait(false);
                }
                refs[i] = FrontendKeys.ParseUInt32(device.FrontendPath + "/" + key, value, 0, uint.MaxValue, null);
            }
            uint port = await FrontendKeys.ReadUInt32Async(device, prefix + "event-channel", 0, uint.MaxValue, null, cancellationToken).ConfigureAwait(false);
            queues[q] = new QueueKeys(device.FrontendPath + "/" + prefix, refs, port);
        }
        return new RingLayout(abi, (int)order, queues);
    }

    private BlockQueue OpenQueue(int index, ushort domid, BlkifAbi abi, QueueKeys keys, BlockImage image, bool resume)
    {
        SharedMemory ring;
        try
        {
            ring = _grants.Map(domid, keys.Refs, writable: true);
        }
        catch (GrantException e)
        {
            throw new FrontendConfigurationException(keys.Path + "ring-ref", null, "cannot map the ring: " + e.Message);
        }
        IEventChannels? events = null;
        uint port = 0;
        bool bound = false;
        try
        {
            events = _openEventChannels();
            try
            {
                port = events.BindInterdomain(domid, keys.RemotePort);
                bound = true;
            }
            catch (XenNativeException e)
            {
                throw new FrontendConfigurationException(keys.Path + "event-channel", Format((int)keys.RemotePort), "cannot bind: " + e.Message);
            }
            uint slots = BlkifProtocol.Layout(abi).RingSize(keys.Refs.Length * SharedRing.PageSize);
            BlkifJournal journal = OpenJournal(index, slots);
            return new BlockQueue(index, domid, ring, abi, events, port, _grants, image, Statistics, _options, OnQueueFault, WithdrawFeature,
                journal, JournalIdentity(domid, abi, keys), resume, OnIoError);
        }
        catch
        {
            if (bound) events!.Unbind(port);
            events?.Dispose();
            ring.Dispose();
            throw;
        }
    }

    /// <summary>blkback's connect(): every property the frontend reads after Connected, in one transaction.</summary>
    private static Task PublishGeometryAsync(XenbusDevice device, BlockImage image, CancellationToken cancellationToken) =>
        device.Store.RunTransactionAsync(async t =>
        {
            string b = device.BackendPath + "/";
            string flush = image.FlushSupported ? "1" : "0";
            await t.WriteAsync(b + "feature-flush-cache", flush, cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "feature-barrier", flush, cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "feature-discard", image.DiscardEnabled ? "1" : "0", cancellationToken).ConfigureAwait(false);
            if (image.DiscardEnabled)
            {
                // Holes are freed in filesystem blocks; a smaller discard only zeroes.
                await t.WriteAsync(b + "discard-granularity", Format(image.PhysicalSectorSize), cancellationToken).ConfigureAwait(false);
                await t.WriteAsync(b + "discard-alignment", "0", cancellationToken).ConfigureAwait(false);
                await t.WriteAsync(b + "discard-secure", "1", cancellationToken).ConfigureAwait(false);
            }
            await t.WriteAsync(b + "sectors", FrontendKeys.FormatUInt((ulong)image.Sectors), cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "sector-size", Format(image.SectorSize), cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "physical-sector-size", Format(image.PhysicalSectorSize), cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(b + "info", FrontendKeys.FormatUInt(image.Info), cancellationToken).ConfigureAwait(false);
        }, cancellationToken);

    public async Task DisconnectAsync(CancellationToken cancellationToken)
    {
        BlockQueue[] queues = _queues;
        if (queues.Length == 0)
            return;
        _queues = [];
        TimeSpan drain = await FrontendGoneAsync().ConfigureAwait(false) ? _options.GoneFrontendDrainTimeout : _options.DrainTimeout;
        foreach (var queue in queues) queue.RequestStop(drain);
        // Each worker bounds its own drain; this only waits for the threads to notice.
        TimeSpan limit = drain + TimeSpan.FromSeconds(5);
        await Task.Run(() =>
        {
            foreach (var queue in queues)
            {
                if (!queue.Join(limit))
                {
                    _log?.Invoke($"queue {queue.Index}: worker did not stop within {limit.TotalSeconds:0} s; its memory is left mapped");
                    // It may still write its journal: the next connection must not share that one.
                    _journals[queue.Index] = null;
                }
            }
        }, CancellationToken.None).ConfigureAwait(false);
        foreach (var queue in queues)
        {
            if (queue.AbandonedInFlightIo)
                _log?.Invoke($"queue {queue.Index}: {queue.FaultReason}");
            queue.Dispose();
        }
    }

    /// <summary>
    /// Whether the frontend's directory has been removed (libxl removes it first when it destroys a
    /// domain, after a save or a migration): then nothing can consume a response any more.
    /// </summary>
    private async Task<bool> FrontendGoneAsync()
    {
        XenbusDevice? device = _device;
        if (device is null)
            return false;
        try
        {
            return await device.ReadFrontendStateAsync(CancellationToken.None).ConfigureAwait(false) == XenbusState.Unknown;
        }
        catch (Exception e) when (e is XenStore.XenStoreConnectionException or ObjectDisposedException)
        {
            return false; // cannot tell: keep the full drain
        }
    }

    /// <summary>
    /// Online resize (Linux xen_vbd_resize): re-reads the image size, rewrites <c>sectors</c>, then
    /// rewrites the current state so the frontend's watch fires and it re-reads the size. Returns
    /// whether the size changed.
    /// </summary>
    public async Task<bool> ResizeAsync(CancellationToken cancellationToken = default)
    {
        BlockImage image = _image ?? throw new InvalidOperationException("the device is not prepared");
        XenbusDevice device = _device ?? throw new InvalidOperationException("the device is not prepared");
        if (!image.Refresh())
            return false;
        await device.WriteBackendAsync("sectors", FrontendKeys.FormatUInt((ulong)image.Sectors), cancellationToken).ConfigureAwait(false);
        XenbusState? state = await device.ReadBackendStateAsync(cancellationToken).ConfigureAwait(false);
        if (state == XenbusState.Connected)
            await device.SwitchStateAsync(XenbusState.Connected, cancellationToken).ConfigureAwait(false);
        _log?.Invoke($"{device.Path}: resized to {image.Sectors} sectors");
        return true;
    }

    private void OnQueueFault(BlockQueue queue, string reason)
    {
        LastFault = $"queue {queue.Index}: {reason}";
        _log?.Invoke(LastFault);
        XenbusDevice? device = _device;
        if (device is null)
            return;
        // Called on the queue's own thread: report from the pool so the worker never blocks on xenstore.
        _ = Task.Run(async () =>
        {
            try
            {
                await device.ReportFatalAsync(LastFault).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                _log?.Invoke($"{device.Path}: could not report fault: {e.Message}");
            }
        });
    }

    /// <summary>The image failed I/O (already rate-limited by the queue): say so where the operator looks.</summary>
    private void OnIoError(BlockQueue queue, string what) => _log?.Invoke($"{_device?.Path}: queue {queue.Index}: {what}");

    /// <summary>
    /// The filesystem refused an operation: tell the frontend now (blkback rewrites the feature key
    /// at once too); the image remembers, so the next connect does not advertise it either.
    /// </summary>
    private void WithdrawFeature(string key)
    {
        _log?.Invoke($"{_device?.Path}: the image refused an operation with EOPNOTSUPP; {key} withdrawn");
        XenbusDevice? device = _device;
        if (device is null)
            return;
        // Called on the queue's own thread: write from the pool so the worker never blocks on xenstore.
        _ = Task.Run(async () =>
        {
            try
            {
                await device.WriteBackendAsync(key, "0", CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                _log?.Invoke($"{device.Path}: could not withdraw {key}: {e.Message}");
            }
        });
    }

    public async ValueTask DisposeAsync()
    {
        await DisconnectAsync(CancellationToken.None).ConfigureAwait(false);
        _image?.Dispose();
        _image = null;
        // Unmapped only: a journal file stays for a successor process until the domain is gone.
        foreach (var journal in _journals) journal?.Dispose();
        _journals = [];
    }

    private static string Format(int value) => value.ToString(CultureInfo.InvariantCulture);
}
