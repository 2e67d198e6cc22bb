namespace XenBackends.Xenbus;

/// <summary><c>enum xenbus_state</c> from xen/io/xenbus.h.</summary>
public enum XenbusState
{
    Unknown = 0,
    Initialising = 1,
    /// <summary>Backend: features published, waiting for the frontend's rings.</summary>
    InitWait = 2,
    /// <summary>Frontend: rings and event channels published.</summary>
    Initialised = 3,
    Connected = 4,
    Closing = 5,
    Closed = 6,
    Reconfiguring = 7,
    Reconfigured = 8,
}

public static class XenbusStates
{
    /// <summary>
    /// Parses a <c>state</c> node. A missing node means the other end is gone (Unknown); a value that is
    /// not a state number is treated the same, since a guest may write anything there.
    /// </summary>
    public static XenbusState Parse(string? value) =>
        int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n)
        && n is >= 0 and <= (int)XenbusState.Reconfigured
            ? (XenbusState)n
            : XenbusState.Unknown;

    public static string Format(XenbusState state) => ((int)state).ToString(System.Globalization.CultureInfo.InvariantCulture);
}
