using System.Text;
using XenBackends.Native;

namespace XenBackends.SimulatedHost.Tests;

/// <summary>
/// Entry point of this assembly when run as <c>dotnet SimulatedHost.Tests.dll worker ...</c>: a backend
/// worker in its own process that only has the host socket path, so everything it maps or signals
/// arrived as fds over SCM_RIGHTS. Exit code 0 means every step behaved as in-process.
/// </summary>
public static class WorkerProgram
{
    public const string Verb = "worker";
    public static readonly byte[] Reply = Encoding.ASCII.GetBytes("written by child");

    public static int Main(string[] args)
    {
        if (args.Length != 6 || args[0] != Verb)
        {
            Console.Error.WriteLine("usage: worker <socket> <guest domid> <read-only ref> <writable ref> <guest port>");
            return 2;
        }
        try
        {
            string socket = args[1];
            ushort guest = ushort.Parse(args[2]);
            uint readRef = uint.Parse(args[3]), writeRef = uint.Parse(args[4]), guestPort = uint.Parse(args[5]);
            using var client = HostClient.Connect(socket);
            using var mapper = client.CreateGrantMapper();
            using var events = client.OpenEventChannels();

            using (var ro = mapper.Map(guest, [readRef], writable: false))
                if (ro.Span.IndexOfAnyExcept((byte)0x5A) >= 0)
                    return Fail("the read-only grant does not show the guest's bytes");
            try
            {
                mapper.Map(guest, [readRef], writable: true).Dispose();
                return Fail("a read-only grant was mapped writable");
            }
            catch (GrantException e) when (e.Status == GrantStatus.GeneralError)
            {
            }
            using (var rw = mapper.Map(guest, [writeRef], writable: true))
                Reply.CopyTo(rw.Span);

            uint port = events.BindInterdomain(guest, guestPort);
            events.Notify(port);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            uint pending = events.WaitPendingAsync(timeout.Token).AsTask().GetAwaiter().GetResult();
            if (pending != port)
                return Fail($"pending port {pending}, expected {port}");
            events.Unmask(port);
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e.ToString());
        }
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine(message);
        return 1;
    }
}
