using System.Runtime.CompilerServices;
using XenBackends.Native;

namespace XenBackends.Rings.Blkif;

/// <summary>Where a journaled request stands.</summary>
public enum BlkifJournalState : uint
{
    Free = 0,
    /// <summary>Consumed from the ring, not answered.</summary>
    InFlight = 1,
    /// <summary>Its response is being written at <see cref="BlkifJournalEntry.Response"/>; published once rsp_prod passes that index.</summary>
    Answering = 2,
}

/// <summary>One backend slot of the journal, as read back.</summary>
public readonly record struct BlkifJournalEntry(BlkifJournalState State, uint Consumed, uint Response, BlkifRequest Request);

/// <summary>
/// The private copy of every request a blkif queue has consumed and not yet published an answer
/// for, kept in memory that outlives the worker (a file on tmpfs, mapped shared), so a worker
/// killed at any instruction leaves its successor everything it needs to serve the ring on.
/// <para>
/// Why it is needed: a blkif request and its response share a ring slot (a union in blkif.h), and
/// responses go out in completion order, so the response for a fast request overwrites the slot of
/// an earlier, slower one. Once that happens the ring no longer holds the slow request; only this
/// copy does. And which consumed requests have been answered cannot be read off the ring's indexes
/// either: rsp_prod counts responses, not which requests they were for.
/// </para>
/// <para>
/// Protocol (one writer, the queue's thread): <see cref="Admit"/> stores the request with its ring
/// index, then advances the journal's req_cons; <see cref="Answering"/> stores the response index
/// before the response is written into the ring; <see cref="Release"/> frees the entry after the
/// push that published it. The state word is written last (release), so any entry a successor sees
/// as in flight is complete. <see cref="Recover"/> is the successor's half.
/// </para>
/// <para>
/// Layout: a 4 KiB header (magic @0, layout version @4, slots @8, identity length @12, req_cons @16,
/// identity @64) and one entry per backend slot from 4 KiB on (state @0, consumed index @4,
/// response index @8, the decoded <see cref="BlkifRequest"/> @16). The file is this process's own
/// struct layout: the version word, which includes the struct's size, keeps another build's file
/// from being trusted.
/// </para>
/// </summary>
public sealed unsafe class BlkifJournal : IDisposable
{
    private const uint Magic = 0x4A4B4C42; // "BLKJ"
    private const int HeaderBytes = 4096;
    private const int IdentityOffset = 64;
    /// <summary>domid, ABI, event channel and up to 16 ring grant references, with room to spare.</summary>
    public const int MaxIdentityBytes = 256;
    private const int RequestOffset = 16;
    private static readonly int EntryBytes = (RequestOffset + Unsafe.SizeOf<BlkifRequest>() + 63) & ~63;
    private static readonly uint Version = 0x10000u | (uint)Unsafe.SizeOf<BlkifRequest>();

    private readonly SharedMemory _memory;
    private readonly byte* _base;

