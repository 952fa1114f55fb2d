// SPDX-License-Identifier: MIT
/*
 * The out-of-process DMA device's protocol, spoken to `gmvm dma-device`
 * directly (no KVM needed).  The device process is a trust domain of its
 * own: it must answer every message of a client that speaks the protocol
 * of vmm/devices/dma_protocol.h, bad ones with an error, never crash, and map
 * the backing only at offset = IOVA.  In order: messages before HELLO,
 * short, long and empty ones, bad HELLOs (no fd, two fds, a pipe, a small
 * backing, bad sizes), every mapping request a correct mapper never makes,
 * DMA through its own mappings only, pins against UNMAP/CUT, a full pin
 * table, then 20000 random messages; the device exits 0 on BYE and prints
 * nothing the whole time.
 *
 * The device is the gmvm of this build tree (BUILD/gmvm beside
 * BUILD/tests/), so the test runs against the sanitised gmvm under make
 * check and the TSan one under make check-tsan.
 *
 * //@ concurrency (the device process runs under TSan too)
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gmvm/abi.h"
#include "dma_protocol.h"

#define RAM (4ULL << 20)
#define K4 4096ULL
#define MAX_FAILS 20

static int sock, fails;
static uint64_t seq = 100;
static pid_t pid;

/* A failed check is reported and counted; the test goes on (to 20). */
#define CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			printf("FAIL: line %d: ", __LINE__);		\
			printf(__VA_ARGS__);				\
			printf("\n");					\
			if (++fails > MAX_FAILS)			\
				exit(1);				\
		}							\
	} while (0)

#define OK(x) CHECK((x) == 0, "%s = %d", #x, (int)(x))
#define REFUSED(x) CHECK((x) < 0, "%s = %d, expected an error", #x, (int)(x))

/* A failure to set the test up (not a check). */
static void __attribute__((noreturn)) die(const char *what)
{
	printf("FAIL: %s: %s\n", what, strerror(errno));
	exit(1);
}

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

/* One message without fds; its err, the whole ack in *@ack if given. */
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

/* A DMA command: its STATUS, its RESULT in *@result if given. */
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

/*
 * Fork + exec the gmvm beside this build's tests/ as `gmvm dma-device` on
 * one end of a socketpair, with its stdout and stderr in @out_fd.
 */
static void start_device(int out_fd)
{
	char self[PATH_MAX], gmvm[PATH_MAX + 16], *slash;
	ssize_t n;
	int sv[2];

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		die("/proc/self/exe");
	self[n] = '\0';
	slash = strrchr(self, '/');
	*slash = '\0';
	snprintf(gmvm, sizeof(gmvm), "%s/../gmvm", self);
	if (access(gmvm, X_OK)) {
		printf("FAIL: no %s: build gmvm first\n", gmvm);
		exit(1);
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		die("socketpair");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		dup2(sv[1], DMADEV_FD);
		dup2(out_fd, STDOUT_FILENO);
		dup2(out_fd, STDERR_FILENO);
		execl(gmvm, "gmvm", "dma-device", (char *)NULL);
		_exit(127);
	}
	sock = sv[0];
	close(sv[1]);
}

/* Before HELLO, and malformed messages. */
static void test_before_hello(void)
{
	char junk[100] = { 0 };
	struct dmadev_ack ack;

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
}

/* Bad HELLOs, then the good one: the device's base address. */
static uint64_t test_hello(int memfd, int small, int pipe_fd)
{
	struct dmadev_ack ack;
	int two[2] = { memfd, memfd };
	uint64_t base;

	CHECK(hello(RAM, NULL, 0, &ack) == -EBADMSG, "HELLO without fd");
	CHECK(hello(RAM, two, 2, &ack) == -EBADMSG, "HELLO with two fds");
	CHECK(hello(RAM, &pipe_fd, 1, &ack) == -EBADF, "HELLO with a pipe");
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
	return base;
}

/*
 * Mapping requests a correct mapper never makes, between the ones that
 * build two mappings [0, 4) and [8, 32) pages: in this order, each
 * refused (an error) or done (0).
 */
