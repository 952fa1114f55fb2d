#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# `gmvm ctl` and `gmvm run --control` from the command line
# (docs/CONTROL.md).
#
#  - ctl: --help; usage errors are status 2 with one "gmvm: ctl:" line;
#    a socket nobody serves is 125 with one line;
#  - ctl against a fake server (python3, skipped without it): the exact
#    request each command sends, the reply printed as it came, 0 for
#    {"ok": true...}, 1 for {"error": ...}, 125 for no reply or a reply
#    that is not one;
#  - run --control PATH with a path it must refuse (a regular file, a
#    symlink, a live socket, an empty or too long path, no such
#    directory): 125 with one line, the file left as it was; a stale
#    socket is replaced, and the socket is gone when gmvm exits (also
#    when it fails later: here, where /dev/kvm is missing);
#  - with KVM: a session on a spinning guest (guest/tests/control_spin.c):
#    stats, pause (counters stand still, a second pause is the same),
#    resume (they move again), snapshot (a file, the VM runs on; over an
#    existing file or into no directory: an error, nothing written; a
#    relative FILE is the client's), migrate to a destination nobody
#    serves refused with the VM running on, quit: status 143 after
#    --stats and the audit line; quit while paused; SIGTERM while paused;
#    snapshot --stop while paused (143); two vCPUs;
#  - with KVM: a guest whose exits are mostly `rep outsb`/`rep insb`
#    batches (guest/tests/rep_io.c) paused and resumed over and over:
#    every line it wrote is whole and none is missing (a pause must not
#    park a vCPU on an exit KVM raised while completing the last one).
#
# Run by tests/run-tests.sh with BUILD set and cwd = the repository root.
# Exit 0 pass, 1 fail, 77 skip (the KVM part only, after the rest ran).
set -u
. "$(dirname "$0")/lib/test_util.sh"
[ -x "$GMVM" ] || { echo "no $GMVM: build gmvm first"; exit 1; }
demo=$BUILD/guest/demo.elf
spin=$BUILD/guest/control_spin.elf
rep=$BUILD/guest/rep_io.elf
[ -f "$demo" ] && [ -f "$spin" ] && [ -f "$rep" ] || { echo "no guests in $BUILD/guest: build them first"; exit 1; }

# ctl STATUS PATTERN -- ARGS...: `gmvm ctl ARGS` exits STATUS; stderr is
# empty (0 and 1) or one "gmvm: " line matching PATTERN (extended regex).
ctl() {
	local want=$1 pat=$2 st lines
	shift 3
	"$GMVM" ctl "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	st=$?
	if [ "$st" != "$want" ]; then
		fail "gmvm ctl $* exited $st, expected $want; stdout: $(head -c 300 "$tmp/out") stderr: $(head -c 300 "$tmp/err")"
		return 1
	fi
	lines=$(wc -l <"$tmp/err")
	case "$want" in
	0|1) [ "$lines" = 0 ] || fail "gmvm ctl $*: stderr: $(cat "$tmp/err")" ;;
	*) [ "$lines" = 1 ] && grep -q '^gmvm: ctl: ' "$tmp/err" ||
		fail "gmvm ctl $*: expected one 'gmvm: ctl:' line: $(cat "$tmp/err")"
	   [ -s "$tmp/out" ] && fail "gmvm ctl $*: stdout: $(cat "$tmp/out")" ;;
	esac
	if [ -n "$pat" ] && ! grep -Eq -- "$pat" "$tmp/err"; then
		fail "gmvm ctl $*: stderr does not match /$pat/: $(cat "$tmp/err")"
		return 1
	fi
	return 0
}

# run_control PATTERN -- ARGS...: gmvm run refuses the control socket:
# 125 with one line matching PATTERN.
run_control() {
	local pat=$1 st
	shift 2
	"$GMVM" run "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	st=$?
	[ "$st" = 125 ] || { fail "gmvm run $* exited $st, expected 125: $(head -c 300 "$tmp/err")"; return; }
	[ "$(wc -l <"$tmp/err")" = 1 ] && grep -Eq -- "$pat" "$tmp/err" ||
		fail "gmvm run $*: stderr should be one line matching /$pat/: $(cat "$tmp/err")"
}

# ---------------------------------------------------------------- usage
"$GMVM" ctl --help >"$tmp/out" 2>&1 || fail "gmvm ctl --help failed"
grep -q '^usage: gmvm ctl PATH COMMAND' "$tmp/out" && grep -q '^  125  no reply' "$tmp/out" ||
	fail "gmvm ctl --help: $(head -c 300 "$tmp/out")"
