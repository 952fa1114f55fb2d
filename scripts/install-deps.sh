#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install what building and testing needs on Debian 12 (base toolchain
# assumed: gcc, make); --bench and --fuzz add what make bench and make fuzz
# need.  Idempotent; installs only what is missing.
set -euo pipefail
need=()
command -v gcc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
command -v timeout >/dev/null || need+=(coreutils)
# The ABI and install tests: symbol tables, pkg-config, man page lint.
command -v nm >/dev/null || need+=(binutils)
command -v pkg-config >/dev/null || need+=(pkgconf)
command -v groff >/dev/null || need+=(groff-base)
# libasan/libubsan/libtsan come with gcc on Debian; check they link.
if ! printf 'int main(void){return 0;}' | gcc -x c -fsanitize=address,undefined -o /dev/null - 2>/dev/null; then
	need+=(libasan8 libubsan1)
fi
if ! printf 'int main(void){return 0;}' | gcc -x c -fsanitize=thread -o /dev/null - 2>/dev/null; then
	need+=(libtsan2)
fi
for flag in "$@"; do
	case "$flag" in
	--bench)
		command -v gnuplot >/dev/null || need+=(gnuplot-nox)
		# bench_convert_instr: instruction counts (callgrind).
		command -v valgrind >/dev/null || need+=(valgrind)
		;;
	--fuzz)
		# make fuzz: clang with libFuzzer and its sanitizers.  On
		# Debian 12, clang-14 is the compiler and libclang-rt-14-dev
		# (only a Recommends of it) holds libFuzzer and the
		# sanitizer runtimes.
		command -v clang-14 >/dev/null || need+=(clang-14)
		if ! printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){return 0;}' |
		     clang-14 -x c -fsanitize=fuzzer,address,undefined -o /dev/null - 2>/dev/null; then
			need+=(libclang-rt-14-dev)
		fi
		;;
	*)
		echo "usage: $0 [--bench] [--fuzz]" >&2
		exit 2
		;;
	esac
done
if [ ${#need[@]} -gt 0 ]; then
	echo "installing: ${need[*]}"
	if [ "$(id -u)" = 0 ]; then sudo=""; else sudo=sudo; fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
