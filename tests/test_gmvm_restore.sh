#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# `gmvm restore FILE` and the control socket's `snapshot` from the command
# line (docs/SNAPSHOT.md, docs/CONTROL.md).
#
#  - restore's usage: --help, no FILE, two, options that describe the VM
#    (the snapshot says those): 125 with one line;
#  - files it must refuse before KVM is touched, each 125 with one line
#    naming the problem: missing, a directory, empty, foreign (an ELF, a
#    text file), truncated at many lengths, a byte changed in the header,
#    a section header, a payload and the END section, a newer version, a
#    memory-only snapshot, and well-formed files that disagree with gmvm
#    (RAM layout against the regions, --init-shared against the initial
#    state, a DMA pin outside RAM; made by `test_snapshot_machine --gmvm`);
#    a good file gets as far as KVM (here: "/dev/kvm" is what stops it);
#    the file is checked before --control's path, which is refused as
#    for run (a regular file is left alone, the socket removed on exit);
#  - with KVM: guest/tests/snap_stress.c, snapshotted at random moments
#    while it runs (the VM goes on), then with --stop (143, the stop
#    line, the audit line); restored, it runs on and exits with the
#    status its command line asked for; a restored VM snapshotted and
#    restored again; in-place mode, --init-shared, two vCPUs with the
#    external DMA device; snapshot errors: an existing FILE, a missing
#    directory (nothing written, the VM runs on).
#
# Run by tests/run-tests.sh with BUILD set and cwd = the repository root.
# Exit 0 pass, 1 fail, 77 skip (the KVM part only, after the rest ran).
set -u
. "$(dirname "$0")/lib/test_util.sh"
[ -x "$GMVM" ] || { echo "no $GMVM: build gmvm first"; exit 1; }
maker=$BUILD/tests/test_snapshot_machine
stress=$BUILD/guest/snap_stress.elf
[ -x "$maker" ] && [ -f "$stress" ] ||
	{ echo "no $maker or $stress: build the tests and guests first"; exit 1; }

# ---------------------------------------------------------------- usage
expect 0 "" -- restore --help
grep -q 'usage: gmvm restore \[OPTIONS\] FILE' "$tmp/out" || fail "restore --help: $(head -3 "$tmp/out")"
expect 0 "" -- --help
grep -q 'restore \[OPTIONS\] FILE' "$tmp/out" || fail "gmvm --help does not list restore"
expect 125 "restore: no snapshot given" -- restore
expect 125 "restore: no snapshot given" -- restore --stats
expect 125 "unexpected argument 'b' after the snapshot" -- restore a b
expect 125 "restore: option --memory is not for restore" -- restore --memory 16M x
expect 125 "restore: option --vcpus is not for restore" -- restore --vcpus=2 x
expect 125 "restore: option --dmatest is not for restore" -- restore --dmatest external x
expect 125 "restore: unknown option '--bogus'" -- restore --bogus x
expect 125 "--stats: 'xml' is neither 'text' nor 'json'" -- restore --stats=xml x
expect 125 "--timeout: 'soon'" -- restore --timeout soon x

# ---------------------------------------------------------------- files
"$maker" --gmvm "$tmp" >/dev/null || fail "test_snapshot_machine --gmvm failed"
good=$tmp/good.snap
size=$(stat -c %s "$good")

# refused FILE PATTERN: 125, one line naming FILE and matching PATTERN.
refused() {
	expect 125 "^gmvm: restore: $1: .*$2" -- restore "$1"
}

refused /nonexistent.snap "No such file or directory"
refused "$tmp" "not a regular file"
: >"$tmp/empty"
refused "$tmp/empty" 'not a gmvm snapshot \(no "GMVMSNAP" magic\)'
refused "$stress" "not a gmvm snapshot"
echo "GMVMSNAP is not enough to make a file a snapshot" >"$tmp/text"
refused "$tmp/text" 'format version [0-9]+: this gmvm reads version 1 only'
for n in 1 8 20 31 32 33 56 100 1000 $((size / 2)) $((size - 25)) $((size - 1)); do
	head -c "$n" "$good" >"$tmp/cut"
	refused "$tmp/cut" 'truncated'
done
cp "$good" "$tmp/long" && printf 'x' >>"$tmp/long"
refused "$tmp/long" 'extended'
# A changed byte: in the header, a section header, a payload, END.
for off in 16 28 40 60 $((size / 2)) $((size - 30)) $((size - 10)); do
	cp "$good" "$tmp/bad"
	v=$(peek "$tmp/bad" "$off" 1)
	poke "$tmp/bad" "$off" 1 $(((v + 1) & 255))
	refused "$tmp/bad" 'checksum mismatch|the file is [0-9]+ bytes|no room for a section header|section .* runs past'
done
cp "$good" "$tmp/newer" && poke "$tmp/newer" 8 4 2
refused "$tmp/newer" 'format version 2: this gmvm reads version 1 only'
refused "$tmp/memory-only.snap" 'no RUNOPTS section: not a whole-VM snapshot'
refused "$tmp/other-layout.snap" '1 region up to 0x1000000, but section RUNOPTS makes 1 up to 0x2000000'
refused "$tmp/init-shared.snap" "initial state disagrees with section RUNOPTS's --init-shared"
refused "$tmp/pin-outside.snap" 'section DMADEV: pin 0 \[0x1000000, \+0x1000\) is not inside RAM'

