using System.Runtime.CompilerServices;

namespace XenBackends.Service.Tests;

internal static class TestKinds
{
    /// <summary>The echo kind is offered only with this variable; workers inherit it from the test process.</summary>
    [ModuleInitializer]
    internal static void Enable() => Environment.SetEnvironmentVariable(Devices.DeviceKinds.TestKindsVariable, "1");
}
