// Memory and fd bounds are measured on the whole process: another test class running at the same
// time would pollute them (and the machine has 2 shared cores anyway).
[assembly: CollectionBehavior(DisableTestParallelization = true)]
