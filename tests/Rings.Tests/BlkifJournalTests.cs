using XenBackends.Native.Linux;
using XenBackends.Rings.Blkif;

namespace XenBackends.Rings.Tests;

/// <summary>
/// The request journal's recovery rules, one history at a time: what a worker killed at each step
/// of admit / answer / push / release leaves, and what its successor must conclude from it.
/// </summary>
public sealed class BlkifJournalTests : IDisposable
{
    private const uint Slots = 32;
    private static readonly byte[] Identity = [7, 0, 0, 0, 1, 2, 3];
    private readonly BlkifJournal _journal = new(UnmanagedMemory.AllocatePages(BlkifJournal.LengthFor(Slots) / 4096), Slots);
    private readonly int[] _replay = new int[Slots];

    public void Dispose() => _journal.Dispose();

    private static BlkifRequest Write(ulong id) => new() { Operation = BlkifOp.Write, Id = id, SectorNumber = id * 8, NrSegments = 1 };

    [Fact]
    public void Reset_stamps_the_identity_and_req_cons_and_forgets_every_entry()
    {
        _journal.Reset(Identity, 100);
        _journal.Admit(3, 100, Write(1), 101);
        _journal.Reset(Identity, 5000);
        Assert.True(_journal.Matches(Identity));
        Assert.False(_journal.Matches([7, 0, 0, 0, 1, 2, 4]));
        Assert.False(_journal.Matches(Identity.AsSpan(0, 6)));
        Assert.Equal(5000u, _journal.ReqCons);
        Assert.Equal(BlkifJournalState.Free, _journal.Read(3).State);
        Assert.Equal(0, _journal.Recover(5000, _replay));
    }

    [Fact]
    public void A_request_kept_in_flight_while_later_ones_were_answered_is_replayed_with_its_private_copy()
    {
        _journal.Reset(Identity, 10);
        _journal.Admit(0, 10, Write(1), 11);
        _journal.Admit(1, 11, Write(2), 12);
        _journal.Admit(2, 12, Write(3), 13);
        // 2 and 3 answered at rsp indexes 10 and 11 and published (rsp_prod 12); 2 released, 3 not yet.
        _journal.Answering(1, 10);
        _journal.Answering(2, 11);
        _journal.Release(1);

        Assert.Equal(1, _journal.Recover(12, _replay));
        Assert.Equal(0, _replay[0]);
        BlkifJournalEntry e = _journal.Read(0);
        Assert.Equal((BlkifJournalState.InFlight, 10u, 1UL, 8UL), (e.State, e.Consumed, e.Request.Id, e.Request.SectorNumber));
        Assert.Equal(BlkifJournalState.Free, _journal.Read(2).State);
    }

    [Fact]
    public void An_answer_written_but_not_published_is_replayed_and_forgets_its_stale_response_index()
    {
        _journal.Reset(Identity, 10);
        _journal.Admit(4, 10, Write(1), 11);
        _journal.Answering(4, 10); // killed before the push: rsp_prod is still 10
        Assert.Equal(1, _journal.Recover(10, _replay));
        Assert.Equal(4, _replay[0]);
        // Killed again after another answer was published at index 10: request 1 must still count as unanswered.
        Assert.Equal(BlkifJournalState.InFlight, _journal.Read(4).State);
        _journal.Admit(5, 11, Write(2), 12);
        _journal.Answering(5, 10);
        Assert.Equal(1, _journal.Recover(11, _replay));
        Assert.Equal(4, _replay[0]);
    }

    [Fact]
    public void A_request_admitted_but_not_yet_counted_in_req_cons_is_left_to_the_ring()
    {
        _journal.Reset(Identity, 10);
        _journal.Admit(0, 10, Write(1), 11);
        // Killed between the entry and req_cons: simulate by an entry past req_cons.
        _journal.Admit(1, 11, Write(2), 11);
        Assert.Equal(11u, _journal.ReqCons);
        Assert.Equal(1, _journal.Recover(10, _replay));
        Assert.Equal(0, _replay[0]);
        Assert.Equal(BlkifJournalState.Free, _journal.Read(1).State);
    }

    [Fact]
    public void Replays_come_oldest_first_across_the_index_wrap()
    {
        uint start = uint.MaxValue - 2;
        _journal.Reset(Identity, start);
        int[] slotOf = [9, 2, 17, 5, 30];
        for (uint i = 0; i < slotOf.Length; i++)
            _journal.Admit(slotOf[i], start + i, Write(i), start + i + 1);
        Assert.Equal(5, _journal.Recover(start, _replay));
        Assert.Equal(slotOf, _replay[..5]);
    }

    [Fact]
    public void A_journal_that_disagrees_with_the_ring_is_refused_and_left_as_it_was()
    {
        _journal.Reset(Identity, 10);
        _journal.Admit(0, 10, Write(1), 11);
        _journal.Admit(1, 11, Write(2), 12);
        // The guest's rsp_prod says one answer went out, but the journal has no published answer.
        Assert.Equal(-1, _journal.Recover(11, _replay));
        // A fresh ring (indexes back at 0) under an old journal.
        Assert.Equal(-1, _journal.Recover(0, _replay));
        Assert.Equal(BlkifJournalState.InFlight, _journal.Read(0).State);
        Assert.Equal(BlkifJournalState.InFlight, _journal.Read(1).State);
    }

    [Fact]
    public void A_journal_file_survives_its_mapping_and_matches_only_the_same_ring_size()
    {
        string path = Path.Combine(Path.GetTempPath(), "blkif-journal-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var first = new BlkifJournal(MappedFile.Open(path, BlkifJournal.LengthFor(Slots)), Slots))
            {
                first.Reset(Identity, 42);
                first.Admit(6, 42, Write(9), 43);
            }
            // What the next process sees: the same file, mapped again.
            using (var again = new BlkifJournal(MappedFile.Open(path, BlkifJournal.LengthFor(Slots)), Slots))
            {
                Assert.True(again.Matches(Identity));
                Assert.Equal(1, again.Recover(42, _replay));
                Assert.Equal(9UL, again.Read(_replay[0]).Request.Id);
            }
            // The same bytes read as a ring of another size describe nothing.
            using var other = new BlkifJournal(MappedFile.Open(path, BlkifJournal.LengthFor(Slots)), Slots / 2);
            Assert.False(other.Matches(Identity));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
