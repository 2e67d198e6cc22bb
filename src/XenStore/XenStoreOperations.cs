using System.Text;

namespace XenBackends.XenStore;

/// <summary>
/// The node operations, shared by the client (outside any transaction, tx_id 0) and by
/// <see cref="XenStoreTransaction"/> (its tx_id), so transactional code reads like plain code.
/// </summary>
public abstract class XenStoreOperations
{
    private protected XenStoreOperations(XenStoreConnection connection, XenStoreClientOptions options)
    {
        Connection = connection;
        Options = options;
    }

    private protected XenStoreConnection Connection { get; }
    private protected XenStoreClientOptions Options { get; }

    /// <summary>The tx_id every request from this object carries (0 = none).</summary>
    public abstract uint TransactionId { get; }

    /// <summary>Raw value bytes. Throws <see cref="XenStoreErrorException"/> ENOENT when the node is missing.</summary>
    public Task<byte[]> ReadAsync(string path, CancellationToken cancellationToken = default)
    {
        XsPath.Validate(path);
        return Connection.RequestAsync(XsdSockmsgType.XS_READ, TransactionId, XsPayload.Strings(path), path, cancellationToken);
    }

    public async Task<string> ReadStringAsync(string path, CancellationToken cancellationToken = default) =>
        Encoding.UTF8.GetString(await ReadAsync(path, cancellationToken).ConfigureAwait(false));

    /// <summary>Null when the node does not exist; other errors still throw.</summary>
    public async Task<string?> TryReadStringAsync(string path, CancellationToken cancellationToken = default)
    {
        try
        {
            return await ReadStringAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (XenStoreErrorException e) when (e.ErrnoName == XsErrno.ENOENT)
        {
            return null;
        }
    }

    /// <summary>A decimal integer node (e.g. "state", "ring-ref"); anything else is a clear <see cref="FormatException"/>.</summary>
    public async Task<long> ReadInt64Async(string path, CancellationToken cancellationToken = default)
    {
        var text = await ReadStringAsync(path, cancellationToken).ConfigureAwait(false);
        return long.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new FormatException($"xenstore node {path} holds '{Shorten(text)}', not a decimal integer");
    }

    public Task WriteAsync(string path, string value, CancellationToken cancellationToken = default) =>
        WriteAsync(path, Encoding.UTF8.GetBytes(value), cancellationToken);

    /// <summary>Creates the node and any missing parents; the value is binary-safe.</summary>
    public async Task WriteAsync(string path, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default)
    {
        XsPath.Validate(path);
        if (value.Length > Options.MaxValueSize)
            throw new ArgumentOutOfRangeException(nameof(value), value.Length,
                $"xenstore value for {path} is {value.Length} bytes; the limit is {Options.MaxValueSize} (XenStoreClientOptions.MaxValueSize)");
        var payload = XsPayload.PathAndValue(path, value.Span);
        if (payload.Length > XsdSockmsg.XENSTORE_PAYLOAD_MAX)
            throw new ArgumentOutOfRangeException(nameof(value), value.Length,
                $"xenstore write of {path}: path plus value is {payload.Length} bytes, over XENSTORE_PAYLOAD_MAX ({XsdSockmsg.XENSTORE_PAYLOAD_MAX})");
        await Connection.RequestAsync(XsdSockmsgType.XS_WRITE, TransactionId, payload, path, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Creates an empty node (and missing parents); existing nodes are left alone.</summary>
    public Task MkdirAsync(string path, CancellationToken cancellationToken = default) =>
        SimpleAsync(XsdSockmsgType.XS_MKDIR, path, cancellationToken);

    /// <summary>Removes the node and everything below it; a missing node is fine if its parent exists.</summary>
    public Task RemoveAsync(string path, CancellationToken cancellationToken = default) =>
        SimpleAsync(XsdSockmsgType.XS_RM, path, cancellationToken);

    /// <summary>Names (not paths) of the node's children.</summary>
    public async Task<IReadOnlyList<string>> DirectoryAsync(string path, CancellationToken cancellationToken = default)
    {
        XsPath.Validate(path);
        var reply = await Connection.RequestAsync(XsdSockmsgType.XS_DIRECTORY, TransactionId, XsPayload.Strings(path), path, cancellationToken).ConfigureAwait(false);
        return XsPayload.Split(reply);
    }

    /// <summary>The permission list; entry 0 is the owner and the default for unlisted domains.</summary>
    public async Task<IReadOnlyList<XsPermission>> GetPermissionsAsync(string path, CancellationToken cancellationToken = default)
    {
        XsPath.Validate(path);
        var reply = await Connection.RequestAsync(XsdSockmsgType.XS_GET_PERMS, TransactionId, XsPayload.Strings(path), path, cancellationToken).ConfigureAwait(false);
        var list = new List<XsPermission>();
        foreach (var text in XsPayload.Split(reply))
            list.Add(XsPermission.TryParse(text, out var permission)
                ? permission
                : throw new XenStoreException($"xenstore returned an unparsable permission '{Shorten(text)}' for {path}"));
        return list;
    }

    public async Task SetPermissionsAsync(string path, IReadOnlyList<XsPermission> permissions, CancellationToken cancellationToken = default)
    {
        XsPath.Validate(path);
        ArgumentNullException.ThrowIfNull(permissions);
        if (permissions.Count == 0) throw new ArgumentException("a permission list needs at least the owner entry", nameof(permissions));
        var parts = new string[permissions.Count + 1];
        parts[0] = path;
        for (var i = 0; i < permissions.Count; i++) parts[i + 1] = permissions[i].ToString();
        var payload = XsPayload.Strings(parts);
        if (payload.Length > XsdSockmsg.XENSTORE_PAYLOAD_MAX)
            throw new ArgumentException($"{permissions.Count} permissions for {path} do not fit in one xenstore message", nameof(permissions));
        await Connection.RequestAsync(XsdSockmsgType.XS_SET_PERMS, TransactionId, payload, path, cancellationToken).ConfigureAwait(false);
    }

    private async Task SimpleAsync(XsdSockmsgType type, string path, CancellationToken cancellationToken)
    {
        XsPath.Validate(path);
        await Connection.RequestAsync(type, TransactionId, XsPayload.Strings(path), path, cancellationToken).ConfigureAwait(false);
    }

    private protected static string Shorten(string text) => text.Length <= 64 ? text : text[..64] + "...";
}
