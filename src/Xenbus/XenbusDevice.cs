using System.Globalization;
using XenBackends.XenStore;

namespace XenBackends.Xenbus;

/// <summary>
/// One split device seen from the backend: its backend and frontend directories and the xenstore
/// operations every backend kind needs on them. Values under the frontend directory are written by
/// the guest and are hostile; every reader here validates before returning.
/// </summary>
public sealed class XenbusDevice
{
    private XenbusDevice(XenStoreClient store, WatchRouter watches, DevicePath path, string frontendPath)
    {
        Store = store;
        Watches = watches;
        Path = path;
        FrontendPath = frontendPath;
    }

    public XenStoreClient Store { get; }

    public WatchRouter Watches { get; }

    public DevicePath Path { get; }

    public string BackendPath => Path.Backend;

    public string FrontendPath { get; }

    public uint FrontendId => Path.FrontendDomId;

    /// <summary>
    /// Reads the toolstack's <c>frontend</c> and <c>frontend-id</c> keys and checks they name the
    /// directory libxl would create for this device: a backend must never be pointed at another
    /// domain's nodes.
    /// </summary>
    public static async Task<XenbusDevice> OpenAsync(WatchRouter watches, DevicePath path, CancellationToken cancellationToken = default)
    {
        var store = watches.Store;
        string frontend = await store.TryReadStringAsync(path.Backend + "/frontend", cancellationToken).ConfigureAwait(false)
            ?? throw new FrontendConfigurationException(path.Backend + "/frontend", null, "missing (the toolstack has not finished creating the device)");
        string? frontendId = await store.TryReadStringAsync(path.Backend + "/frontend-id", cancellationToken).ConfigureAwait(false);
        if (frontend != path.ExpectedFrontend)
            throw new FrontendConfigurationException(path.Backend + "/frontend", frontend, $"expected {path.ExpectedFrontend}");
        if (frontendId != null && frontendId != path.FrontendDomId.ToString(CultureInfo.InvariantCulture))
            throw new FrontendConfigurationException(path.Backend + "/frontend-id", frontendId, $"expected {path.FrontendDomId}");
        return new XenbusDevice(store, watches, path, frontend);
    }

    public Task<string?> ReadBackendAsync(string key, CancellationToken cancellationToken = default) =>
        Store.TryReadStringAsync(BackendPath + "/" + key, cancellationToken);

    public Task WriteBackendAsync(string key, string value, CancellationToken cancellationToken = default) =>
        Store.WriteAsync(BackendPath + "/" + key, value, cancellationToken);

    public Task<string?> ReadFrontendAsync(string key, CancellationToken cancellationToken = default) =>
        Store.TryReadStringAsync(FrontendPath + "/" + key, cancellationToken);

    public async Task<XenbusState> ReadFrontendStateAsync(CancellationToken cancellationToken = default) =>
        XenbusStates.Parse(await ReadFrontendAsync("state", cancellationToken).ConfigureAwait(false));

    /// <summary>The backend <c>state</c> as xenstore has it (the toolstack writes it too); null when the directory is gone.</summary>
    public async Task<XenbusState?> ReadBackendStateAsync(CancellationToken cancellationToken = default)
    {
        string? value = await ReadBackendAsync("state", cancellationToken).ConfigureAwait(false);
        return value is null ? null : XenbusStates.Parse(value);
    }

    /// <summary>
    /// Writes the backend <c>state</c>, even when unchanged (rewriting Connected is how a resize is
    /// announced). Done in a transaction that first checks the node exists, so a backend whose
    /// directory the toolstack already removed never recreates it (as Linux's xenbus_switch_state).
    /// Returns false when the directory is gone.
    /// </summary>
    public Task<bool> SwitchStateAsync(XenbusState state, CancellationToken cancellationToken = default) =>
        Store.RunTransactionAsync(async t =>
        {
            if (await t.TryReadStringAsync(BackendPath + "/state", cancellationToken).ConfigureAwait(false) is null)
                return false;
            await t.WriteAsync(BackendPath + "/state", XenbusStates.Format(state), cancellationToken).ConfigureAwait(false);
            return true;
        }, cancellationToken);

    /// <summary>Where Linux's xenbus_dev_error puts a device's last error: error/&lt;nodename&gt;/error in the backend domain's home.</summary>
    public string ErrorPath => $"/local/domain/{Path.BackendDomId}/error/{Path.NodeName}/error";

    /// <summary>
    /// Reports an error that stops the device (xenbus_dev_fatal): the message goes to the error node,
    /// then the backend switches to Closing so the frontend tears down.
    /// </summary>
    /// <remarks>
    /// One transaction that first checks the backend directory still exists: a device the toolstack
    /// removed while we failed (in the lab: a vbd whose params vanished under a teardown) must not get
    /// an error node, which nothing would ever remove. Returns false when the directory is gone.
    /// </remarks>
    public Task<bool> ReportFatalAsync(string message, CancellationToken cancellationToken = default) =>
        Store.RunTransactionAsync(async t =>
        {
            if (await t.TryReadStringAsync(BackendPath + "/state", cancellationToken).ConfigureAwait(false) is null)
                return false;
            await t.WriteAsync(ErrorPath, Advisory(message), cancellationToken).ConfigureAwait(false);
            await t.WriteAsync(BackendPath + "/state", XenbusStates.Format(XenbusState.Closing), cancellationToken).ConfigureAwait(false);
            return true;
        }, cancellationToken);

    public async Task WriteErrorAsync(string message, CancellationToken cancellationToken = default) =>
        await Store.WriteAsync(ErrorPath, Advisory(message), cancellationToken).ConfigureAwait(false);

    // xenstored caps values (oxenstored at 2048 bytes even for dom0); an error text is advisory.
    private static string Advisory(string message) => message.Length > 1024 ? message[..1024] : message;

    public async Task ClearErrorAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await Store.RemoveAsync($"/local/domain/{Path.BackendDomId}/error/{Path.NodeName}", cancellationToken).ConfigureAwait(false);
        }
        catch (XenStoreErrorException e) when (e.ErrnoName == XsErrno.ENOENT)
        {
            // Nothing was reported.
        }
    }
}
