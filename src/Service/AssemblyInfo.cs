// dom0 is Linux: unix sockets, file modes and signals are used freely.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
