#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# libgmem's ABI surface, checked on an existing build tree (builds nothing):
#  (a) the dynamic symbols libgmem.so defines are exactly the functions
#      declared in include/gmem/gmem.h and exactly the symbols listed in the
#      version nodes of lib/libgmem.map (LIBGMEM_2.0, LIBGMEM_2.1, ...),
#      each a function whose default version is the node that lists it,
#      and the .so defines exactly those nodes;
#  (b) every global symbol libgmem.a defines starts with gmem_;
#  (c) every exported function has a page man/man3/NAME.3 (a ".so" stub
#      must point at a page that exists and names the function), and every
#      page lints cleanly with groff -man -ww (skipped without groff).
#
#   BUILD=build tests/test_symbols.sh      (as tests/run-tests.sh runs it)
#   tests/test_symbols.sh build
#
# Exit 0 pass, 1 fail (one line per difference), 77 skip.
set -u
build=${1:-${BUILD:-build}}
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src" || exit 1

header=include/gmem/gmem.h
map=lib/libgmem.map
# The shared object of the header's version (a build tree may keep older).
so=$build/libgmem.so.$(awk '/^#define GMEM_VERSION_(MAJOR|MINOR|PATCH) / { print $3 }' "$header" | paste -sd.)
[ -f "$so" ] || so=
ar=$build/libgmem.a
CC=${CC:-gcc}

for tool in nm objdump "$CC"; do
	command -v "$tool" >/dev/null || { echo "skipped: $tool is not installed"; exit 77; }
