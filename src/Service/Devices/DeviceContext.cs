using XenBackends.Service.Config;
using XenBackends.Service.Hosting;

namespace XenBackends.Service.Devices;

/// <summary>Everything a device factory may use: the worker's host, the service configuration, the guest's QoS.</summary>
public sealed record DeviceContext(IXenHost Host, ServiceConfig Config, GuestQos Qos, Action<string> Log);
