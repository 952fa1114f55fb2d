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
# finish (1 with the number of failures, else 0).
BUILD=${BUILD:-build}
GMVM=$BUILD/gmvm

tmp=$(mktemp -d)
bg_pid=""
cleanup() {
	[ -n "$bg_pid" ] && kill -9 "$bg_pid" 2>/dev/null
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
