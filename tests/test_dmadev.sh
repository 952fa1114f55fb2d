#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The out-of-process DMA device (gmvm run --dmatest=external):
#  - `gmvm dma-device` by hand is refused (125, one line);
#  - the device process answers every message of a client that speaks its
#    protocol, bad and random ones with errors, never crashes, and maps the
#    backing only at offset = IOVA (no KVM needed);
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
#
#@ concurrency (the death monitor thread runs under TSan too)
# Run by tests/run-tests.sh with BUILD set and cwd = the repository root.
# Exit 0 pass, 1 fail, 77 skip.
set -u
BUILD=${BUILD:-build}
GMVM=$BUILD/gmvm
DEATH=$BUILD/guest/dma_death.elf
SCALE=$BUILD/guest/dma_scale.elf
for f in "$GMVM" "$DEATH" "$SCALE"; do
	[ -e "$f" ] || { echo "no $f: build first"; exit 1; }
done

tmp=$(mktemp -d)
gmvm_pid=""
cleanup() {
	[ -n "$gmvm_pid" ] && kill -9 "$gmvm_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fails=0

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# ---------------------------------------------------------------- by hand
"$GMVM" dma-device >"$tmp/out" 2>"$tmp/err" </dev/null
st=$?
[ "$st" = 125 ] || fail "gmvm dma-device by hand exited $st, expected 125"
[ "$(wc -l <"$tmp/err")" = 1 ] && grep -q 'internal command' "$tmp/err" ||
	fail "gmvm dma-device by hand: stderr: $(cat "$tmp/err")"
"$GMVM" help >"$tmp/out" 2>&1
grep -q 'dma-device' "$tmp/out" || fail "gmvm help does not mention dma-device"

# ---------------------------------------------------------------- protocol
# The device process is a trust domain of its own: it must answer every
# message, bad ones with an error, and never crash or map outside what it
# was told.  A small client speaks the protocol (vmm/devices/dmadev.h) to
# `gmvm dma-device` directly: messages before HELLO, short, long and empty
# ones, bad HELLOs (no fd, two fds, a pipe, a small backing, bad sizes),
# every mapping request a correct mapper never makes, DMA through its own
# mappings only, pins against UNMAP/CUT, then 20000 random messages.
cat >"$tmp/client.c" <<'CLIENT_EOF'
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gmvm/abi.h"
#include "dmadev.h"

#define RAM (4ULL << 20)
#define K4 4096ULL

static int sock, fails;
static uint64_t seq = 100;
static pid_t pid;

#define CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			printf("FAIL: line %d: ", __LINE__);		\
			printf(__VA_ARGS__);				\
			printf("\n");					\
			if (++fails > 20)				\
				exit(1);				\
		}							\
	} while (0)

/* Send @len bytes of @m (and @nfds fds); the ack, or exit if none. */
static void xfer(const void *m, size_t len, const int *fds, int nfds,
		 struct dmadev_ack *ack)
{
	union {
		char buf[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)m, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct pollfd p = { .fd = sock, .events = POLLIN };

	if (nfds) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)len) {
		printf("FAIL: send: %s (the device died?)\n", strerror(errno));
		exit(1);
	}
	memset(ack, 0, sizeof(*ack));
	if (poll(&p, 1, 10000) != 1 ||
	    recv(sock, ack, sizeof(*ack), 0) != (ssize_t)sizeof(*ack)) {
		printf("FAIL: no ack (the device died or hangs)\n");
		exit(1);
	}
}

static int32_t op(uint32_t type, uint32_t flags, uint64_t a, uint64_t b,
		  uint64_t c, uint64_t d, struct dmadev_ack *ack)
{
	struct dmadev_msg m = { type, flags, ++seq, a, b, c, d };
	struct dmadev_ack tmp;

	if (!ack)
		ack = &tmp;
	xfer(&m, sizeof(m), NULL, 0, ack);
	CHECK(ack->seq == m.seq && ack->type == type,
	      "ack seq %llu type %u for seq %llu type %u",
	      (unsigned long long)ack->seq, ack->type,
	      (unsigned long long)m.seq, type);
	return ack->err;
}

