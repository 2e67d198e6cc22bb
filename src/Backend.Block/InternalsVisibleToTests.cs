using System.Runtime.CompilerServices;

// The tests replace the I/O engine (a hung image, a filesystem without discard) through an internal option.
[assembly: InternalsVisibleTo("Backend.Block.Tests")]
// The migration tests play a source host whose image hangs through the same option.
[assembly: InternalsVisibleTo("Migration.Tests")]
// The fuzz harness (fuzz/Fuzz.Targets) drives one never-started queue synchronously, on an in-memory image engine.
[assembly: InternalsVisibleTo("Fuzz.Targets")]
