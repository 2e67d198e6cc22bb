using static XenBackends.Xenbus.XenbusState;

namespace XenBackends.Xenbus.Tests;

public class LifecycleRulesTests
{
    private static LifecycleAction Decide(XenbusState frontend, XenbusState? backend, bool online = true, bool ringsUp = false, bool ready = true) =>
        LifecycleRules.Decide(new LifecycleView(frontend, backend, online, ringsUp, ready));

    [Fact]
    public void Connects_when_the_frontend_is_initialised_and_we_wait() =>
        Assert.Equal(LifecycleAction.Connect, Decide(Initialised, InitWait));

    [Fact]
    public void Connects_when_a_coalesced_watch_hid_initialised_and_the_frontend_is_already_connected() =>
        Assert.Equal(LifecycleAction.Connect, Decide(XenbusState.Connected, InitWait));

    [Fact]
    public void A_restarted_worker_resumes_a_connected_device() =>
        Assert.Equal(LifecycleAction.Connect, Decide(XenbusState.Connected, XenbusState.Connected, ringsUp: false));

    [Fact]
    public void Does_nothing_once_connected() =>
        Assert.Equal(LifecycleAction.None, Decide(XenbusState.Connected, XenbusState.Connected, ringsUp: true));

    [Fact]
    public void Waits_for_the_device_specific_condition_such_as_hotplug_status() =>
        Assert.Equal(LifecycleAction.None, Decide(Initialised, InitWait, ready: false));

    [Fact]
    public void Does_not_retry_a_failed_connect_while_the_backend_is_closing() =>
        Assert.Equal(LifecycleAction.None, Decide(Initialised, Closing));

    [Fact]
    public void Follows_the_frontend_to_closing_but_keeps_rings_until_closed()
    {
        Assert.Equal(LifecycleAction.Close, Decide(Closing, XenbusState.Connected, ringsUp: true));
        Assert.Equal(LifecycleAction.None, Decide(Closing, Closing, ringsUp: true));
        Assert.Equal(LifecycleAction.Disconnect, Decide(Closed, Closing, ringsUp: true));
    }

    [Fact]
    public void Closed_frontend_is_quiet_once_we_are_closed_and_online() =>
        Assert.Equal(LifecycleAction.None, Decide(Closed, Closed));

    [Fact]
    public void Frontend_reinitialising_after_close_reconnects() =>
        Assert.Equal(LifecycleAction.Reconnect, Decide(Initialising, Closed));

    [Fact]
    public void Frontend_initialising_during_first_handshake_needs_nothing() =>
        Assert.Equal(LifecycleAction.None, Decide(Initialising, InitWait));

    [Fact]
    public void A_vanished_frontend_disconnects_then_waits_or_removes()
    {
        Assert.Equal(LifecycleAction.Disconnect, Decide(Unknown, XenbusState.Connected, ringsUp: true));
        Assert.Equal(LifecycleAction.None, Decide(Unknown, Closed));
        Assert.Equal(LifecycleAction.Remove, Decide(Unknown, Closed, online: false));
    }

    [Fact]
    public void A_removed_backend_directory_removes_the_device() =>
        Assert.Equal(LifecycleAction.Remove, Decide(XenbusState.Connected, null, ringsUp: true));

    [Fact]
    public void Detach_of_a_connected_device_waits_for_the_frontend_to_close()
    {
        // libxl: online=0, backend state=Closing; the frontend must see it and close first.
        Assert.Equal(LifecycleAction.None, Decide(XenbusState.Connected, Closing, online: false, ringsUp: true));
        Assert.Equal(LifecycleAction.None, Decide(Closing, Closing, online: false, ringsUp: true));
        Assert.Equal(LifecycleAction.Disconnect, Decide(Closed, Closing, online: false, ringsUp: true));
        Assert.Equal(LifecycleAction.Remove, Decide(Closed, Closed, online: false));
    }

    [Fact]
    public void Detach_with_no_active_frontend_closes_at_once()
    {
        Assert.Equal(LifecycleAction.Disconnect, Decide(Initialising, Closing, online: false));
        Assert.Equal(LifecycleAction.Remove, Decide(Initialising, InitWait, online: false));
    }

    [Fact]
    public void Offline_device_is_never_connected() =>
        Assert.NotEqual(LifecycleAction.Connect, Decide(Initialised, InitWait, online: false));

    [Fact]
    public void Unparseable_guest_states_count_as_unknown()
    {
        Assert.Equal(Unknown, XenbusStates.Parse("banana"));
        Assert.Equal(Unknown, XenbusStates.Parse("99"));
        Assert.Equal(Unknown, XenbusStates.Parse("-1"));
        Assert.Equal(Unknown, XenbusStates.Parse(" 4"));
        Assert.Equal(Unknown, XenbusStates.Parse(null));
        Assert.Equal(XenbusState.Connected, XenbusStates.Parse("4"));
    }

    [Fact]
    public void Every_view_has_a_decision_and_repeating_it_after_a_noop_is_stable()
    {
        // Exhaustive over all states: Decide never throws, and None is a fixed point.
        var states = Enum.GetValues<XenbusState>().Cast<XenbusState?>().Append(null);
        foreach (var fe in Enum.GetValues<XenbusState>())
        foreach (var be in states)
        foreach (bool online in new[] { true, false })
        foreach (bool rings in new[] { true, false })
        foreach (bool ready in new[] { true, false })
        {
            var a = LifecycleRules.Decide(new LifecycleView(fe, be, online, rings, ready));
            Assert.True(Enum.IsDefined(a));
            if (!online) Assert.NotEqual(LifecycleAction.Connect, a);
            if (!online) Assert.NotEqual(LifecycleAction.Reconnect, a);
        }
    }
}
