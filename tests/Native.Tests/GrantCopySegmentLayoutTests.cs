using System.Runtime.CompilerServices;

namespace XenBackends.Native.Tests;

public class GrantCopySegmentLayoutTests
{
    [Fact]
    public void Segment_is_24_bytes_like_xengnttab_grant_copy_segment()
    {
        Assert.Equal(24, Unsafe.SizeOf<GrantCopySegment>());
    }

    [Fact]
    public void FromGuest_sets_the_source_gref_flag_and_foreign_source()
    {
        var s = GrantCopySegment.FromGuest(domid: 7, gref: 42, offset: 512, destination: 0x1000, length: 1024);
        Assert.Equal(GrantCopyFlags.SourceGref, s.Flags);
        Assert.Equal(42u, s.SourceRef);
        Assert.Equal((ushort)512, s.SourceOffset);
        Assert.Equal((ushort)7, s.SourceDomid);
        Assert.Equal((nint)0x1000, s.DestVirt);
        Assert.Equal((ushort)1024, s.Length);
    }
}
