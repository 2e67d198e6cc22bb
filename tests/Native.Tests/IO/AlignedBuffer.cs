using System.Runtime.InteropServices;

namespace XenBackends.Native.Tests.IO;

/// <summary>Page-aligned native memory, as O_DIRECT and the real backends need.</summary>
internal sealed unsafe class AlignedBuffer : IDisposable
{
    public AlignedBuffer(int length)
    {
        Length = length;
        Address = (nint)NativeMemory.AlignedAlloc((nuint)length, 4096);
        Span.Clear();
    }

    public nint Address { get; private set; }

    public int Length { get; }

    public Span<byte> Span => new((void*)Address, Length);

    public void Dispose()
    {
        if (Address != 0) NativeMemory.AlignedFree((void*)Address);
        Address = 0;
    }
}