static int32_t hello(uint64_t ram, const int *fds, int nfds,
		     struct dmadev_ack *ack)
{
	struct dmadev_msg m = { DMADEV_HELLO, 0, ++seq, ram, 0, 0, 0 };

	xfer(&m, sizeof(m), fds, nfds, ack);
	CHECK(ack->seq == m.seq, "hello: ack seq");
	return ack->err;
}

#define OK(x) CHECK((x) == 0, "%s = %d", #x, (int)(x))
#define REFUSED(x) CHECK((x) < 0, "%s = %d, expected an error", #x, (int)(x))

static uint64_t dma(uint32_t cmd, uint64_t addr, uint64_t len, uint64_t pat,
		    uint32_t *result)
{
	struct dmadev_ack ack;

	OK(op(DMADEV_DMA, cmd, addr, len, pat, 0, &ack));
	if (result)
		*result = (uint32_t)ack.v1;
	return ack.v0;
}

/* Every mapping of the memfd in the device sits at base + its offset. */
static void check_maps(uint64_t base)
{
	char path[64], line[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "r");
	CHECK(f, "%s: %s", path, strerror(errno));
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e, off;

		if (!strstr(line, "dmadev-test"))
			continue;
		if (sscanf(line, "%llx-%llx %*s %llx", &s, &e, &off) != 3)
			continue;
		CHECK(s >= base && e <= base + RAM && off == s - base,
		      "device maps the memfd badly: %s", line);
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	int sv[2], memfd, small, pfd[2], two[2];
	uint64_t base, i, rnd = 88172645463325252ULL;
	struct dmadev_ack ack;
	char junk[100] = { 0 };
	uint32_t sum = 0;
	uint8_t *mem;
	int st = 0;

	if (argc != 2)
		return 2;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return 2;
	pid = fork();
	if (pid == 0) {
		dup2(sv[1], DMADEV_FD);
		execl(argv[1], "gmvm", "dma-device", (char *)NULL);
		_exit(127);
	}
	sock = sv[0];
	close(sv[1]);
	memfd = memfd_create("dmadev-test", MFD_CLOEXEC);
	small = memfd_create("dmadev-small", MFD_CLOEXEC);
	if (memfd < 0 || small < 0 || ftruncate(memfd, RAM) ||
	    ftruncate(small, RAM / 2) || pipe(pfd))
		return 2;
	mem = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (mem == MAP_FAILED)
		return 2;

	/* Before HELLO, and malformed messages. */
	CHECK(op(DMADEV_MAP, 0, 0, K4, 0, 0, NULL) == -EPROTO,
	      "MAP before HELLO");
	xfer(junk, 10, NULL, 0, &ack);
	CHECK(ack.err == -EBADMSG && ack.seq == 0, "short message: %d",
	      ack.err);
	memset(junk, 0xff, sizeof(junk));
	xfer(junk, sizeof(junk), NULL, 0, &ack);
	CHECK(ack.err == -EBADMSG && ack.seq == 0, "long message: %d",
	      ack.err);
	REFUSED(op(99, 0, 0, 0, 0, 0, NULL));

	/* Bad HELLOs. */
	CHECK(hello(RAM, NULL, 0, &ack) == -EBADMSG, "HELLO without fd");
	two[0] = memfd;
	two[1] = memfd;
	CHECK(hello(RAM, two, 2, &ack) == -EBADMSG, "HELLO with two fds");
	CHECK(hello(RAM, &pfd[0], 1, &ack) == -EBADF, "HELLO with a pipe");
	CHECK(hello(RAM, &small, 1, &ack) == -EBADF,
	      "HELLO, backing too small");
	REFUSED(hello(0, &memfd, 1, &ack));
	REFUSED(hello(RAM + 1, &memfd, 1, &ack));
	REFUSED(hello(1ULL << 60, &memfd, 1, &ack));
	OK(hello(RAM, &memfd, 1, &ack));
	base = ack.v0;
	CHECK(base && !(base % K4), "HELLO: base %#llx",
	      (unsigned long long)base);
	CHECK(hello(RAM, &memfd, 1, &ack) == -EPROTO, "second HELLO");

	/* Mapping requests a correct mapper never makes. */
	REFUSED(op(DMADEV_MAP, 0, 1, K4, 0, 0, NULL));
	REFUSED(op(DMADEV_MAP, 0, 0, 0, 0, 0, NULL));
	REFUSED(op(DMADEV_MAP, 0, RAM, K4, 0, 0, NULL));
	REFUSED(op(DMADEV_MAP, 0, RAM - K4, 2 * K4, 0, 0, NULL));
	REFUSED(op(DMADEV_MAP, 0, -K4, 2 * K4, 0, 0, NULL));
	REFUSED(op(DMADEV_MAP, 0x10, 0, K4, 0, 0, NULL));
	OK(op(DMADEV_MAP, 0, 0, 16 * K4, 0, 0, NULL));
	REFUSED(op(DMADEV_MAP, 0, 8 * K4, 16 * K4, 0, 0, NULL));
	OK(op(DMADEV_MAP, 0, 16 * K4, 16 * K4, 0, 0, NULL));
	REFUSED(op(DMADEV_MERGE, 0, 0, 16 * K4, 0, 0, NULL));
	REFUSED(op(DMADEV_MERGE, 0, 0, 24 * K4, 0, 0, NULL));
	REFUSED(op(DMADEV_MERGE, 0, 0, 48 * K4, 0, 0, NULL));
	OK(op(DMADEV_MERGE, 0, 0, 32 * K4, 0, 0, NULL));
	REFUSED(op(DMADEV_UNMAP, 0, 0, 16 * K4, 0, 0, NULL));
	REFUSED(op(DMADEV_CUT, 0, 0, 16 * K4, 0, K4, NULL));
	REFUSED(op(DMADEV_CUT, 0, 0, 32 * K4, 0, 32 * K4, NULL));
	REFUSED(op(DMADEV_CUT, 0, 0, 32 * K4, 30 * K4, 4 * K4, NULL));
	OK(op(DMADEV_CUT, 0, 0, 32 * K4, 4 * K4, 4 * K4, NULL));
	OK(op(DMADEV_STATE, 0, 0, 0, 0, 0, &ack));
	CHECK(ack.v0 == 2, "STATE: %llu mappings, expected 2",
	      (unsigned long long)ack.v0);
	{
		struct dmadev_msg m = { DMADEV_UNMAP, 0, ++seq, 0, 4 * K4,
					0, 0 };

		xfer(&m, sizeof(m), &memfd, 1, &ack);
		CHECK(ack.err == -EBADMSG, "an fd with UNMAP: %d", ack.err);
	}

	/* DMA through the device's own mappings. */
	CHECK(dma(GM_DMA_CMD_FILL, 100, 3 * K4, 0x5a, NULL) == GM_DMA_OK,
	      "FILL");
	CHECK(mem[100] == 0x5a && mem[100 + 3 * K4 - 1] == 0x5a &&
	      mem[99] == 0 && mem[100 + 3 * K4] == 0, "FILL wrote elsewhere");
	CHECK(dma(GM_DMA_CMD_CHECKSUM, 100, 3 * K4, 0, &sum) == GM_DMA_OK &&
	      sum == 0x5a * 3 * K4, "CHECKSUM: %#x", sum);
	CHECK(dma(GM_DMA_CMD_CHECKSUM, 3 * K4, 2 * K4, 0, &sum) ==
	      GM_DMA_FAULT, "CHECKSUM over the cut hole");
	CHECK(dma(GM_DMA_CMD_FILL, 40 * K4, K4, 1, NULL) == GM_DMA_FAULT,
	      "FILL of an unmapped page");
	CHECK(mem[40 * K4] == 0, "a faulted FILL wrote");
	CHECK(dma(0, 0, K4, 0, NULL) == GM_DMA_BAD, "CMD 0");
	CHECK(dma(5, 0, K4, 0, NULL) == GM_DMA_BAD, "CMD 5");
	CHECK(dma(GM_DMA_CMD_FILL, 0, 0, 0, NULL) == GM_DMA_BAD, "LEN 0");
	CHECK(dma(GM_DMA_CMD_FILL, 0, GM_DMA_MAX_LEN + 1, 0, NULL) ==
	      GM_DMA_BAD, "LEN too big");
	CHECK(dma(GM_DMA_CMD_FILL, RAM - 1, 2, 0, NULL) == GM_DMA_BAD,
	      "past RAM");
	CHECK(dma(GM_DMA_CMD_FILL, -1ULL, 2, 0, NULL) == GM_DMA_BAD, "wraps");
	CHECK(dma(GM_DMA_CMD_FILL, 0, K4, 0x100, NULL) == GM_DMA_BAD,
	      "pattern 0x100");

	/* Pins refuse a plain unmap or cut, not a forced one. */
	CHECK(dma(GM_DMA_CMD_PIN, 10 * K4, 10, 0, NULL) == GM_DMA_OK, "PIN");
	CHECK(op(DMADEV_CUT, 0, 8 * K4, 24 * K4, 10 * K4, K4, NULL) ==
	      -EAGAIN, "CUT of a pinned page");
	CHECK(op(DMADEV_UNMAP, 0, 8 * K4, 24 * K4, 0, 0, NULL) == -EAGAIN,
	      "UNMAP of a pinned page");
	OK(op(DMADEV_CUT, 0, 8 * K4, 24 * K4, 8 * K4, K4, NULL));
	OK(op(DMADEV_UNMAP, GMEM_DISCARD_FORCED, 9 * K4, 23 * K4, 0, 0,
	      NULL));
	CHECK(dma(GM_DMA_CMD_UNPIN, 10 * K4, 10, 0, NULL) == GM_DMA_OK,
	      "UNPIN");
	REFUSED(op(DMADEV_UNMAP, 2, 0, 4 * K4, 0, 0, NULL));
	check_maps(base);

	/* A full pin table is STATUS 3 (ABI extension 2), not a bad
	 * request, and pins nothing more. */
	for (i = 0; i < GM_DMA_MAX_PINS; i++)
		CHECK(dma(GM_DMA_CMD_PIN, K4, 10, 0, NULL) == GM_DMA_OK,
		      "PIN %d of %d", (int)i + 1, GM_DMA_MAX_PINS);
	CHECK(dma(GM_DMA_CMD_PIN, 2 * K4, K4, 0, NULL) ==
	      GM_DMA_NO_RESOURCES, "PIN with the pin table full");
	CHECK(dma(GM_DMA_CMD_UNPIN, 2 * K4, K4, 0, NULL) == GM_DMA_BAD,
	      "UNPIN of the pin that did not fit");
	for (i = 0; i < GM_DMA_MAX_PINS; i++)
		CHECK(dma(GM_DMA_CMD_UNPIN, K4, 10, 0, NULL) == GM_DMA_OK,
		      "UNPIN %d of %d", (int)i + 1, GM_DMA_MAX_PINS);
	CHECK(dma(GM_DMA_CMD_UNPIN, K4, 10, 0, NULL) == GM_DMA_BAD,
	      "UNPIN after all were let go");

	/* Random requests: answered one by one, and the device lives on. */
	for (i = 0; i < 20000; i++) {
		struct dmadev_msg m;
		uint64_t r;

		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		r = rnd;
		m.type = (uint32_t)(r % 10);
		m.flags = (r >> 4) % 4 ? (uint32_t)((r >> 8) & 1) :
					 (uint32_t)(r >> 32);
		m.seq = ++seq;
		m.a = ((r >> 10) % 1100) * K4 + ((r >> 50) % 16 ? 0 : 5);
		m.b = ((r >> 20) % 64 + ((r >> 60) ? 1 : 0)) * K4;
		m.c = ((r >> 30) % 1024) * K4;
		m.d = ((r >> 40) % 64) * K4;
		if (m.type == DMADEV_BYE || m.type == DMADEV_HELLO)
			m.type = DMADEV_MERGE;
		if (m.type == DMADEV_DMA) {
			m.flags = (uint32_t)(r >> 5) % 6;
			m.c = (r >> 9) % 300;
		}
		xfer(&m, (r >> 58) % 16 ? sizeof(m) : (r >> 45) % 64, NULL, 0,
		     &ack);
		CHECK(ack.seq == m.seq || ack.seq == 0,
		      "random %llu: ack seq", (unsigned long long)i);
		CHECK(ack.err <= 0 && ack.err >= -4095, "random: err %d",
		      ack.err);
	}
	check_maps(base);
	OK(op(DMADEV_STATE, 0, 0, 0, 0, 0, &ack));

	OK(op(DMADEV_BYE, 0, 0, 0, 0, 0, NULL));
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	      WEXITSTATUS(st) == 0, "device exit status %#x", st);
	return fails ? 1 : 0;
}
CLIENT_EOF
if ! ${CC:-cc} -std=gnu11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude \
	-Ivmm/devices -o "$tmp/client" "$tmp/client.c" 2>"$tmp/cc.err"; then
	fail "cannot build the protocol client: $(head -c 600 "$tmp/cc.err")"
