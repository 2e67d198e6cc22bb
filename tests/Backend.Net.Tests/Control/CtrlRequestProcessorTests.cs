using System.Runtime.InteropServices;
using XenBackends.Backend.Net.Control;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost;

namespace XenBackends.Backend.Net.Tests.Control;

/// <summary>
/// Every control request type, its success and each failure status netif.h defines, and the XSA-270
/// class of mapping attacks. Guest data really is granted and grant-copied on the simulated host.
/// </summary>
public sealed class CtrlRequestProcessorTests : IDisposable
{
    private const ushort Domid = 7;
    private const uint UngrantedRef = 4000;
    private readonly SimulatedXenHost _host = new();
    private readonly SimulatedDomain _guest;
    private readonly CtrlRequestProcessor _ctrl;
    private ushort _nextId = 100;

    public CtrlRequestProcessorTests()
    {
        _guest = _host.CreateDomain(Domid, 64);
        _ctrl = new CtrlRequestProcessor(Domid, _host.CreateGrantMapper(0), numQueues: 4);
    }

    public void Dispose() => _host.Dispose();

    private XenNetifCtrlResponse Send(ushort type, uint d0 = 0, uint d1 = 0, uint d2 = 0)
    {
        var request = new XenNetifCtrlRequest { Id = _nextId++, Type = type };
        request.Data[0] = d0;
        request.Data[1] = d1;
        request.Data[2] = d2;
        var response = _ctrl.Process(request);
        Assert.Equal(request.Id, response.Id);
        Assert.Equal(type, response.Type);
        return response;
    }

    private uint Grant(ReadOnlySpan<byte> data)
    {
        uint frame = _guest.Memory.AllocatePage();
        data.CopyTo(_guest.Memory.Page(frame));
        return _guest.Grants.GrantAccess(0, frame, readOnly: true);
    }

    private uint GrantEntries(params uint[] entries) => Grant(MemoryMarshal.AsBytes(entries.AsSpan()));

    private void EnableToeplitz() =>
        Assert.Equal(NetifCtrlStatus.Success, Send(NetifCtrlType.SetHashAlgorithm, NetifCtrlHashAlgorithm.Toeplitz).Status);

    [Fact]
    public void Hash_algorithm_accepts_none_and_toeplitz_and_refuses_anything_else()
    {
        Assert.Equal(NetifCtrlStatus.InvalidParameter, Send(NetifCtrlType.SetHashAlgorithm, 2).Status);
        Assert.Equal(NetifCtrlHashAlgorithm.None, _ctrl.Settings.Algorithm);
        EnableToeplitz();
        Assert.Equal(NetifCtrlHashAlgorithm.Toeplitz, _ctrl.Settings.Algorithm);
        Assert.Equal(NetifCtrlStatus.Success, Send(NetifCtrlType.SetHashAlgorithm, NetifCtrlHashAlgorithm.None).Status);
        Assert.Equal(NetifCtrlHashAlgorithm.None, _ctrl.Settings.Algorithm);
    }

    [Fact]
    public void Hash_flags_need_an_algorithm_first_then_report_and_accept_the_four_types()
    {
        var early = Send(NetifCtrlType.GetHashFlags);
        Assert.Equal(NetifCtrlStatus.NotSupported, early.Status);
        Assert.Equal(0u, early.Data);
        Assert.Equal(NetifCtrlStatus.InvalidParameter, Send(NetifCtrlType.SetHashFlags, NetifCtrlHashType.Ipv4).Status);

        EnableToeplitz();
        var flags = Send(NetifCtrlType.GetHashFlags);
        Assert.Equal(NetifCtrlStatus.Success, flags.Status);
        Assert.Equal(0xFu, flags.Data);
        Assert.Equal(NetifCtrlStatus.InvalidParameter, Send(NetifCtrlType.SetHashFlags, NetifCtrlHashType.Ipv4 | 0x10).Status);
        Assert.Equal(0u, _ctrl.Settings.Types);
        Assert.Equal(NetifCtrlStatus.Success, Send(NetifCtrlType.SetHashFlags, NetifCtrlHashType.Ipv4 | NetifCtrlHashType.Ipv6Tcp).Status);
        Assert.Equal(NetifCtrlHashType.Ipv4 | NetifCtrlHashType.Ipv6Tcp, _ctrl.Settings.Types);
    }

    [Fact]
    public void Hash_key_is_copied_zero_extended_too_long_is_buffer_overflow_and_a_bad_grant_changes_nothing()
    {
        Assert.Equal(NetifCtrlStatus.Success, Send(NetifCtrlType.SetHashKey, Grant(ToeplitzTests.RssKey), 40).Status);
        Assert.Equal(ToeplitzTests.RssKey, _ctrl.Settings.Key.ToArray());

        Assert.Equal(NetifCtrlStatus.BufferOverflow, Send(NetifCtrlType.SetHashKey, Grant(new byte[41]), 41).Status);
        Assert.Equal(NetifCtrlStatus.InvalidParameter, Send(NetifCtrlType.SetHashKey, UngrantedRef, 16).Status);
        Assert.Equal(ToeplitzTests.RssKey, _ctrl.Settings.Key.ToArray());

        Assert.Equal(NetifCtrlStatus.Success, Send(NetifCtrlType.SetHashKey, Grant([1, 2, 3]), 3).Status);
        Assert.Equal([1, 2, 3, .. new byte[37]], _ctrl.Settings.Key.ToArray());

        // Size zero clears the key; the grant is not even looked at.
        Assert.Equal(NetifCtrlStatus.Success, Send(NetifCtrlType.SetHashKey, UngrantedRef, 0).Status);
        Assert.Equal(new byte[40], _ctrl.Settings.Key.ToArray());
    }

