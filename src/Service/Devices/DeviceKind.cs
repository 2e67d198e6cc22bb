using XenBackends.Service.Control;
using XenBackends.Xenbus;

namespace XenBackends.Service.Devices;

/// <summary>
/// One backend kind the worker can serve. <see cref="Counters"/> reads a device's figures for status and
/// metrics, <see cref="Histograms"/> its distributions (null: the kind has none); each backend exposes
/// its own statistics type, so the adapter lives with the registration.
/// </summary>
public sealed record DeviceKind(
    string Name,
    Func<DeviceContext, IBackendDevice> Create,
    Func<IBackendDevice, IReadOnlyDictionary<string, long>> Counters,
    Func<IBackendDevice, Dictionary<string, HistogramStatus>>? Histograms = null);
