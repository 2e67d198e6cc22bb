using System.Buffers.Binary;
using System.Net.Sockets;
using XenBackends.SimulatedHost.XenStore;

namespace XenBackends.XenStore.Tests;

/// <summary>Needs simulator powers (connect as a guest, introduce domains, tiny quotas): never run against a real daemon.</summary>
public sealed class InProcessServerTests : IAsyncLifetime
{
    private const uint Guest = 5;
    private readonly InProcessHost _host = new();
    private XenStoreClient _dom0 = null!;
    private XenStoreClient _guest = null!;

    public async Task InitializeAsync()
    {
        _dom0 = await _host.ConnectAsAsync(0);
        _guest = await _host.ConnectAsAsync(Guest);
        // What libxl does for a new domain: its home belongs to dom0, readable by the guest; device/ is the guest's.
        await _dom0.MkdirAsync("/local/domain/5/device");
        await _dom0.SetPermissionsAsync("/local/domain/5", [new(0, XsAccess.None), new(Guest, XsAccess.Read)]);
        await _dom0.SetPermissionsAsync("/local/domain/5/device", [new(Guest, XsAccess.None), new(0, XsAccess.Read)]);
    }

    public async Task DisposeAsync()
    {
        await _dom0.DisposeAsync();
        await _guest.DisposeAsync();
        await _host.DisposeAsync();
    }

    [Fact]
    public async Task GuestIsRefusedDom0Nodes()
    {
        await _dom0.WriteAsync("/local/domain/0/secret", "s");
        Assert.Equal("EACCES", (await Assert.ThrowsAsync<XenStoreErrorException>(() => _guest.ReadAsync("/local/domain/0/secret"))).ErrnoName);
        var e = await Assert.ThrowsAsync<XenStoreErrorException>(() => _guest.WriteAsync("/local/domain/0/secret", "x"));
        Assert.Equal(("EACCES", 13), (e.ErrnoName, e.Errno));
        Assert.Equal("EACCES", (await Assert.ThrowsAsync<XenStoreErrorException>(() => _guest.WriteAsync("/local/domain/0/new", "x"))).ErrnoName);
    }

    [Fact]
    public async Task LibxlStyleBackendAndFrontendPermissionsWork()
    {
        var backend = "/local/domain/0/backend/vbd/5/51712";
        await _dom0.WriteAsync($"{backend}/state", "1");
        await _dom0.SetPermissionsAsync(backend, [new(0, XsAccess.None), new(Guest, XsAccess.Read)]);
        await _dom0.SetPermissionsAsync($"{backend}/state", [new(0, XsAccess.None), new(Guest, XsAccess.Read)]);

        // The frontend writes relative to its home, as a guest kernel does.
        await _guest.WriteAsync("device/vbd/51712/state", "3");
        Assert.Equal("3", await _dom0.ReadStringAsync("/local/domain/5/device/vbd/51712/state"));
        Assert.Equal(Guest, (await _dom0.GetPermissionsAsync("/local/domain/5/device/vbd/51712/state"))[0].DomId);

        Assert.Equal("1", await _guest.ReadStringAsync($"{backend}/state"));
        Assert.Equal("EACCES", (await Assert.ThrowsAsync<XenStoreErrorException>(() => _guest.WriteAsync($"{backend}/state", "4"))).ErrnoName);
        Assert.Equal("EACCES", (await Assert.ThrowsAsync<XenStoreErrorException>(() => _guest.WriteAsync("/local/domain/5/name", "x"))).ErrnoName);
    }

    [Fact]
    public async Task PermissionChangesNeedOwnershipAndOnlyDom0GivesNodesAway()
    {
        await _guest.WriteAsync("device/mine", "1");
        await _dom0.WriteAsync("/local/domain/0/theirs", "1");
        Assert.Equal("EACCES", (await Assert.ThrowsAsync<XenStoreErrorException>(() =>
            _guest.SetPermissionsAsync("/local/domain/0/theirs", [new(Guest, XsAccess.Both)]))).ErrnoName);
        Assert.Equal("EPERM", (await Assert.ThrowsAsync<XenStoreErrorException>(() =>
            _guest.SetPermissionsAsync("device/mine", [new(7, XsAccess.Both)]))).ErrnoName);
        await _guest.SetPermissionsAsync("device/mine", [new(Guest, XsAccess.Read)]);
    }

