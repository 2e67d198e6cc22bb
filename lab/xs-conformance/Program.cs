// xs-conformance: runs the XenStore client's conformance suite (ConformanceTests) in this process
// and prints one LAB-RESULT line per test plus the totals. It does what xunit does for this class
// (one fixture for the class, a fresh instance per [Fact] with IAsyncLifetime around it, Skip
// honoured) and nothing more: the class uses no other xunit feature. The suite picks its daemon
// from XENSTORE_CONFORMANCE_SOCKET; without it this runner refuses to run, so a lab run can never
// silently test the in-process simulator instead of the real xenstored.
using System.Reflection;
using XenBackends.XenStore.Tests;
using Xunit;

if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(XenStoreTarget.SocketVariable)))
{
    Console.Error.WriteLine($"xs-conformance: set {XenStoreTarget.SocketVariable} to the real daemon's socket");
    return 2;
}

int passed = 0, failed = 0, skipped = 0;
var target = new XenStoreTarget();
await target.InitializeAsync();
var facts = typeof(ConformanceTests).GetMethods()
    .Select(m => (Method: m, Fact: m.GetCustomAttribute<FactAttribute>()))
    .Where(f => f.Fact is not null)
    .OrderBy(f => f.Method.Name, StringComparer.Ordinal);
foreach (var (method, fact) in facts)
{
    if (fact!.Skip is { } reason) { skipped++; Console.WriteLine($"LAB-RESULT: xs.test.skip {method.Name} {reason}"); continue; }
    var started = DateTime.UtcNow;
    try
    {
        var suite = new ConformanceTests(target);
        await suite.InitializeAsync();
        try
        {
            var result = method.Invoke(suite, null);
            // Bounded: a daemon that never answers must end in a failed test, not a hung lab.
            if (result is Task task) await task.WaitAsync(TimeSpan.FromSeconds(120));
        }
        finally { await suite.DisposeAsync(); }
        passed++;
        Console.WriteLine($"LAB-RESULT: xs.test.pass {method.Name} {(DateTime.UtcNow - started).TotalSeconds:0.00}s");
    }
    catch (Exception e)
    {
        var inner = e is TargetInvocationException { InnerException: { } ie } ? ie : e;
        failed++;
        Console.WriteLine($"LAB-RESULT: xs.test.fail {method.Name} {inner.GetType().Name}: {inner.Message.ReplaceLineEndings(" ")}");
        Console.Error.WriteLine(inner);
    }
}
await target.DisposeAsync();
Console.WriteLine($"LAB-RESULT: xs.conformance passed={passed} failed={failed} skipped={skipped}");
// No tests at all would mean the wrong class or assembly: that is a failure, not a pass.
return failed == 0 && passed > 0 ? 0 : 1;
