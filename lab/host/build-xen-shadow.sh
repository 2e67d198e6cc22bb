#!/bin/bash
# Builds Debian's Xen 4.17 hypervisor with shadow paging (CONFIG_SHADOW_PAGING=y) and prints
# the path of the plain multiboot ELF, as fetch-boot.sh leaves Debian's own.
#
# Why: `xl migrate` is always live, and live migration of a PV guest tracks the pages it
# dirties with log-dirty mode, which for PV exists only as part of shadow paging. Debian's
# current hypervisor build has it off (its /boot/xen-4.17-amd64.config: "# CONFIG_SHADOW_PAGING
# is not set"), so there every `xl migrate` of a PV guest fails at once with "Failed to enable
# logdirty: 95,22,0" (EOPNOTSUPP), before any device is touched. `xl save` is not live and
# works without it. Only scenarios that migrate ask for this build (a "# lab-xen: shadow" line).
#
# The source is the Debian source package of the same release as the dom0 tools (xen-utils-4.17
# from the mirror's bookworm/main), checked against the .dsc's SHA-256 sums, with Debian's
# patches and Debian's kconfig (debian/xen-kconfig, as debian/rules does) plus that one option;
# nothing else differs from Debian's build. Cached by version under lab/cache/xen-shadow/.
set -euo pipefail
. "$(dirname "$0")/common.sh"

# The tools' version: the newest xen-utils-4.17 the mirror's main suite (not -security) offers,
# which is what debootstrap put into dom0.
mirror=$(lab_mirror)
ver=$(apt-cache madison xen-utils-4.17 | awk -F' *[|] *' -v m="$mirror" '$3 ~ m" " && $3 ~ /bookworm\/main/ {print $2; exit}')
[ -n "$ver" ] || lab_die "apt knows no xen-utils-4.17 from $mirror bookworm/main"
key=$(printf '%s\n%s\n' "$ver" "$(sha256sum "$0" | cut -c1-64)" | sha256sum | cut -c1-16)
out=$LAB_CACHE/xen-shadow/$key
if [ -f "$out/.done" ]; then lab_log "cached shadow-paging Xen $ver reused"; echo "$out/xen"; exit 0; fi

need=()
for t in gcc make flex bison python3 xz; do command -v "$t" >/dev/null || need+=("$t"); done
[ ${#need[@]} -eq 0 ] || {
  pkgs=$(printf '%s\n' "${need[@]}" | sed 's/^xz$/xz-utils/' | tr '\n' ' ')
  lab_log "installing $pkgs"
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $pkgs >/dev/null
}

lab_log "building Xen $ver with shadow paging (a few minutes)"
rm -rf "$out"; mkdir -p "$out/dl" "$out/src"
pool=$mirror/pool/main/x/xen
dsc=xen_${ver#*:}.dsc
curl -sSfL -o "$out/dl/$dsc" "$pool/$dsc" || lab_die "cannot download $pool/$dsc"
# Checksums-Sha256 lines: " SUM SIZE FILE".
files=$(sed -n '/^Checksums-Sha256:/,/^[^ ]/p' "$out/dl/$dsc" | awk 'NF == 3 {print $3}')
[ -n "$files" ] || lab_die "$dsc lists no files"
for f in $files; do
  curl -sSfL -o "$out/dl/$f" "$pool/$f" || lab_die "cannot download $pool/$f"
done
(cd "$out/dl" && sed -n '/^Checksums-Sha256:/,/^[^ ]/p' "$dsc" | awk 'NF == 3 {print $1 "  " $3}' | sha256sum -c --quiet) \
  || lab_die "the Xen source files do not match $dsc"
tar -xf "$out"/dl/*.orig.tar.* -C "$out/src" --strip-components=1
tar -xf "$out"/dl/*.debian.tar.* -C "$out/src"
(cd "$out/src" && grep -vE '^(#|$)' debian/patches/series | while read -r p; do patch -p1 -s < "debian/patches/$p"; done) \
  || lab_die "Debian's patches do not apply"
cp "$out/src/debian/xen-kconfig" "$out/src/xen/.config"
echo CONFIG_SHADOW_PAGING=y >> "$out/src/xen/.config"
make -C "$out/src/xen" olddefconfig XEN_TARGET_ARCH=x86_64 > "$out/build.log" 2>&1 || { tail -n 20 "$out/build.log" >&2; lab_die "xen olddefconfig failed"; }
grep -qx CONFIG_SHADOW_PAGING=y "$out/src/xen/.config" || lab_die "shadow paging did not stay on in the kconfig"
nice make -C "$out/src/xen" -j"$(nproc)" XEN_TARGET_ARCH=x86_64 >> "$out/build.log" 2>&1 || { tail -n 30 "$out/build.log" >&2; lab_die "the Xen build failed (log: $out/build.log)"; }
cp "$out/src/xen/xen" "$out/xen"
cp "$out/src/xen/.config" "$out/xen.config"
[ "$(head -c 4 "$out/xen" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] || lab_die "the built Xen is not an ELF file"
rm -rf "$out/src" "$out/dl"
touch "$out/.done"
lab_log "shadow-paging Xen $ver ready"
echo "$out/xen"