    [Fact]
    public async Task WatchOnUnreadablePathIsAcceptedButUnreadableChangesAreNotDelivered()
    {
        await _dom0.MkdirAsync("/local/domain/0/private");
        await _guest.WatchAsync("/local/domain/0/private", "spy");
        await _guest.ExpectEventAsync("spy", "/local/domain/0/private");

        await _dom0.WriteAsync("/local/domain/0/private/hidden", "1");          // inherits n0: guest may not see it
        await _dom0.WriteAsync("/local/domain/0/private/shared", "1");          // also n0 at first ...
        await _dom0.SetPermissionsAsync("/local/domain/0/private/shared", [new(0, XsAccess.None), new(Guest, XsAccess.Read)]);

        // ... so the first event the guest gets is the permission change that made "shared" readable.
        await _guest.ExpectEventAsync("spy", "/local/domain/0/private/shared");
        Assert.Empty(await _guest.DrainUntilBarrierAsync("device"));
    }

    [Fact]
    public async Task RelativeWatchesReportRelativePaths()
    {
        await _guest.WatchAsync("device", "rel");
        await _guest.ExpectEventAsync("rel", "device");
        await _guest.WriteAsync("device/vif/0/state", "1");
        await _guest.ExpectEventAsync("rel", "device/vif/0/state");
    }

    [Fact]
    public async Task IntroduceAndReleaseFireSpecialWatchesAndAnswerQueries()
    {
        await _dom0.WatchAsync("@introduceDomain", "in");
        await _dom0.ExpectEventAsync("in", "@introduceDomain");
        await _dom0.WatchAsync("@releaseDomain", "out");
        await _dom0.ExpectEventAsync("out", "@releaseDomain");
        Assert.False(await _dom0.IsDomainIntroducedAsync(7));

        _host.Server.IntroduceDomain(7);
        await _dom0.ExpectEventAsync("in", "@introduceDomain");
        Assert.True(await _dom0.IsDomainIntroducedAsync(7));

        _host.Server.ReleaseDomain(7);
        await _dom0.ExpectEventAsync("out", "@releaseDomain");
        Assert.False(await _dom0.IsDomainIntroducedAsync(7));
        Assert.Equal("/local/domain/5", await _guest.GetDomainPathAsync(Guest));
    }

    [Fact]
    public async Task TransactionReadsComeFromTheSnapshot()
    {
        await _dom0.WriteAsync("/local/domain/0/snap", "before");
        var tx = await _dom0.StartTransactionAsync();
        Assert.Equal("before", await tx.ReadStringAsync("/local/domain/0/snap"));
        await _guest.WriteAsync("device/unrelated", "1");
        await _dom0.WriteAsync("/local/domain/0/snap", "after");
        Assert.Equal("before", await tx.ReadStringAsync("/local/domain/0/snap"));
        Assert.Equal("EAGAIN", (await Assert.ThrowsAsync<XenStoreErrorException>(() => tx.CommitAsync())).ErrnoName);

        // A transaction whose paths nobody touched commits even though the tree changed elsewhere.
        var quiet = await _dom0.StartTransactionAsync();
        await quiet.WriteAsync("/local/domain/0/quiet", "1");
        await _guest.WriteAsync("device/other", "1");
        await quiet.CommitAsync();
        Assert.Equal("1", await _dom0.ReadStringAsync("/local/domain/0/quiet"));
    }

    [Fact]
    public async Task ServerRefusesWatchMistakesAndUnknownTransactions()
    {
        await _guest.WatchAsync("device", "dup");
        Assert.Equal("EEXIST", (await Assert.ThrowsAsync<XenStoreErrorException>(() => _guest.WatchAsync("device", "dup"))).ErrnoName);
        Assert.Equal("ENOENT", (await Assert.ThrowsAsync<XenStoreErrorException>(() => _guest.UnwatchAsync("device", "never"))).ErrnoName);
        var tx = await _guest.StartTransactionAsync();
        await tx.AbortAsync();
        Assert.Equal("ENOENT", (await Assert.ThrowsAsync<XenStoreErrorException>(() => tx.ReadAsync("device"))).ErrnoName);
    }

