using XenBackends.SimulatedHost.Hostile;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// Hostile handshake values (blkback-anchors §4 item 12: validate every frontend integer): the device
/// goes fatal (error node, Closing) before mapping anything, and the other guest is unaffected.
/// Complements the per-key checks in Backend.Block.Tests with values those do not use and with the
/// bystander and recovery invariants.
/// </summary>
public class XenstoreValueAttackTests
{
    [Theory]
    [InlineData("ring-page-order", "99")]
    [InlineData("ring-page-order", "4294967296")]
    [InlineData("multi-queue-num-queues", "1000")]
    [InlineData("multi-queue-num-queues", "0")]
    [InlineData("protocol", "x86_128-abi")]
    [InlineData("ring-ref", "garbage")]
    [InlineData("ring-ref", "-1")]
    [InlineData("ring-ref", "7000")]          // inside the table, never granted
    [InlineData("ring-ref", "99999999")]      // outside the table
    [InlineData("ring-ref", null)]
    [InlineData("event-channel", "abc")]
    [InlineData("event-channel", "4294967295")]
    [InlineData("event-channel", "12345")]    // a number, but no such unbound port
    public async Task Invalid_handshake_value_is_fatal_and_harmless(string key, string? value)
    {
        await using var f = await HostileFixture.CreateAsync();
        int mapsBefore = f.Grants.Maps;
        var raw = await f.ConnectAttackerAsync(overrides: new Dictionary<string, string?> { [key] = value }, expectConnected: false);
        await f.AssertFatalAsync(raw);
        if (key is not ("ring-ref" or "event-channel"))
            Assert.Equal(mapsBefore, f.Grants.Maps);
        Assert.True(f.Backends.IsServing(f.AttackerDisk.Path));
        await f.AssertBystanderServedAsync(6);
        // The same guest can then connect honestly.
        var honest = await f.ReconnectAttackerAsync(raw);
        Assert.Equal(4, await honest.ReadBackendStateAsync());
        f.AssertImageUnchangedOutside();
    }
}
