using System.Runtime.CompilerServices;

// The credit arithmetic is checked exactly with a synthetic clock, without a queue around it.
[assembly: InternalsVisibleTo("Backend.Net.Tests")]

// The benchmark drives one NetQueue directly, with a null frame device in place of the tap.
[assembly: InternalsVisibleTo("Net.Bench")]

// The fuzz harness (fuzz/Fuzz.Targets) drives one never-started NetQueue's guest TX synchronously.
[assembly: InternalsVisibleTo("Fuzz.Targets")]
