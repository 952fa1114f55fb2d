/* SPDX-License-Identifier: MIT */
/*
 * gmvm's side of the out-of-process DMA test device (--dmatest=external;
 * the protocol is in dmadev.h, the device in dmadev_proc.c).
 *
 * gmvm starts the device with fork + exec of /proc/self/exe dma-device.
 * The child keeps only its socket end (at fd DMADEV_FD, everything above
 * it closed before exec; every fd gmvm opens is O_CLOEXEC as well) and
 * stdin/stdout/stderr, and dies with gmvm (PR_SET_PDEATHSIG).  HELLO
 * hands it the shared backing's fd and nothing else.
 *
 * The mapper's ops (dmadev_dma_ops) are forwarded and return only after
 * the device's ack, so a conversion to private completes only after the
 * device has unmapped.  Each op is first checked against a mirror (a
 * strict swiommu holding what the device was told), which counts mapper
 * violations without trusting the device and stands in for the device's
 * mappings in report() once it is dead.
 *
 * Death: an op or command that finds the socket closed, times out
 * (DMADEV_ACK_TIMEOUT_MS) or gets a malformed ack marks the device dead and
 * kills it (SIGKILL through the pidfd: no pid reuse race).  A monitor
 * thread polls the pidfd; when the process ends it reaps it, prints one
 * line, and calls on_death (which destroys the mapper: never from inside a
 * mapper callback, since that takes libgmem's whole-RAM range lock).  Once
 * dead, ops succeed without doing anything (the mirror still follows the
 * mapper), DMA commands fail with GM_DMA_FAULT, and report() reports the
 * mirror, so audits stay consistent until the mapper is gone.
 *
 * Locking: c->lock serialises the socket (one request in flight), seq,
 * dead and why; it is a leaf for libgmem (ops are called under the
 * mapper's lock; DMA commands under the device register lock) except that
 * report() reads /proc/PID/maps under it.  The mirror has its own leaf
 * lock.  pid, pidfd, mem_* and base are written before the monitor starts
 * and read-only afterwards; reaped, ws and death_reported belong to the
 * monitor until it is joined, then to dmadev_stop().
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../gmvm.h"
#include "dmadev.h"

#define MAPS_BUF (64 * 1024)

struct dmadev {
	pthread_mutex_t lock;	/* sock, seq, dead, why, report_err */
	int sock;
	uint64_t seq;
	bool dead;
	char why[128];		/* why gmvm killed it, if it did */
	char report_err[256];	/* the first report() problem */

	pid_t pid;
	int pidfd;
	int stop_fd;		/* eventfd: stop the monitor */
	pthread_t monitor;
	bool monitor_running;
	void (*on_death)(void *arg);
	void *arg;

	uint64_t ram_size;
	uint64_t mem_offset;	/* the backing's file offset of IOVA 0 */
	uint64_t base;		/* the device's address of IOVA 0 */
	unsigned int mem_major, mem_minor;
	uint64_t mem_ino;

	struct swiommu mirror;
	uint64_t device_refused;	/* -EINVAL from the device for ops
					   the mirror accepted */

	bool reaped;
	int ws;			/* wait status, once reaped */
	bool death_reported;
};

/* ---- transport ----------------------------------------------------------- */

static void kill_locked(struct dmadev *c, const char *why)
{
	if (why && !c->why[0])
		snprintf(c->why, sizeof(c->why), "%s", why);
	c->dead = true;
	if (!c->reaped)
		pidfd_send_signal(c->pidfd, SIGKILL, NULL, 0);
}

static uint64_t ms_left(uint64_t deadline)
{
	uint64_t now = now_ns();

	return now >= deadline ? 0 : (deadline - now + 999999) / 1000000;
}

/*
 * One request and its ack, with c->lock held; @fd (if >= 0) rides along.
 * 0 with *ack filled, or -EPIPE: the device is dead (or now killed).
 */