    [Fact]
    public void Mapping_size_reports_128_refuses_more_and_resets_the_table_to_zeros()
    {
        var size = Send(NetifCtrlType.GetHashMappingSize);
        Assert.Equal(NetifCtrlStatus.Success, size.Status);
        Assert.Equal(128u, size.Data);
        Assert.Equal(NetifCtrlStatus.InvalidParameter, Send(NetifCtrlType.SetHashMappingSize, 129).Status);
        Assert.Empty(_ctrl.Settings.Mapping);

        Assert.Equal(NetifCtrlStatus.Success, Send(NetifCtrlType.SetHashMappingSize, 8).Status);
        Assert.Equal(NetifCtrlStatus.Success, Send(NetifCtrlType.SetHashMapping, GrantEntries(3, 3, 3, 3, 3, 3, 3, 3), 8, 0).Status);
        Assert.Equal(NetifCtrlStatus.Success, Send(NetifCtrlType.SetHashMappingSize, 4).Status);
        Assert.Equal([0u, 0, 0, 0], _ctrl.Settings.Mapping);
    }

    [Fact]
    public void Mapping_sub_table_lands_at_its_offset_and_leaves_the_rest_alone()
    {
        Send(NetifCtrlType.SetHashMappingSize, 8);
        Assert.Equal(NetifCtrlStatus.Success, Send(NetifCtrlType.SetHashMapping, GrantEntries(1, 1, 1, 1, 1, 1, 1, 1), 8, 0).Status);
        Assert.Equal(NetifCtrlStatus.Success, Send(NetifCtrlType.SetHashMapping, GrantEntries(2, 3), 2, 5).Status);
        Assert.Equal([1u, 1, 1, 1, 1, 2, 3, 1], _ctrl.Settings.Mapping);
    }

    [Fact]
    public void Xsa270_queue_index_out_of_range_is_refused_and_no_entry_of_that_request_is_applied()
    {
        Send(NetifCtrlType.SetHashMappingSize, 4);
        // Entry 2 names queue 4 of 4: an index the data path would use to pick a queue that does not exist.
        Assert.Equal(NetifCtrlStatus.InvalidParameter, Send(NetifCtrlType.SetHashMapping, GrantEntries(1, 2, 4, 3), 4, 0).Status);
        Assert.Equal([0u, 0, 0, 0], _ctrl.Settings.Mapping);
        Assert.Equal(NetifCtrlStatus.InvalidParameter, Send(NetifCtrlType.SetHashMapping, GrantEntries(0xFFFFFFFF), 1, 0).Status);
        Assert.Equal([0u, 0, 0, 0], _ctrl.Settings.Mapping);
    }

    [Theory]
    [InlineData(1u, 0xFFFFFFFFu)]   // offset + length wraps to 0
    [InlineData(2u, 0xFFFFFFFFu)]   // wraps to 1: below the size, yet far outside the table
    [InlineData(0xFFFFFFFFu, 1u)]   // a huge length
    [InlineData(5u, 0u)]            // longer than the table
    [InlineData(3u, 2u)]            // runs past the end
    [InlineData(0u, 5u)]            // empty, but starting past the end
    public void Xsa270_size_and_offset_that_overflow_or_leave_the_table_are_refused_before_any_copy(uint length, uint offset)
    {
        Send(NetifCtrlType.SetHashMappingSize, 4);
        uint status = Send(NetifCtrlType.SetHashMapping, GrantEntries(1, 1, 1, 1, 1), length, offset).Status;
        Assert.True(status is NetifCtrlStatus.InvalidParameter or NetifCtrlStatus.BufferOverflow, $"status {status}");
        Assert.Equal([0u, 0, 0, 0], _ctrl.Settings.Mapping);
    }

    [Fact]
    public void Mapping_longer_than_one_granted_page_is_buffer_overflow()
    {
        Send(NetifCtrlType.SetHashMappingSize, 128);
        Assert.Equal(NetifCtrlStatus.BufferOverflow, Send(NetifCtrlType.SetHashMapping, GrantEntries(0), 1025, 0).Status);
    }

    [Fact]
    public void Mapping_from_a_grant_we_cannot_copy_is_invalid_and_changes_nothing()
    {
        Send(NetifCtrlType.SetHashMappingSize, 4);
        Assert.Equal(NetifCtrlStatus.InvalidParameter, Send(NetifCtrlType.SetHashMapping, UngrantedRef, 4, 0).Status);
        Assert.Equal([0u, 0, 0, 0], _ctrl.Settings.Mapping);
    }

    [Theory]
    [InlineData(NetifCtrlType.Invalid)]
    [InlineData(NetifCtrlType.GetGrefMappingSize)]
    [InlineData(NetifCtrlType.AddGrefMapping)]
    [InlineData(NetifCtrlType.DelGrefMapping)]
    [InlineData((ushort)11)]
    [InlineData((ushort)0xFFFF)]
    public void Other_types_are_not_supported_and_echo_id_and_type(ushort type)
    {
        var response = Send(type, 1, 2, 3);
        Assert.Equal(NetifCtrlStatus.NotSupported, response.Status);
        Assert.Equal(0u, response.Data);
    }
}
