namespace XenBackends.Rings;

/// <summary>Outcome of taking one message off a ring.</summary>
public enum RingRead
{
    /// <summary>Nothing to take right now (or every slot holds an unanswered request).</summary>
    Empty = 0,
    /// <summary>One message was copied out into private memory.</summary>
    Item = 1,
    /// <summary>The peer published an impossible producer index; see <see cref="RingFault"/>. Sticky.</summary>
    Faulted = 2,
}

/// <summary>Outcome of looking at a ring's producer index.</summary>
public enum RingPoll
{
    Idle = 0,
    Work = 1,
    /// <summary>The peer published an impossible producer index; see <see cref="RingFault"/>. Sticky.</summary>
    Faulted = 2,
}

/// <summary>Why a ring refuses to be consumed any further.</summary>
public enum RingFault
{
    None = 0,
    /// <summary>
    /// <c>RING_REQUEST_PROD_OVERFLOW</c>: req_prod - rsp_prod_pvt &gt; ring size, more requests than
    /// slots. An ill-behaved frontend (Linux blkback halts the ring with -EACCES).
    /// </summary>
    RequestProducerOverflow = 1,
    /// <summary><c>RING_RESPONSE_PROD_OVERFLOW</c>: rsp_prod - rsp_cons &gt; ring size. An ill-behaved backend.</summary>
    ResponseProducerOverflow = 2,
}
