using XenBackends.Fuzz;

namespace XenBackends.Fuzz.Tests;

/// <summary>
/// The inputs behind each product bug fuzzing found, by name (they are in the corpus as well, so
/// CorpusReplayTests replays them too). Each failed before its fix.
/// </summary>
public class RegressionTests
{
    private static void Replay(string target, string file) =>
        FuzzTarget.Get(target).Run(File.ReadAllBytes(Path.Combine(CorpusReplayTests.CorpusRoot, target, file)));

    /// <summary>BlockQueue skipped the push when its first responses wrapped rsp_prod to exactly 0.</summary>
    [Fact]
    public void Block_first_push_at_the_index_wrap_is_published() => Replay("block-ring", "regress-first-push-at-index-wrap");

    /// <summary>An empty flush was followed by a zero-iovec write (the in-memory engine refuses one).</summary>
    [Theory]
    [InlineData("seed-flush-barrier-64")]
    [InlineData("seed-flush-barrier-32")]
    public void Block_empty_flush_is_only_a_flush(string file) => Replay("block-ring", file);

    /// <summary>A tx ring refused at attach left the queue's two eventfds and its epoll open.</summary>
    [Fact]
    public void Net_tx_ring_refused_at_attach_leaves_no_descriptors() => Replay("net-tx", "seed-bogus-req-prod");

    /// <summary>A control ring refused at attach left its eventfd and epoll open.</summary>
    [Fact]
    public void Net_ctrl_ring_refused_at_attach_leaves_no_descriptors() => Replay("net-ctrl", "seed-bogus-req-prod");
}