static const struct map_request {
	uint32_t type, flags;
	uint64_t a, b, c, d;
	bool ok;
} map_requests[] = {
	{ DMADEV_MAP, 0, 1, K4, 0, 0, false },
	{ DMADEV_MAP, 0, 0, 0, 0, 0, false },
	{ DMADEV_MAP, 0, RAM, K4, 0, 0, false },
	{ DMADEV_MAP, 0, RAM - K4, 2 * K4, 0, 0, false },
	{ DMADEV_MAP, 0, -K4, 2 * K4, 0, 0, false },
	{ DMADEV_MAP, 0x10, 0, K4, 0, 0, false },
	{ DMADEV_MAP, 0, 0, 16 * K4, 0, 0, true },
	{ DMADEV_MAP, 0, 8 * K4, 16 * K4, 0, 0, false },
	{ DMADEV_MAP, 0, 16 * K4, 16 * K4, 0, 0, true },
	{ DMADEV_MERGE, 0, 0, 16 * K4, 0, 0, false },
	{ DMADEV_MERGE, 0, 0, 24 * K4, 0, 0, false },
	{ DMADEV_MERGE, 0, 0, 48 * K4, 0, 0, false },
	{ DMADEV_MERGE, 0, 0, 32 * K4, 0, 0, true },
	{ DMADEV_UNMAP, 0, 0, 16 * K4, 0, 0, false },
	{ DMADEV_CUT, 0, 0, 16 * K4, 0, K4, false },
	{ DMADEV_CUT, 0, 0, 32 * K4, 0, 32 * K4, false },
	{ DMADEV_CUT, 0, 0, 32 * K4, 30 * K4, 4 * K4, false },
	{ DMADEV_CUT, 0, 0, 32 * K4, 4 * K4, 4 * K4, true },
};

static void test_map_requests(int memfd)
{
	struct dmadev_ack ack;
	size_t i;

	for (i = 0; i < sizeof(map_requests) / sizeof(map_requests[0]); i++) {
		const struct map_request *r = &map_requests[i];
		int32_t err = op(r->type, r->flags, r->a, r->b, r->c, r->d,
				 NULL);

		CHECK(r->ok ? err == 0 : err < 0,
		      "request %zu (type %u flags %#x %#llx %#llx %#llx %#llx) = %d, expected %s",
		      i, r->type, r->flags, (unsigned long long)r->a,
		      (unsigned long long)r->b, (unsigned long long)r->c,
		      (unsigned long long)r->d, (int)err,
		      r->ok ? "0" : "an error");
	}
	OK(op(DMADEV_STATE, 0, 0, 0, 0, 0, &ack));
	CHECK(ack.v0 == 2, "STATE: %llu mappings, expected 2",
	      (unsigned long long)ack.v0);
	{
		struct dmadev_msg m = { DMADEV_UNMAP, 0, ++seq, 0, 4 * K4,
					0, 0 };

		xfer(&m, sizeof(m), &memfd, 1, &ack);
		CHECK(ack.err == -EBADMSG, "an fd with UNMAP: %d", ack.err);
	}
}

/* DMA through the device's own mappings, seen in the backing @mem. */
static void test_dma(const uint8_t *mem)
{
	uint32_t sum = 0;

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
}

/* Pins refuse a plain unmap or cut, not a forced one. */
static void test_pins(void)
{
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
}

/*
 * A full pin table is STATUS 3 (ABI extension 2), not a bad request, and
 * pins nothing more.
 */
