using System.Buffers.Binary;
using System.Text;
using XenBackends.Native.Tap;

namespace XenBackends.Native.Tests;

/// <summary>rtnetlink link messages as the tap's bridge watch reads them.</summary>
public class LinkMessageTests
{
    // nlmsghdr + ifinfomsg + IFLA_IFNAME (+ IFLA_MASTER when master != 0), as the kernel lays them out.
    private static byte[] Message(ushort type, byte family, int index, string name, int master)
    {
        var attrs = new List<byte>();
        void Attr(ushort t, byte[] value)
        {
            var a = new byte[(4 + value.Length + 3) & ~3];
            BinaryPrimitives.WriteUInt16LittleEndian(a, (ushort)(4 + value.Length));
            BinaryPrimitives.WriteUInt16LittleEndian(a.AsSpan(2), t);
            value.CopyTo(a, 4);
            attrs.AddRange(a);
        }
        Attr(3, [.. Encoding.ASCII.GetBytes(name), 0]);
        if (master != 0)
            Attr(10, BitConverter.GetBytes(master));
        var m = new byte[32 + attrs.Count];
        BinaryPrimitives.WriteUInt32LittleEndian(m, (uint)m.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(4), type);
        m[16] = family;
        BinaryPrimitives.WriteInt32LittleEndian(m.AsSpan(20), index);
        attrs.CopyTo(m, 32);
        return m;
    }

    [Fact]
    public void Link_level_messages_give_index_name_and_master_and_bridge_port_deletions_are_not_link_deletions()
    {
        // What deleting a port's bridge produces for the port (seen with `ip monitor link`): an AF_BRIDGE
        // RTM_DELLINK ("no longer a port"), then a link-level RTM_NEWLINK without a master.
        byte[] datagram = [.. Message(17, 7, 3, "vif7.0", 2), .. Message(16, 0, 3, "vif7.0", 0), .. Message(16, 0, 5, "other", 9)];
        var parsed = LinkMessage.Parse(datagram);
        Assert.Equal([new LinkMessage(false, 3, "vif7.0", 0), new LinkMessage(false, 5, "other", 9)], parsed);
        Assert.Equal([new LinkMessage(true, 3, "vif7.0", 0)], LinkMessage.Parse(Message(17, 0, 3, "vif7.0", 0)));
        Assert.Equal([new LinkMessage(false, 4, "vif7.0", 12)], LinkMessage.Parse(Message(16, 0, 4, "vif7.0", 12)));
    }

    [Fact]
    public void Truncated_or_garbage_datagrams_parse_to_what_is_whole()
    {
        byte[] whole = Message(16, 0, 3, "vif7.0", 2);
        Assert.Empty(LinkMessage.Parse(whole.AsSpan(0, whole.Length - 1)));
        Assert.Empty(LinkMessage.Parse(new byte[7]));
        var junk = new byte[64];
        new Random(1).NextBytes(junk);
        _ = LinkMessage.Parse(junk); // must not throw
        Assert.Single(LinkMessage.Parse([.. whole, .. junk.AsSpan(0, 10)]));
    }
}
