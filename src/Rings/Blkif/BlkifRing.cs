namespace XenBackends.Rings.Blkif;

/// <summary>blkif operations on a <see cref="BackRing"/> laid out for one ABI.</summary>
public static class BlkifRing
{
    /// <summary>Copies the next request slot out once and decodes it; see <see cref="BlkifRequest.Status"/>.</summary>
    public static RingRead TryConsumeBlkifRequest(this BackRing ring, BlkifAbi abi, out BlkifRequest request)
    {
        ArgumentNullException.ThrowIfNull(ring);
        if (ring.Layout != BlkifProtocol.Layout(abi))
            throw new ArgumentException($"the ring is not laid out for {abi}", nameof(abi));
        RingRead read;
        if (abi == BlkifAbi.X86_32)
        {
            read = ring.TryConsumeRequest(out BlkifX86_32Request slot);
            BlkifDecoder.Decode(in slot, out request);
        }
        else
        {
            read = ring.TryConsumeRequest(out BlkifX86_64Request slot);
            BlkifDecoder.Decode(in slot, out request);
        }
        if (read != RingRead.Item)
            request = default;
        return read;
    }

    /// <summary>Answers the oldest unanswered request.</summary>
    public static void PutBlkifResponse(this BackRing ring, ulong id, byte operation, short status)
    {
        ArgumentNullException.ThrowIfNull(ring);
        ring.PutResponse(new BlkifResponse(id, operation, status));
    }
}