static void test_pin_table(void)
{
	int i;

	for (i = 0; i < GM_DMA_MAX_PINS; i++)
		CHECK(dma(GM_DMA_CMD_PIN, K4, 10, 0, NULL) == GM_DMA_OK,
		      "PIN %d of %d", i + 1, GM_DMA_MAX_PINS);
	CHECK(dma(GM_DMA_CMD_PIN, 2 * K4, K4, 0, NULL) ==
	      GM_DMA_NO_RESOURCES, "PIN with the pin table full");
	CHECK(dma(GM_DMA_CMD_UNPIN, 2 * K4, K4, 0, NULL) == GM_DMA_BAD,
	      "UNPIN of the pin that did not fit");
	for (i = 0; i < GM_DMA_MAX_PINS; i++)
		CHECK(dma(GM_DMA_CMD_UNPIN, K4, 10, 0, NULL) == GM_DMA_OK,
		      "UNPIN %d of %d", i + 1, GM_DMA_MAX_PINS);
	CHECK(dma(GM_DMA_CMD_UNPIN, K4, 10, 0, NULL) == GM_DMA_BAD,
	      "UNPIN after all were let go");
}

/*
 * Random requests: answered one by one, and the device lives on.  One in
 * 16 is cut short or sent long (up to 63 bytes: the rest of the buffer,
 * zeros).
 */
static void test_random(void)
{
	uint64_t i, rnd = 88172645463325252ULL;
	struct dmadev_ack ack;

	for (i = 0; i < 20000; i++) {
		union {
			struct dmadev_msg m;
			uint8_t bytes[64];
		} u = { 0 };
		struct dmadev_msg *m = &u.m;
		uint64_t r;

		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		r = rnd;
		m->type = (uint32_t)(r % 10);
		m->flags = (r >> 4) % 4 ? (uint32_t)((r >> 8) & 1) :
					  (uint32_t)(r >> 32);
		m->seq = ++seq;
		m->a = ((r >> 10) % 1100) * K4 + ((r >> 50) % 16 ? 0 : 5);
		m->b = ((r >> 20) % 64 + ((r >> 60) ? 1 : 0)) * K4;
		m->c = ((r >> 30) % 1024) * K4;
		m->d = ((r >> 40) % 64) * K4;
		if (m->type == DMADEV_BYE || m->type == DMADEV_HELLO)
			m->type = DMADEV_MERGE;
		if (m->type == DMADEV_DMA) {
			m->flags = (uint32_t)(r >> 5) % 6;
			m->c = (r >> 9) % 300;
		}
		xfer(&u, (r >> 58) % 16 ? sizeof(*m) : (r >> 45) % 64, NULL, 0,
		     &ack);
		CHECK(ack.seq == m->seq || ack.seq == 0,
		      "random %llu: ack seq", (unsigned long long)i);
		CHECK(ack.err <= 0 && ack.err >= -4095, "random: err %d",
		      ack.err);
	}
}

/* What the device printed on stdout and stderr (@out_fd): nothing. */
static void check_silent(int out_fd)
{
	char buf[601];
	ssize_t n;

	n = pread(out_fd, buf, sizeof(buf) - 1, 0);
	if (n > 0) {
		buf[n] = '\0';
		printf("FAIL: the device process printed: %s\n", buf);
		fails++;
	}
}

int main(void)
{
	int memfd, small, pfd[2], out_fd, st = 0;
	struct dmadev_ack ack;
	uint64_t base;
	uint8_t *mem;

	out_fd = memfd_create("dmadev-output", MFD_CLOEXEC);
	memfd = memfd_create("dmadev-test", MFD_CLOEXEC);
	small = memfd_create("dmadev-small", MFD_CLOEXEC);
	if (out_fd < 0 || memfd < 0 || small < 0 || ftruncate(memfd, RAM) ||
	    ftruncate(small, RAM / 2) || pipe(pfd))
		die("setting up the backings");
	mem = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (mem == MAP_FAILED)
		die("mmap of the backing");
	start_device(out_fd);

	test_before_hello();
	base = test_hello(memfd, small, pfd[0]);
	test_map_requests(memfd);
	test_dma(mem);
	test_pins();
	check_maps(base);
	test_pin_table();
	test_random();
	check_maps(base);
	OK(op(DMADEV_STATE, 0, 0, 0, 0, 0, &ack));

	OK(op(DMADEV_BYE, 0, 0, 0, 0, 0, NULL));
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	      WEXITSTATUS(st) == 0, "device exit status %#x", st);
	check_silent(out_fd);
	munmap(mem, RAM);
	return fails ? 1 : 0;
}