static int rpc_locked(struct dmadev *c, struct dmadev_msg *m, int fd,
		      struct dmadev_ack *ack)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	uint64_t deadline;
	ssize_t n;

	if (c->dead)
		return -EPIPE;
	m->seq = ++c->seq;
	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do {
		n = sendmsg(c->sock, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*m)) {
		kill_locked(c, NULL);	/* EPIPE: it is gone */
		return -EPIPE;
	}
	deadline = now_ns() + DMADEV_ACK_TIMEOUT_MS * 1000000ULL;
	for (;;) {
		struct pollfd p = { .fd = c->sock, .events = POLLIN };
		int r = poll(&p, 1, (int)ms_left(deadline));

		if (r < 0 && errno == EINTR)
			continue;	/* a vCPU kick */
		if (r == 0) {
			kill_locked(c, "it did not answer within 10 s");
			return -EPIPE;
		}
		if (r < 0) {
			kill_locked(c, "gmvm cannot poll its socket");
			return -EPIPE;
		}
		n = recv(c->sock, ack, sizeof(*ack), MSG_TRUNC | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		break;
	}
	if (n <= 0) {
		kill_locked(c, NULL);	/* EOF or reset: it died */
		return -EPIPE;
	}
	if (n != (ssize_t)sizeof(*ack) || ack->seq != m->seq ||
	    ack->type != m->type || ack->err > 0 || ack->err < -4095) {
		kill_locked(c, "it sent a malformed or unmatched reply");
		return -EPIPE;
	}
	return 0;
}

/* ---- mapper ops ---------------------------------------------------------- */

static int mirror_apply(struct dmadev *c, const struct dmadev_msg *m,
			unsigned int flags)
{
	switch (m->type) {
	case DMADEV_MAP:
		return swiommu_map(&c->mirror, m->a, m->b, flags);
	case DMADEV_UNMAP:
		return swiommu_unmap(&c->mirror, m->a, m->b, flags);
	case DMADEV_CUT:
		return swiommu_cut(&c->mirror, m->a, m->b, m->c, m->d, flags);
	default:
		return swiommu_merge(&c->mirror, m->a, m->b, flags);
	}
}

/*
 * Check in the mirror (a violation is not forwarded), forward, commit in
 * the mirror what the device did (or what the mapper will believe: a
 * forced unmap/cut is done whatever the device says).
 */
static int mapping_op(struct dmadev *c, struct dmadev_msg *m)
{
	bool forced = m->flags & GMEM_DISCARD_FORCED;
	struct dmadev_ack ack;
	int ret;

	pthread_mutex_lock(&c->lock);
	/* The mirror has no pins: the device holds them. */
	ret = mirror_apply(c, m, SWIOMMU_CHECK | GMEM_DISCARD_FORCED);
	if (ret)
		goto out;
	if (rpc_locked(c, m, -1, &ack) == 0) {
		ret = ack.err;
		if (ret == -EINVAL)
			c->device_refused++;
		if (ret == -EAGAIN && (m->type == DMADEV_MAP ||
				       m->type == DMADEV_MERGE || forced))
			ret = -EIO;	/* only a discard may be busy */
		else if (ret == -EAGAIN)
			/* The device's first pinned page, to the conversion
			 * that asked (this is its thread). */
			gmem_report_busy(ack.v0);
	}
	/* else dead: a no-op that succeeds */
	if (!ret || (forced && (m->type == DMADEV_UNMAP ||
				m->type == DMADEV_CUT)))
		mirror_apply(c, m, GMEM_DISCARD_FORCED);
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static int op_map(void *data, uint64_t iova, uint64_t len)
{
	struct dmadev_msg m = { .type = DMADEV_MAP, .a = iova, .b = len };

	return mapping_op(data, &m);
}

static int op_unmap(void *data, uint64_t iova, uint64_t len,
		    unsigned int flags)
{
	struct dmadev_msg m = {
		.type = DMADEV_UNMAP,
		.flags = flags & GMEM_DISCARD_FORCED,
		.a = iova,
		.b = len,
	};

	return mapping_op(data, &m);
}

static int op_cut(void *data, uint64_t m_iova, uint64_t m_len, uint64_t iova,
		  uint64_t len, unsigned int flags)
{
	struct dmadev_msg m = {
		.type = DMADEV_CUT,
		.flags = flags & GMEM_DISCARD_FORCED,
		.a = m_iova,
		.b = m_len,
		.c = iova,
		.d = len,
	};

	return mapping_op(data, &m);
}

static int op_merge(void *data, uint64_t iova, uint64_t len)
{
	struct dmadev_msg m = { .type = DMADEV_MERGE, .a = iova, .b = len };

	return mapping_op(data, &m);
}

/* ---- report: the device's real mappings, from /proc/PID/maps ------------- */

struct ranges {
	struct swiommu_range *v;
	size_t nr, cap;
};

/* Append, joining a range that touches the previous one. */
static int ranges_push(struct ranges *r, uint64_t start, uint64_t end)
{
	if (r->nr && r->v[r->nr - 1].end == start) {
		r->v[r->nr - 1].end = end;
		return 0;
	}
	if (r->nr == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		void *p = realloc(r->v, cap * sizeof(*r->v));

		if (!p)
			return -ENOMEM;
		r->v = p;
		r->cap = cap;
	}
	r->v[r->nr].start = start;
	r->v[r->nr].end = end;
	r->nr++;
	return 0;
}

static const char *parse_num(const char *p, const char *e, unsigned int base,
			     uint64_t *out)
{
	uint64_t v = 0;
	const char *s = p;

	for (; p < e; p++) {
		unsigned int d;

		if (*p >= '0' && *p <= '9')
			d = (unsigned int)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned int)(*p - 'a' + 10);
		else
			break;
		v = v * base + d;
	}
	*out = v;
	return p > s ? p : NULL;
}

