using System.Text;

namespace XenBackends.XenStore.Tests;

/// <summary>What the client refuses on its own, proven by nothing reaching the stream.</summary>
public sealed class ClientValidationTests : IAsyncLifetime
{
    private readonly DuplexPipeStream _stream = new();
    private XenStoreClient _client = null!;

    public Task InitializeAsync()
    {
        _client = XenStoreClient.Create(new XenStoreTransport(_stream, "test stream"));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _client.DisposeAsync();

    public static TheoryData<string> BadPaths() =>
    [
        "", "/a//b", "/a/", "a/", "/a b", "/a\0b", "/a.b", "/ä", "@other", "@introduceDomain",
        "/" + new string('x', XsPath.AbsoluteMax), new string('x', XsPath.RelativeMax + 1),
    ];

    [Theory]
    [MemberData(nameof(BadPaths))]
    public async Task BadPathsAreRefusedBeforeSending(string path)
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => _client.WriteAsync(path, "v"));
        Assert.Contains("invalid xenstore path", e.Message);
        await Assert.ThrowsAsync<ArgumentException>(() => _client.ReadAsync(path));
        await Assert.ThrowsAsync<ArgumentException>(() => _client.RemoveAsync(path));
        Assert.Equal(0, _stream.BytesWritten);
    }

    [Fact]
    public void PathRulesAcceptWhatDaemonsAccept()
    {
        Assert.Null(XsPath.Problem("/"));
        Assert.Null(XsPath.Problem("/local/domain/0/backend/vbd/5/51712"));
        Assert.Null(XsPath.Problem("device/vif/0/feature-rx-copy"));
        Assert.Null(XsPath.Problem("/A-Za_z@09"));
        Assert.Null(XsPath.Problem("/" + new string('x', XsPath.AbsoluteMax - 1)));
        Assert.Null(XsPath.Problem("@introduceDomain", forWatch: true));
        Assert.Null(XsPath.Problem("@releaseDomain", forWatch: true));
        Assert.NotNull(XsPath.Problem("@other", forWatch: true));
    }

    [Fact]
    public async Task ValuesOverTheCapAreRefusedBeforeSending()
    {
        var e = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => _client.WriteAsync("/a", new byte[2049]));
        Assert.Contains("2048", e.Message);

        // Even with the cap raised, path + value must fit XENSTORE_PAYLOAD_MAX.
        await using var stream = new DuplexPipeStream();
        await using var relaxed = XenStoreClient.Create(new XenStoreTransport(stream, "test"), new XenStoreClientOptions { MaxValueSize = 4096 });
        var big = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => relaxed.WriteAsync("/a", new byte[4096]));
        Assert.Contains("XENSTORE_PAYLOAD_MAX", big.Message);
        Assert.Equal((0L, 0L), (_stream.BytesWritten, stream.BytesWritten));
    }

    [Fact]
    public async Task BadWatchTokensAndPermissionListsAreRefusedBeforeSending()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => _client.WatchAsync("/a", "bad\0token"));
        await Assert.ThrowsAsync<ArgumentException>(() => _client.WatchAsync("/a", new string('t', 4096)));
        await Assert.ThrowsAsync<ArgumentException>(() => _client.SetPermissionsAsync("/a", []));
        Assert.Equal(0, _stream.BytesWritten);
    }

    [Fact]
    public void OptionsOutsideTheProtocolAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => XenStoreClient.Create(new XenStoreTransport(new DuplexPipeStream(), "t"), new XenStoreClientOptions { MaxValueSize = 5000 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => XenStoreClient.Create(new XenStoreTransport(new DuplexPipeStream(), "t"), new XenStoreClientOptions { MaxTransactionAttempts = 0 }));
    }

    [Fact]
    public void PermissionsParseOnlyTheFourLetters()
    {
        Assert.Equal(new XsPermission(12, XsAccess.Both), XsPermission.Parse("b12"));
        Assert.Equal("n0", new XsPermission(0, XsAccess.None).ToString());
        foreach (var bad in new[] { "", "r", "x1", "r-1", "r1a", "r 1", "r99999999999" })
            Assert.False(XsPermission.TryParse(bad, out _), bad);
    }

    [Fact]
    public void PayloadHelpersRoundTrip()
    {
        var payload = XsPayload.Strings("/a", "tok");
        Assert.Equal("/a\0tok\0", Encoding.UTF8.GetString(payload));
        Assert.Equal(["/a", "tok"], XsPayload.Split(payload));
        Assert.Equal("OK", XsPayload.SingleString("OK\0"u8));
    }
}
