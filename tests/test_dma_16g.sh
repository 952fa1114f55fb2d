#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Issue 4's scale case through gmvm: a 16 GiB guest, all shared but gmvm's
# own area (--init-shared; memory untouched, so it fits), holds ONE DMA
# mapping, with the device in gmvm and in its own process; and the device
# process maps the memfd exactly once (its /proc/PID/maps, read by the
# audit at exit, agrees, or gmvm would exit 125).
#
# Run by tests/run-tests.sh with BUILD set; exit 0 pass, 1 fail, 77 skip.
set -u
BUILD=${BUILD:-build}
GMVM=$BUILD/gmvm
GUEST=$BUILD/guest/selftest.elf
[ -x "$GMVM" ] && [ -f "$GUEST" ] || { echo "build gmvm and the guests first"; exit 1; }
if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	echo "skipped: /dev/kvm is not usable (needed to run a guest)"
	exit 77
fi
fails=0
for where in internal external; do
	out=$("$GMVM" run --timeout 120 --memory 16G --init-shared \
		--dmatest "$where" --stats=json "$GUEST" 2>&1)
	st=$?
	if [ "$st" != 0 ]; then
		echo "FAIL: $where: gmvm exited $st: $(echo "$out" | tail -3)"
		fails=$((fails + 1))
		continue
	fi
	live=$(echo "$out" | grep -o '"mapper": *{"live": *[0-9]*' |
		grep -o '[0-9]*$')
	if [ "$live" != 1 ]; then
		echo "FAIL: $where: 16 GiB shared holds $live DMA mappings, want 1"
		fails=$((fails + 1))
	else
		echo "ok: $where: 16 GiB shared = 1 DMA mapping"
	fi
done
[ "$fails" = 0 ]