static const char *expect_char(const char *p, const char *e, char ch)
{
	return p && p < e && *p == ch ? p + 1 : NULL;
}

static int report_problem(struct dmadev *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Record (and print, the first time) a report() problem: -EUCLEAN. */
static int report_problem(struct dmadev *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->report_err[0]) {
		va_start(ap, fmt);
		vsnprintf(c->report_err, sizeof(c->report_err), fmt, ap);
		va_end(ap);
		gmvm_err("DMA device process (pid %d): %s", (int)c->pid,
			 c->report_err);
	}
	return -EUCLEAN;
}

/* One line of /proc/PID/maps, [p, e) without the newline. */
static int maps_line(struct dmadev *c, const char *p, const char *e,
		     struct ranges *r)
{
	uint64_t start, end, off, maj, min, ino, iova;
	const char *perms;

	p = parse_num(p, e, 16, &start);
	p = parse_num(expect_char(p, e, '-'), e, 16, &end);
	perms = expect_char(p, e, ' ');
	if (!perms || e - perms < 5)
		return -EIO;
	p = parse_num(expect_char(perms + 4, e, ' '), e, 16, &off);
	p = parse_num(expect_char(p, e, ' '), e, 16, &maj);
	p = parse_num(expect_char(p, e, ':'), e, 16, &min);
	p = parse_num(expect_char(p, e, ' '), e, 10, &ino);
	if (!p)
		return -EIO;
	if (maj != c->mem_major || min != c->mem_minor || ino != c->mem_ino)
		return 0;	/* not the shared backing */
	if (start >= end || start < c->base ||
	    end - c->base > c->ram_size)
		return report_problem(c, "maps the shared backing at %#llx-%#llx, outside its reservation for guest RAM",
				      (unsigned long long)start,
				      (unsigned long long)end);
	iova = start - c->base;
	if (off != c->mem_offset + iova)
		return report_problem(c, "maps the shared backing at IOVA %#llx with file offset %#llx: a DMA there would reach other guest pages",
				      (unsigned long long)iova,
				      (unsigned long long)off);
	if (perms[3] != 's')
		return report_problem(c, "maps the shared backing at IOVA %#llx privately (copy-on-write): its DMA would not reach the guest",
				      (unsigned long long)iova);
	return ranges_push(r, iova, end - c->base);
}

/* The ranges where the device maps the shared backing, joined. */
static int read_maps(struct dmadev *c, struct ranges *r)
{
	size_t have = 0, pos;
	char path[64], *buf;
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)c->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(MAPS_BUF);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t n = read(fd, buf + have, MAPS_BUF - have);
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		have += (size_t)n;
		/* Whole lines; at EOF a last line without a newline too. */
		for (pos = 0; !ret && pos < have;
		     pos = (size_t)(nl - buf) + 1) {
			nl = memchr(buf + pos, '\n', have - pos);
			if (!nl && n)
				break;
			if (!nl)
				nl = buf + have;
			ret = maps_line(c, buf + pos, nl, r);
		}
		if (ret || !n)
			break;
		if (pos == 0 && have == MAPS_BUF) {
			ret = -EIO;	/* a line longer than the buffer */
			break;
		}
		memmove(buf, buf + pos, have - pos);
		have -= pos;
	}
	free(buf);
	close(fd);
	return ret;
}