"$GMVM" ctl "$tmp/sock" -h >"$tmp/out" 2>&1 && grep -q '^usage: gmvm ctl' "$tmp/out" ||
	fail "gmvm ctl PATH -h does not print the usage"
"$GMVM" run --help | grep -q -- '--control PATH' || fail "gmvm run --help lacks --control"
"$GMVM" help | grep -q 'ctl PATH COMMAND' || fail "gmvm help lacks ctl"

s=$tmp/sock
ctl 2 "no control socket given" --
ctl 2 "no command given" -- "$s"
ctl 2 "unknown command 'frob'" -- "$s" frob
ctl 2 "stats: unexpected argument 'now'" -- "$s" stats now
ctl 2 "pause: unknown option '--stop'" -- "$s" pause --stop
ctl 2 "quit: unexpected argument" -- "$s" quit 143
ctl 2 "snapshot: missing argument \(usage: gmvm ctl PATH snapshot FILE \[--stop\]\)" -- "$s" snapshot
ctl 2 "snapshot: missing argument" -- "$s" snapshot --stop
ctl 2 "snapshot: unexpected argument 'b'" -- "$s" snapshot a b
ctl 2 "snapshot: unknown option '--now'" -- "$s" snapshot a --now
ctl 2 "is not valid UTF-8 \(requests are JSON text\)" -- "$s" snapshot "$(printf 'a\377')"
ctl 2 "migrate: missing argument" -- "$s" migrate
ctl 2 "migrate: 'tcp:host:1' is not unix:SOCKET" -- "$s" migrate tcp:host:1
ctl 2 "migrate: 'unix:' is not unix:SOCKET" -- "$s" migrate unix:
ctl 2 "cannot be a unix socket path" -- "$(printf '/%0200d' 0)" stats
ctl 2 "cannot be a unix socket path" -- "" stats

# ---------------------------------------------------------------- no server
ctl 125 "ctl: $s: cannot connect: No such file or directory" -- "$s" stats
mkdir "$tmp/dir"
ctl 125 "cannot connect" -- "$tmp/dir" stats
: >"$tmp/file"
ctl 125 "cannot connect" -- "$tmp/file" pause

# ---------------------------------------------------------------- fake server
# A fake server (python3): serves one connection, writes the request line
# it got to $tmp/req and answers REPLY (\n: a newline) or nothing.
cat >"$tmp/fake.py" <<'EOF'
import os, socket, sys
path, out = sys.argv[1], sys.argv[3]
reply = sys.argv[2].replace("\\n", "\n").encode()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
open(path + ".ready", "w").close()
c, _ = s.accept()
data = b""
try:
    while not data.endswith(b"\n"):
        b = c.recv(4096)
        if not b:
            break
        data += b
    c.sendall(reply)
except OSError:
    pass
open(out, "wb").write(data)
c.close()
if len(sys.argv) > 4:   # stale: leave the socket file behind
    os._exit(0)
os.unlink(path)
EOF
fake_pid=""
trap '[ -n "$fake_pid" ] && kill -9 "$fake_pid" 2>/dev/null; cleanup' EXIT
fake() {	# SOCKET REPLY [stale]
	rm -f "$1" "$1.ready" "$tmp/req"
	python3 "$tmp/fake.py" "$1" "$2" "$tmp/req" ${3:+stale} \
		>/dev/null 2>"$tmp/fake.err" &
	fake_pid=$!
	for ((i = 0; i < 100; i++)); do
		[ -e "$1.ready" ] && return 0
		sleep 0.05
	done
	fail "the fake server did not start: $(cat "$tmp/fake.err")"
	return 1
}
fake_done() {	# it has served its connection, or never will
	for ((i = 0; i < 40; i++)); do
		kill -0 "$fake_pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -9 "$fake_pid" 2>/dev/null
	wait "$fake_pid" 2>/dev/null
	fake_pid=""
}
req_is() {	# the request line the fake server got, exactly
	local got
	got=$(cat "$tmp/req")
	[ "$got" = "$1" ] || fail "request '$got', expected '$1'"
}

