#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Live migration between two gmvm processes (docs/MIGRATION.md): `gmvm
# ctl SRC migrate unix:SOCKET` to a `gmvm run --incoming unix:SOCKET`.
# Needs KVM (skipped without it; tests/test_gmvm_migrate_wire.c is the
# part that runs anywhere).
#
#  - guest/tests/snap_stress.c (every vCPU converting pages and writing
#    and checking patterns, a DMA pin held throughout) migrated at a
#    random moment: the reply says moved, the source exits 0 after its
#    audit saying "VM moved to", the destination runs the guest on to
#    its end and exits with the status the guest was asked for (7), and
#    prints "done" without "ready" (it did not start again);
#  - the migrated VM migrated again, to a third gmvm;
#  - the destination SIGKILLed in the middle of the stream (stopped first,
#    so that the kill lands before its ACK): the reply is an error, the
#    source says the migration failed and its guest runs on to status 7;
#  - each with the defaults, in-place mode, and 4 vCPUs with the external
#    DMA device.
# A host whose KVM writes guest memory behind the views, where gmvm
# refuses every migration (`gmvm caps`: "migration tracking:  none"),
# is skipped with caps' reason, before any VM starts.  Each guest is
# sized by a measured run (rounds_for) to outlast both migrations.
#
# Run by tests/run-tests.sh with BUILD set and cwd = the repository root.
# Exit 0 pass, 1 fail, 77 skip.
set -u
. "$(dirname "$0")/lib/test_util.sh"
[ -x "$GMVM" ] || { echo "no $GMVM: build gmvm first"; exit 1; }
stress=$BUILD/guest/snap_stress.elf
rounds=0	# per session: rounds_for
[ -f "$stress" ] || { echo "no $stress: build the guests first"; exit 1; }

skip_without_kvm
"$GMVM" caps >"$tmp/caps" 2>&1 || { echo "gmvm caps failed: $(cat "$tmp/caps")"; exit 1; }
if grep -q '^migration tracking:  none$' "$tmp/caps"; then
	echo "this host's gmvm refuses to migrate: $(grep -E '^  (uffd-wp|guest writes):' "$tmp/caps" | tr '\n' ' ')"
	exit 77
fi

# bg PREFIX ARGS...: gmvm ARGS in the background; its pid in $bg_pid.
bg() {
	local pre=$1
	shift
	"$GMVM" "$@" >"$pre.out" 2>"$pre.err" </dev/null &
	bg_pid=$!
}
# need_socket PATH PID: until_socket (tests/lib), a failure if it never is.
need_socket() {
	until_socket "$1" "$2" && return 0
	fail "no socket $1"
	return 1
}
# exited PID PREFIX STATUS: that gmvm exited with STATUS.
exited() {
	local st
	wait "$1"
	st=$?
	[ "$st" = "$3" ] || fail "gmvm ($2) exited $st, expected $3: $(head -c 400 "$2.err")"
}
pause_a_bit() {
	sleep "0.$((RANDOM % 9 + 1))"
}
# migrate CTL SOCKET: a migration that must succeed.
migrate() {
	local reply
	reply=$("$GMVM" ctl "$1" migrate "unix:$2")
	case $reply in
	'{"ok": true, "moved": true, "uri": "unix:'"$2"'", "tracker": "'*'", "bytes": '[0-9]*', "rounds": '[0-9]*', "downtime_ms": '*', "total_ms": '*'}') ;;
	*) fail "migrate $1 -> $2: $reply" ;;
	esac
}
# moved PID PREFIX: the source exited 0 after its audit, saying it moved.
moved() {
	exited "$1" "$2" 0
	grep -q '^gmvm: VM moved to unix:' "$2.err" ||
		fail "no 'VM moved' line: $(head -c 400 "$2.err")"
	grep -q '^gmvm: audit after the run: every invariant holds' "$2.err" ||
		fail "no audit line after moving: $(head -c 400 "$2.err")"
}

# session RUN-OPTIONS...: A -> B -> C, then A' -> a killed destination.
# running PREFIX: the guest of that gmvm has not ended yet (else a
# failure: the migration would find no VM).
running() {
	grep -q '^done$' "$1.out" || return 0
	fail "the guest ended before its migration: rounds=$rounds is too few for this host"
	return 1
}

session() {
	local d=$tmp/m$RANDOM a b c
	mkdir -p "$d"
	rounds=$(rounds_for 10 3000 "$stress" "$@") || {
		fail "session $*: two short runs of $stress did not measure it"
		return
	}
	echo "session: $* (rounds=$rounds)"
	bg "$d/a" run --control "$d/a.ctl" --timeout 300 "$@" "$stress" \
		rounds="$rounds" status=7
	a=$bg_pid
	need_socket "$d/a.ctl" "$a" || return
	wait_for "$d/a.out" '^ready$' 60 || fail "never ready: $(head -c 300 "$d/a.err")"
	bg "$d/b" run --incoming "unix:$d/b.sock" --control "$d/b.ctl" --timeout 300
	b=$bg_pid
	need_socket "$d/b.sock" "$b" || return
	pause_a_bit
	running "$d/a" || return
	migrate "$d/a.ctl" "$d/b.sock"
	moved "$a" "$d/a"
	[ -e "$d/b.sock" ] && fail "--incoming left its socket behind"

	# The migrated VM, migrated again.
	need_socket "$d/b.ctl" "$b" || return
	bg "$d/c" run --incoming "unix:$d/c.sock" --timeout 300
	c=$bg_pid
	need_socket "$d/c.sock" "$c" || return
	pause_a_bit
	running "$d/b" || return
	migrate "$d/b.ctl" "$d/c.sock"
	moved "$b" "$d/b"
	exited "$c" "$d/c" 7
	grep -q '^done$' "$d/c.out" || fail "the migrated guest did not finish: $(tail -c 300 "$d/c.out")"
	grep -q '^ready$' "$d/b.out" "$d/c.out" && fail "a migrated guest started again from its entry"

	# The destination killed mid-stream: the source keeps its guest.
	bg "$d/e" run --control "$d/e.ctl" --timeout 300 "$@" "$stress" \
		rounds="$rounds" status=7
	a=$bg_pid
	need_socket "$d/e.ctl" "$a" || return
	wait_for "$d/e.out" '^ready$' 60 || fail "never ready: $(head -c 300 "$d/e.err")"
	bg "$d/f" run --incoming "unix:$d/f.sock"
	b=$bg_pid
	need_socket "$d/f.sock" "$b" || return
	kill -STOP "$b"
	running "$d/e" || return
	"$GMVM" ctl "$d/e.ctl" migrate "unix:$d/f.sock" >"$d/m.out" 2>&1 &
	c=$!
	pause_a_bit
	kill -KILL "$b"
	wait "$b" 2>/dev/null
	wait "$c"
	[ $? = 1 ] || fail "migrate to a killed destination: $(cat "$d/m.out")"
	grep -q '^{"error": "migrate: .*; the VM runs on"}$' "$d/m.out" ||
		fail "migrate to a killed destination: $(cat "$d/m.out")"
	"$GMVM" ctl "$d/e.ctl" stats >/dev/null || fail "stats after a failed migration"
	exited "$a" "$d/e" 7
	grep -q '^gmvm: migration to unix:.* failed: .*; the VM runs on$' "$d/e.err" ||
		fail "no 'migration failed' line: $(head -c 400 "$d/e.err")"
	grep -q '^done$' "$d/e.out" || fail "the source's guest did not finish after a failed migration"
}

session
session --conversion in-place
session --vcpus 4 --dmatest external

finish