static bool exited(const struct dmadev *c)
{
	struct pollfd p = { .fd = c->pidfd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

static int op_report(void *data,
		     int (*fn)(void *arg, uint64_t iova, uint64_t len),
		     void *arg)
{
	struct dmadev *c = data;
	struct ranges r = { 0 };
	size_t i;
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = c->dead ? -EPIPE : read_maps(c, &r);
	if (!c->dead && exited(c))
		kill_locked(c, NULL);	/* it died while we read */
	if (c->dead) {
		/* Its mappings went with it: what it was told stands in
		 * until the mapper is destroyed. */
		pthread_mutex_unlock(&c->lock);
		free(r.v);
		return swiommu_report(&c->mirror, fn, arg);
	}
	pthread_mutex_unlock(&c->lock);
	for (i = 0; !ret && i < r.nr; i++)
		ret = fn(arg, r.v[i].start, r.v[i].end - r.v[i].start);
	free(r.v);
	return ret;
}

const struct gmem_dma_ops dmadev_dma_ops = {
	.size = sizeof(struct gmem_dma_ops),
	.map = op_map,
	.unmap = op_unmap,
	.cut = op_cut,
	.merge = op_merge,
	.report = op_report,
};

/* ---- DMA commands -------------------------------------------------------- */

int dmadev_command(struct dmadev *c, uint32_t cmd, uint64_t addr,
		   uint64_t len, uint8_t pattern, uint32_t *result)
{
	struct dmadev_msg m = {
		.type = DMADEV_DMA,
		.flags = cmd,
		.a = addr,
		.b = len,
		.c = pattern,
	};
	struct dmadev_ack ack;
	int status = GM_DMA_FAULT;

	pthread_mutex_lock(&c->lock);
	if (rpc_locked(c, &m, -1, &ack) == 0) {
		if (ack.err || ack.v0 > GM_DMA_NO_RESOURCES || ack.v1 > UINT32_MAX) {
			kill_locked(c, "it sent a malformed DMA result");
		} else {
			status = (int)ack.v0;
			*result = (uint32_t)ack.v1;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return status;
}

/* ---- life and death ------------------------------------------------------ */

pid_t dmadev_pid(const struct dmadev *c)
{
	return c->pid;
}

bool dmadev_died(struct dmadev *c)
{
	bool dead;

	pthread_mutex_lock(&c->lock);
	dead = c->dead;
	pthread_mutex_unlock(&c->lock);
	return dead;
}

void dmadev_get_stats(struct dmadev *c, struct swiommu_stats *st,
		      uint64_t *device_refused)
{
	swiommu_get_stats(&c->mirror, st);
	pthread_mutex_lock(&c->lock);
	*device_refused = c->device_refused;
	pthread_mutex_unlock(&c->lock);
}

static void describe_end(const struct dmadev *c, char *buf, size_t len)
{
	int ws = c->ws;

	if (WIFSIGNALED(ws))
		snprintf(buf, len, "killed by signal %d%s%s", WTERMSIG(ws),
			 c->why[0] ? " by gmvm: " : "", c->why);
	else if (WIFEXITED(ws))
		snprintf(buf, len, "exited with status %d%s%s",
			 WEXITSTATUS(ws), c->why[0] ? "; " : "", c->why);
	else
		snprintf(buf, len, "ended with wait status %#x", ws);
}

/* Mark dead and reap (monitor, or dmadev_stop() after the join). */
static void reap(struct dmadev *c)
{
	int ws = 0;

	pthread_mutex_lock(&c->lock);
	c->dead = true;
	pthread_mutex_unlock(&c->lock);
	while (waitpid(c->pid, &ws, 0) < 0 && errno == EINTR)
		;
	c->ws = ws;
	c->reaped = true;
}

static void report_death(struct dmadev *c)
{
	char how[256];

	if (c->death_reported)
		return;
	c->death_reported = true;
	pthread_mutex_lock(&c->lock);
	describe_end(c, how, sizeof(how));
	pthread_mutex_unlock(&c->lock);
	gmvm_err("DMA device process (pid %d) died (%s); its DMA mappings are dropped and DMA commands now fail with status 1",
		 (int)c->pid, how);
}

static void *monitor(void *arg)
{
	struct dmadev *c = arg;
	struct pollfd p[2] = {
		{ .fd = c->pidfd, .events = POLLIN },
		{ .fd = c->stop_fd, .events = POLLIN },
	};

	for (;;) {
		int r = poll(p, 2, -1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || p[1].revents)
			return NULL;
		if (p[0].revents)
			break;
	}
	reap(c);
	report_death(c);
	if (c->on_death)
		c->on_death(c->arg);
	return NULL;
}

void dmadev_stop_monitor(struct dmadev *c)
{
	uint64_t one = 1;

	if (!c->monitor_running)
		return;
	/* An eventfd write of 1 cannot fail (no overflow, no signal). */
	(void)!write(c->stop_fd, &one, sizeof(one));
	pthread_join(c->monitor, NULL);
	c->monitor_running = false;
}

int dmadev_check_empty(struct dmadev *c)
{
	struct dmadev_msg m = { .type = DMADEV_STATE };
	struct dmadev_ack ack;
	int ret = 0;

	pthread_mutex_lock(&c->lock);
	if (rpc_locked(c, &m, -1, &ack) == 0 && (ack.err || ack.v0)) {
		gmvm_err("DMA device process (pid %d): after the DMA mapper was destroyed it still holds %llu mappings (%s)",
			 (int)c->pid, (unsigned long long)ack.v0,
			 ack.err ? strerror(-ack.err) : "not unmapped");
		ret = -EUCLEAN;
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* Wait up to the ack timeout for the process to end, then kill it. */
static void end_process(struct dmadev *c)
{
	struct pollfd p = { .fd = c->pidfd, .events = POLLIN };
	uint64_t deadline = now_ns() + DMADEV_ACK_TIMEOUT_MS * 1000000ULL;
	int r;

	do {
		r = poll(&p, 1, (int)ms_left(deadline));
	} while (r < 0 && errno == EINTR);
	if (r <= 0) {
		pthread_mutex_lock(&c->lock);
		kill_locked(c, "it did not exit within 10 s of being told to");
		pthread_mutex_unlock(&c->lock);
	}
	reap(c);
}

static void free_dmadev(struct dmadev *c)
{
	if (c->sock >= 0)
		close(c->sock);
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	swiommu_destroy(&c->mirror);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int dmadev_stop(struct dmadev *c)
{
	struct dmadev_msg m = { .type = DMADEV_BYE };
	struct dmadev_ack ack;
	bool bye = false;
	char how[256];
	int ret = 0;

	if (!c)
		return 0;
	dmadev_stop_monitor(c);
	if (c->pid > 0 && !c->reaped) {
		pthread_mutex_lock(&c->lock);
		bye = rpc_locked(c, &m, -1, &ack) == 0 && !ack.err;
		pthread_mutex_unlock(&c->lock);
		/* EOF tells it to go even if BYE did not get through. */
		close(c->sock);
		c->sock = -1;
		end_process(c);
		if (bye && !(WIFEXITED(c->ws) && WEXITSTATUS(c->ws) == 0)) {
			describe_end(c, how, sizeof(how));
			gmvm_err("DMA device process (pid %d) did not exit cleanly after being told to stop: %s",
				 (int)c->pid, how);
			c->death_reported = true;
			ret = -EUCLEAN;
		} else if (!bye) {
			report_death(c);	/* it died before */
		}
	} else if (c->reaped) {
		report_death(c);
	}
	free_dmadev(c);
	return ret;
}

/*
 * The child: make the socket fd DMADEV_FD, close everything else but
 * stdio, die with gmvm, exec.  Only async-signal-safe calls.
 *
 * The device ignores SIGINT and SIGTERM: a ^C at the terminal, or a
 * SIGTERM to the whole process group, reaches it together with gmvm, and
 * gmvm answers those by stopping the VM, auditing (the device's mappings
 * included) and then telling the device to exit (BYE).  A device that died
 * first would turn that clean stop into a device death.  It still ends
 * with gmvm whatever happens to gmvm (PR_SET_PDEATHSIG, and EOF on its
 * socket), and SIGKILL still ends it.  SIGPIPE stays ignored, as gmvm run
 * has it (signals.c): the device never needs it.
 */
static void __attribute__((noreturn)) child(int sock, pid_t parent)
{
	char arg0[] = "gmvm", arg1[] = "dma-device";
	char *argv[] = { arg0, arg1, NULL };
	struct sigaction ign;
	sigset_t none;

	if (sock == DMADEV_FD) {
		if (fcntl(sock, F_SETFD, 0))
			_exit(127);
	} else if (dup2(sock, DMADEV_FD) != DMADEV_FD) {
		_exit(127);
	}
	if (close_range(DMADEV_FD + 1, ~0U, 0))
		_exit(127);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
		_exit(127);
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	if (sigaction(SIGINT, &ign, NULL) || sigaction(SIGTERM, &ign, NULL) ||
	    sigaction(SIGPIPE, &ign, NULL))
		_exit(127);
	/* gmvm's threads run with the stop signals blocked (signals.c). */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execv("/proc/self/exe", argv);
	_exit(127);
}

int dmadev_start(int mem_fd, uint64_t mem_offset, uint64_t ram_size,
		 void (*on_death)(void *arg), void *arg, struct dmadev **out)
{
	struct dmadev_msg m = {
		.type = DMADEV_HELLO,
		.a = ram_size,
		.b = mem_offset,
	};
	struct dmadev_ack ack;
	pid_t parent = getpid();
	const char *step;
	struct dmadev *c;
	struct stat st;
	int sv[2], ret;
	char how[256];

	c = calloc(1, sizeof(*c));
	if (!c) {
		gmvm_err("DMA device process: out of memory");
		return -ENOMEM;
	}
	c->sock = c->pidfd = c->stop_fd = -1;
	c->pid = -1;
	c->ram_size = ram_size;
	c->mem_offset = mem_offset;
	c->on_death = on_death;
	c->arg = arg;
	ret = -pthread_mutex_init(&c->lock, NULL);
	if (!ret)
		ret = swiommu_init(&c->mirror, ram_size);
	if (ret) {
		gmvm_err("DMA device process: %s", strerror(-ret));
		free(c);
		return ret;
	}

	step = "fstat of the shared backing";
	if (fstat(mem_fd, &st))
		goto err_errno;
	c->mem_major = major(st.st_dev);
	c->mem_minor = minor(st.st_dev);
	c->mem_ino = st.st_ino;
	step = "eventfd";
	c->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (c->stop_fd < 0)
		goto err_errno;
	step = "socketpair";
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		goto err_errno;
	c->sock = sv[0];
	step = "fork";
	c->pid = fork();
	if (c->pid == 0)
		child(sv[1], parent);
	close(sv[1]);
	if (c->pid < 0)
		goto err_errno;
	step = "pidfd_open";
	c->pidfd = pidfd_open(c->pid, 0);
	if (c->pidfd < 0) {
		ret = -errno;
		kill(c->pid, SIGKILL);
		goto err_child;
	}

	pthread_mutex_lock(&c->lock);
	ret = rpc_locked(c, &m, mem_fd, &ack);
	if (!ret && (ack.err || !ack.v0 || ack.v0 % GMEM_PAGE_SIZE)) {
		ret = ack.err ? ack.err : -EPROTO;
		kill_locked(c, NULL);
	}
	pthread_mutex_unlock(&c->lock);
	if (ret) {
		step = "hello";
		goto err_child;
	}
	c->base = ack.v0;

	ret = -pthread_create(&c->monitor, NULL, monitor, c);
	if (ret) {
		step = "starting its monitor thread";
		pthread_mutex_lock(&c->lock);
		kill_locked(c, NULL);
		pthread_mutex_unlock(&c->lock);
		goto err_child;
	}
	c->monitor_running = true;
	*out = c;
	return 0;

err_errno:
	ret = -errno;
	gmvm_err("starting the DMA device process: %s: %s", step,
		 strerror(-ret));
	free_dmadev(c);
	return ret;
err_child:
	reap(c);
	if (ret == -EPIPE) {
		describe_end(c, how, sizeof(how));
		gmvm_err("starting the DMA device process (pid %d): %s before it answered %s",
			 (int)c->pid, how, step);
	} else {
		gmvm_err("starting the DMA device process (pid %d): %s: %s",
			 (int)c->pid, step, strerror(-ret));
	}
	free_dmadev(c);
	return ret;
}
