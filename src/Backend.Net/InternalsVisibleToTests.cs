using System.Runtime.CompilerServices;

// The credit arithmetic is checked exactly with a synthetic clock, without a queue around it.
[assembly: InternalsVisibleTo("Backend.Net.Tests")]
