using Tmds.Linux;

namespace XenBackends.Backend.Net.Tests.Infra;

/// <summary>A network namespace made for one test and deleted afterwards (its interfaces go with it).</summary>
internal sealed class NetNamespace : IDisposable
{
    public NetNamespace()
    {
        Name = "xbn" + Guid.NewGuid().ToString("N")[..8];
        Shell.Run("ip", "netns", "add", Name);
        Ip("link", "set", "lo", "up");
    }

    public string Name { get; }

    public string Ip(params string[] args) => Shell.Run("ip", ["-n", Name, .. args]);

    public void Exec(params string[] args) => Shell.Run("ip", ["netns", "exec", Name, .. args]);

    /// <summary>Moves an interface of our namespace into this one.</summary>
    public void Adopt(string ifname) => Shell.Run("ip", "link", "set", ifname, "netns", Name);

    /// <summary>
    /// Runs <paramref name="body"/> on a fresh thread that joined this namespace, so sockets it creates
    /// live here; the thread ends afterwards, so no pooled thread is left in the wrong namespace.
    /// </summary>
    public unsafe T Inside<T>(Func<T> body)
    {
        T result = default!;
        Exception? error = null;
        var t = new Thread(() =>
        {
            try
            {
                using var ns = File.OpenHandle($"/run/netns/{Name}");
                if (LibC.unshare(LibC.CLONE_FS) != 0 || LibC.setns((int)ns.DangerousGetHandle(), LibC.CLONE_NEWNET) != 0)
                    throw new InvalidOperationException($"setns({Name}) failed: errno {LibC.errno}");
                result = body();
            }
            catch (Exception e)
            {
                error = e;
            }
        });
        t.Start();
        t.Join();
        if (error is not null)
            throw new InvalidOperationException("inside namespace: " + error.Message, error);
        return result;
    }

    public void Dispose()
    {
        try
        {
            Shell.Run("ip", "netns", "delete", Name);
        }
        catch (InvalidOperationException)
        {
        }
    }
}
