using System.Buffers.Binary;
using System.Globalization;
using XenBackends.Native;
using XenBackends.Xenbus;

namespace XenBackends.Service.Devices;

/// <summary>
/// A minimal real backend for proving the process machinery: it maps the frontend's one granted page
/// and binds its event channel exactly as blkback/netback do, and on each kick copies the request
/// number at offset 0 to offset 4 and kicks back. Its grant mapping and bound port are what a test
/// checks are released when a worker stops.
/// </summary>
public sealed class EchoDevice : IBackendDevice
{
    public const string KindName = "xbecho";

    public static DeviceKind Kind { get; } = new(KindName, ctx => new EchoDevice(ctx), d => ((EchoDevice)d).Counters());

    private readonly DeviceContext _context;
    private IGrantMapper? _mapper;
    private IEventChannels? _channels;
    private SharedMemory? _page;
    private uint _port;
    private CancellationTokenSource? _stop;
    private Task? _loop;
    private long _requests;

    private EchoDevice(DeviceContext context) => _context = context;

    private IReadOnlyDictionary<string, long> Counters() => new Dictionary<string, long> { ["requests"] = Interlocked.Read(ref _requests) };

    public async Task PrepareAsync(XenbusDevice device, CancellationToken cancellationToken) =>
        await device.WriteBackendAsync("feature-echo", "1", cancellationToken).ConfigureAwait(false);

    public async Task ConnectAsync(XenbusDevice device, CancellationToken cancellationToken)
    {
        uint gref = await ReadUIntAsync(device, "ring-ref", cancellationToken).ConfigureAwait(false);
        uint remotePort = await ReadUIntAsync(device, "event-channel", cancellationToken).ConfigureAwait(false);
        ushort domid = checked((ushort)device.FrontendId);
        try
        {
            _mapper = _context.Host.CreateGrantMapper();
            _page = _mapper.Map(domid, [gref], writable: true);
            _channels = _context.Host.OpenEventChannels();
            _port = _channels.BindInterdomain(domid, remotePort);
        }
        catch
        {
            Release();
            throw;
        }
        _stop = new CancellationTokenSource();
        _loop = Task.Run(() => ServeAsync(_stop.Token), CancellationToken.None);
    }

    private async Task ServeAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                // Serve before the first wait: kicks sent while no worker was bound (a restart) were
                // dropped by the hypervisor, so a resuming backend must look at the ring itself.
                var span = _page!.Span;
                uint request = BinaryPrimitives.ReadUInt32LittleEndian(span);
                if (BinaryPrimitives.ReadUInt32LittleEndian(span[4..]) != request)
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(span[4..], request);
                    Interlocked.Increment(ref _requests);
                    _channels!.Notify(_port);
                }
                uint port = await _channels!.WaitPendingAsync(cancellationToken).ConfigureAwait(false);
                _channels.Unmask(port);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // A guest that closed its port mid-flight ends this device's service, never the worker.
            _context.Log($"echo device stopped serving: {e.Message}");
        }
    }

    public async Task DisconnectAsync(CancellationToken cancellationToken)
    {
        if (_stop is not null)
        {
            await _stop.CancelAsync().ConfigureAwait(false);
            if (_loop is not null) await _loop.ConfigureAwait(false);
            _stop.Dispose();
            _stop = null;
            _loop = null;
        }
        Release();
    }

    private void Release()
    {
        if (_channels is not null && _port != 0)
        {
            try { _channels.Unbind(_port); } catch (Exception e) when (e is not OutOfMemoryException) { /* the guest may have closed it first */ }
        }
        _port = 0;
        _page?.Dispose();
        _page = null;
        _channels?.Dispose();
        _channels = null;
        _mapper?.Dispose();
        _mapper = null;
    }

    public async ValueTask DisposeAsync() => await DisconnectAsync(CancellationToken.None).ConfigureAwait(false);

    private static async Task<uint> ReadUIntAsync(XenbusDevice device, string key, CancellationToken cancellationToken)
    {
        string? value = await device.ReadFrontendAsync(key, cancellationToken).ConfigureAwait(false);
        if (value is null || !uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out uint parsed))
            throw new FrontendConfigurationException(device.FrontendPath + "/" + key, value, "expected an unsigned number");
        return parsed;
    }
}
