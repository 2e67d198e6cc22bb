using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using XenBackends.TestSupport;

namespace XenBackends.Native.Tests.Xen;

/// <summary>
/// Proves <see cref="GrantCopySegment"/> against Debian's own xengnttab.h: gcc compiles a program
/// that prints the C layout, and every number compared comes from that run, none from this file.
/// </summary>
public class GrantCopySegmentHeaderTests
{
    private const string InstallHint = "install gcc and the Xen headers: apt-get install gcc libxen-dev";

    // C member designator -> the C# field that must sit on top of it.
    private static readonly (string C, string CSharp, bool Integer)[] Fields =
    [
        ("source.virt", nameof(GrantCopySegment.SourceVirt), false),
        ("source.foreign.ref", nameof(GrantCopySegment.SourceRef), true),
        ("source.foreign.offset", nameof(GrantCopySegment.SourceOffset), true),
        ("source.foreign.domid", nameof(GrantCopySegment.SourceDomid), true),
        ("dest.virt", nameof(GrantCopySegment.DestVirt), false),
        ("dest.foreign.ref", nameof(GrantCopySegment.DestRef), true),
        ("dest.foreign.offset", nameof(GrantCopySegment.DestOffset), true),
        ("dest.foreign.domid", nameof(GrantCopySegment.DestDomid), true),
        ("len", nameof(GrantCopySegment.Length), true),
        ("flags", nameof(GrantCopySegment.Flags), true),
        ("status", nameof(GrantCopySegment.Status), true),
    ];

    [Fact]
    public void Every_field_matches_xengnttab_grant_copy_segment_t_as_gcc_lays_it_out()
    {
        var c = ReadCLayout();

        Assert.Equal(c["sizeof"].Offset, Unsafe.SizeOf<GrantCopySegment>());
        Assert.Equal(c["sizeof"].Offset, Marshal.SizeOf<GrantCopySegment>());
        foreach (var (cName, csName, integer) in Fields)
        {
            var field = typeof(GrantCopySegment).GetField(csName)!;
            var (offset, size, signed) = c[cName];
            Assert.True(offset == (int)Marshal.OffsetOf<GrantCopySegment>(csName),
                $"{cName} is at {offset} in C but {csName} at {Marshal.OffsetOf<GrantCopySegment>(csName)}");
            Assert.True(size == Marshal.SizeOf(field.FieldType),
                $"{cName} is {size} bytes in C but {csName} is {Marshal.SizeOf(field.FieldType)}");
            if (integer)
                Assert.True(signed == IsSigned(field.FieldType), $"{cName} and {csName} differ in signedness");
        }
    }

    private static bool IsSigned(Type t) => t == typeof(short) || t == typeof(int) || t == typeof(long) || t == typeof(sbyte);

    private static Dictionary<string, (int Offset, int Size, bool Signed)> ReadCLayout()
    {
        string dir = Directory.CreateTempSubdirectory("gntcopy-layout-").FullName;
        try
        {
            string source = Path.Join(dir, "layout.c");
            string program = Path.Join(dir, "layout");
            File.WriteAllText(source, CProgram());
            Run("gcc", ["-std=gnu11", "-Wall", "-Werror", "-o", program, source], "compiling against /usr/include/xengnttab.h");
            string output = Run(program, [], "running the layout probe");

            var layout = new Dictionary<string, (int, int, bool)>();
            foreach (string line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                string[] parts = line.Split(' ');
                layout[parts[0]] = (int.Parse(parts[1]), int.Parse(parts[2]), parts[3] == "1");
            }
            return layout;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string CProgram()
    {
        var lines = new List<string>
        {
            "#include <stdio.h>",
            "#include <stddef.h>",
            "#include <xengnttab.h>",
            "typedef xengnttab_grant_copy_segment_t seg;",
            "int main(void) {",
            "  seg s = {0}; (void)s;",
            "  printf(\"sizeof %zu 0 0\\n\", sizeof(seg));",
        };
        foreach (var (cName, _, integer) in Fields)
        {
            string signed = integer ? $"((__typeof__(s.{cName}))-1 < 0)" : "0";
            lines.Add($"  printf(\"{cName} %zu %zu %d\\n\", offsetof(seg, {cName}), sizeof(s.{cName}), (int){signed});");
        }
        lines.Add("  return 0;");
        lines.Add("}");
        return string.Join('\n', lines) + "\n";
    }

    private static string Run(string file, string[] args, string doing) => ChildProcess.Checked(file, args, doing, InstallHint);
}