    [Fact]
    public async Task QuotasGiveTheDaemonsErrors()
    {
        await using var host = new InProcessHost(new XenStoreServerOptions
        {
            MaxEntriesPerDomain = 3, MaxValueSize = 100, MaxWatchesPerConnection = 2, MaxTransactionsPerConnection = 1,
        });
        await using var dom0 = await host.ConnectAsAsync(0);
        await using var guest = await host.ConnectAsAsync(Guest, new XenStoreClientOptions { MaxValueSize = 4000 });
        await dom0.MkdirAsync("/local/domain/5");
        await dom0.SetPermissionsAsync("/local/domain/5", [new(Guest, XsAccess.None)]);

        await guest.WriteAsync("a", "1");
        await guest.WriteAsync("b", "1");
        Assert.Equal("ENOSPC", (await Assert.ThrowsAsync<XenStoreErrorException>(() => guest.WriteAsync("c/d", "1"))).ErrnoName);
        Assert.Equal("ENOSPC", (await Assert.ThrowsAsync<XenStoreErrorException>(() => guest.WriteAsync("a", new byte[101]))).ErrnoName);
        await dom0.WriteAsync("/local/domain/0/big", new byte[1000]); // dom0 is exempt, as in C xenstored

        await guest.WatchAsync("a", "1");
        await guest.WatchAsync("b", "2");
        Assert.Equal("E2BIG", (await Assert.ThrowsAsync<XenStoreErrorException>(() => guest.WatchAsync("a", "3"))).ErrnoName);

        await guest.StartTransactionAsync();
        Assert.Equal("ENOSPC", (await Assert.ThrowsAsync<XenStoreErrorException>(() => guest.StartTransactionAsync())).ErrnoName);
    }

    [Fact]
    public async Task OpenFollowsXenstoredPathLikeLibxenstore()
    {
        // Only this test reads XENSTORED_PATH, so changing it for the process is safe.
        var previous = Environment.GetEnvironmentVariable("XENSTORED_PATH");
        Environment.SetEnvironmentVariable("XENSTORED_PATH", _host.SocketFor(Guest));
        try
        {
            await using var client = await XenStoreClient.OpenAsync();
            await client.WriteAsync("device/opened", "1");
            Assert.Equal("1", await _dom0.ReadStringAsync("/local/domain/5/device/opened"));
        }
        finally
        {
            Environment.SetEnvironmentVariable("XENSTORED_PATH", previous);
        }
    }

    [Fact]
    public async Task OversizedFrameClosesOnlyThatConnection()
    {
        using var raw = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await raw.ConnectAsync(new UnixDomainSocketEndPoint(_host.SocketFor(Guest)));
        var header = new byte[16];
        new XsdSockmsg(XsdSockmsgType.XS_READ, 1, 0, 5000).WriteTo(header);
        await raw.SendAsync(header);

        using var cts = new CancellationTokenSource(WatchAssertions.Bound);
        Assert.Equal(0, await raw.ReceiveAsync(new byte[64], cts.Token)); // closed by the server
        Assert.Equal("/local/domain/5", await _guest.GetDomainPathAsync(Guest));
        Assert.True(await _dom0.IsDomainIntroducedAsync(0));
    }

    [Theory]
    [InlineData(99u, "EINVAL")]
    [InlineData((uint)XsdSockmsgType.XS_WATCH_EVENT, "EINVAL")]
    [InlineData((uint)XsdSockmsgType.XS_DIRECTORY_PART, "ENOSYS")]
    public async Task BadRequestTypesGetAnErrorReplyNotACrash(uint type, string errno)
    {
        using var raw = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await raw.ConnectAsync(new UnixDomainSocketEndPoint(_host.SocketFor(Guest)));
        var frame = new byte[16 + 2];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, type);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(4), 42);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(12), 2);
        frame[16] = (byte)'/';
        await raw.SendAsync(frame);

        using var cts = new CancellationTokenSource(WatchAssertions.Bound);
        var reply = new byte[64];
        var got = 0;
        while (got < 16 + errno.Length + 1) got += await raw.ReceiveAsync(reply.AsMemory(got), cts.Token);
        var (replyType, reqId, _, len) = XsdSockmsg.ReadRaw(reply);
        Assert.Equal(((uint)XsdSockmsgType.XS_ERROR, 42u), (replyType, reqId));
        Assert.Equal(errno, XsPayload.SingleString(reply.AsSpan(16, (int)len)));
    }
}
