using Microsoft.Extensions.Logging;

namespace XenBackends.Service.Sim;

/// <summary>
/// Keeps the supervisor's and workers' log lines in memory while `sim` draws its progress display;
/// they are printed only when something went wrong (or with --log).
/// </summary>
internal sealed class MemoryLog : ILoggerProvider
{
    private const int Keep = 400;
    private readonly Lock _lock = new();
    private readonly Queue<string> _lines = new();
    private readonly TextWriter? _echo;

    public MemoryLog(TextWriter? echo) => _echo = echo;

    public IReadOnlyList<string> Lines
    {
        get { lock (_lock) return [.. _lines]; }
    }

    public void Add(string line)
    {
        lock (_lock)
        {
            _lines.Enqueue(line);
            if (_lines.Count > Keep) _lines.Dequeue();
            _echo?.WriteLine(line);
        }
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void Dispose()
    {
    }

    private sealed class Logger(MemoryLog log) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
                log.Add($"{DateTime.Now:HH:mm:ss.fff} {logLevel,-11} {formatter(state, exception)}");
        }
    }
}
