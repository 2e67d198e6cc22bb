using System.Runtime.InteropServices;
using XenBackends.Native;
using XenBackends.Native.Linux;

namespace XenBackends.SimulatedHost;

/// <summary>
/// One guest's grant table, v1 layout, in a memfd so a backend process can share it. The first pages
/// hold the guest-visible <c>grant_entry_v1</c> array; after them comes the "hypervisor-private" active
/// table (per ref: a lock word, read/write pin counts, and the domid and frame captured when first
/// pinned), which only the simulated Xen code touches — the equivalent of Xen's <c>active_grant_entry</c>.
/// Guest-side calls (<see cref="GrantAccess"/>, <see cref="EndAccess"/>) follow the guidelines in
/// grant_table.h; the pin/unpin side follows how Xen sets and clears GTF_reading/GTF_writing.
/// </summary>
public sealed class GrantTable : IDisposable
{
    /// <summary>Refs below this are kept for the toolstack (xenstore, console), as Linux guests do.</summary>
    public const uint FirstFreeRef = 8;
    private const int EntrySize = 8;
    private const int ActiveSize = 16;
    private readonly MemFd _memfd;
    private readonly MappedMemory _view;
    private readonly int _activeOffset;
    private readonly Lock _allocatorLock = new();
    private readonly bool[] _allocated;

    private GrantTable(MemFd memfd, int entryCount)
    {
        _memfd = memfd;
        EntryCount = entryCount;
        _activeOffset = PagesFor(entryCount * EntrySize) * MemFd.PageSize;
        _view = memfd.MapAll(writable: true);
        _allocated = new bool[entryCount];
    }

    public int EntryCount { get; }

    /// <summary>The memfd to hand to a backend process.</summary>
    public SafeFd Handle => _memfd.Handle;

