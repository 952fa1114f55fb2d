# SPDX-License-Identifier: MIT
#
# Helpers shared by the host test scripts that drive gmvm (tests/test_*.sh),
# sourced after `set -u`; the shell counterpart of tests/lib/test_util.h.
#
# Gives: BUILD (default build) and GMVM; $tmp, a directory removed at exit;
# bg_pid, a gmvm started in the background until it is reaped (killed at
# exit if it is still there); fail MESSAGE (counts and goes on);
# skip_without_kvm (ends the script here without a usable /dev/kvm: 1 if
# something failed so far, else 77); wait_for FILE PATTERN SECONDS (until
# FILE has a line matching the extended regex PATTERN, or bg_pid is gone);
# expect STATUS PATTERN -- ARGS (gmvm ARGS exits STATUS with a matching
# stderr line, one line when it refuses to start); poke FILE OFFSET NBYTES
# VALUE and peek FILE OFFSET NBYTES (little-endian integers in a file);
# build_guest SRC.S OUT [CPP-ARGS] (a guest image from assembly, linked as
# the guest programs are; exits 1 if it cannot be built); rounds_for
# SECONDS MIN GUEST [RUN-OPTIONS...] (the rounds= that make GUEST run
# about SECONDS here); finish (1 with the number of failures, else 0).
BUILD=${BUILD:-build}
GMVM=$BUILD/gmvm

tmp=$(mktemp -d)
bg_pid=""
cleanup() {
	[ -n "$bg_pid" ] && kill -9 "$bg_pid" 2>/dev/null
	# Every other background job too (a script that starts several gmvm
	# and ends early, say by a skip, leaves none running).
	# (Quietly: bash's "Killed" lines would hide the test's last line.)
	{ kill -9 $(jobs -p); wait; } 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fails=0

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

finish() {
	if [ "$fails" -gt 0 ]; then
		echo "$fails failures"
		exit 1
	fi
	echo "all passed"
	exit 0
}

skip_without_kvm() {
	if [ ! -e /dev/kvm ] || [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
		if [ "$fails" -gt 0 ]; then
			echo "$fails failures"
			exit 1
		fi
		echo "KVM not usable (/dev/kvm missing or not read-writable): skipping the runs"
		exit 77
	fi
}

wait_for() {	# FILE PATTERN SECONDS
	local i
	for ((i = 0; i < $3 * 20; i++)); do
		grep -Eq -- "$2" "$1" 2>/dev/null && return 0
		kill -0 "$bg_pid" 2>/dev/null || break
		sleep 0.05
	done
	grep -Eq -- "$2" "$1" 2>/dev/null
}

# until_socket PATH PID: wait up to 30 s until PATH is a socket; 1 if PID
# died first or the time ran out (the caller says what failed).
until_socket() {
	local i
	for ((i = 0; i < 600; i++)); do
		[ -S "$1" ] && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.05
	done
	return 1
}

# expect STATUS PATTERN -- gmvm ARGS...: status and a stderr line matching
# PATTERN (extended regex; "" = don't care).  stderr must be one line
# whenever gmvm refuses to start (status 125).
expect() {
	local want=$1 pat=$2 st lines
	shift 3
	"$GMVM" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	st=$?
	if [ "$st" != "$want" ]; then
		fail "gmvm $* exited $st, expected $want; stderr: $(head -c 300 "$tmp/err")"
		return
	fi
	if [ -n "$pat" ] && ! grep -Eq -- "$pat" "$tmp/err"; then
		fail "gmvm $*: stderr does not match /$pat/: $(head -c 300 "$tmp/err")"
		return
	fi
	lines=$(wc -l <"$tmp/err")
	if [ "$want" = 125 ] && [ "$lines" != 1 ]; then
		fail "gmvm $*: $lines stderr lines, expected 1: $(cat "$tmp/err")"
		return
	fi
	if [ -s "$tmp/err" ] && ! grep -q '^gmvm: ' "$tmp/err"; then
		fail "gmvm $*: a message does not start with 'gmvm: ': $(cat "$tmp/err")"
	fi
}

# poke FILE OFFSET NBYTES VALUE: write VALUE little-endian.
poke() {
	local f=$1 off=$2 n=$3 v=$4 i s=""
	for ((i = 0; i < n; i++)); do
		s+=$(printf '\\%03o' $(((v >> (8 * i)) & 255)))
	done
	printf "$s" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}

peek() {	# FILE OFFSET NBYTES
	od -An -t "u$3" -j "$2" -N "$3" "$1" | tr -d ' '
}

build_guest() {	# SRC.S OUT [CPP-ARGS...]
	local src=$1 out=$2
	shift 2
	gcc -x assembler-with-cpp "$@" -nostdlib -static -no-pie \
		-Wl,--build-id=none -Wl,-T,guest/guest.ld \
		-Wl,-z,noexecstack -Wl,-z,max-page-size=4096 \
		-o "$out" "$src" 2>"$tmp/cc.err" ||
		{ echo "cannot build test guest $out: $(cat "$tmp/cc.err")"; exit 1; }
}

# rounds_for SECONDS MIN GUEST [RUN-OPTIONS...]: the rounds= argument that
# makes GUEST (a guest taking rounds=N and status=S, as snap_stress does)
# run about SECONDS on this host: at least MIN, at most 100 x MIN.  Guest
# code runs at a speed that differs by orders of magnitude between hosts
# (HOST_NOTES: ~2 us an instruction under kvm_pvm), so a test that must
# act while its guest still runs measures it: two short runs, the
# difference is the cost of 200 rounds.  Prints nothing and returns 1
# (the caller fails, saying so) when a run does not end as asked or the
# difference is lost in the noise.
rounds_for() {
	local secs=$1 min=$2 guest=$3 t0 t1 t2 per n
	shift 3
	t0=$(date +%s%N)
	"$GMVM" run --timeout 120 "$@" "$guest" rounds=100 status=7 \
		>/dev/null 2>&1 </dev/null
	[ $? = 7 ] || return 1
	t1=$(date +%s%N)
	"$GMVM" run --timeout 120 "$@" "$guest" rounds=300 status=7 \
		>/dev/null 2>&1 </dev/null
	[ $? = 7 ] || return 1
	t2=$(date +%s%N)
	# 200 rounds must cost a tenth of the first run at least.
	[ $(((t2 - t1) - (t1 - t0))) -gt $(((t1 - t0) / 10)) ] || return 1
	per=$((((t2 - t1) - (t1 - t0)) / 200))
	n=$((secs * 1000000000 / per))
	[ "$n" -ge "$min" ] || n=$min
	[ "$n" -le $((100 * min)) ] || n=$((100 * min))
	echo "$n"
}
