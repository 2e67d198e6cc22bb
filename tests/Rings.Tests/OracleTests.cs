using System.Runtime.InteropServices;
using XenBackends.Rings.Blkif;

namespace XenBackends.Rings.Tests;

/// <summary>
/// Xen's ring macros compiled into a shared library (c/oracle.c) and the C# rings, started from
/// the same random ring states (indexes near 0, near 2^32 and anywhere; consistent and hostile
/// producer indexes), must take the same notify, final-check, overflow and count decisions and
/// leave the same shared header behind.
/// </summary>
public unsafe class OracleTests : IDisposable
{
    private const int States = 20_000;
    private readonly nint _library;
    private readonly delegate* unmanaged<void*, uint, uint, uint, uint> _backUnconsumed;
    private readonly delegate* unmanaged<void*, uint, uint, uint, int> _backProdOverflow;
    private readonly delegate* unmanaged<void*, uint, uint, uint, int> _backConsOverflow;
    private readonly delegate* unmanaged<void*, uint, uint, uint, int> _backPush;
    private readonly delegate* unmanaged<void*, uint, uint, uint, int> _backFinalCheck;
    private readonly delegate* unmanaged<void*, uint, uint, uint, uint> _frontFree;
    private readonly delegate* unmanaged<void*, uint, uint, uint, int> _frontRspOverflow;
    private readonly delegate* unmanaged<void*, uint, uint, uint, uint> _frontUnconsumed;
    private readonly delegate* unmanaged<void*, uint, uint, uint, int> _frontPush;
    private readonly delegate* unmanaged<void*, uint, uint, uint, int> _frontFinalCheck;
    private readonly delegate* unmanaged<void*, uint, uint> _ringSize;

    public OracleTests()
    {
        _library = NativeLibrary.Load(CTool.Build("oracle.c", "oracle.so", "-m64", "-shared", "-fPIC", "-Wl,--no-undefined"));
        _backUnconsumed = (delegate* unmanaged<void*, uint, uint, uint, uint>)NativeLibrary.GetExport(_library, "oracle_back_unconsumed");
        _backProdOverflow = (delegate* unmanaged<void*, uint, uint, uint, int>)NativeLibrary.GetExport(_library, "oracle_back_prod_overflow");
        _backConsOverflow = (delegate* unmanaged<void*, uint, uint, uint, int>)NativeLibrary.GetExport(_library, "oracle_back_cons_overflow");
        _backPush = (delegate* unmanaged<void*, uint, uint, uint, int>)NativeLibrary.GetExport(_library, "oracle_back_push");
        _backFinalCheck = (delegate* unmanaged<void*, uint, uint, uint, int>)NativeLibrary.GetExport(_library, "oracle_back_final_check");
        _frontFree = (delegate* unmanaged<void*, uint, uint, uint, uint>)NativeLibrary.GetExport(_library, "oracle_front_free");
        _frontRspOverflow = (delegate* unmanaged<void*, uint, uint, uint, int>)NativeLibrary.GetExport(_library, "oracle_front_rsp_overflow");
        _frontUnconsumed = (delegate* unmanaged<void*, uint, uint, uint, uint>)NativeLibrary.GetExport(_library, "oracle_front_unconsumed");
        _frontPush = (delegate* unmanaged<void*, uint, uint, uint, int>)NativeLibrary.GetExport(_library, "oracle_front_push");
        _frontFinalCheck = (delegate* unmanaged<void*, uint, uint, uint, int>)NativeLibrary.GetExport(_library, "oracle_front_final_check");
        _ringSize = (delegate* unmanaged<void*, uint, uint>)NativeLibrary.GetExport(_library, "oracle_ring_size");
    }

    public void Dispose() => NativeLibrary.Free(_library);

    private static readonly RingSlotLayout Layout = BlkifProtocol.Layout(BlkifAbi.X86_64);

    /// <summary>A base index: near 0, just below the 2^32 wrap, or anywhere.</summary>
    private static uint Base(Random r, uint size) => r.Next(3) switch
    {
        0 => (uint)r.Next(0, 3 * (int)size),
        1 => uint.MaxValue - (uint)r.Next(0, 3 * (int)size),
        _ => (uint)r.NextInt64(0, 1L << 32),
    };

    /// <summary>An index near <paramref name="around"/> (within two rings either way), or, sometimes, hostile garbage.</summary>
    private static uint Near(Random r, uint around, uint size) =>
        r.Next(10) == 0 ? (uint)r.NextInt64(0, 1L << 32) : around + (uint)r.Next(-2 * (int)size, 2 * (int)size + 2);