if command -v python3 >/dev/null 2>&1; then
	f=$tmp/fake
	fake "$f" '{"ok": true, "paused": true}\n' &&
		{ ctl 0 "" -- "$f" pause; fake_done; req_is '{"cmd": "pause"}'
		  [ "$(cat "$tmp/out")" = '{"ok": true, "paused": true}' ] ||
			fail "ctl pause printed: $(cat "$tmp/out")"; }
	for c in stats resume quit; do
		fake "$f" '{"ok": true}\n' &&
			{ ctl 0 "" -- "$f" $c; fake_done; req_is "{\"cmd\": \"$c\"}"; }
	done
	fake "$f" '{"error": "snapshot: not supported by this gmvm yet"}\n' &&
		{ gmvm=$(cd "$(dirname "$GMVM")" && pwd)/gmvm
		  (cd "$tmp/dir" && "$gmvm" ctl "$f" snapshot 'my "snap"' --stop) \
			>"$tmp/out" 2>"$tmp/err"
		  st=$?; fake_done
		  [ "$st" = 1 ] || fail "ctl snapshot to an error reply exited $st"
		  [ ! -s "$tmp/err" ] || fail "ctl snapshot: stderr: $(cat "$tmp/err")"
		  [ "$(cat "$tmp/out")" = '{"error": "snapshot: not supported by this gmvm yet"}' ] ||
			fail "ctl snapshot printed: $(cat "$tmp/out")"
		  req_is "{\"cmd\": \"snapshot\", \"path\": \"$tmp/dir/my \\\"snap\\\"\", \"stop\": true}"; }
	fake "$f" '{"error": "migrate: cannot connect to the destination: No such file or directory; the VM runs on"}\n' &&
		{ ctl 1 "" -- "$f" migrate unix:/run/dst.sock; fake_done
		  req_is '{"cmd": "migrate", "uri": "unix:/run/dst.sock"}'; }
	fake "$f" '{"ok": true, "stats": {"a": 1}}\n' &&
		{ ctl 0 "" -- "$f" snapshot /abs/path; fake_done
		  req_is '{"cmd": "snapshot", "path": "/abs/path"}'; }
	# No reply, or not one: 125 with one line.
	fake "$f" '' && { ctl 125 "the connection closed without a reply" -- "$f" stats; fake_done; }
	fake "$f" '{"ok": tr' && { ctl 125 "the connection closed in the middle of the reply" -- "$f" stats; fake_done; }
	fake "$f" 'hello\n' && { ctl 125 "the reply is not a control reply" -- "$f" stats; fake_done; }
	fake "$f" '{"ok": false}\n' && { ctl 125 "not a control reply" -- "$f" stats; fake_done; }

	# gmvm run --control: a live socket is someone else's: refused.
	fake "$f" '' && { run_control "--control $f: another process is listening" -- \
			--control "$f" "$demo"; fake_done; }
	# A stale one (nobody listens) is replaced, and removed at exit.
	fake "$f" '' stale && { "$GMVM" ctl "$f" stats >/dev/null 2>&1; fake_done; }
	[ -S "$f" ] || fail "the fake server left no stale socket"
	"$GMVM" run --control "$f" --timeout 60 "$demo" >"$tmp/out" 2>"$tmp/err" </dev/null
	st=$?
	[ "$st" = 0 ] || [ "$st" = 125 ] || fail "gmvm run --control STALE exited $st: $(cat "$tmp/err")"
	grep -q 'another process\|not a socket' "$tmp/err" && fail "a stale socket was refused: $(cat "$tmp/err")"
	[ -e "$f" ] && fail "gmvm run left its control socket behind"
else
	echo "python3 missing: the fake-server checks of gmvm ctl are skipped"
fi

# ---------------------------------------------------------------- run --control
printf 'keep' >"$tmp/file"
run_control "--control $tmp/file: exists and is not a socket; refusing to replace it" -- \
	--control "$tmp/file" "$demo"
[ "$(cat "$tmp/file")" = keep ] || fail "gmvm run --control changed a regular file"
ln -s /nonexistent "$tmp/link"
run_control "--control $tmp/link: exists and is not a socket" -- --control "$tmp/link" "$demo"
[ -L "$tmp/link" ] || fail "gmvm run --control removed a symlink"
run_control "--control $tmp/dir: exists and is not a socket" -- --control "$tmp/dir" "$demo"
run_control "--control $tmp/no/such/sock: bind: No such file or directory" -- \
	--control "$tmp/no/such/sock" "$demo"
run_control "^gmvm: --control: the socket path is empty" -- --control= "$demo"
run_control "too long for a unix socket path \(201 bytes, at most 107\)" -- \
	--control "$(printf '/%0200d' 0)" "$demo"
run_control "run: option --control needs a value" -- --control
# The image is checked first: a bad one is named, not the socket.
run_control "nonexistent.elf: cannot open" -- --control "$tmp/file" /nonexistent.elf