done
[ -n "$so" ] || { echo "FAIL: no $build/libgmem.so.X.Y.Z (run make BUILD=$build lib)"; exit 1; }
[ -f "$ar" ] || { echo "FAIL: no $ar (run make BUILD=$build lib)"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# Functions the header declares: after preprocessing (no comments, no
# macros), every "gmem_xxx (" is a declaration; function-pointer members
# and typedefs read "(*name)" and do not match.
"$CC" -E -P -D_GNU_SOURCE "$header" >"$tmp/h.i" || { echo "FAIL: cannot preprocess $header"; exit 1; }
grep -oE '\bgmem_[a-z0-9_]+[[:space:]]*\(' "$tmp/h.i" | sed 's/[[:space:]]*($//' |
	sort -u >"$tmp/header"

# The map's nodes and their names: "SYMBOL NODE" for each name between a
# node's "global:" and its "local:" or closing brace.
awk '
	/^LIBGMEM_[0-9.]+[[:space:]]*\{/ { node = $1; sub(/\{.*/, "", node); in_global = 0; next }
	node != "" && /global:/ { in_global = 1; next }
	node != "" && /local:/ { in_global = 0; next }
	node != "" && /^\}/ { node = ""; in_global = 0; next }
	in_global { gsub(/[[:space:];]/, ""); if ($0 != "") print $0, node }
' "$map" | sort >"$tmp/map.nodes"
cut -d' ' -f1 "$tmp/map.nodes" >"$tmp/map"
cut -d' ' -f2 "$tmp/map.nodes" | sort -u >"$tmp/nodes"
node="lib/libgmem.map's nodes"
sort -u "$tmp/map" | cmp -s - "$tmp/map" || bad "$map lists a symbol twice: $(uniq -d "$tmp/map" | tr '\n' ' ')"

# What the shared object defines.  The version node itself shows up as an
# absolute symbol (type A) named after the node; it is not a function.
nm -D --defined-only "$so" >"$tmp/nm.so" || { echo "FAIL: nm -D $so"; exit 1; }
awk '$2 != "A" { n = $3; sub(/@.*/, "", n); print n }' "$tmp/nm.so" | sort -u >"$tmp/so"
awk '$2 == "A" { print $3 }' "$tmp/nm.so" | sort -u >"$tmp/so.nodes"
cmp -s "$tmp/so.nodes" "$tmp/nodes" ||
	bad "$so defines version nodes $(tr '\n' ' ' <"$tmp/so.nodes")but the map has $(tr '\n' ' ' <"$tmp/nodes")"

while read -r l; do
	bad "$so exports a non-function: $l"
done < <(awk '$2 != "A" && $2 != "T" { print $3 " (type " $2 ")" }' "$tmp/nm.so")

diff_lists() {	# what-a file-a what-b file-b
	local s
	while read -r s; do bad "$s is in $1 but not in $3"; done < <(comm -23 "$2" "$4")
	while read -r s; do bad "$s is in $3 but not in $1"; done < <(comm -13 "$2" "$4")
}
[ -s "$tmp/header" ] || bad "no function declarations found in $header"
diff_lists "$header" "$tmp/header" "$map ($node)" "$tmp/map"
diff_lists "$header" "$tmp/header" "the dynamic symbols of $so" "$tmp/so"

# Versions: objdump -T prints "... DF .text SIZE  VERSION NAME"; a hidden
# (non-default) version would read "(VERSION)".
objdump -T "$so" | awk '$4 != "*UND*" && $NF ~ /^gmem_/ { print $NF, $(NF-1) }' >"$tmp/versions"
while read -r sym ver; do
	want=$(awk -v s="$sym" '$1 == s { print $2 }' "$tmp/map.nodes")
	[ "$ver" = "$want" ] || bad "$sym has version $ver in $so, expected ${want:-none (not in the map)}"
done <"$tmp/versions"
while read -r sym; do
	grep -q "^$sym " "$tmp/versions" || bad "$sym has no version in objdump -T $so"
done <"$tmp/so"
while read -r s; do
	bad "$s is not the default version (@@NODE) in $so"
done < <(awk '$2 != "A" && $3 !~ /@@/ { print $3 }' "$tmp/nm.so")

# (b) the static library: only gmem_ names.  ASan adds an ODR indicator
# "__odr_asan.NAME" for each global variable NAME; those of gmem_ names are
# fine.
while read -r s; do
	bad "$ar defines the global symbol $s (every global must start with gmem_)"
done < <(nm -g --defined-only "$ar" 2>/dev/null | awk 'NF == 3 { print $3 }' | sort -u |
	grep -vE '^(gmem_|__odr_asan\.gmem_)')

# (c) man pages.  Declarations are compared as statements with whitespace
# collapsed: each page's SYNOPSIS must hold the header's prototype exactly.
flatten() { tr '\n\t' '  ' | tr -s ' ' | sed -e 's/;/;\n/g' -e 's/}/}\n/g' |
	sed -e 's/^ //' -e 's/ $//' -e 's/( /(/g' -e 's/ )/)/g'; }
# From the preprocessed header (comments and macros gone; stdbool.h's bool
# reads _Bool there, the header says bool).
sed 's/\b_Bool\b/bool/g' "$tmp/h.i" | flatten | grep -E '^[a-z].*\bgmem_[a-z0-9_]+\(' >"$tmp/decls"
[ -f man/man7/libgmem.7 ] || bad "man/man7/libgmem.7 is missing"
while read -r sym; do
	page=man/man3/$sym.3
	if [ ! -f "$page" ]; then bad "$sym has no man page $page"; continue; fi
	target=$(sed -n 's/^\.so[[:space:]]\{1,\}\(.*\)$/\1/p' "$page" | head -n 1)
	if [ -n "$target" ]; then
		[ -f "man/$target" ] || { bad "$page is a .so link to man/$target, which does not exist"; continue; }
		page=man/$target
	fi
	grep -qE "(^|[^a-z0-9_])$sym([^a-z0-9_]|\$)" "$page" || bad "$page does not mention $sym"
	decl=$(grep -E "(^|[^a-z0-9_])$sym\\(" "$tmp/decls" | head -n 1)
	sed -n '/^\.SH SYNOPSIS/,/^\.SH DESCRIPTION/p' "$page" | grep -v '^\.' |
		sed -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' -e 's/\\&//g' -e 's/\\e/\\/g' |
		flatten >"$tmp/syn"
	grep -qxF -- "$decl" "$tmp/syn" ||
		bad "$page: the SYNOPSIS lacks the header's prototype \"$decl\""
done <"$tmp/so"
for page in man/man3/*.3; do
	[ -e "$page" ] || continue
	sym=$(basename "$page" .3)
	grep -qx "$sym" "$tmp/so" || bad "$page documents $sym, which libgmem.so does not export"
done

if command -v groff >/dev/null; then
	for page in man/man3/*.3 man/man7/*.7; do
		[ -e "$page" ] || continue
		grep -q '^\.so ' "$page" && continue
		out=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
		[ -z "$out" ] || bad "groff warns about $page: $(echo "$out" | head -n 1)"
	done
else
	echo "groff is not installed: man page lint skipped"
fi

n=$(wc -l <"$tmp/so")
if [ "$fail" = 0 ]; then
	echo "ok: $n functions, header = $map ($node) = dynamic symbols of $(basename "$so"), libgmem.a all gmem_, man pages complete"
	exit 0
fi
exit 1
