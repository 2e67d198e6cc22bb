namespace XenBackends.Rings.Blkif;

/// <summary>
/// <c>struct blkif_response</c>: id@0, operation@8, status@10 in both ABIs (only the tail padding,
/// and so the slot's response size, differs). Written field by field into a zeroed slot (XSA-216).
/// </summary>
public readonly record struct BlkifResponse(ulong Id, byte Operation, short Status) : IRingMessage
{
    public void WriteTo(ResponseSlot slot)
    {
        slot.WriteUInt64(0, Id);
        slot.WriteByte(8, Operation);
        slot.WriteInt16(10, Status);
    }
}
