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
