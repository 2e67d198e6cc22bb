using SharpFuzz;
using XenBackends.Fuzz;

// Fuzz.Runner TARGET            serve afl-fuzz (SharpFuzz fork server, persistent); input on stdin
// Fuzz.Runner seeds DIR         write every target's seed corpus to DIR/TARGET/
// Fuzz.Runner replay TARGET F.. run inputs once each; exit 1 if any breaks an invariant
// Fuzz.Runner list              the target names
if (args.Length == 0)
{
    Console.Error.WriteLine("usage: Fuzz.Runner TARGET | seeds DIR | replay TARGET FILE... | list");
    return 2;
}
switch (args[0])
{
    case "list":
        foreach (string t in FuzzTarget.Names)
            Console.WriteLine(t);
        return 0;
    case "seeds" when args.Length == 2:
        foreach (FuzzTarget t in FuzzTarget.All)
        {
            string dir = Path.Combine(args[1], t.Name);
            Directory.CreateDirectory(dir);
            foreach (var (name, data) in t.Seeds())
                File.WriteAllBytes(Path.Combine(dir, "seed-" + name), data);
        }
        return 0;
    case "replay" when args.Length >= 3:
    {
        FuzzTarget target = FuzzTarget.Get(args[1]);
        int failed = 0;
        foreach (string file in args.Skip(2))
        {
            try
            {
                target.Run(File.ReadAllBytes(file));
                Console.WriteLine($"ok   {file}");
            }
            catch (Exception e)
            {
                failed++;
                Console.WriteLine($"FAIL {file}: {e}");
            }
        }
        return failed == 0 ? 0 : 1;
    }
    default:
    {
        string name = args[0];
        if (!FuzzTarget.Names.Contains(name))
        {
            Console.Error.WriteLine($"no fuzz target '{name}'; targets: {string.Join(", ", FuzzTarget.Names)}");
            return 2;
        }
        // Persistent mode: one process serves every input afl-fuzz sends; an unhandled exception
        // (an InvariantViolation or anything the product threw) is reported to afl as a crash. The
        // target is built inside the first run: instrumented code must not run before SharpFuzz has
        // attached afl's coverage map.
        Fuzzer.Run(stream =>
        {
            FuzzTarget target = FuzzTarget.Get(name);
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            target.Run(buffer.ToArray());
        });
        return 0;
    }
}
