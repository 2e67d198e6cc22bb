using System.Runtime.InteropServices;
using XenBackends.Rings;
using XenBackends.Rings.Netif;
using XenBackends.SimulatedHost;
using XenBackends.XenStore;

namespace XenBackends.Backend.Net.Tests.Infra;

/// <summary>The frontend half of a netif control ring, as a Windows PV driver (xenvif controller.c) uses it.</summary>
internal sealed class TestCtrlRing
{
    private readonly SimulatedDomain _dom;
    private ushort _nextId = 1;

    public TestCtrlRing(SimulatedDomain dom)
    {
        _dom = dom;
        uint frame = dom.Memory.AllocatePage();
        Ref = dom.Grants.GrantAccess(0, frame, readOnly: false);
        Ring = FrontRing.Initialize(new GuestPage(dom.Memory, frame), NetifRings.Ctrl);
        Port = dom.EventChannels.BindUnboundPort(0);
    }

    public FrontRing Ring { get; }
    public uint Ref { get; }
    public uint Port { get; }

    public async Task WriteKeysAsync(XenStoreClient store, string frontendPath, bool withEventChannel = true)
    {
        await store.WriteAsync(frontendPath + "/ctrl-ring-ref", Ref.ToString(), default);
        if (withEventChannel)
            await store.WriteAsync(frontendPath + "/event-channel-ctrl", Port.ToString(), default);
    }

    /// <summary>A read-only granted page holding <paramref name="data"/> at its start.</summary>
    public uint Grant(ReadOnlySpan<byte> data)
    {
        uint frame = _dom.Memory.AllocatePage();
        data.CopyTo(_dom.Memory.Page(frame));
        return _dom.Grants.GrantAccess(0, frame, readOnly: true);
    }

    public uint GrantEntries(params uint[] entries) => Grant(MemoryMarshal.AsBytes(entries.AsSpan()));

    /// <summary>Sends one request and waits (bounded) for its response.</summary>
    public XenNetifCtrlResponse Send(ushort type, uint d0 = 0, uint d1 = 0, uint d2 = 0, int timeoutMs = 5000)
    {
        var request = new XenNetifCtrlRequest { Id = _nextId++, Type = type };
        request.Data[0] = d0;
        request.Data[1] = d1;
        request.Data[2] = d2;
        Ring.PutRequest(request);
        Ring.PushRequestsAndCheckNotify();
        _dom.EventChannels.Notify(Port);
        long deadline = Environment.TickCount64 + timeoutMs;
        while (true)
        {
            if (Ring.TryConsumeResponse(out XenNetifCtrlResponse response) == RingRead.Item)
            {
                if (response.Id != request.Id)
                    throw new InvalidOperationException($"response id {response.Id} for request {request.Id}");
                return response;
            }
            if (Environment.TickCount64 > deadline)
                throw new TimeoutException($"no control response to request type {type}");
            Thread.Sleep(1);
        }
    }

    /// <summary>What xenvif's controller does to turn on Toeplitz steering.</summary>
    public void ConfigureToeplitz(byte[] key, uint types, uint[]? mapping)
    {
        Expect(Send(NetifCtrlType.SetHashAlgorithm, NetifCtrlHashAlgorithm.Toeplitz));
        Expect(Send(NetifCtrlType.SetHashKey, Grant(key), (uint)key.Length));
        Expect(Send(NetifCtrlType.SetHashFlags, types));
        if (mapping is not null)
        {
            Expect(Send(NetifCtrlType.SetHashMappingSize, (uint)mapping.Length));
            Expect(Send(NetifCtrlType.SetHashMapping, GrantEntries(mapping), (uint)mapping.Length, 0));
        }
    }

    private static void Expect(XenNetifCtrlResponse response)
    {
        if (response.Status != NetifCtrlStatus.Success)
            throw new InvalidOperationException($"control request type {response.Type} failed with status {response.Status}");
    }
}
