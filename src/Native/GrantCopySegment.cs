using System.Runtime.InteropServices;

namespace XenBackends.Native;

/// <summary>
/// One segment of a batched grant copy, laid out exactly as libxengnttab's
/// <c>xengnttab_grant_copy_segment_t</c> (24 bytes on x86_64), which the library hands straight to
/// the gntdev ioctl. Each side is either a local virtual address or a foreign (domid, gref, offset);
/// a foreign side must satisfy offset + len &lt;= 4096 (xengnttab.h).
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 24)]
public struct GrantCopySegment
{
    [FieldOffset(0)] public nint SourceVirt;
    [FieldOffset(0)] public uint SourceRef;
    [FieldOffset(4)] public ushort SourceOffset;
    [FieldOffset(6)] public ushort SourceDomid;
    [FieldOffset(8)] public nint DestVirt;
    [FieldOffset(8)] public uint DestRef;
    [FieldOffset(12)] public ushort DestOffset;
    [FieldOffset(14)] public ushort DestDomid;
    [FieldOffset(16)] public ushort Length;
    [FieldOffset(18)] public ushort Flags;
    /// <summary>A <see cref="GrantStatus"/> written back per segment by the copy.</summary>
    [FieldOffset(20)] public short Status;

    /// <summary>Copy guest page (domid, gref) at offset into local memory.</summary>
    public static GrantCopySegment FromGuest(ushort domid, uint gref, ushort offset, nint destination, ushort length) =>
        new()
        {
            SourceRef = gref, SourceOffset = offset, SourceDomid = domid,
            DestVirt = destination, Length = length, Flags = GrantCopyFlags.SourceGref,
        };

    /// <summary>Copy local memory into guest page (domid, gref) at offset.</summary>
    public static GrantCopySegment ToGuest(nint source, ushort domid, uint gref, ushort offset, ushort length) =>
        new()
        {
            SourceVirt = source, DestRef = gref, DestOffset = offset, DestDomid = domid,
            Length = length, Flags = GrantCopyFlags.DestGref,
        };
}

/// <summary><c>GNTCOPY_*</c> from xen/grant_table.h.</summary>
public static class GrantCopyFlags
{
    public const ushort SourceGref = 1;
    public const ushort DestGref = 2;
}

/// <summary><c>GNTST_*</c> from xen/grant_table.h: the per-operation status of a map or copy.</summary>
public static class GrantStatus
{
    public const short Okay = 0;
    public const short GeneralError = -1;
    public const short BadDomain = -2;
    public const short BadGntref = -3;
    public const short BadHandle = -4;
    public const short BadVirtAddr = -5;
    public const short BadDevAddr = -6;
    public const short NoDeviceSpace = -7;
    public const short PermissionDenied = -8;
    public const short BadPage = -9;
    public const short BadCopyArg = -10;
    public const short AddressTooBig = -11;
    public const short Eagain = -12;
    public const short NoSpace = -13;
}
