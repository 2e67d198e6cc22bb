using System.Text;
using Tmds.Linux;
using XenBackends.Native.Linux;

namespace XenBackends.Native.Tap;

/// <summary>The two halves of every interface ioctl (SIOC*): a socket to send it through and a struct ifreq naming the interface.</summary>
internal static unsafe class InterfaceRequest
{
    // Interface ioctls go through any socket of the namespace the interface lives in; a tap fd cannot take them.
    public static SafeFd ControlSocket()
    {
        int fd = LibC.socket(LibC.AF_INET, LibC.SOCK_DGRAM | LibC.SOCK_CLOEXEC, 0);
        if (fd < 0)
            throw LinuxCallException.FromErrno("socket(AF_INET)");
        return new SafeFd(fd);
    }

    /// <summary>Zeroes the ifreq at <paramref name="ifr"/> and writes <paramref name="name"/> into ifr_name, NUL-terminated.</summary>
    public static void Fill(byte* ifr, string name)
    {
        new Span<byte>(ifr, TapConstants.IfReqSize).Clear();
        Encoding.ASCII.GetBytes(name, new Span<byte>(ifr, TapConstants.IfNameSize - 1));
    }
}
