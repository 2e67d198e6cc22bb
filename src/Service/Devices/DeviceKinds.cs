namespace XenBackends.Service.Devices;

/// <summary>
/// The kinds this build serves, by xenstore name. vbd and vif are registered here as the block and
/// network backends land; the echo kind exists so the supervisor/worker machinery can be proven on its
/// own and is only offered when XEN_BACKENDS_TEST_KINDS=1, never to a production configuration.
/// </summary>
public static class DeviceKinds
{
    public const string TestKindsVariable = "XEN_BACKENDS_TEST_KINDS";

    private static readonly Dictionary<string, DeviceKind> Production = new(StringComparer.Ordinal)
    {
        [BlockKind.Kind.Name] = BlockKind.Kind,
        [NetKind.Kind.Name] = NetKind.Kind,
    };

    private static bool TestKindsEnabled => Environment.GetEnvironmentVariable(TestKindsVariable) == "1";

    public static IEnumerable<string> KnownNames =>
        Production.Keys.Concat(TestKindsEnabled ? [EchoDevice.KindName] : []).Order(StringComparer.Ordinal);

    public static bool IsKnown(string name) => TryGet(name, out _);

    public static bool TryGet(string name, out DeviceKind kind)
    {
        if (Production.TryGetValue(name, out kind!)) return true;
        if (TestKindsEnabled && name == EchoDevice.KindName)
        {
            kind = EchoDevice.Kind;
            return true;
        }
        return false;
    }
}
