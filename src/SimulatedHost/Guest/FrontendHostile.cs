using XenBackends.Rings;
using XenBackends.XenStore;

namespace XenBackends.SimulatedHost.Guest;

/// <summary>
/// The unchecked side of a simulated frontend, for hostile-guest tests only: the live rings (their
/// <see cref="FrontRing.Raw"/> writes anything), the guest's grant table (WriteRawEntry), its memory, and
/// raw writes to its own xenstore directory. Nothing the well-behaved driver does goes through here.
/// </summary>
public sealed class FrontendHostile
{
    private readonly XenbusFrontend _front;
    private readonly Func<FrontRing[]> _rings;

    internal FrontendHostile(XenbusFrontend front, Func<FrontRing[]> rings)
    {
        _front = front;
        _rings = rings;
    }

    /// <summary>The rings as currently set up (per queue; for netfront tx and rx alternate: tx0, rx0, tx1, ...).</summary>
    public IReadOnlyList<FrontRing> Rings => _rings();

    public GrantTable Grants => _front.Guest.Domain.Grants;

    public GuestMemory Memory => _front.Guest.Domain.Memory;

    /// <summary>Writes <paramref name="value"/> to &lt;frontend&gt;/<paramref name="key"/> as the guest, unchecked.</summary>
    public async Task WriteNodeAsync(string key, string value, CancellationToken cancellationToken = default)
    {
        await using var xs = await _front.Guest.OpenXenStoreAsync(cancellationToken).ConfigureAwait(false);
        await xs.WriteAsync(_front.NodeName + "/" + key, value, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A fresh xenstore connection acting as the guest, for arbitrary requests.</summary>
    public Task<XenStoreClient> OpenXenStoreAsync(CancellationToken cancellationToken = default) => _front.Guest.OpenXenStoreAsync(cancellationToken);
}
