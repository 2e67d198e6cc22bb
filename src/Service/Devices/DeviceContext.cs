using XenBackends.Native;
using XenBackends.Service.Config;
using XenBackends.Service.Hosting;

namespace XenBackends.Service.Devices;

/// <summary>
/// Everything a device factory may use: the worker's host, its one grant mapper (gntdev handles are
/// shared by every device of the guest; the worker owns and closes it), the configuration, the guest's QoS.
/// </summary>
public sealed record DeviceContext(IXenHost Host, IGrantMapper Grants, ServiceConfig Config, GuestQos Qos, Action<string> Log);
