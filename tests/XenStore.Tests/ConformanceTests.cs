using System.Text;

namespace XenBackends.XenStore.Tests;

/// <summary>
/// Behaviour shared by C xenstored, oxenstored and the simulated server, run as dom0. Set
/// XENSTORE_CONFORMANCE_SOCKET to run it against a real daemon; nothing here relies on simulator powers.
/// </summary>
public sealed class ConformanceTests(XenStoreTarget target) : IClassFixture<XenStoreTarget>, IAsyncLifetime
{
    private readonly string _base = XenStoreTarget.NewBase();
    private XenStoreClient _client = null!;

    public async Task InitializeAsync()
    {
        _client = await target.ConnectAsync();
        await _client.MkdirAsync(_base);
    }

    public async Task DisposeAsync()
    {
        try { await _client.RemoveAsync(_base); } catch (XenStoreException) { }
        await _client.DisposeAsync();
    }

    [Fact]
    public async Task WriteThenReadReturnsTheSameBytes()
    {
        await _client.WriteAsync($"{_base}/name", "vif1.0");
        byte[] binary = [0, 1, 2, 255, 0, 7];
        await _client.WriteAsync($"{_base}/binary", binary);

        Assert.Equal("vif1.0", await _client.ReadStringAsync($"{_base}/name"));
        Assert.Equal(binary, await _client.ReadAsync($"{_base}/binary"));
    }

    [Fact]
    public async Task WriteOverwritesAndCreatesMissingParents()
    {
        await _client.WriteAsync($"{_base}/a/b/c", "1");
        await _client.WriteAsync($"{_base}/a/b/c", "22");
        Assert.Equal("22", await _client.ReadStringAsync($"{_base}/a/b/c"));
        Assert.Equal("", await _client.ReadStringAsync($"{_base}/a/b"));
    }

    [Fact]
    public async Task ReadOfMissingNodeIsEnoentWithItsNumber()
    {
        var e = await Assert.ThrowsAsync<XenStoreErrorException>(() => _client.ReadAsync($"{_base}/missing"));
        Assert.Equal(("ENOENT", 2), (e.ErrnoName, e.Errno));
        Assert.Contains($"{_base}/missing", e.Message);
        Assert.Null(await _client.TryReadStringAsync($"{_base}/missing"));
    }

    [Fact]
    public async Task ReadInt64ParsesAndRejectsNonNumbers()
    {
        await _client.WriteAsync($"{_base}/state", "4");
        await _client.WriteAsync($"{_base}/junk", "4x");
        Assert.Equal(4, await _client.ReadInt64Async($"{_base}/state"));
        await Assert.ThrowsAsync<FormatException>(() => _client.ReadInt64Async($"{_base}/junk"));
    }

    [Fact]
    public async Task MkdirCreatesEmptyNodesAndDirectoryListsChildNames()
    {
        await _client.MkdirAsync($"{_base}/dir/sub");
        await _client.WriteAsync($"{_base}/dir/file", "x");
        await _client.MkdirAsync($"{_base}/dir/sub"); // existing: fine

        Assert.Equal("", await _client.ReadStringAsync($"{_base}/dir/sub"));
        Assert.Equal(["file", "sub"], (await _client.DirectoryAsync($"{_base}/dir")).Order(StringComparer.Ordinal));
        Assert.Empty(await _client.DirectoryAsync($"{_base}/dir/sub"));
    }

    [Fact]
    public async Task RemoveDeletesTheWholeSubtree()
    {
        await _client.WriteAsync($"{_base}/x/y/z", "1");
        await _client.RemoveAsync($"{_base}/x");

        await Assert.ThrowsAsync<XenStoreErrorException>(() => _client.ReadAsync($"{_base}/x/y/z"));
        Assert.DoesNotContain("x", await _client.DirectoryAsync(_base));
    }

    [Fact]
    public async Task RemoveOfMissingNodeIsFineUnlessItsParentIsMissingToo()
    {
        await _client.RemoveAsync($"{_base}/never");
        var e = await Assert.ThrowsAsync<XenStoreErrorException>(() => _client.RemoveAsync($"{_base}/never/child"));
        Assert.Equal("ENOENT", e.ErrnoName);
    }

