namespace XenBackends.Service.Tests;

internal static class Processes
{
    /// <summary>Alive and not a zombie (a zombie has released everything already).</summary>
    public static bool Alive(int pid)
    {
        try
        {
            return !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
