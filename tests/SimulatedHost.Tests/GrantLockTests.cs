using System.Diagnostics;
using System.Runtime.InteropServices;
using XenBackends.Native;

namespace XenBackends.SimulatedHost.Tests;

/// <summary>
/// The simulated hypervisor's per-grant bookkeeping lock lives in memory shared by the processes
/// using the table, and runs in the backend's process; on real Xen it runs inside a hypercall that a
/// SIGKILL cannot interrupt. So a lock left by a killed process must not hang the next one (the
/// crash-consistency run's restarted worker spun forever on the grant its predecessor died
/// copying), while a lock held by a live process is still waited for.
/// </summary>
public sealed class GrantLockTests : IDisposable
{
    private readonly SimulatedXenHost _host = new();
    private readonly SimulatedDomain _guest;
    private readonly IGrantMapper _mapper;
    private readonly nint _local = Marshal.AllocHGlobal(4096);

    public GrantLockTests()
    {
        _guest = _host.CreateDomain(7, pageCount: 8);
        _mapper = _host.CreateGrantMapper();
    }

    public void Dispose()
    {
        Marshal.FreeHGlobal(_local);
        _mapper.Dispose();
        _host.Dispose();
    }

    private Task<short> CopyAsync(uint gref) => Task.Run(() =>
    {
        GrantCopySegment[] segment = [GrantCopySegment.FromGuest(7, gref, 0, _local, 64)];
        _mapper.Copy(segment);
        return segment[0].Status;
    });

    [Fact]
    public async Task A_lock_left_by_a_dead_process_is_taken_over()
    {
        uint gref = _guest.Grants.GrantAccess(0, 1, readOnly: true);
        using var gone = Process.Start("true")!;
        await gone.WaitForExitAsync();
        _guest.Grants.HoldActiveLockFor(gref, gone.Id);
        Assert.Equal(GrantStatus.Okay, await CopyAsync(gref).WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.True(_guest.Grants.EndAccess(gref));
    }

    [Fact]
    public async Task A_lock_held_by_a_live_process_is_waited_for()
    {
        uint gref = _guest.Grants.GrantAccess(0, 1, readOnly: true);
        using var holder = Process.Start("sleep", "60")!;
        try
        {
            _guest.Grants.HoldActiveLockFor(gref, holder.Id);
            var copy = CopyAsync(gref);
            await Task.Delay(300);
            Assert.False(copy.IsCompleted);
            holder.Kill();
            await holder.WaitForExitAsync();
            Assert.Equal(GrantStatus.Okay, await copy.WaitAsync(TimeSpan.FromSeconds(20)));
        }
        finally
        {
            if (!holder.HasExited) holder.Kill();
        }
    }
}