# Without KVM gmvm fails after making the socket: it is removed.
if [ ! -e /dev/kvm ]; then
	"$GMVM" run --control "$tmp/ctl" "$demo" >"$tmp/out" 2>"$tmp/err" </dev/null
	st=$?
	[ "$st" = 125 ] || fail "gmvm run --control without KVM exited $st"
	grep -q '/dev/kvm' "$tmp/err" || fail "without KVM: $(cat "$tmp/err")"
	[ -e "$tmp/ctl" ] && fail "gmvm run left its control socket behind after failing"
fi

# ---------------------------------------------------------------- with KVM
skip_without_kvm

# start OPTIONS...: the spinning guest (or $guest) with --control
# $tmp/ctl, until ready.
c=$tmp/ctl
start() {
	"$GMVM" run --control "$c" --timeout 120 "$@" "${guest:-$spin}" \
		>"$tmp/run.out" 2>"$tmp/run.err" </dev/null &
	bg_pid=$!
	wait_for "$tmp/run.out" '^ready$' 60 ||
		{ fail "the guest never said ready: $(head -c 300 "$tmp/run.err")"; return 1; }
	[ -S "$c" ] || { fail "no socket at $c"; return 1; }
	[ "$(stat -c %a "$c")" = 600 ] || fail "the control socket's mode is $(stat -c %a "$c")"
}
# ended STATUS: gmvm exits with STATUS, its socket gone, the audit said.
ended() {
	local st
	wait "$bg_pid"
	st=$?
	bg_pid=""
	[ "$st" = "$1" ] || fail "gmvm exited $st, expected $1: $(head -c 400 "$tmp/run.err")"
	[ -e "$c" ] && fail "the control socket outlived gmvm"
	grep -q '^gmvm: audit after the run: every invariant holds' "$tmp/run.err" ||
		fail "no audit line: $(head -c 400 "$tmp/run.err")"
}
# stat_of JSON-TEXT: the number after JSON-TEXT in the stats reply.
stat_of() {
	grep -o "$1 [0-9]*" "$tmp/out" | head -n 1 | grep -o '[0-9]*$'
}

if start --stats=json; then
	ctl 0 "" -- "$c" stats
	grep -q '^{"ok": true, "stats": {"vcpus": 1, "ram_size": ' "$tmp/out" ||
		fail "stats reply: $(head -c 300 "$tmp/out")"
	ctl 0 "" -- "$c" pause
	[ "$(cat "$tmp/out")" = '{"ok": true, "paused": true}' ] || fail "pause: $(cat "$tmp/out")"
	ctl 0 "" -- "$c" stats
	runs1=$(stat_of '"kvm_runs":') hc1=$(stat_of '"hypercalls": {"count":')
	sleep 0.3
	ctl 0 "" -- "$c" pause
	ctl 0 "" -- "$c" stats
	[ "$(stat_of '"kvm_runs":')" = "$runs1" ] &&
	[ "$(stat_of '"hypercalls": {"count":')" = "$hc1" ] ||
		fail "counters moved while paused: $(head -c 300 "$tmp/out")"
	ctl 0 "" -- "$c" resume
	[ "$(cat "$tmp/out")" = '{"ok": true, "paused": false}' ] || fail "resume: $(cat "$tmp/out")"
	sleep 0.5
	ctl 0 "" -- "$c" stats
	[ "$(stat_of '"hypercalls": {"count":')" -gt "$hc1" ] ||
		fail "no hypercalls after resume: $(head -c 300 "$tmp/out")"
	# snapshot: a file, the VM runs on; refusals write nothing.
	ctl 0 "" -- "$c" snapshot "$tmp/snap"
	grep -q "^{\"ok\": true, \"path\": \"$tmp/snap\", \"bytes\": [0-9]*, \"stopping\": false}$" "$tmp/out" ||
		fail "snapshot: $(cat "$tmp/out")"
	[ -f "$tmp/snap" ] && [ ! -e "$tmp/snap.tmp" ] || fail "snapshot: no file, or its .tmp left"
	ctl 1 "" -- "$c" snapshot "$tmp/snap"
	grep -q '^{"error": "snapshot: .* already exists; nothing was written"}$' "$tmp/out" ||
		fail "snapshot over a file: $(cat "$tmp/out")"
	ctl 1 "" -- "$c" snapshot "$tmp/no/dir/snap"
	grep -q '^{"error": "snapshot: .*No such file or directory; nothing was written"}$' "$tmp/out" ||
		fail "snapshot into no directory: $(cat "$tmp/out")"
	(cd "$tmp" && "$GMVM" ctl "$c" snapshot rel.snap >/dev/null) ||
		fail "snapshot to a relative path"
	[ -f "$tmp/rel.snap" ] || fail "a relative snapshot path is not the client's"
	ctl 0 "" -- "$c" stats
	[ "$(stat_of '"hypercalls": {"count":')" -gt "$hc1" ] ||
		fail "the VM stopped after a snapshot: $(head -c 300 "$tmp/out")"
	ctl 1 "" -- "$c" migrate "unix:$tmp/dst"
	[ "$(cat "$tmp/out")" = '{"error": "migrate: cannot connect to the destination: No such file or directory; the VM runs on"}' ] ||
		fail "migrate: $(cat "$tmp/out")"
	ctl 0 "" -- "$c" quit
	[ "$(cat "$tmp/out")" = '{"ok": true, "stopping": true}' ] || fail "quit: $(cat "$tmp/out")"
	ended 143
	grep -q '^gmvm: stopped by a quit request on the control socket' "$tmp/run.err" ||
		fail "no quit line: $(cat "$tmp/run.err")"
	grep -q '^{"vcpus": 1,' "$tmp/run.out" || fail "no --stats=json at exit: $(tail -c 300 "$tmp/run.out")"
