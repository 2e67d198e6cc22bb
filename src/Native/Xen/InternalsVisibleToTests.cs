using System.Runtime.CompilerServices;

// The tests drive the mapper and event channels through fake libraries (IXenGnttab, IXenEvtchn)
// and inject device paths, since no machine but a dom0 has /dev/xen.
[assembly: InternalsVisibleTo("Native.Tests")]
