#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# gmvm's RAM layouts and probe cache from the command line.
#
# Without KVM:
#  - --memory-layout flat|pc accepted (the image is then what fails), any
#    other value, none, or an empty one a usage error: 125, one line;
#  - --no-probe-cache accepted by run and caps, refused with a value;
#  - run --help, caps --help and help describe both, and the cache file;
#  - the loader against the pc layout (it runs before KVM is touched): a
#    segment in the hole, straddling either end of it or the top of RAM is
#    refused naming the RAM ranges; the same address with the flat layout,
#    or above the hole, passes the RAM check (the image then fails on its
#    entry point, which the test moved away);
#  - caps without KVM: 125 and one line, and no cache directory made.
# With KVM (skipped here otherwise):
#  - caps: the probe cache misses, then hits, at
#    $XDG_CACHE_HOME/gmvm/probes (mode 600); a corrupt file is a miss and
#    is rewritten; --no-probe-cache says off and leaves the file alone;
#    --json says the same; without HOME and XDG_CACHE_HOME there is no
#    cache and caps still answers;
#  - gmvm run --memory-layout pc: --stats shows the RAM bytes (not the top
#    of RAM) and two regions.
#
# Run by tests/run-tests.sh with BUILD set and cwd = the repository root.
# Exit 0 pass, 1 fail, 77 skip.
set -u
. "$(dirname "$0")/lib/test_util.sh"
[ -x "$GMVM" ] || { echo "no $GMVM: build gmvm first"; exit 1; }

# ---------------------------------------------------------------- options
x=/nonexistent.elf
expect 125 "--memory-layout: 'bogus' is neither 'flat' nor 'pc'" -- run --memory-layout bogus $x
expect 125 "--memory-layout: 'PC' is neither" -- run --memory-layout=PC $x
expect 125 "--memory-layout: '' is neither" -- run --memory-layout= $x
expect 125 "--memory-layout needs a value" -- run --memory-layout
expect 125 "--no-probe-cache takes no value" -- run --no-probe-cache=yes $x
expect 125 "nonexistent.elf: cannot open" -- run --memory-layout pc --memory 64G $x
expect 125 "nonexistent.elf: cannot open" -- run --memory-layout=flat --no-probe-cache $x
expect 125 "nonexistent.elf: cannot open" -- run --memory 5G --memory-layout pc --memory-layout flat $x
expect 125 "more than the maximum" -- run --memory-layout pc --memory 65G $x
expect 125 "unknown argument '--bogus'" -- caps --no-probe-cache --json --bogus
expect 125 "unknown argument '--memory-layout'" -- caps --memory-layout

# ---------------------------------------------------------------- help
expect 0 "" -- run --help
for w in '--memory-layout KIND' 'pc: \[0, 3G\)' '--no-probe-cache' 'gmvm/probes'; do
	grep -Eq -- "$w" "$tmp/out" || fail "gmvm run --help lacks /$w/"
done
expect 0 "" -- caps --help
for w in '--no-probe-cache' 'XDG_CACHE_HOME/gmvm/probes' 'probe cache:' 'delete the file'; do
	grep -q -- "$w" "$tmp/out" || fail "gmvm caps --help lacks '$w'"
done
expect 0 "" -- help
grep -q -- 'caps \[--json\] \[--no-probe-cache\]' "$tmp/out" || fail "gmvm help lacks caps --no-probe-cache"

# ---------------------------------------------------------------- loader
# One PT_LOAD segment whose code is the entry; the test moves the segment.
cat >"$tmp/tiny.S" <<'EOF'
	.section .text.entry, "ax"
	.globl	_start
_start:
	xorl	%eax, %eax
	outl	%eax, $0xf4
	.fill	256, 1, 0x90
EOF
build_guest "$tmp/tiny.S" "$tmp/tiny.elf"
phoff=$(peek "$tmp/tiny.elf" 32 8)
[ "$(peek "$tmp/tiny.elf" "$phoff" 4)" = 1 ] || { echo "test guest: program header 0 is not PT_LOAD"; exit 1; }

