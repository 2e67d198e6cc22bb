namespace XenBackends.Fuzz;

/// <summary>
/// A fuzz target found the code under test breaking one of its promises. Unhandled, it is what
/// afl-fuzz records as a crash; the corpus replay tests fail with its message.
/// </summary>
public sealed class InvariantViolation(string message) : Exception(message)
{
    public static void Check(bool condition, string message)
    {
        if (!condition)
            throw new InvariantViolation(message);
    }

    public static void Check(bool condition, Func<string> message)
    {
        if (!condition)
            throw new InvariantViolation(message());
    }
}
