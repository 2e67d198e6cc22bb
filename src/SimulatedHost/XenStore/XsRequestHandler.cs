using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using XenBackends.XenStore;
using static XenBackends.XenStore.XsErrno;

namespace XenBackends.SimulatedHost.XenStore;

/// <summary>Decodes one request, runs it against the database and queues exactly one reply (OK or XS_ERROR).</summary>
internal static class XsRequestHandler
{
    private static readonly byte[] Ok = XsPayload.Strings("OK");

    public static void Handle(XsServerConnection connection, XsDatabase database, (uint Type, uint ReqId, uint TxId, uint Len) header, byte[] payload)
    {
        var type = (XsdSockmsgType)header.Type;
        XsWatch? newWatch = null;
        byte[] reply;
        try
        {
            reply = Execute(connection, database, type, header.TxId, payload, out newWatch);
        }
        catch (XsError error)
        {
            connection.QueueReply(XsdSockmsgType.XS_ERROR, header.ReqId, header.TxId, XsPayload.Strings(error.ErrnoName));
            return;
        }
        connection.QueueReply(type, header.ReqId, header.TxId, reply);
        // xenstore.txt: a new watch fires once, after its OK.
        if (newWatch is not null) connection.QueueEvent(newWatch.Requested, newWatch.Token);
    }

    private static byte[] Execute(XsServerConnection connection, XsDatabase database, XsdSockmsgType type, uint txId, byte[] payload, out XsWatch? newWatch)
    {
        newWatch = null;
        var domId = connection.DomId;
        switch (type)
        {
            case XsdSockmsgType.XS_READ:
            {
                var path = PathArgument(connection, payload);
                return database.Run(connection, txId, view => view.Read(domId, path));
            }
            case XsdSockmsgType.XS_WRITE:
            {
                var nul = Array.IndexOf(payload, (byte)0);
                if (nul < 0) throw new XsError(EINVAL);
                var path = Canonical(connection, Encoding.UTF8.GetString(payload, 0, nul), forWatch: false);
                var value = payload[(nul + 1)..];
                database.Run(connection, txId, view => { view.Write(domId, path, value); return 0; });
                return Ok;
            }
            case XsdSockmsgType.XS_MKDIR:
            {
                var path = PathArgument(connection, payload);
                database.Run(connection, txId, view => { view.Mkdir(domId, path); return 0; });
                return Ok;
            }
            case XsdSockmsgType.XS_RM:
            {
                var path = PathArgument(connection, payload);
                database.Run(connection, txId, view => { view.Remove(domId, path); return 0; });
                return Ok;
            }
            case XsdSockmsgType.XS_DIRECTORY:
            {
                var path = PathArgument(connection, payload);
                var children = database.Run(connection, txId, view => view.Directory(domId, path));
                var reply = XsPayload.Strings([.. children]);
                // Too big for one reply: C xenstored says E2BIG (clients then try XS_DIRECTORY_PART).
                return reply.Length <= XsdSockmsg.XENSTORE_PAYLOAD_MAX ? reply : throw new XsError(E2BIG);
            }
            case XsdSockmsgType.XS_GET_PERMS:
            {
                var path = PathArgument(connection, payload);
                var permissions = database.Run(connection, txId, view => view.GetPermissions(domId, path));
                return XsPayload.Strings([.. permissions.Select(p => p.ToString())]);
            }
            case XsdSockmsgType.XS_SET_PERMS:
            {
                var parts = Strings(payload, minimum: 2);
                var path = Canonical(connection, parts[0], forWatch: false);
                var builder = ImmutableArray.CreateBuilder<XsPermission>(parts.Count - 1);
                foreach (var text in parts.Skip(1))
                    builder.Add(XsPermission.TryParse(text, out var permission) ? permission : throw new XsError(EINVAL));
                var permissions = builder.MoveToImmutable();
                database.Run(connection, txId, view => { view.SetPermissions(domId, path, permissions); return 0; });
                return Ok;
            }
            case XsdSockmsgType.XS_WATCH:
            {
                var parts = Strings(payload, minimum: 2);
                newWatch = database.AddWatch(connection, Canonical(connection, parts[0], forWatch: true), parts[0], parts[1]);
                return Ok;
            }
            case XsdSockmsgType.XS_UNWATCH:
            {
                var parts = Strings(payload, minimum: 2);
                Canonical(connection, parts[0], forWatch: true);
                database.RemoveWatch(connection, parts[0], parts[1]);
                return Ok;
            }
            case XsdSockmsgType.XS_TRANSACTION_START:
                if (txId != 0) throw new XsError(EBUSY);
                return XsPayload.Strings(database.StartTransaction(connection).ToString(CultureInfo.InvariantCulture));
            case XsdSockmsgType.XS_TRANSACTION_END:
            {
                var commit = Strings(payload, minimum: 1)[0] switch
                {
                    "T" => true,
                    "F" => false,
                    _ => throw new XsError(EINVAL),
                };
                database.EndTransaction(connection, txId, commit);
                return Ok;
            }
            case XsdSockmsgType.XS_GET_DOMAIN_PATH:
                return XsPayload.Strings($"/local/domain/{DomIdArgument(payload)}");
            case XsdSockmsgType.XS_IS_DOMAIN_INTRODUCED:
                return XsPayload.Strings(database.IsIntroduced(DomIdArgument(payload)) ? "T" : "F");
            case XsdSockmsgType.XS_INTRODUCE:
            case XsdSockmsgType.XS_RELEASE:
            {
                if (domId != 0) throw new XsError(EACCES);
                var target = DomIdArgument(payload);
                if (target == 0) throw new XsError(EINVAL);
                database.SetIntroduced(target, type == XsdSockmsgType.XS_INTRODUCE);
                return Ok;
            }
            case XsdSockmsgType.XS_RESET_WATCHES:
                database.Forget(connection);
                return Ok;
            case XsdSockmsgType.XS_CONTROL:
            case XsdSockmsgType.XS_RESUME:
            case XsdSockmsgType.XS_SET_TARGET:
            case XsdSockmsgType.XS_DIRECTORY_PART:
                // Not simulated; oxenstored lacks XS_DIRECTORY_PART too, so clients must cope with ENOSYS.
                throw new XsError(ENOSYS);
            default:
                // XS_WATCH_EVENT, XS_ERROR and unknown numbers are never valid requests.
                throw new XsError(EINVAL);
        }
    }

    private static string PathArgument(XsServerConnection connection, byte[] payload) =>
        Canonical(connection, Strings(payload, minimum: 1)[0], forWatch: false);

    /// <summary>Validates like the client and resolves relative paths under the caller's home.</summary>
    private static string Canonical(XsServerConnection connection, string path, bool forWatch)
    {
        if (XsPath.Problem(path, forWatch) is not null) throw new XsError(EINVAL);
        if (path[0] is '/' or '@') return path;
        return connection.HomePath + "/" + path;
    }

    private static List<string> Strings(byte[] payload, int minimum)
    {
        // Requests end their strings with NUL; a payload that does not is malformed.
        if (payload.Length == 0 || payload[^1] != 0) throw new XsError(EINVAL);
        var parts = XsPayload.Split(payload);
        return parts.Count >= minimum ? parts : throw new XsError(EINVAL);
    }

    private static uint DomIdArgument(byte[] payload)
    {
        var text = Strings(payload, minimum: 1)[0];
        return uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var domId) && domId < 0x7FF0
            ? domId
            : throw new XsError(EINVAL);
    }
}
