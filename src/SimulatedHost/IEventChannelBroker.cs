using XenBackends.Native.Linux;

namespace XenBackends.SimulatedHost;

/// <summary>
/// One end of an event channel as a handle holds it: the port number, the eventfd the peer signals to
/// make this port pending (<see cref="Inbox"/>) and the one this end signals to kick the peer
/// (<see cref="Outbox"/>). The handle owns both (they are duplicates of the switch's fds).
/// </summary>
internal sealed record PortBinding(uint Port, EventFd Inbox, EventFd Outbox);

/// <summary>
/// The port-allocation side of the simulated hypervisor's event channels: the in-process
/// <see cref="EventChannelSwitch"/>, or the host socket when the handle lives in a worker process.
/// Errors are <see cref="Native.XenNativeException"/> with the errno Xen would return.
/// </summary>
internal interface IEventChannelBroker
{
    PortBinding AllocUnbound(ushort domid, ushort remoteDomid);

    PortBinding BindInterdomain(ushort domid, ushort remoteDomid, uint remotePort);

    void Close(ushort domid, uint port);
}
