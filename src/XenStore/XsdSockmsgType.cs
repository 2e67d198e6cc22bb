namespace XenBackends.XenStore;

/// <summary>Message types of <c>struct xsd_sockmsg</c>, numbered as in xen/io/xs_wire.h (4.17).</summary>
public enum XsdSockmsgType : uint
{
    XS_CONTROL = 0,
    XS_DIRECTORY = 1,
    XS_READ = 2,
    XS_GET_PERMS = 3,
    XS_WATCH = 4,
    XS_UNWATCH = 5,
    XS_TRANSACTION_START = 6,
    XS_TRANSACTION_END = 7,
    XS_INTRODUCE = 8,
    XS_RELEASE = 9,
    XS_GET_DOMAIN_PATH = 10,
    XS_WRITE = 11,
    XS_MKDIR = 12,
    XS_RM = 13,
    XS_SET_PERMS = 14,
    XS_WATCH_EVENT = 15,
    XS_ERROR = 16,
    XS_IS_DOMAIN_INTRODUCED = 17,
    XS_RESUME = 18,
    XS_SET_TARGET = 19,
    // 20 was XS_RESTRICT, removed upstream; the number stays unused.
    XS_RESET_WATCHES = 21,
    XS_DIRECTORY_PART = 22,
}

/// <summary>Which type numbers a peer may legitimately send.</summary>
public static class XsdSockmsgTypes
{
    /// <summary>XS_TYPE_COUNT: every valid type is below it.</summary>
    public const uint XS_TYPE_COUNT = 23;

    public static bool IsKnown(uint type) => type < XS_TYPE_COUNT && type != 20;
}
