// The targets' descriptor invariant counts this process's open descriptors before and after one
// input (/proc/self/fd): a test class running beside it opens and closes its own, which then
// look like a leak ("6 descriptors left open by one input", seen in scripts/test). One at a time.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