    private sealed class Pair : IDisposable
    {
        public readonly UnmanagedMemory Mine;
        public readonly UnmanagedMemory Theirs;

        public Pair(int pages)
        {
            Mine = UnmanagedMemory.AllocatePages(pages);
            Theirs = UnmanagedMemory.AllocatePages(pages);
        }

        public void SetHeader(uint reqProd, uint reqEvent, uint rspProd, uint rspEvent)
        {
            foreach (var m in new[] { Mine, Theirs })
            {
                var raw = FrontRing.Attach(m, Layout, 0).Raw;
                raw.ReqProd = reqProd;
                raw.ReqEvent = reqEvent;
                raw.RspProd = rspProd;
                raw.RspEvent = rspEvent;
            }
        }

        public void AssertSameHeader(string what) =>
            Assert.True(Mine.Span[..SharedRing.HeaderSize].SequenceEqual(Theirs.Span[..SharedRing.HeaderSize]), $"shared header differs after {what}");

        public void Dispose()
        {
            Mine.Dispose();
            Theirs.Dispose();
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(4, 3)]
    [InlineData(8, 4)]
    [InlineData(16, 5)]
    public void BackRingDecisionsEqualTheMacros(int pages, int seed)
    {
        var r = new Random(seed);
        using var pair = new Pair(pages);
        uint bytes = (uint)pair.Mine.Length;
        uint size = _ringSize((void*)pair.Theirs.Address, bytes);
        Assert.Equal(size, Layout.RingSize(pair.Mine.Length));
        int notified = 0, idle = 0, faulted = 0;
        Span<byte> slotCopy = stackalloc byte[Layout.RequestSize];
        for (int i = 0; i < States; i++)
        {
            uint rspProdPvt = Base(r, size);
            uint reqCons = rspProdPvt + (uint)r.Next(0, (int)size + 1);
            uint reqProd = r.Next(3) == 0 ? reqCons : Near(r, reqCons, size); // a third with nothing to consume
            uint rspProd = Near(r, rspProdPvt, size);
            uint reqEvent = Near(r, reqCons, size);
            uint rspEvent = Near(r, rspProdPvt, size);
            string state = $"state {i}: req_prod {reqProd} req_cons {reqCons} rsp_prod_pvt {rspProdPvt} rsp_prod {rspProd} rsp_event {rspEvent}";
            void* c = (void*)pair.Theirs.Address;

            pair.SetHeader(reqProd, reqEvent, rspProd, rspEvent);
            bool cOverflow = _backProdOverflow(c, bytes, reqCons, rspProdPvt) != 0;
            uint cUnconsumed = _backUnconsumed(c, bytes, reqCons, rspProdPvt);
            RingPoll poll = BackRing.Resume(pair.Mine, Layout, reqCons, rspProdPvt).PollRequests(out uint unconsumed);
            Assert.True(cOverflow == (poll == RingPoll.Faulted), $"prod overflow: C {cOverflow}, C# {poll}; {state}");
            if (!cOverflow)
                Assert.True(cUnconsumed == unconsumed && (poll == RingPoll.Work) == (unconsumed != 0), $"unconsumed: C {cUnconsumed}, C# {unconsumed}; {state}");
            faulted += cOverflow ? 1 : 0;

            // TryConsume takes a request exactly when the C backend loop would: not overflowed,
            // req_cons != req_prod and not RING_REQUEST_CONS_OVERFLOW.
            bool cTakes = !cOverflow && reqCons != reqProd && _backConsOverflow(c, bytes, reqCons, rspProdPvt) == 0;
            RingRead read = BackRing.Resume(pair.Mine, Layout, reqCons, rspProdPvt).TryConsumeRequest(slotCopy);
            Assert.True(cTakes == (read == RingRead.Item), $"consume: C {cTakes}, C# {read}; {state}");

            pair.SetHeader(reqProd, reqEvent, rspProd, rspEvent);
            bool cNotify = _backPush(c, bytes, reqCons, rspProdPvt) != 0;
            bool notify = BackRing.Resume(pair.Mine, Layout, reqCons, rspProdPvt).PushResponsesAndCheckNotify();
            Assert.True(cNotify == notify, $"push notify: C {cNotify}, C# {notify}; {state}");
            pair.AssertSameHeader($"push, {state}");
            notified += notify ? 1 : 0;

            pair.SetHeader(reqProd, reqEvent, rspProd, rspEvent);
            bool cWork = _backFinalCheck(c, bytes, reqCons, rspProdPvt) != 0;
            RingPoll final = BackRing.Resume(pair.Mine, Layout, reqCons, rspProdPvt).FinalCheckForRequests();
            if (cOverflow)
            {
                // The macro has no overflow check; ours refuses the ring instead of sleeping on it.
                Assert.Equal(RingPoll.Faulted, final);
            }
            else
            {
                Assert.True(cWork == (final == RingPoll.Work), $"final check: C {cWork}, C# {final}; {state}");
                pair.AssertSameHeader($"final check, {state}");
                idle += cWork ? 0 : 1;
            }
        }
        // The generator must exercise every branch, or the comparison proves little.
        Assert.InRange(notified, States / 20, States - States / 20);
        Assert.InRange(idle, States / 50, States);
        Assert.InRange(faulted, States / 50, States - States / 10);
    }

