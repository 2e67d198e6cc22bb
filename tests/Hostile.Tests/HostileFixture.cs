using XenBackends.Backend.Block;
using XenBackends.Integration.Tests;
using XenBackends.Rings.Blkif;
using XenBackends.SimulatedHost;
using XenBackends.SimulatedHost.Guest;
using XenBackends.SimulatedHost.Hostile;
using XenBackends.SimulatedHost.Toolstack;
using XenBackends.SimulatedHost.XenStore;

namespace XenBackends.Hostile.Tests;

/// <summary>
/// One backend host serving two guests: the attacker (domid 7, driven through
/// <see cref="RawBlkfront"/>) and a well-behaved bystander (domid 8, the Linux-like blkfront).
/// The attacker's image starts as random bytes with a pristine copy kept, so any byte the backend
/// changes outside what a test allows is caught.
/// </summary>
internal sealed class HostileFixture : IAsyncDisposable
{
    public const ushort AttackerDomid = 7;
    public const ushort BystanderDomid = 8;
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);
    private readonly string _dir = Directory.CreateTempSubdirectory("xb-hostile-").FullName;
    private readonly List<RawBlkfront> _raws = [];

    private HostileFixture() { }

    public SimulatedXenHost Host { get; } = new();
    public XenStoreServer XenStore { get; } = new();
    public SimulatedToolstack Toolstack { get; private set; } = null!;
    public InProcessBackends Backends { get; private set; } = null!;
    /// <summary>The backends' grant mapper, counting maps and copies.</summary>
    public CountingGrantMapper Grants { get; private set; } = null!;
    public SimulatedGuest Attacker { get; private set; } = null!;
    public AttachedDevice AttackerDisk { get; private set; } = null!;
    public string AttackerImage { get; private set; } = "";
    public byte[] Pristine { get; private set; } = [];
    public long AttackerSectors => Pristine.Length / 512;
    public SimulatedGuest BystanderGuest { get; private set; } = null!;
    public AttachedDevice BystanderDisk { get; private set; } = null!;
    public SimulatedBlkfront Bystander { get; private set; } = null!;

    public static async Task<HostileFixture> CreateAsync(BlockBackendOptions? options = null, int attackerImageBytes = 4 << 20, int seed = 1)
    {
        var f = new HostileFixture();
        try
        {
            f.Toolstack = await SimulatedToolstack.StartAsync(f.Host, f.XenStore);
            f.Backends = await InProcessBackends.StartAsync(f.Host, f.Toolstack.Dom0SocketPath, options, grants => f.Grants = new CountingGrantMapper(grants));
            f.Attacker = await f.Toolstack.CreateDomainAsync(new DomainSpec(AttackerDomid, "attacker") { Pages = 8192, GrantEntries = 8192 });
            f.BystanderGuest = await f.Toolstack.CreateDomainAsync(new DomainSpec(BystanderDomid, "bystander") { Pages = 4096, GrantEntries = 4096 });

            f.Pristine = new byte[attackerImageBytes];
            new Random(seed).NextBytes(f.Pristine);
            f.AttackerImage = Path.Combine(f._dir, "attacker.img");
            await File.WriteAllBytesAsync(f.AttackerImage, f.Pristine);
            f.AttackerDisk = await f.Toolstack.AddDiskAsync(AttackerDomid, new DiskSpec("xvda", f.AttackerImage) { Script = "/x" });

            string bystanderImage = Path.Combine(f._dir, "bystander.img");
            using (var file = File.Create(bystanderImage)) file.SetLength(8 << 20);
            f.BystanderDisk = await f.Toolstack.AddDiskAsync(BystanderDomid, new DiskSpec("xvda", bystanderImage) { Script = "/x" });
            f.Bystander = await SimulatedBlkfront.AttachAsync(f.BystanderGuest, f.BystanderDisk.DevId);
            await f.Bystander.WaitConnectedAsync(Bound);
            return f;
        }
        catch
        {
            await f.DisposeAsync();
            throw;
        }
    }

    /// <summary>Handshakes a raw attacker frontend; waits for Connected unless the values are meant to be refused.</summary>
    public async Task<RawBlkfront> ConnectAttackerAsync(int order = 0, IReadOnlyDictionary<string, string?>? overrides = null, bool expectConnected = true)
    {
        var raw = await RawBlkfront.StartAsync(Attacker, AttackerDisk.DevId, order, overrides);
        _raws.Add(raw);
        if (expectConnected)
        {
            await raw.WaitBackendStateAsync(4, Bound);
            await raw.WriteStateAsync(4);
        }
        return raw;
    }

    /// <summary>After a fatal error: Closed, back to Initialising, wait for InitWait, then a fresh handshake (the old frontend is disposed).</summary>
    public async Task<RawBlkfront> ReconnectAttackerAsync(RawBlkfront old, int order = 0)
    {
        await old.WriteStateAsync(6);
        await old.WaitBackendStateAsync(6, Bound);
        await old.WriteStateAsync(1);
        await old.WaitBackendStateAsync(2, Bound);
        _raws.Remove(old);
        await old.DisposeAsync();
        return await ConnectAttackerAsync(order);
    }

    /// <summary>The device reported a fatal error: error node written and backend state Closing (xenbus_dev_fatal).</summary>
    public async Task AssertFatalAsync(RawBlkfront raw)
    {
        await raw.WaitBackendStateAsync(5, Bound);
        string error = $"/local/domain/0/error/{AttackerDisk.Path.NodeName}/error";
        Assert.False(string.IsNullOrEmpty(await Toolstack.Dom0.TryReadStringAsync(error)), "no error node written");
    }

    /// <summary>The bystander's I/O round-trips byte for byte: the backend host still serves other guests.</summary>
    public async Task AssertBystanderServedAsync(int round)
    {
        var data = new byte[16 << 10];
        new Random(round).NextBytes(data);
        ulong sector = (ulong)(round % 256) * 32;
        Assert.Equal(BlkifRsp.Okay, await Bystander.WriteAsync(sector, data).WaitAsync(Bound));
        var back = new byte[data.Length];
        Assert.Equal(BlkifRsp.Okay, await Bystander.ReadAsync(sector, back).WaitAsync(Bound));
        Assert.Equal(data, back);
        Assert.True(Backends.IsServing(BystanderDisk.Path), "the bystander's device stopped being served");
    }

    /// <summary>
    /// Keeps the bystander doing I/O until <paramref name="until"/> completes: "other guests keep
    /// working during the attack". Returns the number of round trips made.
    /// </summary>
    public async Task<int> BystanderDuringAsync(Task until)
    {
        int rounds = 0;
        while (!until.IsCompleted)
            await AssertBystanderServedAsync(rounds++);
        await until;
        await AssertBystanderServedAsync(rounds++);
        return rounds;
    }

    /// <summary>The attacker's image equals the pristine copy except inside <paramref name="allowedSectors"/> (start, count).</summary>
    public void AssertImageUnchangedOutside(params (long Start, long Count)[] allowedSectors)
    {
        byte[] now = File.ReadAllBytes(AttackerImage);
        Assert.Equal(Pristine.Length, now.Length);
        var allowed = new bool[Pristine.Length / 512];
        foreach (var (start, count) in allowedSectors)
            for (long s = start; s < start + count && s < allowed.Length; s++)
                allowed[s] = true;
        for (int s = 0; s < allowed.Length; s++)
            if (!allowed[s] && !Pristine.AsSpan(s * 512, 512).SequenceEqual(now.AsSpan(s * 512, 512)))
                Assert.Fail($"sector {s} of the attacker's image changed outside the allowed range");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var raw in _raws)
            await raw.DisposeAsync();
        if (Bystander is not null) await Bystander.DisposeAsync();
        if (Backends is not null) await Backends.DisposeAsync();
        if (Toolstack is not null) await Toolstack.DisposeAsync();
        await XenStore.DisposeAsync();
        Host.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
