using System.Runtime.CompilerServices;

// Tests look at how many waits each watch subscription has outstanding (WatchRouter.MostWaitsOnOneSubscription).
[assembly: InternalsVisibleTo("Xenbus.Tests")]
[assembly: InternalsVisibleTo("Backend.Net.Tests")]
[assembly: InternalsVisibleTo("Hostile.Tests")]
[assembly: InternalsVisibleTo("Service.Tests")]