# The file is checked first, then the control socket.
: >"$tmp/regular"
expect 125 "restore: $tmp/cut: .*truncated" -- restore --control "$tmp/regular" "$tmp/cut"
expect 125 "--control $tmp/regular: " -- restore --control "$tmp/regular" "$good"
[ -f "$tmp/regular" ] && [ ! -s "$tmp/regular" ] || fail "restore --control touched a regular file"

# A good file passes every check: without KVM, KVM is what stops it (and
# the control socket made meanwhile is removed).
if [ ! -e /dev/kvm ]; then
	expect 125 "/dev/kvm" -- restore --control "$tmp/ctl0" "$good"
	grep -q 'restore:' "$tmp/err" && fail "a good file was refused: $(cat "$tmp/err")"
	[ -e "$tmp/ctl0" ] && fail "restore left its control socket behind"
fi

# ---------------------------------------------------------------- with KVM
skip_without_kvm

c=$tmp/ctl
# start_bg OUT-PREFIX gmvm ARGS...: in the background with --control $c,
# until the guest says ready (a restored guest said it before).
start_bg() {
	local pre=$1
	shift
	"$GMVM" "$@" >"$pre.out" 2>"$pre.err" </dev/null &
	bg_pid=$!
	until_socket "$c" "$bg_pid" && return 0
	fail "gmvm $* never served $c: $(head -c 300 "$pre.err")"
	return 1
}
# ended PREFIX STATUS: the background gmvm exits with STATUS.
ended() {
	local st
	wait "$bg_pid"
	st=$?
	bg_pid=""
	[ "$st" = "$2" ] || fail "gmvm exited $st, expected $2: $(head -c 400 "$1.err")"
	grep -q '^gmvm: audit' "$1.err" || [ "$2" != 143 ] ||
		fail "no audit line: $(head -c 400 "$1.err")"
}
snap() {	# FILE [--stop]: a successful snapshot
	"$GMVM" ctl "$c" snapshot "$@" >"$tmp/ctl.out" 2>&1 ||
		{ fail "snapshot $*: $(cat "$tmp/ctl.out")"; return 1; }
	grep -q "^{\"ok\": true, \"path\": \"$1\", \"bytes\": [0-9]*" "$tmp/ctl.out" ||
		fail "snapshot reply: $(cat "$tmp/ctl.out")"
	[ -f "$1" ] || fail "no file $1 after a snapshot"
}
pause_a_bit() {
	sleep "0.$((RANDOM % 9 + 1))"
}

# session RUN-OPTIONS...: run, two snapshots (one going on, one stopping),
# restore each (the second also snapshotted and restored again), and
# every restored run ends with the status the guest was asked for (7).
session() {
	local d=$tmp/s$RANDOM rounds
	mkdir -p "$d"
	# Long enough that both snapshots land while the guest runs, and the
	# restored runs still have work left, whatever this host's speed.
	rounds=$(rounds_for 4 2000 "$stress" "$@") || {
		fail "session $*: two short runs of $stress did not measure it"
		return
	}
	echo "session: $* (rounds=$rounds)"
	start_bg "$d/run" run --control "$c" --timeout 300 "$@" "$stress" \
		rounds="$rounds" status=7 || return
	wait_for "$d/run.out" '^ready$' 60 || fail "never ready: $(head -c 300 "$d/run.err")"
	pause_a_bit
	snap "$d/a.snap"
	# The VM ran on after a snapshot without --stop.
	"$GMVM" ctl "$c" stats >/dev/null || fail "stats after a snapshot"
	ctl_err=$("$GMVM" ctl "$c" snapshot "$d/a.snap")
	echo "$ctl_err" | grep -q 'already exists; nothing was written' ||
		fail "a snapshot over an existing file: $ctl_err"
	ctl_err=$("$GMVM" ctl "$c" snapshot "$d/no/such/dir")
	echo "$ctl_err" | grep -q '^{"error": "snapshot: .*nothing was written"}$' ||
		fail "a snapshot into a missing directory: $ctl_err"
	pause_a_bit
	if grep -q '^done$' "$d/run.out"; then
		fail "the guest ended before the second snapshot: rounds=$rounds is too few for this host"
		return
	fi
	snap "$d/b.snap" --stop
	ended "$d/run" 143
	grep -q '^gmvm: stopped by a snapshot request with stop' "$d/run.err" ||
		fail "no snapshot stop line: $(cat "$d/run.err")"

	# b, restored: snapshotted while it runs, then runs to its end.
	rm -f "$c"
	start_bg "$d/rb" restore --control "$c" --timeout 300 --audit each "$d/b.snap" || return
	pause_a_bit
	snap "$d/c.snap"
	ended "$d/rb" 7
	grep -q '^done$' "$d/rb.out" || fail "restored guest did not finish: $(tail -c 300 "$d/rb.out")"
	# A restored VM's snapshot, restored; and the first snapshot.
	expect 7 "" -- restore --timeout 300 "$d/c.snap"
	expect 7 "" -- restore --timeout 300 --stats=json "$d/a.snap"
	grep -q '^done$' "$tmp/out" || fail "restored a.snap did not finish"
	grep -q '^ready$' "$tmp/out" && fail "a restored guest started again from its entry"
	rm -f "$c"
}

session
session --conversion in-place
session --init-shared --reclaim deferred
session --vcpus 2 --dmatest external

finish
