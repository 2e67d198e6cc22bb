using XenBackends.Fuzz;

namespace XenBackends.Fuzz.Tests;

/// <summary>
/// Every corpus file through its target: a file that now breaks an invariant fails here with the
/// target's message, and so does a target whose corpus folder is missing, empty or out of step
/// with the seeds the target defines.
/// </summary>
public class CorpusReplayTests
{
    public static string CorpusRoot { get; } = FindCorpus();

    private static string FindCorpus()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "fuzz", "corpus");
            if (Directory.Exists(candidate))
                return candidate;
        }
        throw new DirectoryNotFoundException("fuzz/corpus not found above " + AppContext.BaseDirectory);
    }

    public static TheoryData<string, string> CorpusFiles()
    {
        var data = new TheoryData<string, string>();
        foreach (string target in FuzzTarget.Names)
        {
            string dir = Path.Combine(CorpusRoot, target);
            if (!Directory.Exists(dir))
                continue;
            foreach (string file in Directory.GetFiles(dir).Order(StringComparer.Ordinal))
                data.Add(target, Path.GetFileName(file));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(CorpusFiles))]
    public void Corpus_input_keeps_every_invariant(string target, string file) =>
        FuzzTarget.Get(target).Run(File.ReadAllBytes(Path.Combine(CorpusRoot, target, file)));

    public static TheoryData<string> Targets() => [.. FuzzTarget.Names];

    [Theory]
    [MemberData(nameof(Targets))]
    public void Committed_seeds_are_the_ones_the_target_defines(string name)
    {
        FuzzTarget target = FuzzTarget.Get(name);
        string dir = Path.Combine(CorpusRoot, name);
        Assert.True(Directory.Exists(dir), $"no corpus folder {dir}");
        foreach (var (seed, data) in target.Seeds())
        {
            string file = Path.Combine(dir, "seed-" + seed);
            Assert.True(File.Exists(file), $"seed {seed} is not committed; run fuzz/run seeds");
            Assert.Equal(data, File.ReadAllBytes(file));
        }
    }
}
