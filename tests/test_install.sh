#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# make install of an existing build tree into a scratch DESTDIR (nothing is
# built: INSTALL_ONLY=1), then, against the INSTALLED tree only:
#  - the files, the soname links and the SONAME of the shared object;
#  - pkg-config finds libgmem (--define-prefix into DESTDIR), its Version is
#    the running library's gmem_version(), --static adds -pthread;
#  - the header compiles on its own (C11, and C++ if a compiler is there);
#  - a program links against libgmem.a (static) and libgmem.so;
#  - examples/minimal_vmm.c builds with examples/Makefile and runs: exit 0
#    or 77 (skipped: no usable KVM) both pass this test, and the line
#    printed says which;
#  - make uninstall leaves nothing behind.
#
#   BUILD=build tests/test_install.sh      (as tests/run-tests.sh runs it)
#
# Exit 0 pass, 1 fail, 77 skip (pkg-config missing: Debian package pkgconf).
set -u
build=${1:-${BUILD:-build}}
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src" || exit 1
case "$build" in /*) ;; *) build=$src/$build ;; esac
CC=${CC:-cc}

fail() { echo "FAIL: $*"; exit 1; }
# The shared object of the header's version (a build tree may keep older).
so=$build/libgmem.so.$(awk '/^#define GMEM_VERSION_(MAJOR|MINOR|PATCH) / { print $3 }' include/gmem/gmem.h | paste -sd.)
[ -f "$so" ] && [ -f "$build/libgmem.a" ] ||
	fail "no libgmem.so.X.Y.Z or libgmem.a in $build (run make BUILD=$build lib)"
real=$(basename "$so")
command -v make >/dev/null || { echo "skipped: make is not installed"; exit 77; }
command -v "$CC" >/dev/null || { echo "skipped: $CC is not installed"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
prefix=/usr
lib=$root$prefix/lib

# A make started from make check must not inherit its flags or variables.
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$src" BUILD="$build" "$@"; }

mk INSTALL_ONLY=1 install DESTDIR="$root" PREFIX="$prefix" >"$tmp/install.log" 2>&1 ||
	fail "make install: $(tail -n 1 "$tmp/install.log")"

# Files and links.
[ -f "$root$prefix/include/gmem/gmem.h" ] || fail "include/gmem/gmem.h not installed"
cmp -s include/gmem/gmem.h "$root$prefix/include/gmem/gmem.h" || fail "installed gmem.h differs"
[ -f "$lib/libgmem.a" ] && [ ! -L "$lib/libgmem.a" ] || fail "libgmem.a not installed"
cmp -s "$build/libgmem.a" "$lib/libgmem.a" || fail "installed libgmem.a is not $build/libgmem.a"
[ -f "$lib/$real" ] && [ ! -L "$lib/$real" ] || fail "$real not installed as a file"
soname=$(readelf -d "$lib/$real" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ -n "$soname" ] || fail "$real has no SONAME"
case "$real" in "$soname".*) ;; *) fail "$real has SONAME $soname, not a prefix of its name" ;; esac
for l in "$soname" libgmem.so; do
	[ -L "$lib/$l" ] || fail "$l is not a symlink"
	[ "$(readlink "$lib/$l")" = "$real" ] || fail "$l points to $(readlink "$lib/$l"), not $real"
done
[ -f "$lib/pkgconfig/libgmem.pc" ] || fail "pkgconfig/libgmem.pc not installed"
n_src=$(ls man/man3/*.3 | wc -l)
n_dst=$(ls "$root$prefix/share/man/man3/"*.3 2>/dev/null | wc -l)
[ "$n_src" = "$n_dst" ] || fail "$n_dst of $n_src man3 pages installed"
[ -f "$root$prefix/share/man/man7/libgmem.7" ] || fail "libgmem.7 not installed"
echo "installed: $real ($soname, libgmem.so), libgmem.a, gmem.h, libgmem.pc, $n_dst man3 pages, libgmem.7"

# A sanitised build (make check) needs the same sanitiser in what links it.
san=""
needed=$(readelf -d "$lib/$real" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p')
case "$needed" in *libasan*) san="$san,address" ;; esac
case "$needed" in *libubsan*) san="$san,undefined" ;; esac
case "$needed" in *libtsan*) san="$san,thread" ;; esac
sanflags=${san:+-fsanitize=${san#,}}
[ -z "$sanflags" ] || echo "the library is sanitised: building with $sanflags"

if ! command -v pkg-config >/dev/null; then
	echo "skipped: pkg-config is not installed (Debian: apt-get install pkgconf); the install itself is fine"
	exit 77
fi
export PKG_CONFIG_LIBDIR=$lib/pkgconfig PKG_CONFIG_PATH=
pc="pkg-config --define-prefix"
cflags=$($pc --cflags libgmem) || fail "pkg-config --cflags libgmem"
libs=$($pc --libs libgmem) || fail "pkg-config --libs libgmem"
static_libs=$($pc --static --libs libgmem) || fail "pkg-config --static --libs libgmem"
pc_version=$($pc --modversion libgmem) || fail "pkg-config --modversion libgmem"
case "$cflags" in *"-I$root$prefix/include"*) ;; *) fail "pkg-config --cflags gives '$cflags', not DESTDIR's include" ;; esac
case "$libs" in *"-L$lib "*|*"-L$lib") ;; *) fail "pkg-config --libs gives '$libs', not DESTDIR's lib" ;; esac
case " $static_libs " in *" -pthread "*) ;; *) fail "pkg-config --static --libs lacks -pthread: $static_libs" ;; esac
echo "pkg-config: $cflags $libs (static: $static_libs), version $pc_version"

# The header on its own.
printf '#include <gmem/gmem.h>\n' >"$tmp/h.c"
# shellcheck disable=SC2086
$CC -std=c11 -Wall -Wextra -Werror -pedantic $cflags -fsyntax-only "$tmp/h.c" ||
	fail "the installed gmem.h does not compile on its own as C11"
if command -v c++ >/dev/null; then
	cp "$tmp/h.c" "$tmp/h.cc"
	# shellcheck disable=SC2086
	c++ -Wall -Wextra -Werror $cflags -fsyntax-only "$tmp/h.cc" ||
		fail "the installed gmem.h does not compile as C++"
fi

# The running library's version against the .pc file, shared and static.
cat >"$tmp/version.c" <<'EOF'
#include <stdio.h>
#include <gmem/gmem.h>
int main(void)
{
	unsigned int v = gmem_version();

	if (v != GMEM_VERSION)
		return 1;
	printf("%u.%u.%u\n", v >> 16, (v >> 8) & 0xff, v & 0xff);
	return 0;
}
EOF
# shellcheck disable=SC2086
$CC $sanflags $cflags "$tmp/version.c" -o "$tmp/version" $libs ||
	fail "linking against the installed libgmem.so"
LD_LIBRARY_PATH=$lib ldd "$tmp/version" | grep -q "libgmem.so.* => $lib/$soname" ||
	fail "the program does not load DESTDIR's libgmem: $(LD_LIBRARY_PATH=$lib ldd "$tmp/version" | grep gmem)"
lib_version=$(LD_LIBRARY_PATH=$lib "$tmp/version") || fail "gmem_version() differs from the header's GMEM_VERSION"
[ "$lib_version" = "$pc_version" ] || fail "libgmem.pc says Version $pc_version, gmem_version() says $lib_version"
# shellcheck disable=SC2086
$CC $sanflags $cflags "$tmp/version.c" -o "$tmp/version-static" \
	-Wl,-Bstatic $($pc --static --libs-only-L libgmem) -lgmem -Wl,-Bdynamic \
	$($pc --static --libs-only-other libgmem) ||
	fail "linking against the installed libgmem.a"
"$tmp/version-static" >/dev/null || fail "the program linked with libgmem.a fails"
echo "gmem_version() $lib_version = libgmem.pc Version, shared and static"

# The example, built by its own Makefile against the installed tree.
mkdir -p "$tmp/ex"
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C examples O="$tmp/ex" \
	PKG_CONFIG="$pc" CC="$CC" \
	CFLAGS="-O2 -g -Wall -Wextra -Werror -std=gnu11 $sanflags" >"$tmp/ex.log" 2>&1 ||
	{ cat "$tmp/ex.log"; fail "examples/minimal_vmm.c does not build against the installed libgmem"; }
LD_LIBRARY_PATH=$lib timeout -k 5 120 "$tmp/ex/minimal_vmm" >"$tmp/run.log" 2>&1
st=$?
cat "$tmp/run.log"
case "$st" in
0) echo "minimal_vmm: built and linked against the installed libgmem, ran: passed" ;;
77) echo "minimal_vmm: built and linked against the installed libgmem; run skipped (no usable KVM): $(grep '^skipped:' "$tmp/run.log" | head -n 1)" ;;
*) fail "minimal_vmm exited $st" ;;
esac

mk uninstall DESTDIR="$root" PREFIX="$prefix" >"$tmp/uninstall.log" 2>&1 ||
	fail "make uninstall: $(tail -n 1 "$tmp/uninstall.log")"
left=$(find "$root" -type f -o -type l)
[ -z "$left" ] || fail "make uninstall left: $(echo "$left" | head -n 3 | tr '\n' ' ')"
echo "ok: install, pkg-config, header, shared and static link, example, uninstall"
exit 0
