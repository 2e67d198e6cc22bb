using XenBackends.Rings.Blkif;

namespace XenBackends.Backend.Block.Tests;

/// <summary>
/// Regression for a lost response the block-ring fuzz target found
/// (fuzz/corpus/block-ring/regress-first-push-at-index-wrap): a queue attaches at the shared
/// rsp_prod (a restarted worker meets a live guest's ring wherever its indexes are) and its "last
/// pushed" index started at 0. When the worker's very first drain answered requests already on the
/// ring at once (refused requests; a null image) and so brought rsp_prod_pvt exactly to 0 at the
/// 2^32 wrap, the push was skipped: no rsp_prod update, no event, and a guest waiting for those
/// responses hung.
/// </summary>
public sealed class FirstPushAtIndexWrapTests
{
    [Theory]
    [InlineData(0xFFFF_FFFFu, 1)]
    [InlineData(0xFFFF_FFFDu, 3)]
    public async Task RequestsAnsweredInTheFirstDrainThatWrapRspProdToZeroArePublished(uint start, int requests)
    {
        await using var h = await BlockHarness.CreateAsync(1 << 20);
        await h.Block.PrepareAsync(h.Device, CancellationToken.None);
        var front = TestBlkfront.Create(h.Guest, BlkifAbi.X86_64, 0, 1, start);
        // Already on the ring when the queue starts, and each refused at once (a READ without
        // segments is an error), so all are answered inside the first drain.
        for (int i = 0; i < requests; i++)
            front.PutRw(0, BlkifOp.Read, (ulong)i, 0, []);
        front.Queues[0].Ring.PushRequestsAndCheckNotify();
        await front.WriteKeysAsync(h.Store, BlockHarness.Path.ExpectedFrontend);
        await h.Block.ConnectAsync(h.Device, CancellationToken.None);

        var responses = await front.WaitForResponsesAsync(0, requests, TimeSpan.FromSeconds(5));
        Assert.Equal(requests, responses.Count);
        Assert.All(responses, r => Assert.Equal(BlkifRsp.Error, r.Status));
    }
}