    public static GrantTable Create(ushort domid, int entryCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(entryCount, (int)FirstFreeRef + 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(entryCount, 1 << 20);
        var memfd = MemFd.Create($"d{domid}-grant-table", TotalPages(entryCount));
        return new GrantTable(memfd, entryCount);
    }

    /// <summary>Opens a table received from the host (takes ownership of the fd); its size must match.</summary>
    public static GrantTable Adopt(SafeFd handle, int entryCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(entryCount, (int)FirstFreeRef + 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(entryCount, 1 << 20);
        var memfd = MemFd.Adopt(handle);
        if (memfd.PageCount != TotalPages(entryCount))
        {
            memfd.Dispose();
            throw new ArgumentException($"a grant table of {entryCount} entries is {TotalPages(entryCount)} pages, the fd has {memfd.PageCount}");
        }
        return new GrantTable(memfd, entryCount);
    }

    // ---- guest side ----

    /// <summary>
    /// <c>gnttab_grant_foreign_access</c>: lets <paramref name="domid"/> map or copy guest frame
    /// <paramref name="frame"/>, read-only or writable. Returns the grant reference.
    /// </summary>
    public uint GrantAccess(ushort domid, uint frame, bool readOnly)
    {
        uint gref;
        lock (_allocatorLock)
        {
            gref = FirstFreeRef;
            while (gref < EntryCount && _allocated[gref])
                gref++;
            if (gref == EntryCount)
                throw new InvalidOperationException($"all {EntryCount} grant entries are in use");
            _allocated[gref] = true;
        }
        var entry = Entries.Slice((int)gref * EntrySize, EntrySize);
        MemoryMarshal.Cast<byte, uint>(entry)[1] = frame;
        ushort flags = (ushort)(GrantTableFlags.GTF_permit_access | (readOnly ? GrantTableFlags.GTF_readonly : 0));
        // The frame and domid must be visible before the entry becomes valid: one release write of flags+domid.
        Volatile.Write(ref Combo(gref), Pack(flags, domid));
        return gref;
    }

    /// <summary>
    /// <c>gnttab_end_foreign_access_ref</c>: revokes the grant unless the remote side has it mapped or is
    /// copying (GTF_reading/GTF_writing set), in which case it returns false and the grant stays.
    /// </summary>
    public bool EndAccess(uint gref)
    {
        CheckGuestRef(gref);
        ref uint combo = ref Combo(gref);
        while (true)
        {
            uint seen = Volatile.Read(ref combo);
            if ((Flags(seen) & (GrantTableFlags.GTF_reading | GrantTableFlags.GTF_writing)) != 0)
                return false;
            if (Interlocked.CompareExchange(ref combo, 0, seen) == seen)
                break;
        }
        lock (_allocatorLock)
            _allocated[gref] = false;
        return true;
    }

    public GrantEntry ReadEntry(uint gref)
    {
        if (gref >= EntryCount)
            throw new ArgumentOutOfRangeException(nameof(gref), $"ref {gref} is outside the {EntryCount}-entry table");
        uint combo = Volatile.Read(ref Combo(gref));
        return new GrantEntry(Flags(combo), (ushort)(combo >> 16), MemoryMarshal.Cast<byte, uint>(Entries.Slice((int)gref * EntrySize, EntrySize))[1]);
    }

    /// <summary>
    /// Writes a raw entry, bypassing the allocator: lets tests (and a hostile simulated guest) put
    /// arbitrary flags, domids and frames into the table.
    /// </summary>
    public void WriteRawEntry(uint gref, GrantEntry entry)
    {
        if (gref >= EntryCount)
            throw new ArgumentOutOfRangeException(nameof(gref), $"ref {gref} is outside the {EntryCount}-entry table");
        MemoryMarshal.Cast<byte, uint>(Entries.Slice((int)gref * EntrySize, EntrySize))[1] = entry.Frame;
        Volatile.Write(ref Combo(gref), Pack(entry.Flags, entry.Domid));
    }

    // ---- hypervisor side ----

    /// <summary>
    /// Pins <paramref name="gref"/> for <paramref name="localDomid"/> the way Xen's map and copy paths do:
    /// on the first pin (or the first writable pin) the entry must be GTF_permit_access for that domid and,
    /// for writing, not GTF_readonly; then GTF_reading (and GTF_writing) are set in the shared flags.
    /// Returns a GNTST_* status and, on success, the frame to use.
    /// </summary>
    internal short Pin(uint gref, ushort localDomid, bool writable, long guestPageCount, out uint frame)
    {
        frame = 0;
        if (gref >= EntryCount)
            return GrantStatus.BadGntref;
        var active = Active(gref);
        ref int lockWord = ref MemoryMarshal.Cast<byte, int>(active)[0];
        var pins = MemoryMarshal.Cast<byte, ushort>(active);
        ref ushort readPins = ref pins[2];
        ref ushort writePins = ref pins[3];
        ref ushort activeDomid = ref pins[4];
        ref uint activeFrame = ref MemoryMarshal.Cast<byte, uint>(active)[3];
        Acquire(ref lockWord);
        try
        {
            bool pinned = readPins != 0 || writePins != 0;
            if (!pinned || (writable && writePins == 0))
            {
                short status = SetStatus(gref, localDomid, writable, out uint entryFrame);
                if (status != GrantStatus.Okay)
                    return status;
                if (!pinned)
                {
                    if (entryFrame >= guestPageCount)
                    {
                        ClearStatus(gref, clearWriting: true, clearReading: true);
                        return GrantStatus.BadPage;
                    }
                    activeDomid = localDomid;
                    activeFrame = entryFrame;
                }
            }
            else if (activeDomid != localDomid)
            {
                return GrantStatus.GeneralError;
            }
            if (writable)
                writePins++;
            else
                readPins++;
            frame = activeFrame;
            return GrantStatus.Okay;
        }
        finally
        {
            Volatile.Write(ref lockWord, 0);
        }
    }

    /// <summary>Drops a pin taken by <see cref="Pin"/>; the last writer clears GTF_writing, the last user GTF_reading.</summary>
    internal void Unpin(uint gref, bool writable)
    {
        var active = Active(gref);
        ref int lockWord = ref MemoryMarshal.Cast<byte, int>(active)[0];
        var pins = MemoryMarshal.Cast<byte, ushort>(active);
        Acquire(ref lockWord);
        try
        {
            ref ushort count = ref pins[writable ? 3 : 2];
            if (count == 0)
                throw new InvalidOperationException($"grant ref {gref} unpinned more often than pinned");
            count--;
            ClearStatus(gref, clearWriting: pins[3] == 0, clearReading: pins[2] == 0 && pins[3] == 0);
        }
        finally
        {
            Volatile.Write(ref lockWord, 0);
        }
    }

    /// <summary>Leaves <paramref name="gref"/>'s active-entry lock held by <paramref name="ownerPid"/> (what a process killed inside Pin or Unpin leaves).</summary>
    internal void HoldActiveLockFor(uint gref, int ownerPid) =>
        Volatile.Write(ref MemoryMarshal.Cast<byte, int>(Active(gref))[0], ownerPid);

    public void Dispose()
    {
        _view.Dispose();
        _memfd.Dispose();
    }

    private short SetStatus(uint gref, ushort localDomid, bool writable, out uint entryFrame)
    {
        ref uint combo = ref Combo(gref);
        entryFrame = 0;
        // Xen gives a guest that keeps rewriting the entry a few tries, then fails the operation.
        for (int attempt = 0; attempt < 5; attempt++)
        {
            uint seen = Volatile.Read(ref combo);
            ushort flags = Flags(seen);
            if ((flags & GrantTableFlags.GTF_type_mask) != GrantTableFlags.GTF_permit_access || (ushort)(seen >> 16) != localDomid)
                return GrantStatus.GeneralError;
            if (writable && (flags & GrantTableFlags.GTF_readonly) != 0)
                return GrantStatus.GeneralError;
            ushort updated = (ushort)(flags | GrantTableFlags.GTF_reading | (writable ? GrantTableFlags.GTF_writing : 0));
            if (Interlocked.CompareExchange(ref combo, Pack(updated, (ushort)(seen >> 16)), seen) == seen)
            {
                entryFrame = MemoryMarshal.Cast<byte, uint>(Entries.Slice((int)gref * EntrySize, EntrySize))[1];
                return GrantStatus.Okay;
            }
        }
        return GrantStatus.GeneralError;
    }

    private void ClearStatus(uint gref, bool clearWriting, bool clearReading)
    {
        ushort mask = (ushort)((clearWriting ? GrantTableFlags.GTF_writing : 0) | (clearReading ? GrantTableFlags.GTF_reading : 0));
        if (mask == 0)
            return;
        ref uint combo = ref Combo(gref);
        while (true)
        {
            uint seen = Volatile.Read(ref combo);
            uint updated = seen & ~(uint)mask;
            if (Interlocked.CompareExchange(ref combo, updated, seen) == seen)
                return;
        }
    }

    /// <summary>
    /// Takes a ref's active-entry lock, which lives in memory shared by every process using this
    /// table. The word holds the owner's pid. Real Xen runs this bookkeeping inside a hypercall, which
    /// a SIGKILL of the calling process cannot cut in half; here it runs in that process, so a lock
    /// whose owner was killed inside it is taken over instead of spun on forever (the crash-consistency
    /// run's restarted worker hung so, on the very grant its predecessor died copying).
    /// </summary>
    private static void Acquire(ref int lockWord)
    {
        int self = Environment.ProcessId;
        var spin = new SpinWait();
        while (true)
        {
            int owner = Interlocked.CompareExchange(ref lockWord, self, 0);
            if (owner == 0)
                return;
            if (spin.Count >= 100 && owner != self && !ProcessLiveness.Exists(owner)
                && Interlocked.CompareExchange(ref lockWord, self, owner) == owner)
                return;
            spin.SpinOnce();
        }
    }

    private void CheckGuestRef(uint gref)
    {
        if (gref < FirstFreeRef || gref >= EntryCount)
            throw new ArgumentOutOfRangeException(nameof(gref), $"ref {gref} is not an allocatable ref ({FirstFreeRef}..{EntryCount - 1})");
        lock (_allocatorLock)
            if (!_allocated[gref])
                throw new ArgumentException($"grant ref {gref} is not granted", nameof(gref));
    }

    private Span<byte> Entries => _view.Span[.._activeOffset];

    private Span<byte> Active(uint gref) => _view.Span.Slice(_activeOffset + (int)gref * ActiveSize, ActiveSize);

    // flags (u16) and domid (u16) are updated together as one little-endian u32, as Xen's grant_combo does.
    private ref uint Combo(uint gref) => ref MemoryMarshal.Cast<byte, uint>(Entries)[(int)gref * 2];

    private static uint Pack(ushort flags, ushort domid) => flags | ((uint)domid << 16);

    private static ushort Flags(uint combo) => (ushort)combo;

    private static int PagesFor(int bytes) => (bytes + MemFd.PageSize - 1) / MemFd.PageSize;

    private static int TotalPages(int entryCount) => PagesFor(entryCount * EntrySize) + PagesFor(entryCount * ActiveSize);
}