# moved NAME PADDR PATTERN RUN-OPTIONS...: the image with segment 0 at
# PADDR is refused (125) with "NAME: PATTERN".
moved() {
	local name=$1 paddr=$2 pat=$3
	shift 3
	cp "$tmp/tiny.elf" "$tmp/$name"
	poke "$tmp/$name" $((phoff + 24)) 8 "$paddr"
	expect 125 "$name: $pat" -- run "$@" "$tmp/$name"
}
pc="--memory 5G --memory-layout pc"
ram='\[1 MiB, 0xc0000000\) \[0x100000000, 0x180000000\)'
moved hole 0xc0000000 "segment 0 \\[0xc0000000, .* is outside guest RAM $ram" $pc
moved hole_mid 0xe0000000 "segment 0 .* is outside guest RAM $ram" $pc
moved below_hole 0xbfffff80 "segment 0 \\[0xbfffff80, 0xc0000.* is outside guest RAM" $pc
moved into_high 0xffffff80 "segment 0 .* is outside guest RAM $ram" $pc
moved past_top 0x17fffff80 "segment 0 .* is outside guest RAM $ram" $pc
moved past_top_2g 0x7fffff80 "segment 0 .* is outside guest RAM \\[1 MiB, 0x80000000\\)" --memory 2G --memory-layout pc
# In RAM: the range check passes; the entry (still at 1 MiB) is not there.
moved flat_3g 0xc0000000 "entry point 0x100000 is not inside" --memory 5G
moved above_hole 0x100000000 "entry point 0x100000 is not inside" $pc
moved high_end 0x17ffff000 "entry point 0x100000 is not inside" $pc

# ---------------------------------------------------------------- caps, no KVM
if [ ! -e /dev/kvm ] || [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	XDG_CACHE_HOME=$tmp/xdg expect 125 "/dev/kvm" -- caps
	XDG_CACHE_HOME=$tmp/xdg expect 125 "/dev/kvm" -- caps --json --no-probe-cache
	[ ! -e "$tmp/xdg" ] || fail "caps without KVM made a cache directory"
fi

# ---------------------------------------------------------------- with KVM
skip_without_kvm

export XDG_CACHE_HOME=$tmp/xdg
cache=$tmp/xdg/gmvm/probes
expect 0 "" -- caps
grep -q "^probe cache: *miss: $cache (no file yet; probed and written)" "$tmp/out" ||
	fail "first caps: $(grep '^probe cache' "$tmp/out")"
[ "$(stat -c %a "$cache" 2>/dev/null)" = 600 ] || fail "cache file mode: $(ls -l "$cache")"
expect 0 "" -- caps
grep -q "^probe cache: *hit: $cache\$" "$tmp/out" || fail "second caps: $(grep '^probe cache' "$tmp/out")"
layout1=$(grep '^layout:' "$tmp/out")
expect 0 "" -- caps --json
grep -q "\"probe_cache\": {\"status\": \"hit\", \"path\": \"$cache\"" "$tmp/out" ||
	fail "caps --json: $(head -c 400 "$tmp/out")"
cp "$cache" "$tmp/saved"
expect 0 "" -- caps --no-probe-cache
grep -q "^probe cache: *off (--no-probe-cache)" "$tmp/out" || fail "--no-probe-cache: $(grep '^probe cache' "$tmp/out")"
[ "$(grep '^layout:' "$tmp/out")" = "$layout1" ] || fail "the probe now and from the cache disagree"
cmp -s "$cache" "$tmp/saved" || fail "--no-probe-cache changed the cache file"
printf 'not a cache file' >"$cache"
expect 0 "" -- caps
grep -q "^probe cache: *miss: $cache (not a valid cache file of ours; probed and written)" "$tmp/out" ||
	fail "caps over a corrupt file: $(grep '^probe cache' "$tmp/out")"
expect 0 "" -- caps
grep -q "^probe cache: *hit" "$tmp/out" || fail "caps after a rewrite: $(grep '^probe cache' "$tmp/out")"
env -u HOME -u XDG_CACHE_HOME "$GMVM" caps >"$tmp/out" 2>"$tmp/err" </dev/null ||
	fail "caps without HOME: $(cat "$tmp/err")"
grep -q "^probe cache: *off: no cache directory" "$tmp/out" || fail "caps without HOME: $(grep '^probe cache' "$tmp/out")"

# A pc run prints RAM bytes, not the top of RAM.
expect 0 "" -- run --timeout 120 $pc --stats "$BUILD/guest/regions.elf" expect=pc
grep -q '^run: .*, 5120.0 MiB RAM (pc layout, regions 2)' "$tmp/out" ||
	fail "--stats of a pc run: $(grep '^run:' "$tmp/out")"
expect 0 "" -- run --timeout 120 --no-probe-cache --stats=json "$BUILD/guest/regions.elf" expect=flat
grep -q '"ram_size": 268435456, "layout": "flat", "regions": 1' "$tmp/out" ||
	fail "--stats=json of a flat run: $(head -c 300 "$tmp/out")"

finish
