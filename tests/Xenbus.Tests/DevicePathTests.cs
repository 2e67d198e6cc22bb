namespace XenBackends.Xenbus.Tests;

public class DevicePathTests
{
    [Fact]
    public void Parses_a_libxl_backend_path_and_derives_the_frontend()
    {
        var p = DevicePath.TryParse("/local/domain/0/backend/vbd/5/51712");
        Assert.NotNull(p);
        Assert.Equal(new DevicePath(0, "vbd", 5, 51712), p);
        Assert.Equal("/local/domain/5/device/vbd/51712", p!.Value.ExpectedFrontend);
        Assert.Equal("backend/vbd/5/51712", p.Value.NodeName);
        Assert.Equal("/local/domain/0/backend/vbd/5/51712", p.Value.Backend);
    }

    [Fact]
    public void Qdisk_backends_pair_with_vbd_frontends() =>
        Assert.Equal("/local/domain/3/device/vbd/768", new DevicePath(0, "qdisk", 3, 768).ExpectedFrontend);

    [Theory]
    [InlineData("/local/domain/0/backend/vbd/5")]
    [InlineData("/local/domain/0/backend/vbd/5/51712/state")]
    [InlineData("/local/domain/0/backend/vbd/x/51712")]
    [InlineData("/local/domain/0/backend/vbd/05/51712")]
    [InlineData("/local/domain/0/frontend/vbd/5/51712")]
    [InlineData("local/domain/0/backend/vbd/5/51712")]
    public void Refuses_anything_else(string path) => Assert.Null(DevicePath.TryParse(path));

    [Theory]
    [InlineData("7", 7u)]
    [InlineData("0", 0u)]
    public void Parses_guest_integers_strictly(string value, uint expected) =>
        Assert.Equal(expected, FrontendKeys.ParseUInt32("k", value, 0, 10, null));

    [Theory]
    [InlineData("07")]
    [InlineData("-1")]
    [InlineData("0x4")]
    [InlineData(" 4")]
    [InlineData("99")]
    [InlineData("")]
    [InlineData("4294967296")]
    public void Refuses_malformed_or_out_of_range_guest_integers(string value) =>
        Assert.Throws<FrontendConfigurationException>(() => FrontendKeys.ParseUInt32("k", value, 0, 10, null));

    [Fact]
    public void A_missing_mandatory_key_is_refused_and_an_optional_one_defaults()
    {
        Assert.Throws<FrontendConfigurationException>(() => FrontendKeys.ParseUInt32("k", null, 0, 10, null));
        Assert.Equal(3u, FrontendKeys.ParseUInt32("k", null, 0, 10, 3));
    }
}
