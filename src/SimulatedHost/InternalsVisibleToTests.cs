using System.Runtime.CompilerServices;

// The tests leave a grant's hypervisor-private lock held by a dead process, as a SIGKILL inside it does.
[assembly: InternalsVisibleTo("SimulatedHost.Tests")]
