using Xunit;

// The targets check that one input leaves no descriptor open by counting the process's fds
// before and after; a test running beside it opens and closes its own and breaks the count.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
