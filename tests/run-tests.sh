#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Run every test of a build tree, each under a timeout, one line per test,
# and end with "N passed, N failed, N skipped".  Exit 1 if anything failed.
#
#   tests/run-tests.sh [--concurrency] [--filter REGEX] BUILD_DIR
#
# A test is
#  - a host program BUILD_DIR/tests/test_*: exit 0 pass, 77 skip, else fail;
#  - a host script tests/test_*.sh, run with BUILD=BUILD_DIR, same codes;
#  - a guest run: each line "//@ run: STATUS [GMVM-OPTIONS] [-- GUEST-ARGS]"
#    in guest/tests/NAME.c runs "gmvm run --timeout T OPTIONS NAME.elf ARGS"
#    and passes when gmvm exits with STATUS.  Without usable /dev/kvm every
#    guest run is skipped (never passed); so are a guest's runs when its
#    "//@ needs: SHELL-CONDITION # REASON" line is false on this host
#    (the condition cannot hold a '#').
# --concurrency keeps only the tests whose name contains "concurrent" or
# that carry "//@ concurrency" (the TSan subset).
# A skipped or failed test's last output line is shown; its whole output
# stays in BUILD_DIR/test-logs/.
set -u
concurrency=0
filter=""
while [ $# -gt 0 ]; do
	case "$1" in
	--concurrency) concurrency=1; shift ;;
	--filter) filter="$2"; shift 2 ;;
	-h|--help) sed -n '4,20p' "$0"; exit 0 ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || { echo "usage: $0 [--concurrency] [--filter REGEX] BUILD_DIR" >&2; exit 2; }
build=$1
src=$(cd "$(dirname "$0")/.." && pwd)
logs="$build/test-logs"
mkdir -p "$logs"
timeout_s=${TEST_TIMEOUT:-300}
pass=0 fail=0 skip=0
failed_names=()

kvm_reason=""
if [ ! -e /dev/kvm ]; then
	kvm_reason="/dev/kvm does not exist"
elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	kvm_reason="/dev/kvm is not readable and writable by $(id -un)"
fi

report() {	# name status log
	local name=$1 st=$2 log=$3 last
	last=$(grep -v '^[[:space:]]*$' "$log" 2>/dev/null | tail -n 1 | cut -c1-200)
	case "$st" in
	0) pass=$((pass + 1)); printf 'PASS %s\n' "$name" ;;
	77) skip=$((skip + 1)); printf 'SKIP %s: %s\n' "$name" "$last" ;;
	*) fail=$((fail + 1)); failed_names+=("$name")
	   if [ "$st" = 124 ]; then last="timed out after ${timeout_s}s; $last"; fi
	   printf 'FAIL %s (exit %s): %s\n' "$name" "$st" "$last" ;;
	esac
}

wanted() {	# name is_concurrent
	if [ -n "$filter" ] && ! [[ "$1" =~ $filter ]]; then return 1; fi
	if [ "$concurrency" = 1 ] && [ "$2" != 1 ]; then return 1; fi
	return 0
}

for t in "$build"/tests/test_*; do
	[ -x "$t" ] && [ -f "$t" ] || continue
	name=$(basename "$t")
	conc=0
	case "$name" in *concurrent*) conc=1 ;; esac
	grep -q '//@ concurrency' "$src/tests/$name.c" 2>/dev/null && conc=1
	wanted "$name" "$conc" || continue
	log="$logs/$name.log"
	(cd "$src" && timeout -k 5 "$timeout_s" "$t") >"$log" 2>&1 </dev/null
	report "$name" $? "$log"
done

# Host test scripts: tests/test_*.sh, run with BUILD set to the build tree.
for t in "$src"/tests/test_*.sh; do
	[ -e "$t" ] || continue
	name=$(basename "$t")
	conc=0
	grep -q '#@ concurrency' "$t" && conc=1
	wanted "$name" "$conc" || continue
	log="$logs/$name.log"
	(cd "$src" && BUILD="$build" timeout -k 5 "$timeout_s" bash "$t") >"$log" 2>&1 </dev/null
	report "$name" $? "$log"
done

for c in "$src"/guest/tests/*.c; do
	[ -e "$c" ] || continue
	base=$(basename "$c" .c)
	elf="$build/guest/$base.elf"
	conc=0
	grep -q '//@ concurrency' "$c" && conc=1
	# A host condition the guest's runs depend on (not KVM's).
	needs=$(grep -m1 '//@ needs:' "$c" | sed 's|.*//@ needs:||')
	unmet=""
	if [ -n "$needs" ] && ! bash -c "${needs%%#*}" >/dev/null 2>&1; then
		unmet=${needs#*#}
		unmet=${unmet# }
	fi
	n=0
	while IFS= read -r line; do
		n=$((n + 1))
		spec=${line#*//@ run:}
		read -r -a words <<<"$spec"
		expect=${words[0]}
		opts=() args=() seen=0
		for w in "${words[@]:1}"; do
			if [ "$seen" = 1 ]; then args+=("$w");
			elif [ "$w" = "--" ]; then seen=1;
			else opts+=("$w"); fi
		done
		name="guest/$base#$n ${opts[*]:-(defaults)}"
		wanted "$name" "$conc" || continue
		log="$logs/guest-$base-$n.log"
		if [ -n "$kvm_reason" ]; then
			echo "needs KVM: $kvm_reason" >"$log"
			report "$name" 77 "$log"
			continue
		fi
		if [ -n "$unmet" ]; then
			echo "needs: $unmet" >"$log"
			report "$name" 77 "$log"
			continue
		fi
		(cd "$src" && timeout -k 5 "$timeout_s" "$build/gmvm" run --timeout 120 \
			"${opts[@]}" "$elf" "${args[@]}") >"$log" 2>&1 </dev/null
		st=$?
		if [ "$st" = "$expect" ]; then
			report "$name" 0 "$log"
		else
			echo "gmvm exited $st, expected $expect" >>"$log"
			report "$name" 1 "$log"
		fi
	done < <(grep '//@ run:' "$c")
done

echo
[ ${#failed_names[@]} -eq 0 ] || printf 'failed: %s\n' "${failed_names[@]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ $((pass + skip)) -gt 0 ]
