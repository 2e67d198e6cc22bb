using System.Collections.Immutable;
using XenBackends.XenStore;
using static XenBackends.XenStore.XsErrno;

namespace XenBackends.SimulatedHost.XenStore;

/// <summary>
/// The daemon's state: the live tree, watches, open transactions and introduced domains. One lock
/// serialises every request, like the single-threaded real daemons, which also makes event order match
/// commit order.
/// </summary>
internal sealed class XsDatabase(XenStoreServerOptions options)
{
    private readonly Lock _gate = new();
    private readonly List<XsWatch> _watches = [];
    private readonly HashSet<uint> _introduced = [0];
    private ImmutableDictionary<string, XsNode> _nodes = XsTreeView.EmptyTree();
    private uint _nextTransactionId;
    private long _requestsHandled;

    public XenStoreServerOptions Options => options;

    public long RequestsHandled => Interlocked.Read(ref _requestsHandled);

    public void CountRequest() => Interlocked.Increment(ref _requestsHandled);

    /// <summary>Runs one node operation on the live tree or on the caller's transaction.</summary>
    public T Run<T>(XsServerConnection connection, uint txId, Func<XsTreeView, T> operation)
    {
        lock (_gate)
        {
            if (txId != 0)
            {
                var transaction = connection.Transactions.GetValueOrDefault(txId) ?? throw new XsError(ENOENT);
                // Watches fire only at commit, so the transaction view keeps its changes until then.
                return operation(transaction.View);
            }
            var view = new XsTreeView(_nodes, options);
            var result = operation(view);
            _nodes = view.Nodes;
            Fire(view.Changes);
            return result;
        }
    }

    public uint StartTransaction(XsServerConnection connection)
    {
        lock (_gate)
        {
            if ((connection.DomId != 0 || options.QuotasApplyToDom0) && connection.Transactions.Count >= options.MaxTransactionsPerConnection)
                throw new XsError(ENOSPC);
            var id = ++_nextTransactionId;
            if (id == 0) id = ++_nextTransactionId;
            connection.Transactions[id] = new XsTransaction(id, _nodes, options);
            return id;
        }
    }

    public void EndTransaction(XsServerConnection connection, uint txId, bool commit)
    {
        lock (_gate)
        {
            if (!connection.Transactions.Remove(txId, out var transaction)) throw new XsError(ENOENT);
            if (!commit) return;
            if (transaction.ConflictsWith(_nodes)) throw new XsError(EAGAIN);
            var live = new XsTreeView(_nodes, options);
            live.Apply(transaction.View, transaction.View.Touched);
            _nodes = live.Nodes;
            Fire(transaction.View.Changes);
        }
    }

    /// <summary>Registers the watch; the caller queues the initial event after the OK reply.</summary>
    public XsWatch AddWatch(XsServerConnection connection, string canonical, string requested, string token)
    {
        lock (_gate)
        {
            var existing = 0;
            foreach (var watch in _watches)
            {
                if (watch.Owner != connection) continue;
                existing++;
                if (watch.Requested == requested && watch.Token == token) throw new XsError(EEXIST);
            }
            if ((connection.DomId != 0 || options.QuotasApplyToDom0) && existing >= options.MaxWatchesPerConnection)
                throw new XsError(E2BIG);
            var added = new XsWatch(connection, canonical, requested, token);
            _watches.Add(added);
            return added;
        }
    }

    public void RemoveWatch(XsServerConnection connection, string requested, string token)
    {
        lock (_gate)
        {
            var index = _watches.FindIndex(w => w.Owner == connection && w.Requested == requested && w.Token == token);
            if (index < 0) throw new XsError(ENOENT);
            _watches.RemoveAt(index);
        }
    }

    /// <summary>XS_RESET_WATCHES and connection close: forget everything the connection held.</summary>
    public void Forget(XsServerConnection connection)
    {
        lock (_gate)
        {
            _watches.RemoveAll(w => w.Owner == connection);
            connection.Transactions.Clear();
        }
    }

    public bool IsIntroduced(uint domId)
    {
        lock (_gate) return _introduced.Contains(domId);
    }

    public void SetIntroduced(uint domId, bool introduced)
    {
        lock (_gate)
        {
            var changed = introduced ? _introduced.Add(domId) : domId != 0 && _introduced.Remove(domId);
            if (!changed) return;
            var special = introduced ? XsPath.IntroduceDomain : XsPath.ReleaseDomain;
            // Special watches reach privileged connections only, as in the C daemon's default.
            foreach (var watch in _watches)
                if (watch.Path == special && watch.Owner.DomId == 0) watch.Owner.QueueEvent(special, watch.Token);
        }
    }

    private void Fire(List<XsChange> changes)
    {
        foreach (var change in changes)
        {
            foreach (var watch in _watches)
            {
                string eventPath;
                if (watch.Covers(change.Path)) eventPath = change.Path;
                // A removal above a watched node reports the watched path (xenstore.txt).
                else if (change.Recursive && XsWatch.IsSameOrBelow(watch.Path, change.Path)) eventPath = watch.Path;
                else continue;
                if ((XsNode.AccessFor(change.Permissions, watch.Owner.DomId) & XsAccess.Read) == 0) continue;
                watch.Owner.QueueEvent(watch.Report(eventPath), watch.Token);
            }
        }
    }
}