fi

# Quit while paused; SIGTERM while paused; two vCPUs.
if start --vcpus 2; then
	ctl 0 "" -- "$c" stats
	grep -q '"vcpus": 2' "$tmp/out" || fail "stats with 2 vCPUs: $(head -c 200 "$tmp/out")"
	ctl 0 "" -- "$c" pause
	ctl 0 "" -- "$c" quit
	ended 143
fi
if start --vcpus 2; then
	ctl 0 "" -- "$c" pause
	ctl 0 "" -- "$c" snapshot "$tmp/stop.snap" --stop
	grep -q '"stopping": true}$' "$tmp/out" || fail "snapshot --stop: $(cat "$tmp/out")"
	ended 143
	grep -q '^gmvm: stopped by a snapshot request with stop' "$tmp/run.err" ||
		fail "snapshot --stop: $(cat "$tmp/run.err")"
	[ -f "$tmp/stop.snap" ] || fail "snapshot --stop wrote no file"
fi
if start; then
	ctl 0 "" -- "$c" pause
	kill -TERM "$bg_pid"
	ended 143
	grep -q '^gmvm: stopped by SIGTERM' "$tmp/run.err" || fail "SIGTERM while paused: $(cat "$tmp/run.err")"
fi

# rep_lines FILE: every line of guest/tests/rep_io.c's in FILE is whole
# and they count up from 0 with none missing; the last one may be cut
# by the quit (it has no newline then).  Prints how many were checked.
rep_lines() {
	awk -v cut="$([ "$(tail -c 1 "$1")" = "" ] && echo 0 || echo 1)" '
	BEGIN { for (i = 16; i < 8999; i++) body = body sprintf("%c", 97 + i % 26) }
	{ line[NR] = $0 }
	END {
		n = 0
		for (r = 1; r <= NR - cut; r++) {
			if (line[r] == "ready")
				continue
			if (length(line[r]) != 8999 ||
			    substr(line[r], 1, 16) != sprintf("rep-io %08x ", n) ||
			    substr(line[r], 17) != body) {
				printf "line %d (number %d) is %d bytes: %.60s...\n", r, n, length(line[r]), line[r]
				exit 1
			}
			n++
		}
		print n
	}' "$1"
}

# Pauses inside string I/O: each one settles the vCPU, whose last exit
# may be the middle of a `rep outsb`; no byte of the output may be lost.
if guest=$rep start; then
	for i in $(seq 60); do
		ctl 0 "" -- "$c" pause && ctl 0 "" -- "$c" resume || break
	done
	# A line is ~9000 exits (KVM exits once per `rep outsb` byte), a
	# fifth of a second or more here: it must write more after the
	# pauses, so that a guest stuck by them shows.
	before=$(grep -c '^rep-io ' "$tmp/run.out")
	sleep 2
	ctl 0 "" -- "$c" quit
	ended 143
	if n=$(rep_lines "$tmp/run.out"); then
		[ "$n" -ge $((before + 2)) ] ||
			fail "rep_io wrote $n whole lines, $before of them before the last 2 s: stuck after the pauses"
		echo "rep_io: $n lines whole across 60 pauses"
	else
		fail "rep_io's output after pauses: $n"
	fi
fi

finish