    [Fact]
    public async Task PermissionsRoundTripWithOwnerFirst()
    {
        var path = $"{_base}/backend";
        await _client.MkdirAsync(path);
        XsPermission[] perms = [new(0, XsAccess.None), new(5, XsAccess.Read), new(6, XsAccess.Both)];
        await _client.SetPermissionsAsync(path, perms);
        Assert.Equal(perms, await _client.GetPermissionsAsync(path));
    }

    [Fact]
    public async Task DomainPathAndDom0IsIntroduced()
    {
        Assert.Equal("/local/domain/0", await _client.GetDomainPathAsync(0));
        Assert.Equal("/local/domain/7", await _client.GetDomainPathAsync(7));
        Assert.True(await _client.IsDomainIntroducedAsync(0));
    }

    [Fact]
    public async Task WatchFiresOnRegistrationThenOnCreateChangeAndDelete()
    {
        await _client.WatchAsync(_base, "t");
        await _client.ExpectEventAsync("t", _base);

        await _client.WriteAsync($"{_base}/k", "1");
        await _client.ExpectEventAsync("t", $"{_base}/k");
        await _client.WriteAsync($"{_base}/k", "2");
        await _client.ExpectEventAsync("t", $"{_base}/k");
        await _client.SetPermissionsAsync($"{_base}/k", [new(0, XsAccess.Read)]);
        await _client.ExpectEventAsync("t", $"{_base}/k");
        await _client.RemoveAsync($"{_base}/k");
        await _client.ExpectEventAsync("t", $"{_base}/k");

        await _client.UnwatchAsync(_base, "t");
        await _client.WriteAsync($"{_base}/after-unwatch", "1");
        Assert.DoesNotContain(await _client.DrainUntilBarrierAsync(_base), e => e.Token == "t");
    }

    [Fact]
    public async Task RecursiveRemovalReportsTheWatchedPath()
    {
        await _client.WriteAsync($"{_base}/dev/vbd/51712/state", "1");
        await _client.WatchAsync($"{_base}/dev/vbd/51712", "deep");
        await _client.ExpectEventAsync("deep", $"{_base}/dev/vbd/51712");

        await _client.RemoveAsync($"{_base}/dev");
        await _client.ExpectEventAsync("deep", $"{_base}/dev/vbd/51712");
    }

    [Fact]
    public async Task ResetWatchesDropsEveryWatch()
    {
        await _client.WatchAsync(_base, "a");
        await _client.ExpectEventAsync("a", _base);
        await _client.ResetWatchesAsync();
        await _client.WriteAsync($"{_base}/k", "1");
        Assert.DoesNotContain(await _client.DrainUntilBarrierAsync(_base), e => e.Token == "a");
    }

    [Fact]
    public async Task TransactionSeesItsOwnWritesAndIsInvisibleUntilCommit()
    {
        var tx = await _client.StartTransactionAsync();
        await tx.WriteAsync($"{_base}/t", "inside");
        Assert.Equal("inside", await tx.ReadStringAsync($"{_base}/t"));
        Assert.Null(await _client.TryReadStringAsync($"{_base}/t"));
        await tx.CommitAsync();
        Assert.Equal("inside", await _client.ReadStringAsync($"{_base}/t"));
    }

    [Fact]
    public async Task AbortedTransactionLeavesNoTrace()
    {
        var tx = await _client.StartTransactionAsync();
        await tx.WriteAsync($"{_base}/t", "inside");
        await tx.AbortAsync();
        Assert.Null(await _client.TryReadStringAsync($"{_base}/t"));
    }

    [Fact]
    public async Task TransactionWritesFireWatchesOnlyAtCommit()
    {
        await _client.WatchAsync(_base, "w");
        await _client.ExpectEventAsync("w", _base);
        var tx = await _client.StartTransactionAsync();
        await tx.WriteAsync($"{_base}/t", "1");
        Assert.DoesNotContain(await _client.DrainUntilBarrierAsync(_base), e => e.Token == "w");
        await tx.CommitAsync();
        await _client.ExpectEventAsync("w", $"{_base}/t");
    }

