using XenBackends.Xenbus;

namespace XenBackends.SimulatedHost.Toolstack;

/// <summary>A device the toolstack added: where its three xenstore directories are.</summary>
public sealed record AttachedDevice(DevicePath Path, string Script)
{
    public ushort Domid => (ushort)Path.FrontendDomId;

    public int DevId => (int)Path.DevId;

    /// <summary>"vbd" or "vif".</summary>
    public string Kind => Path.Kind;

    public string BackendPath => Path.Backend;

    public string FrontendPath => Path.ExpectedFrontend;

    public string LibxlPath => $"/libxl/{Path.FrontendDomId}/device/{Path.FrontendKind}/{Path.DevId}";
}