    [Theory]
    [InlineData(1, 11)]
    [InlineData(4, 12)]
    [InlineData(16, 13)]
    public void FrontRingDecisionsEqualTheMacros(int pages, int seed)
    {
        var r = new Random(seed);
        using var pair = new Pair(pages);
        uint bytes = (uint)pair.Mine.Length;
        uint size = Layout.RingSize(pair.Mine.Length);
        int notified = 0, idle = 0, faulted = 0;
        for (int i = 0; i < States; i++)
        {
            uint rspCons = Base(r, size);
            uint reqProdPvt = rspCons + (uint)r.Next(0, (int)size + 1);
            uint reqProd = r.Next(10) == 0 ? Near(r, reqProdPvt, size) : reqProdPvt - (uint)r.Next(0, (int)(reqProdPvt - rspCons) + 1);
            uint rspProd = r.Next(3) == 0 ? rspCons : Near(r, rspCons, size);
            uint reqEvent = Near(r, reqProd, size);
            uint rspEvent = Near(r, rspCons, size);
            string state = $"state {i}: req_prod_pvt {reqProdPvt} rsp_cons {rspCons} req_prod {reqProd} req_event {reqEvent} rsp_prod {rspProd}";
            void* c = (void*)pair.Theirs.Address;

            pair.SetHeader(reqProd, reqEvent, rspProd, rspEvent);
            FrontRing ring = FrontRing.Resume(pair.Mine, Layout, reqProdPvt, rspCons);
            Assert.Equal(_frontFree(c, bytes, reqProdPvt, rspCons), ring.FreeRequests);
            bool cOverflow = _frontRspOverflow(c, bytes, reqProdPvt, rspCons) != 0;
            RingPoll poll = ring.PollResponses(out uint unconsumed);
            Assert.True(cOverflow == (poll == RingPoll.Faulted), $"rsp overflow: C {cOverflow}, C# {poll}; {state}");
            if (!cOverflow)
                Assert.Equal(_frontUnconsumed(c, bytes, reqProdPvt, rspCons), unconsumed);
            faulted += cOverflow ? 1 : 0;

            pair.SetHeader(reqProd, reqEvent, rspProd, rspEvent);
            bool cNotify = _frontPush(c, bytes, reqProdPvt, rspCons) != 0;
            bool notify = FrontRing.Resume(pair.Mine, Layout, reqProdPvt, rspCons).PushRequestsAndCheckNotify();
            Assert.True(cNotify == notify, $"push notify: C {cNotify}, C# {notify}; {state}");
            pair.AssertSameHeader($"push, {state}");
            notified += notify ? 1 : 0;

            pair.SetHeader(reqProd, reqEvent, rspProd, rspEvent);
            bool cWork = _frontFinalCheck(c, bytes, reqProdPvt, rspCons) != 0;
            RingPoll final = FrontRing.Resume(pair.Mine, Layout, reqProdPvt, rspCons).FinalCheckForResponses();
            if (cOverflow)
            {
                Assert.Equal(RingPoll.Faulted, final);
            }
            else
            {
                Assert.True(cWork == (final == RingPoll.Work), $"final check: C {cWork}, C# {final}; {state}");
                idle += cWork ? 0 : 1;
            }
            pair.AssertSameHeader($"final check, {state}");
        }
        Assert.InRange(notified, States / 20, States - States / 20);
        Assert.InRange(idle, States / 50, States);
        Assert.InRange(faulted, States / 50, States - States / 10);
    }
}
