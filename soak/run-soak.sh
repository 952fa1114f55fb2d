#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# make soak: run every soak program of BUILD for SOAK_TIME seconds, then,
# where /dev/kvm works, gmvm itself for SOAK_TIME seconds: 4 vCPUs, the
# external DMA device, deferred reclaim, plug changes and the audit after
# every change (--audit each), guest after guest with fresh seeds.
#
# Usage: soak/run-soak.sh BUILD   (SOAK_TIME in the environment, seconds)
# Exit 0 when everything ran clean; 1 on the first failure (its output is
# kept under BUILD/soak/logs/).  A part that cannot run here says so and
# why (skipped), and is never counted as passed.
set -u
BUILD=${1:?usage: soak/run-soak.sh BUILD}
SOAK_TIME=${SOAK_TIME:-600}
LOGS=$BUILD/soak/logs
mkdir -p "$LOGS"
passed=0 failed=0 skipped=0

for prog in "$BUILD"/soak/soak_*; do
	[ -x "$prog" ] || continue
	name=$(basename "$prog")
	echo "== $name ($SOAK_TIME s)"
	# The program stops itself at SOAK_TIME; the timeout only catches a
	# hang.
	if SOAK_TIME=$SOAK_TIME timeout $((SOAK_TIME + 120)) "$prog" \
		>"$LOGS/$name.log" 2>&1; then
		tail -1 "$LOGS/$name.log"
		passed=$((passed + 1))
	else
		echo "FAIL: $name (log: $LOGS/$name.log)"
		grep -m3 'VIOLATION\|ERROR\|FAIL' "$LOGS/$name.log"
		failed=$((failed + 1))
	fi
done

# gmvm: guests that convert, plug and DMA from several vCPUs, one after
# the other with new seeds until the time is up.
GMVM=$BUILD/gmvm
G=$BUILD/guest
echo "== gmvm ($SOAK_TIME s)"
if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	echo "skipped: no usable /dev/kvm on this machine (gmvm needs KVM)"
	skipped=$((skipped + 1))
else
	end=$((SECONDS + SOAK_TIME))
	runs=0 seed=1 bad=0
	while [ $SECONDS -lt $end ] && [ $bad = 0 ]; do
		for run in \
			"--vcpus 4 --dmatest=external --reclaim deferred --audit each $G/dma_smp.elf rounds=40" \
			"--dmatest=external --reclaim deferred --audit each $G/plug.elf iters=1500 seed=$seed" \
			"--vcpus 4 --reclaim deferred --audit each $G/multi_vcpu.elf seed=$seed" \
			"--dmatest=external --audit each $G/fuzz.elf seed=$seed calls=20000"; do
			# shellcheck disable=SC2086 # the words are options
			if ! timeout 600 "$GMVM" run --timeout 500 $run \
				>"$LOGS/gmvm.log" 2>&1; then
				echo "FAIL: gmvm run $run (log: $LOGS/gmvm.log)"
				tail -3 "$LOGS/gmvm.log"
				bad=1
				break
			fi
			runs=$((runs + 1))
		done
		seed=$((seed + 1))
	done
	if [ $bad = 0 ]; then
		echo "gmvm: $runs guest runs clean, audit after every change"
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
fi
echo "soak: $passed passed, $failed failed, $skipped skipped"
[ $failed = 0 ]