    [Fact]
    public async Task ConflictingCommitFailsWithEagain()
    {
        await _client.WriteAsync($"{_base}/counter", "1");
        await using var other = await target.ConnectAsync();
        var tx = await _client.StartTransactionAsync();
        await tx.ReadStringAsync($"{_base}/counter");
        await other.WriteAsync($"{_base}/counter", "2");
        await tx.WriteAsync($"{_base}/counter", "3");

        var e = await Assert.ThrowsAsync<XenStoreErrorException>(() => tx.CommitAsync());
        Assert.Equal(("EAGAIN", 11), (e.ErrnoName, e.Errno));
        Assert.Equal("2", await _client.ReadStringAsync($"{_base}/counter"));
    }

    [Fact]
    public async Task TransactionHelperRerunsTheBodyAfterAConflict()
    {
        await _client.WriteAsync($"{_base}/counter", "10");
        await using var other = await target.ConnectAsync();
        var runs = 0;
        var result = await _client.RunTransactionAsync(async tx =>
        {
            runs++;
            var value = await tx.ReadInt64Async($"{_base}/counter");
            if (runs == 1) await other.WriteAsync($"{_base}/counter", "20"); // conflicts with this attempt only
            await tx.WriteAsync($"{_base}/counter", (value + 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
            return value;
        });
        Assert.Equal(2, runs);
        Assert.Equal(20, result);
        Assert.Equal("21", await _client.ReadStringAsync($"{_base}/counter"));
    }

    [Fact]
    public async Task TransactionThatAlwaysConflictsStopsAtTheBound()
    {
        await using var client = await target.ConnectAsync(new XenStoreClientOptions { MaxTransactionAttempts = 3 });
        await using var other = await target.ConnectAsync();
        await client.WriteAsync($"{_base}/hot", "0");
        var runs = 0;
        var e = await Assert.ThrowsAsync<XenStoreTransactionConflictException>(() => client.RunTransactionAsync(async tx =>
        {
            runs++;
            await tx.ReadAsync($"{_base}/hot");
            await other.WriteAsync($"{_base}/hot", runs.ToString(System.Globalization.CultureInfo.InvariantCulture));
            await tx.WriteAsync($"{_base}/hot", "mine");
        }));
        Assert.Equal((3, 3), (runs, e.Attempts));
        Assert.Equal("3", await client.ReadStringAsync($"{_base}/hot"));
    }

    [Fact]
    public async Task ManyPipelinedRequestsAllGetTheirOwnReplies()
    {
        const int count = 300;
        await Task.WhenAll(Enumerable.Range(0, count).Select(i => _client.WriteAsync($"{_base}/p{i}", $"value-{i}")));
        var values = await Task.WhenAll(Enumerable.Range(0, count).Select(i => _client.ReadStringAsync($"{_base}/p{i}")));
        for (var i = 0; i < count; i++) Assert.Equal($"value-{i}", values[i]);
    }

    [Fact]
    public async Task NoWatchEventIsLostWhileRequestsAreInFlight()
    {
        const int count = 150;
        await _client.WatchAsync(_base, "busy");
        await _client.ExpectEventAsync("busy", _base);

        // Writes and reads interleave on the wire with the events they trigger.
        var work = Enumerable.Range(0, count).Select(async i =>
        {
            await _client.WriteAsync($"{_base}/n{i}", "x");
            await _client.ReadAsync($"{_base}/n{i}");
        });
        await Task.WhenAll(work);

        var seen = new HashSet<string>();
        while (seen.Count < count)
        {
            var e = await _client.NextEventAsync();
            Assert.Equal("busy", e.Token);
            seen.Add(e.Path);
        }
        Assert.Equal(Enumerable.Range(0, count).Select(i => $"{_base}/n{i}").ToHashSet(), seen);
    }

    [Fact]
    public async Task ValueUpToTheDefaultCapIsAccepted()
    {
        var value = Encoding.ASCII.GetBytes(new string('v', 2048));
        await _client.WriteAsync($"{_base}/big", value);
        Assert.Equal(value, await _client.ReadAsync($"{_base}/big"));
    }
}
