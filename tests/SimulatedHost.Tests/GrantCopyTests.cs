using System.Runtime.InteropServices;
using XenBackends.Native;
using static XenBackends.SimulatedHost.GrantTableFlags;

namespace XenBackends.SimulatedHost.Tests;

public sealed class GrantCopyTests : IDisposable
{
    private readonly SimulatedXenHost _host = new();
    private readonly SimulatedDomain _guest;
    private readonly IGrantMapper _mapper;
    private readonly nint _local;

    public GrantCopyTests()
    {
        _guest = _host.CreateDomain(7, pageCount: 8);
        _mapper = _host.CreateGrantMapper();
        _local = Marshal.AllocHGlobal(2 * 4096);
    }

    public void Dispose()
    {
        Marshal.FreeHGlobal(_local);
        _mapper.Dispose();
        _host.Dispose();
    }

    private Span<byte> Local => Native.Linux.UnmanagedSpan.FromAddress(_local, 2 * 4096);

    [Fact]
    public void One_batch_reports_each_segment_independently_and_copies_only_the_good_ones()
    {
        _guest.Memory.Page(1).Fill(0x11);
        _guest.Memory.Page(2).Fill(0x22);
        _guest.Memory.Page(3).Fill(0x33);
        uint readable = _guest.Grants.GrantAccess(0, 1, readOnly: true);
        uint writable = _guest.Grants.GrantAccess(0, 2, readOnly: false);
        uint readOnlyDest = _guest.Grants.GrantAccess(0, 3, readOnly: true);
        uint otherDomain = _guest.Grants.GrantAccess(9, 1, readOnly: false);
        Local.Fill(0xEE);

        GrantCopySegment[] segs =
        [
            GrantCopySegment.FromGuest(7, readable, 100, _local, 200),                 // ok
            GrantCopySegment.ToGuest(_local + 4096, 7, writable, 4000, 96),                 // ok, ends exactly at the page end
            GrantCopySegment.FromGuest(7, readable, 4000, _local + 1000, 97),          // crosses the page: bad_copy_arg
            GrantCopySegment.FromGuest(7, 5000, 0, _local, 10),                        // beyond the table: bad_gntref
            GrantCopySegment.FromGuest(8, readable, 0, _local, 10),                    // no such domain: bad_domain
            GrantCopySegment.ToGuest(_local, 7, readOnlyDest, 0, 64),                  // read-only as destination
            GrantCopySegment.FromGuest(7, otherDomain, 0, _local, 10),                 // granted to d9, not us
            GrantCopySegment.FromGuest(7, 200, 0, _local, 10),                         // never granted
        ];
        _mapper.Copy(segs);

        Assert.Equal(
            [GrantStatus.Okay, GrantStatus.Okay, GrantStatus.BadCopyArg, GrantStatus.BadGntref, GrantStatus.BadDomain,
             GrantStatus.GeneralError, GrantStatus.GeneralError, GrantStatus.GeneralError],
            segs.Select(s => s.Status));
        Assert.True(Local.Slice(0, 200).IndexOfAnyExcept((byte)0x11) < 0);
        Assert.True(Local.Slice(1000, 200).IndexOfAnyExcept((byte)0xEE) < 0);
        Assert.True(_guest.Memory.Page(2).Slice(4000, 96).IndexOfAnyExcept((byte)0xEE) < 0);
        Assert.True(_guest.Memory.Page(2)[..4000].IndexOfAnyExcept((byte)0x22) < 0);
        Assert.True(_guest.Memory.Page(3).IndexOfAnyExcept((byte)0x33) < 0); // read-only grant untouched
        // Copies pin only for their duration: every grant is idle again and can be ended.
        foreach (uint gref in new[] { readable, writable, readOnlyDest, otherDomain })
        {
            Assert.Equal(0, _guest.Grants.ReadEntry(gref).Flags & (GTF_reading | GTF_writing));
            Assert.True(_guest.Grants.EndAccess(gref));
        }
    }

    [Fact]
    public void Guest_to_guest_copy_and_malformed_segments()
    {
        _guest.Memory.Page(4).Fill(0x44);
        uint src = _guest.Grants.GrantAccess(0, 4, readOnly: true);
        uint dst = _guest.Grants.GrantAccess(0, 5, readOnly: false);
        GrantCopySegment[] segs =
        [
            new() { SourceRef = src, SourceDomid = 7, SourceOffset = 8, DestRef = dst, DestDomid = 7, DestOffset = 16, Length = 32,
                    Flags = GrantCopyFlags.SourceGref | GrantCopyFlags.DestGref },
            new() { SourceVirt = _local, DestVirt = _local + 4096, Length = 8 },                       // local to local
            new() { SourceRef = src, SourceDomid = 7, DestVirt = 0, Length = 8, Flags = GrantCopyFlags.SourceGref }, // null local side
            new() { SourceRef = src, SourceDomid = 7, DestVirt = _local, Length = 8, Flags = 0x80 | GrantCopyFlags.SourceGref },
        ];
        _mapper.Copy(segs);
        Assert.Equal([GrantStatus.Okay, GrantStatus.BadCopyArg, GrantStatus.BadVirtAddr, GrantStatus.BadCopyArg], segs.Select(s => s.Status));
        Assert.True(_guest.Memory.Page(5).Slice(16, 32).IndexOfAnyExcept((byte)0x44) < 0);
        Assert.Equal(0, _guest.Memory.Page(5)[15]);
        Assert.Equal(0, _guest.Memory.Page(5)[48]);
    }

    [Fact]
    public void A_grant_mapped_read_only_can_still_be_copied_from_but_not_into()
    {
        uint gref = _guest.Grants.GrantAccess(0, 6, readOnly: true);
        using var map = _mapper.Map(7, [gref], writable: false);
        GrantCopySegment[] segs =
        [
            GrantCopySegment.FromGuest(7, gref, 0, _local, 16),
            GrantCopySegment.ToGuest(_local, 7, gref, 0, 16),
        ];
        _mapper.Copy(segs);
        Assert.Equal([GrantStatus.Okay, GrantStatus.GeneralError], segs.Select(s => s.Status));
        Assert.Equal(GTF_permit_access | GTF_readonly | GTF_reading, _guest.Grants.ReadEntry(gref).Flags);
    }
}