    /// <summary>Takes ownership of <paramref name="memory"/>, at least <see cref="LengthFor"/>(<paramref name="slots"/>) bytes.</summary>
    public BlkifJournal(SharedMemory memory, uint slots)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (slots == 0 || slots > 1u << 16)
            throw new ArgumentOutOfRangeException(nameof(slots), slots, "not a ring's slot count");
        if (memory.Length < LengthFor(slots))
            throw new ArgumentException($"{memory.Length} bytes cannot hold a journal of {slots} slots", nameof(memory));
        _memory = memory;
        _base = (byte*)memory.Address;
        Slots = slots;
    }

    /// <summary>Bytes a journal of <paramref name="slots"/> entries needs, in whole pages.</summary>
    public static int LengthFor(uint slots) => checked((HeaderBytes + (int)slots * EntryBytes + 4095) & ~4095);

    public uint Slots { get; }

    /// <summary>The index after the last request admitted (the ring's req_cons when the journal was last written).</summary>
    public uint ReqCons => Volatile.Read(ref *(uint*)Header(16));

    /// <summary>True if the journal was last reset for this ring and this build's layout.</summary>
    public bool Matches(ReadOnlySpan<byte> identity)
    {
        CheckIdentity(identity);
        return Volatile.Read(ref *(uint*)Header(0)) == Magic
            && *(uint*)Header(4) == Version
            && *(uint*)Header(8) == Slots
            && *(uint*)Header(12) == (uint)identity.Length
            && new ReadOnlySpan<byte>(Header(IdentityOffset), identity.Length).SequenceEqual(identity);
    }

    /// <summary>Forgets every entry and stamps the journal for <paramref name="identity"/>, consumption at <paramref name="reqCons"/>.</summary>
    public void Reset(ReadOnlySpan<byte> identity, uint reqCons)
    {
        CheckIdentity(identity);
        // The magic goes first and last: a worker killed mid-reset leaves a journal that matches nothing.
        Volatile.Write(ref *(uint*)Header(0), 0u);
        new Span<byte>(_base + HeaderBytes, LengthFor(Slots) - HeaderBytes).Clear();
        new Span<byte>(Header(4), HeaderBytes - 4).Clear();
        *(uint*)Header(4) = Version;
        *(uint*)Header(8) = Slots;
        *(uint*)Header(12) = (uint)identity.Length;
        *(uint*)Header(16) = reqCons;
        identity.CopyTo(new Span<byte>(Header(IdentityOffset), MaxIdentityBytes));
        Volatile.Write(ref *(uint*)Header(0), Magic);
    }

    /// <summary>Records the request consumed at ring index <paramref name="consumed"/> in backend slot <paramref name="slot"/>; the ring's req_cons is now <paramref name="reqCons"/>.</summary>
    public void Admit(int slot, uint consumed, in BlkifRequest request, uint reqCons)
    {
        byte* e = Entry(slot);
        *(uint*)(e + 4) = consumed;
        *(uint*)(e + 8) = 0;
        Unsafe.WriteUnaligned(e + RequestOffset, request);
        Volatile.Write(ref *(uint*)e, (uint)BlkifJournalState.InFlight);
        // After the entry: a journal whose req_cons counts a request always holds that request.
        Volatile.Write(ref *(uint*)Header(16), reqCons);
    }

    /// <summary>The response for slot <paramref name="slot"/>'s request is about to be written at ring index <paramref name="responseIndex"/>.</summary>
    public void Answering(int slot, uint responseIndex)
    {
        byte* e = Entry(slot);
        *(uint*)(e + 8) = responseIndex;
        Volatile.Write(ref *(uint*)e, (uint)BlkifJournalState.Answering);
    }

    /// <summary>The response is published (rsp_prod is past it) or the request belongs to nobody any more.</summary>
    public void Release(int slot) => Volatile.Write(ref *(uint*)Entry(slot), (uint)BlkifJournalState.Free);

    public BlkifJournalEntry Read(int slot)
    {
        byte* e = Entry(slot);
        var state = (BlkifJournalState)Volatile.Read(ref *(uint*)e);
        return new BlkifJournalEntry(state, *(uint*)(e + 4), *(uint*)(e + 8), Unsafe.ReadUnaligned<BlkifRequest>(e + RequestOffset));
    }

    /// <summary>
    /// A successor's recovery, against the guest's <paramref name="rspProd"/>: every consumed request
    /// whose response was not published is put back in flight and its slot listed in
    /// <paramref name="replay"/>, oldest first (the order the ring gave them, which barriers need);
    /// everything else is released. Returns how many, or -1 if the journal cannot describe this ring:
    /// every published response answers one consumed request, so exactly req_cons - rsp_prod must be
    /// left unanswered, and a journal that disagrees belongs to some other history. Nothing is
    /// changed then.
    /// </summary>
    public int Recover(uint rspProd, Span<int> replay)
    {
        if (replay.Length < Slots)
            throw new ArgumentException("room for every slot is needed", nameof(replay));
        uint reqCons = ReqCons;
        uint unanswered = reqCons - rspProd;
        if (unanswered > Slots)
            return -1;
        int count = 0;
        for (int slot = 0; slot < Slots; slot++)
        {
            BlkifJournalEntry e = Read(slot);
            if (e.State == BlkifJournalState.Free || (int)(reqCons - e.Consumed) <= 0)
                continue; // free, or admitted by a worker killed before it counted it (the ring still holds it)
            if (e.State == BlkifJournalState.Answering && (int)(rspProd - e.Response) > 0)
                continue; // published
            if (e.State is not (BlkifJournalState.InFlight or BlkifJournalState.Answering))
                return -1;
            replay[count++] = slot;
        }
        if (count != unanswered)
            return -1;
        // Oldest first: by distance behind req_cons, largest first (insertion sort, at most a ring's worth).
        for (int i = 1; i < count; i++)
        {
            int slot = replay[i];
            uint age = reqCons - Read(slot).Consumed;
            int j = i - 1;
            while (j >= 0 && reqCons - Read(replay[j]).Consumed < age)
            {
                replay[j + 1] = replay[j];
                j--;
            }
            replay[j + 1] = slot;
        }
        // Decided; now make it so. An answer that was written but never published will be written
        // again at another index, so the stale index must not survive into the next crash.
        for (int slot = 0; slot < Slots; slot++)
        {
            if (replay[..count].Contains(slot))
                *(uint*)Entry(slot) = (uint)BlkifJournalState.InFlight;
            else
                Release(slot);
        }
        return count;
    }

    public void Dispose() => _memory.Dispose();

    private byte* Header(int offset)
    {
        ObjectDisposedException.ThrowIf(_memory.IsDisposed, this);
        return _base + offset;
    }

    private byte* Entry(int slot)
    {
        ObjectDisposedException.ThrowIf(_memory.IsDisposed, this);
        if ((uint)slot >= Slots)
            throw new ArgumentOutOfRangeException(nameof(slot));
        return _base + HeaderBytes + (nint)slot * EntryBytes;
    }

    private static void CheckIdentity(ReadOnlySpan<byte> identity)
    {
        if (identity.Length > MaxIdentityBytes)
            throw new ArgumentOutOfRangeException(nameof(identity), identity.Length, "identity too long");
    }
}
