using System.Runtime.CompilerServices;

// The tests replace the I/O engine (a hung image, a filesystem without discard) through an internal option.
[assembly: InternalsVisibleTo("Backend.Block.Tests")]
