using XenBackends.Native;
using XenBackends.Native.Xen;
using XenBackends.XenStore;

namespace XenBackends.Service.Hosting;

/// <summary>dom0 on real Xen: libxengnttab, libxenevtchn and xenstored's socket.</summary>
public sealed class RealXenHost : IXenHost
{
    private readonly string? _xenStoreSocket;

    private RealXenHost(string? xenStoreSocket) => _xenStoreSocket = xenStoreSocket;

    public string Kind => "xen";

    /// <summary>Checks the machine first so "no Xen here" is one readable list of problems and fixes, not an errno.</summary>
    public static RealXenHost Open(string? xenStoreSocket)
    {
        var report = XenEnvironment.Describe();
        if (!report.CanRunBackends)
            throw new HostUnavailableException(report.ToString());
        return new RealXenHost(xenStoreSocket);
    }

    public IGrantMapper CreateGrantMapper() => XenGrantMapper.Open();

    public IEventChannels OpenEventChannels() => XenEventChannels.Open();

    public async Task<XenStoreClient> OpenXenStoreAsync(CancellationToken cancellationToken)
    {
        try
        {
            return _xenStoreSocket is null
                ? await XenStoreClient.OpenAsync(cancellationToken: cancellationToken).ConfigureAwait(false)
                : await XenStoreClient.OpenSocketAsync(_xenStoreSocket, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new HostUnavailableException(
                $"cannot reach xenstored ({_xenStoreSocket ?? "default socket or /dev/xen/xenbus"}): {e.Message}. Is xenstored running (/etc/init.d/xen start)?", e);
        }
    }

    public void Dispose()
    {
    }
}
