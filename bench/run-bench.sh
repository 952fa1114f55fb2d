#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run every benchmark of a build tree and write bench/results.md: each
# figure beside a baseline measured in the same run.  "BENCH" lines are
# kept in bench/results.data for plotting.
set -u
build=${1:-build/bench}
src=$(cd "$(dirname "$0")/.." && pwd)
out="$src/bench/results.md"
data="$src/bench/results.data"
{
	echo "# gmvm benchmarks"
	echo
	echo "Measured $(date -u +%Y-%m-%d) on: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'),"
	echo "$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, Linux $(uname -r)."
	echo
} >"$out"
: >"$data"
status=0
for b in "$build"/bench/bench_*; do
	[ -x "$b" ] && [ -f "$b" ] || continue
	echo "== $(basename "$b")"
	tmp=$(mktemp)
	(cd "$src" && "$b") >"$tmp" 2>&1
	st=$?
	grep '^BENCH ' "$tmp" >>"$data"
	grep -v '^BENCH ' "$tmp" | tee -a "$out"
	echo >>"$out"
	rm -f "$tmp"
	case "$st" in
	0|77) ;;
	*) echo "$(basename "$b") failed with status $st"; status=1 ;;
	esac
done
echo "results: $out"
exit $status
