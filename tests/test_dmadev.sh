#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The out-of-process DMA device (gmvm run --dmatest=external):
#  - `gmvm dma-device` by hand is refused (125, one line);
#  - while a guest runs, the device process holds only stdio, its socket
#    and the shared backing (no guest_memfd, no /dev/kvm, no VM fd), and
#    maps the shared backing exactly at the ranges the guest made shared,
#    at file offset = IOVA;
#  - SIGKILL of the device mid-run: gmvm says so in one line, DMA commands
#    fail with STATUS 1, conversions and the console go on, the exit
#    status is the guest's (0), the process was reaped;
#  - a device that stops answering (SIGSTOP) is killed after the ack
#    timeout, and the run still ends with the guest's status;
#  - a clean run: --stats=json says where the device ran, nothing on
#    stderr, and the process is gone afterwards;
#  - thousands of mappings, internal and external: the mapper's counters
#    are exactly those of the exact layout (one mapping per shared run).
# The protocol itself, spoken to the device process directly (no KVM
# needed), is tests/test_dmadev_protocol.c.
#
#@ concurrency (the death monitor thread runs under TSan too)
# Run by tests/run-tests.sh with BUILD set and cwd = the repository root.
# Exit 0 pass, 1 fail, 77 skip.
set -u
. "$(dirname "$0")/lib/test_util.sh"
DEATH=$BUILD/guest/dma_death.elf
SCALE=$BUILD/guest/dma_scale.elf
for f in "$GMVM" "$DEATH" "$SCALE"; do
	[ -e "$f" ] || { echo "no $f: build first"; exit 1; }
done

# ---------------------------------------------------------------- by hand
"$GMVM" dma-device >"$tmp/out" 2>"$tmp/err" </dev/null
st=$?
[ "$st" = 125 ] || fail "gmvm dma-device by hand exited $st, expected 125"
[ "$(wc -l <"$tmp/err")" = 1 ] && grep -q 'internal command' "$tmp/err" ||
	fail "gmvm dma-device by hand: stderr: $(cat "$tmp/err")"
"$GMVM" help >"$tmp/out" 2>&1
grep -q 'dma-device' "$tmp/out" || fail "gmvm help does not mention dma-device"

skip_without_kvm

# The only child of $1 (the device process), or "".
child_of() {
	local p pp
	for p in /proc/[0-9]*; do
		pp=$(awk '{ print $4 }' "$p/stat" 2>/dev/null) || continue
		[ "$pp" = "$1" ] && { echo "${p#/proc/}"; return; }
	done
}

# wait_gmvm SECONDS: its exit status in $st, or 999 if it hung (killed).
wait_gmvm() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do
		kill -0 "$bg_pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$bg_pid" 2>/dev/null; then
		kill -9 "$bg_pid"
		wait "$bg_pid" 2>/dev/null
		st=999
	else
		wait "$bg_pid"
		st=$?
	fi
	bg_pid=""
}