elif ! "$tmp/client" "$GMVM" >"$tmp/client.out" 2>&1; then
	fail "protocol client: $(head -n 8 "$tmp/client.out")"
elif [ -s "$tmp/client.out" ]; then
	fail "the device process printed: $(head -c 600 "$tmp/client.out")"
fi

if [ ! -e /dev/kvm ] || [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	[ "$fails" -gt 0 ] && exit 1
	echo "KVM not usable (/dev/kvm missing or not read-writable): skipping the runs"
	exit 77
fi

# The only child of $1 (the device process), or "".
child_of() {
	local p pp
	for p in /proc/[0-9]*; do
		pp=$(awk '{ print $4 }' "$p/stat" 2>/dev/null) || continue
		[ "$pp" = "$1" ] && { echo "${p#/proc/}"; return; }
	done
}

# wait_for FILE PATTERN SECONDS: until FILE has a line matching PATTERN.
wait_for() {
	local i
	for ((i = 0; i < $3 * 20; i++)); do
		grep -Eq -- "$2" "$1" 2>/dev/null && return 0
		kill -0 "$gmvm_pid" 2>/dev/null || break
		sleep 0.05
	done
	grep -Eq -- "$2" "$1" 2>/dev/null
}

# wait_gmvm SECONDS: its exit status in $st, or 999 if it hung (killed).
wait_gmvm() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do
		kill -0 "$gmvm_pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$gmvm_pid" 2>/dev/null; then
		kill -9 "$gmvm_pid"
		wait "$gmvm_pid" 2>/dev/null
		st=999
	else
		wait "$gmvm_pid"
		st=$?
	fi
	gmvm_pid=""
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

# ---------------------------------------------------------------- SIGKILL
"$GMVM" run --timeout 120 --dmatest=external --stats "$DEATH" pad=$pad \
	>"$tmp/out" 2>"$tmp/err" </dev/null &
gmvm_pid=$!
if ! wait_for "$tmp/out" '^dma_death: ready' 60; then
	fail "dma_death never got ready: $(cat "$tmp/out" "$tmp/err")"
	wait_gmvm 5
else
	c=$(child_of "$gmvm_pid")
	if [ -z "$c" ]; then
		fail "gmvm (pid $gmvm_pid) has no device process"
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
"$GMVM" run --timeout 120 --dmatest=external "$DEATH" pad=$pad \
	>"$tmp/out" 2>"$tmp/err" </dev/null &
gmvm_pid=$!
if ! wait_for "$tmp/out" '^dma_death: ready' 60; then
	fail "dma_death never got ready: $(cat "$tmp/out" "$tmp/err")"
	wait_gmvm 5
else
	c=$(child_of "$gmvm_pid")
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

if [ "$fails" -gt 0 ]; then
	echo "$fails failures"
	exit 1
fi
echo "all passed"
exit 0
