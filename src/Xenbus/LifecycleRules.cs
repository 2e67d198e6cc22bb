namespace XenBackends.Xenbus;

/// <summary>What the backend sees in xenstore at one moment, plus whether its rings are up.</summary>
public readonly record struct LifecycleView(
    XenbusState Frontend, XenbusState? Backend, bool Online, bool RingsUp, bool ReadyToConnect);

public enum LifecycleAction
{
    None,
    /// <summary>The frontend re-initialises after we closed (reboot, kexec, resume): back to InitWait.</summary>
    Reconnect,
    /// <summary>Read the frontend's ring keys, map, bind, then switch to Connected.</summary>
    Connect,
    /// <summary>Switch to Closing (rings stay up until the frontend is Closed).</summary>
    Close,
    /// <summary>Release rings (idempotent, waits for in-flight I/O), then switch to Closed.</summary>
    Disconnect,
    /// <summary>The device is being removed: release everything and stop serving it.</summary>
    Remove,
}

/// <summary>
/// The backend state machine, as Linux blkback/netback and QEMU's xen-bus drive it, as one pure
/// function so every transition is testable without xenstore. Called again on every watch firing;
/// it must be idempotent because watches coalesce and fire spuriously.
/// </summary>
public static class LifecycleRules
{
    public static LifecycleAction Decide(in LifecycleView v)
    {
        // The toolstack removed the backend directory: nothing left to talk through.
        if (v.Backend is not { } backend)
            return LifecycleAction.Remove;

        if (!v.Online)
        {
            // Being detached (libxl writes online=0, then backend state Closing). With no active
            // frontend there is nobody to wait for, so close at once (as QEMU's xen-bus does).
            bool frontendActive = v.Frontend is >= XenbusState.InitWait and <= XenbusState.Closing;
            if (!v.RingsUp && backend is XenbusState.Closed or XenbusState.InitWait or XenbusState.Initialising or XenbusState.Unknown)
                return LifecycleAction.Remove;
            if (!frontendActive)
                return LifecycleAction.Disconnect;
        }

        switch (v.Frontend)
        {
            case XenbusState.Initialising:
                return backend == XenbusState.Closed && v.Online && !v.RingsUp ? LifecycleAction.Reconnect : LifecycleAction.None;

            case XenbusState.Initialised:
            case XenbusState.Connected:
                // Connect on either: two watch firings can coalesce and hide Initialised (Linux's
                // frontend_changed comment). Backend Connected without rings is a restarted worker
                // resuming a live device.
                if (v.RingsUp || !v.Online || !v.ReadyToConnect) return LifecycleAction.None;
                return backend is XenbusState.InitWait or XenbusState.Connected ? LifecycleAction.Connect : LifecycleAction.None;

            case XenbusState.Closing:
                return backend is XenbusState.Closing or XenbusState.Closed ? LifecycleAction.None : LifecycleAction.Close;

            case XenbusState.Closed:
            case XenbusState.Unknown:
                // Unknown: the frontend directory is gone (guest destroyed or driver unloaded).
                if (v.RingsUp || backend != XenbusState.Closed) return LifecycleAction.Disconnect;
                return v.Online ? LifecycleAction.None : LifecycleAction.Remove;

            default:
                return LifecycleAction.None;
        }
    }
}
