using System.Diagnostics;
using System.Text;

namespace XenBackends.Rings.Tests;

/// <summary>
/// A C ring peer in a child process, with event-channel-like kicks: one byte on its stdout kicks
/// us, one byte on its stdin kicks it. Kicks coalesce into one pending flag, like a masked port.
/// Every wait is bounded, so a lost notification fails the test instead of hanging it.
/// </summary>
internal sealed class CPeer : IDisposable
{
    public static readonly TimeSpan KickTimeout = TimeSpan.FromSeconds(20);

    private readonly Process _process;
    private readonly AutoResetEvent _kicked = new(false);
    private readonly StringBuilder _stderr = new();
    private readonly Thread _reader;
    private volatile bool _closed;

    public CPeer(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
                lock (_stderr)
                    _stderr.AppendLine(e.Data);
        };
        _process.BeginErrorReadLine();
        _reader = new Thread(ReadKicks) { IsBackground = true, Name = "kick reader" };
        _reader.Start();
    }

    public string StandardError
    {
        get
        {
            lock (_stderr)
                return _stderr.ToString();
        }
    }

    private void ReadKicks()
    {
        Stream stdout = _process.StandardOutput.BaseStream;
        var buffer = new byte[256];
        while (stdout.Read(buffer) > 0)
            _kicked.Set();
        _closed = true;
        _kicked.Set();
    }

    /// <summary>Sends one event-channel notification to the peer.</summary>
    public void Kick()
    {
        try
        {
            _process.StandardInput.BaseStream.WriteByte(1);
            _process.StandardInput.BaseStream.Flush();
        }
        catch (IOException)
        {
            Assert.Fail($"the C peer is gone: {Describe()}");
        }
    }

    /// <summary>Sleeps until the peer kicks us; fails on timeout (a lost wakeup) or on the peer's death.</summary>
    public void WaitKick()
    {
        if (!_kicked.WaitOne(KickTimeout))
            Assert.Fail($"no kick within {KickTimeout.TotalSeconds}s: a notification was lost. {Describe()}");
        if (_closed && _process.WaitForExit(5000) && _process.ExitCode != 0)
            Assert.Fail($"the C peer failed: {Describe()}");
    }

    public void WaitForSuccess()
    {
        if (!_process.WaitForExit((int)KickTimeout.TotalMilliseconds))
            Assert.Fail($"the C peer did not finish: {Describe()}");
        _process.WaitForExit();
        Assert.True(_process.ExitCode == 0, $"the C peer failed: {Describe()}");
    }

    private string Describe() =>
        _process.HasExited ? $"exit {_process.ExitCode}; stderr: {StandardError}" : $"running; stderr: {StandardError}";

    public void Dispose()
    {
        if (!_process.HasExited)
            _process.Kill();
        _process.WaitForExit();
        // The reader thread sets _kicked until it sees end-of-file, which the exit has now caused;
        // disposing the event before it is done crashed the test host.
        bool readerDone = _reader.Join(KickTimeout);
        _process.Dispose();
        if (readerDone)
            _kicked.Dispose();
    }
}
