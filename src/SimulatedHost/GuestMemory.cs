using XenBackends.Native;
using XenBackends.Native.Linux;

namespace XenBackends.SimulatedHost;

/// <summary>
/// A simulated domain's RAM: a memfd of N pages whose page index is the guest frame number (GFN)
/// written into grant entries. The guest side allocates pages here for its rings and buffers.
/// </summary>
public sealed class GuestMemory : IDisposable
{
    private readonly MemFd _memfd;
    private readonly MappedMemory _guestView;
    private readonly Lock _lock = new();
    private readonly bool[] _allocated;

    public GuestMemory(ushort domid, int pageCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pageCount, 1);
        _memfd = MemFd.Create($"d{domid}-ram", pageCount);
        _guestView = _memfd.MapAll(writable: true);
        _allocated = new bool[pageCount];
    }

    public int PageCount => _allocated.Length;

    /// <summary>The memfd to hand to a backend process.</summary>
    public SafeFd Handle => _memfd.Handle;

    internal MemFd File => _memfd;

    /// <summary>The guest's own view of all its RAM.</summary>
    public SharedMemory View => _guestView;

    /// <summary>The guest's view of one page.</summary>
    public Span<byte> Page(uint frame)
    {
        if (frame >= PageCount)
            throw new ArgumentOutOfRangeException(nameof(frame), $"frame {frame} is outside the {PageCount}-page guest");
        return _guestView.Span.Slice((int)frame * MemFd.PageSize, MemFd.PageSize);
    }

    /// <summary>Allocates a zeroed page and returns its frame number.</summary>
    public uint AllocatePage()
    {
        lock (_lock)
        {
            for (int i = 0; i < _allocated.Length; i++)
            {
                if (!_allocated[i])
                {
                    _allocated[i] = true;
                    Page((uint)i).Clear();
                    return (uint)i;
                }
            }
        }
        throw new InvalidOperationException($"all {PageCount} guest pages are allocated");
    }

    /// <summary>
    /// Allocates <paramref name="count"/> zeroed pages with consecutive frame numbers and returns the first:
    /// a multi-page ring is one virtually contiguous region in the guest, which the simulation gets from
    /// frames that are adjacent in the memfd.
    /// </summary>
    public uint AllocateContiguous(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        lock (_lock)
        {
            int run = 0;
            for (int i = 0; i < _allocated.Length; i++)
            {
                run = _allocated[i] ? 0 : run + 1;
                if (run < count)
                    continue;
                int first = i - count + 1;
                for (int j = first; j <= i; j++)
                {
                    _allocated[j] = true;
                    Page((uint)j).Clear();
                }
                return (uint)first;
            }
        }
        throw new InvalidOperationException($"no {count} free consecutive pages in the {PageCount}-page guest");
    }

    public void FreePage(uint frame)
    {
        lock (_lock)
        {
            if (frame >= PageCount || !_allocated[frame])
                throw new ArgumentException($"frame {frame} is not allocated", nameof(frame));
            _allocated[frame] = false;
        }
    }

    public void Dispose()
    {
        _guestView.Dispose();
        _memfd.Dispose();
    }
}
