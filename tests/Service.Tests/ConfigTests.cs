using XenBackends.Service.Config;

namespace XenBackends.Service.Tests;

public sealed class ConfigTests
{
    private static ConfigException Invalid(string json) => Assert.Throws<ConfigException>(() => ConfigLoader.Parse(json, "test.json"));

    [Fact]
    public void A_full_document_is_read_with_every_value()
    {
        var c = ConfigLoader.Parse("""
            {
              // comments are allowed: administrators annotate their files
              "kinds": ["vbd", "xbecho"],
              "ioEngine": "threads",
              "limits": { "maxQueues": 2, "maxRingPageOrder": 3, "maxIndirectSegments": 512, "blockPollMicroseconds": 50, "netRxCoalesceMicroseconds": 0 },
              "qos": { "defaults": { "diskIops": 1000 }, "guests": { "web1": { "diskBytesPerSecond": 5000000, "vifBytesPerSecond": 125000 } } },
              "metrics": { "enabled": true, "listen": "[::1]:9100" },
              "controlSocket": "/run/xb/control.sock",
              "restart": { "initialDelayMs": 200, "maxDelayMs": 5000, "stableAfterMs": 1000 },
            }
            """, "test.json");
        Assert.Equal(["vbd", "xbecho"], c.Kinds);
        Assert.Equal("threads", c.IoEngine);
        Assert.Equal(2, c.Limits.MaxQueues);
        Assert.Equal(512, c.Limits.MaxIndirectSegments);
        Assert.Equal(50, c.Limits.BlockPollMicroseconds);
        Assert.Equal(0, c.Limits.NetRxCoalesceMicroseconds);
        Assert.Equal(TimeSpan.FromMicroseconds(50), Devices.BlockKind.Options(c, new GuestQos()).PollTime);
        Assert.Equal(1000, c.Qos.Defaults.DiskIops);
        Assert.Equal(125000, c.Qos.Guests["web1"].VifBytesPerSecond);
        Assert.Equal("[::1]:9100", c.Metrics.Listen);
        Assert.Equal(5000, c.Restart.MaxDelayMs);
    }

    [Fact]
    public void The_configuration_survives_the_trip_to_a_worker()
    {
        var c = ConfigLoader.Parse("""{ "kinds": ["xbecho"], "qos": { "defaults": {}, "guests": { "a": { "diskIops": 7 } } } }""", "x");
        var again = ConfigLoader.Parse(ConfigLoader.Serialize(c), "env");
        Assert.Equal(7, again.Qos.Guests["a"].DiskIops);
        Assert.Equal(20, again.Limits.NetRxCoalesceMicroseconds); // the default, where the file names none
        Assert.Equal(["xbecho"], again.Kinds);
    }

    [Fact]
    public void An_unknown_key_names_its_line_and_path()
    {
        var e = Invalid("{\n  \"kinds\": [\"vbd\"],\n  \"limits\": { \"maxQueue\": 4 }\n}");
        var error = Assert.Single(e.Errors);
        Assert.StartsWith("line 3,", error, StringComparison.Ordinal);
        Assert.Contains("limits.maxQueue: unknown key", error, StringComparison.Ordinal);
        Assert.StartsWith("test.json: invalid configuration:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_value_of_the_wrong_type_is_named()
    {
        var error = Assert.Single(Invalid("""{ "limits": { "maxQueues": "four" } }""").Errors);
        Assert.Contains("limits.maxQueues: wrong type of value", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Broken_json_says_where()
    {
        var error = Assert.Single(Invalid("{ \"kinds\": [\"vbd\" }").Errors);
        Assert.StartsWith("line 1,", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_semantic_problem_is_reported_at_once_with_its_key_and_range()
    {
        var e = Invalid("""
            {
              "kinds": ["vbd", "vbd", "floppy"],
              "ioEngine": "aio",
              "limits": { "maxQueues": 0, "maxRingPageOrder": 5, "maxIndirectSegments": 8, "blockPollMicroseconds": 5000, "netRxCoalesceMicroseconds": -1 },
              "qos": { "defaults": { "diskIops": -1 }, "guests": { "web1": { "vifBytesPerSecond": -5 } } },
              "metrics": { "listen": "0.0.0.0:9465" },
              "controlSocket": "relative.sock",
              "journalDirectory": "journal",
              "restart": { "initialDelayMs": 1000, "maxDelayMs": 500 }
            }
            """);
        Assert.Equal(
            [
                "kinds: \"floppy\" is not a kind this build serves (known: vbd, vif, xbecho)",
                "kinds: \"vbd\" is listed twice",
                "ioEngine: \"aio\" is not one of auto, io_uring, threads, inline",
                "limits.maxQueues: must be 1..64 (got 0)",
                "limits.maxRingPageOrder: must be 0..4 (got 5)",
                "limits.maxIndirectSegments: must be 11..4096 (got 8)",
                "limits.blockPollMicroseconds: must be 0..1000 (got 5000)",
                "limits.netRxCoalesceMicroseconds: must be 0..1000 (got -1)",
                "qos.defaults.diskIops: must be 0 (unlimited) or positive (got -1)",
                "qos.guests.web1.vifBytesPerSecond: must be 0 (unlimited) or positive (got -5)",
                "metrics.listen: \"0.0.0.0:9465\" is not a loopback address; metrics are only served on 127.0.0.1 or [::1]",
                "controlSocket: \"relative.sock\" must be an absolute path",
                "journalDirectory: \"journal\" must be an absolute path (on tmpfs, e.g. /run/xen-backends/journal)",
                "restart.maxDelayMs: must not be below restart.initialDelayMs",
            ],
            e.Errors);
    }

    [Fact]
    public void Metrics_listen_must_have_a_port_and_may_be_ignored_when_disabled()
    {
        Assert.Contains("metrics.listen: \"localhost\" is not host:port", Assert.Single(Invalid("""{ "kinds": ["vbd"], "metrics": { "listen": "localhost" } }""").Errors), StringComparison.Ordinal);
        var c = ConfigLoader.Parse("""{ "kinds": ["vbd"], "metrics": { "enabled": false, "listen": "anything" } }""", "x");
        Assert.False(c.Metrics.Enabled);
    }

    [Fact]
    public void A_null_document_and_an_unreadable_file_are_errors()
    {
        Assert.Contains("expected a JSON object", Assert.Single(Invalid("null").Errors), StringComparison.Ordinal);
        string missing = Path.Combine(Path.GetTempPath(), "xb-no-such-dir", "config.json");
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(missing));
        Assert.StartsWith("cannot read the file:", Assert.Single(e.Errors), StringComparison.Ordinal);
    }
}
