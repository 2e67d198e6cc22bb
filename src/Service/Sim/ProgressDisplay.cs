namespace XenBackends.Service.Sim;

/// <summary>
/// Live figures: redrawn in place on a terminal (cursor up, clear line), appended as plain lines when
/// stdout is a file or pipe so logs and CI output stay readable.
/// </summary>
internal sealed class ProgressDisplay(TextWriter output, bool inPlace)
{
    private int _drawn;

    public static bool TerminalAttached =>
        !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("TERM") is not (null or "" or "dumb");

    private static int Width()
    {
        try
        {
            return Console.WindowWidth > 10 ? Console.WindowWidth : int.MaxValue;
        }
        catch (IOException)
        {
            return int.MaxValue;
        }
    }

    public void Show(IReadOnlyList<string> lines)
    {
        if (!inPlace)
        {
            foreach (string line in lines) output.WriteLine(line);
            output.Flush();
            return;
        }
        var text = new System.Text.StringBuilder();
        if (_drawn > 0) text.Append("\x1b[").Append(_drawn).Append('A');
        // A wrapped line would break the cursor-up arithmetic: cut to the terminal's width.
        int width = Width();
        foreach (string line in lines) text.Append('\r').Append(line.Length < width ? line : line[..(width - 1)]).Append("\x1b[K\n");
        output.Write(text.ToString());
        output.Flush();
        _drawn = lines.Count;
    }
}
