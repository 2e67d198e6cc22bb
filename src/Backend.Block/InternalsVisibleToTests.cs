using System.Runtime.CompilerServices;

// The tests replace the I/O engine (a hung image, a filesystem without discard) through an internal option.
[assembly: InternalsVisibleTo("Backend.Block.Tests")]
// The migration tests play a source host whose image hangs through the same option.
[assembly: InternalsVisibleTo("Migration.Tests")]
