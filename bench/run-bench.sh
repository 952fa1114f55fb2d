#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run every benchmark of a build tree and write bench/results.md: each
# figure beside a baseline measured in the same run.  "BENCH" lines are
# kept in bench/results.data; the guest-visible latencies also go to
# bench/latency.data, which gnuplot draws as bench/latency.svg.
set -u
build=${1:-build/perf}
src=$(cd "$(dirname "$0")/.." && pwd)
out="$src/bench/results.md"
data="$src/bench/results.data"
lat="$src/bench/latency.data"
svg="$src/bench/latency.svg"
start=$(date +%s)
kvm=""
for m in /sys/module/kvm_*; do
	[ -d "$m" ] && kvm="${kvm:+$kvm, }$(basename "$m")"
done
{
	echo "# gmvm benchmarks"
	echo
	echo "Measured $(date -u +%Y-%m-%d) on: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'),"
	echo "$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, Linux $(uname -r), KVM module ${kvm:-kvm}"
	case $kvm in
	*kvm_pvm*) echo "(kvm_pvm emulates guest kernel-mode instructions: about 1.5-2 us each)." ;;
	esac
	echo "Load average when the run started: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shows up as noise)."
	echo
} >"$out"
: >"$data"
status=0
for b in "$build"/bench/bench_*; do
	[ -x "$b" ] && [ -f "$b" ] || continue
	echo "== $(basename "$b")"
	tmp=$(mktemp)
	# stdout is the report; stderr (progress, errors) stays on the terminal.
	(cd "$src" && "$b") >"$tmp"
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

# Latency against size: one block per direction (gnuplot "index").
awk '
function val(key,   i, kv) {
	for (i = 3; i <= NF; i++) {
		split($i, kv, "=")
		if (kv[1] == key)
			return kv[2]
	}
	return ""
}
$2 == "glat" {
	m = val("mode"); b = val("bytes"); d = val("dir")
	if (m == "discard") { g[b, d, 1] = val("us"); g[b, d, 4] = val("floor_us") }
	if (m == "deferred") g[b, d, 2] = val("us")
	if (m == "in-place") { g[b, d, 3] = val("us"); g[b, d, 5] = val("floor_us") }
	if (!(b in seen)) { seen[b] = 1; s[++n] = b }
}
END {
	for (i = 2; i <= n; i++)	# insertion sort, numeric (mawk: no asorti)
		for (j = i; j > 1 && s[j - 1] + 0 > s[j] + 0; j--) {
			t = s[j]; s[j] = s[j - 1]; s[j - 1] = t
		}
	for (k = 0; k < 2; k++) {
		dir = k ? "private" : "shared"
		if (k) printf "\n\n"
		printf "# to %s: bytes discard deferred in-place floor-discard floor-in-place (us)\n", dir
		for (i = 1; i <= n; i++) {
			printf "%s", s[i]
			for (c = 1; c <= 5; c++) {
				v = g[s[i], dir, c]
				printf " %s", v == "" ? "NaN" : v
			}
			printf "\n"
		}
	}
}' "$data" >"$lat"
if ! grep -q '^[0-9]' "$lat"; then
	echo "no guest-visible latency figures: $svg not drawn"
	status=1
elif ! command -v gnuplot >/dev/null; then
	echo "gnuplot not found (scripts/install-deps.sh --bench installs it): $svg not drawn"
	status=1
elif gnuplot -e "datafile='$lat'; outfile='$svg'" "$src/bench/latency.gp"; then
	echo "![Guest-visible conversion latency against size](latency.svg)" >>"$out"
	echo >>"$out"
else
	echo "gnuplot failed: $svg not drawn"
	status=1
fi
echo "make bench took $(( $(date +%s) - start )) s of wall time." >>"$out"
echo "results: $out, $svg ($(( $(date +%s) - start )) s)"
exit $status
