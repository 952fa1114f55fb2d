#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Run every libFuzzer harness of a build tree for SECONDS each, one line
# per harness, ending with "N passed, N failed, N skipped".  Exit 1 if any
# harness found something.
#
#   fuzz/run-fuzz.sh BUILD_DIR SECONDS        (make fuzz FUZZ_TIME=SECONDS)
#
# For harness NAME (BUILD_DIR/fuzz_NAME):
#  - seeds: fuzz/corpus/fuzz_NAME/ (committed, only read);
#  - corpus: BUILD_DIR/out/corpus/fuzz_NAME/ (new inputs, kept between runs);
#  - crashes: BUILD_DIR/out/crashes/fuzz_NAME/ (crash-*, leak-*, timeout-*,
#    oom-*: rerun one with `BUILD_DIR/fuzz_NAME FILE`);
#  - log: BUILD_DIR/out/logs/fuzz_NAME.log.
# A crash, a sanitizer report, a leak, an input running longer than
# FUZZ_INPUT_TIMEOUT seconds (default 20) or using more than 2 GiB fails
# the harness.  A harness exits 77 when it cannot run here (skipped).
set -u
[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR SECONDS" >&2; exit 2; }
build=$1
secs=$2
src=$(cd "$(dirname "$0")/.." && pwd)
out="$build/out"
per_input=${FUZZ_INPUT_TIMEOUT:-20}
pass=0 fail=0 skip=0
failed=()

for f in "$build"/fuzz_*; do
	[ -x "$f" ] && [ -f "$f" ] || continue
	case "$f" in *.d|*.o) continue ;; esac
	name=$(basename "$f")
	corpus="$out/corpus/$name"
	crashes="$out/crashes/$name"
	log="$out/logs/$name.log"
	mkdir -p "$corpus" "$crashes" "$out/logs"
	seeds=()
	[ -d "$src/fuzz/corpus/$name" ] && seeds=("$src/fuzz/corpus/$name")
	# error_exitcode is set because libFuzzer's default (77) is our skip;
	# len_control=0: the stateful harnesses want long inputs from the start.
	# The outer timeout only catches a harness stuck outside an input.
	timeout -k 10 $((secs + 600)) "$f" -max_total_time="$secs" \
		-timeout="$per_input" -rss_limit_mb=2048 \
		-error_exitcode=1 -timeout_exitcode=1 -len_control=0 \
		-artifact_prefix="$crashes/" -print_final_stats=1 \
		"$corpus" "${seeds[@]}" >"$log" 2>&1 </dev/null
	st=$?
	case "$st" in
	0)
		pass=$((pass + 1))
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
		cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)
		printf 'PASS %s: %s inputs in %s s, %s, corpus %s files\n' \
			"$name" "${runs:-?}" "$secs" "${cov:-cov: ?}" \
			"$(find "$corpus" -type f | wc -l)"
		;;
	77)
		skip=$((skip + 1))
		printf 'SKIP %s: %s\n' "$name" "$(tail -n 1 "$log")"
		;;
	*)
		fail=$((fail + 1))
		failed+=("$name")
		printf 'FAIL %s (exit %s); log %s, inputs in %s:\n' "$name" \
			"$st" "$log" "$crashes"
		# The report, up to its summary, and where the input went.
		sed -n '/^==[0-9]*== *ERROR\|^fuzz: check failed\|ALARM\|out-of-memory/,/^SUMMARY/p' \
			"$log" | head -n 50 | sed 's/^/    /'
		grep 'Test unit written to' "$log" | sed 's/^/    /'
		;;
	esac
done

echo
[ ${#failed[@]} -eq 0 ] || printf 'failed: %s\n' "${failed[@]}"
echo "fuzz: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ $((pass + skip)) -gt 0 ]