# check_device PID: its fds and its mappings of the shared backing, against
# the ranges dma_death printed in $tmp/out.
check_device() {
	local c=$1 fd link sockets=0 memfds=0 start end off want got
	for fd in /proc/"$c"/fd/*; do
		link=$(readlink "$fd") || continue
		case "${fd##*/}:$link" in
		[012]:*) ;;
		*:socket:*) sockets=$((sockets + 1)) ;;
		*:/memfd:gmem-shared*) memfds=$((memfds + 1)) ;;
		*) fail "device process fd ${fd##*/} -> $link: it should hold only its socket and the shared backing" ;;
		esac
		case "$link" in
		*kvm* | *gmem\]* | /dev/*kvm*)
			fail "device process holds a KVM fd: ${fd##*/} -> $link" ;;
		esac
	done
	[ "$sockets" = 1 ] && [ "$memfds" = 1 ] ||
		fail "device process holds $sockets sockets and $memfds shared backings, expected 1 and 1: $(ls -l /proc/"$c"/fd)"

	# The shared backing's mappings as IOVA ranges (file offset = IOVA is
	# gmvm's report() check; here the offset says where each one is).
	got=""
	while read -r range perms off _ _ path; do
		case "$path" in */memfd:gmem-shared*) ;; *) continue ;; esac
		start=$((16#${range%-*}))
		end=$((16#${range#*-}))
		off=$((16#$off))
		[ "${perms:3:1}" = s ] || fail "device maps the shared backing privately: $range $perms"
		got+=$(printf '[%#x, %#x) ' "$off" $((off + end - start)))
	done <"/proc/$c/maps"
	want=$(sed -n 's/^dma_death: shared [A-Z] \(.*\)$/\1/p' "$tmp/out" | tr '\n' ' ')
	tog=$(sed -n 's/^dma_death: toggling T \(.*\)$/\1/p' "$tmp/out")
	# A, then B, with T (toggled by the guest) after them or not.
	if [ "$got" != "$want" ] && [ "$got" != "$want$tog " ]; then
		fail "device maps the shared backing at ${got:-nothing}, the shared ranges are $want(and maybe $tog)"
	fi
}

# gmvm's console output to a file is block-buffered: the guest pads its
# ready line with twice the file's block size to push it out.
: >"$tmp/out"
pad=$((2 * $(stat -c %o "$tmp/out")))

# start_death [GMVM-RUN-OPTIONS]: dma_death with the external device in the
# background (bg_pid); 0 once it is ready, else 1 (failed, gmvm reaped).
start_death() {
	"$GMVM" run --timeout 120 --dmatest=external "$@" "$DEATH" pad=$pad \
		>"$tmp/out" 2>"$tmp/err" </dev/null &
	bg_pid=$!
	wait_for "$tmp/out" '^dma_death: ready' 60 && return 0
	fail "dma_death never got ready: $(cat "$tmp/out" "$tmp/err")"
	wait_gmvm 5
	return 1
}

# ---------------------------------------------------------------- SIGKILL
if start_death --stats; then
	c=$(child_of "$bg_pid")
	if [ -z "$c" ]; then
		fail "gmvm (pid $bg_pid) has no device process"
	else
		check_device "$c"
		grep -q "^dma backend:" "$tmp/out" && fail "guest finished before the checks"
		kill -KILL "$c"
	fi
	wait_gmvm 100
	[ "$st" = 0 ] || fail "after SIGKILL of the device gmvm exited $st, expected the guest's 0; stderr: $(head -c 600 "$tmp/err")"
	line="^gmvm: DMA device process \\(pid $c\\) died \\(killed by signal 9\\); its DMA mappings are dropped and DMA commands now fail with status 1\$"
	[ "$(grep -c . "$tmp/err")" = 1 ] && grep -Eq "$line" "$tmp/err" ||
		fail "after SIGKILL, stderr should be the one death line: $(cat "$tmp/err")"
	grep -q '^dma_death: the device is gone' "$tmp/out" ||
		fail "the guest did not finish its checks after the death: $(tail -n 5 "$tmp/out")"
	grep -q '^dma backend:  external, device process pid .*, died yes' "$tmp/out" ||
		fail "--stats does not say the device died: $(grep '^dma' "$tmp/out")"
	[ -n "$c" ] && [ -e "/proc/$c" ] && fail "device process $c still exists"
fi

# ---------------------------------------------------------------- SIGSTOP
if start_death; then
	c=$(child_of "$bg_pid")
	[ -n "$c" ] && kill -STOP "$c"
	wait_gmvm 60
	[ "$st" = 0 ] || fail "with the device stopped gmvm exited $st, expected the guest's 0 (after the 10 s ack timeout); stderr: $(head -c 600 "$tmp/err")"
	[ "$(grep -c . "$tmp/err")" = 1 ] &&
		grep -Eq "^gmvm: DMA device process \\(pid $c\\) died \\(killed by signal 9 by gmvm: it did not answer within 10 s\\)" "$tmp/err" ||
		fail "with the device stopped, stderr should be the one death line: $(cat "$tmp/err")"
	[ -n "$c" ] && [ -e "/proc/$c" ] && fail "stopped device process $c still exists"
fi

# ---------------------------------------------------------------- clean run
"$GMVM" run --timeout 120 --dmatest=external --stats=json "$DEATH" \
	iterations=20 >"$tmp/out" 2>"$tmp/err" </dev/null
st=$?
[ "$st" = 3 ] || fail "clean run exited $st, expected 3 (nobody killed the device)"
[ -s "$tmp/err" ] && fail "clean run printed on stderr: $(cat "$tmp/err")"
pid=$(sed -n 's/.*"backend": "external", "pid": \([0-9]*\), "died": false.*/\1/p' "$tmp/out")
if [ -z "$pid" ]; then
	fail "--stats=json lacks the external backend: $(tail -n 1 "$tmp/out")"
elif [ -e "/proc/$pid" ]; then
	fail "device process $pid outlived gmvm"
fi

# ---------------------------------------------------------------- scale
n=4096
for where in internal external; do
	"$GMVM" run --timeout 200 --dmatest=$where --stats=json "$SCALE" \
		pages=$n >"$tmp/out" 2>"$tmp/err" </dev/null
	st=$?
	if [ "$st" != 0 ]; then
		fail "dma_scale pages=$n --dmatest=$where exited $st: $(head -c 600 "$tmp/err")"
		continue
	fi
	want="\"mapper\": {\"live\": 0, \"max_live\": $n, \"maps\": $((2 * n)), \"unmaps\": $n, \"cuts\": $n, \"merges\": $n, \"splits\": $n, \"refused\": 0}"
	grep -qF "$want" "$tmp/out" ||
		fail "dma_scale --dmatest=$where: mapper counters $(grep -o '"mapper": {[^}]*}' "$tmp/out"), expected $want"
done

finish
