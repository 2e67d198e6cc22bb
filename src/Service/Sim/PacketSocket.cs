using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace XenBackends.Service.Sim;

/// <summary>
/// The host's side of the guest's tap: an AF_PACKET socket bound to it sees every frame the backend
/// writes into the tap (guest TX) and sends frames out of it into the backend (guest RX). Managed
/// sockets only; the interface index comes from sysfs.
/// </summary>
internal sealed class PacketSocket : IDisposable
{
    private const ushort EthPAll = 0x0003;
    private readonly Socket _socket;

    private PacketSocket(Socket socket) => _socket = socket;

    public static PacketSocket Open(string ifname)
    {
        int ifindex = int.Parse(File.ReadAllText($"/sys/class/net/{ifname}/ifindex").Trim(), CultureInfo.InvariantCulture);
        // The protocol of a packet socket is in network byte order (htons(ETH_P_ALL)).
        var socket = new Socket(AddressFamily.Packet, SocketType.Raw, (ProtocolType)BinaryPrimitives.ReverseEndianness(EthPAll));
        try
        {
            // Guest TX outruns one reader thread in bursts; a larger buffer keeps those frames from being dropped here.
            socket.ReceiveBufferSize = 8 << 20;
            socket.Bind(new LinkLayerEndPoint(ifindex, EthPAll));
            return new PacketSocket(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public void Send(ReadOnlySpan<byte> frame) => _socket.Send(frame);

    public ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken) =>
        _socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);

    public void Dispose() => _socket.Dispose();

    /// <summary>struct sockaddr_ll with family, protocol and interface index; the rest zero.</summary>
    private sealed class LinkLayerEndPoint(int ifindex, ushort protocol) : EndPoint
    {
        public override AddressFamily AddressFamily => AddressFamily.Packet;

        public override SocketAddress Serialize()
        {
            var address = new SocketAddress(AddressFamily.Packet, 20);
            address[2] = (byte)(protocol >> 8);
            address[3] = (byte)protocol;
            address[4] = (byte)ifindex;
            address[5] = (byte)(ifindex >> 8);
            address[6] = (byte)(ifindex >> 16);
            address[7] = (byte)(ifindex >> 24);
            return address;
        }

        public override EndPoint Create(SocketAddress socketAddress) => this;
    }
}
