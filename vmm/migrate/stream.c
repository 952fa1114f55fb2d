/* SPDX-License-Identifier: MIT */
/*
 * The migration stream's framing: see stream.h and docs/MIGRATION.md.
 *
 * Invariants a stream keeps, which mig_in checks before any payload is
 * used (the sections' meaning and order are recv.c's):
 *  1. Bytes 0..31 are the header: "GMVMMIGR", version (u32, 1), flags
 *     (u32, 0), 12 reserved bytes (0) and the CRC32C of bytes 0..27.
 *  2. Sections follow back to back, each framed as a snapshot section
 *     (format.h): reserved 0, flags only SNAP_SEC_OPTIONAL, the checksum
 *     over the payload and the header's first 16 bytes.
 *  3. No payload is longer than its type allows (mig_sec_max()), so a
 *     damaged length is refused before anything is allocated for it.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "../snapshot/crc32c.h"
#include "stream.h"

#define ULL(x) ((unsigned long long)(x))
#define SEND_STEP (256u << 10)

const char *mig_sec_name(uint32_t type)
{
	switch (type) {
	case MIG_SEC_IMAGE: return "IMAGE";
	case MIG_SEC_DATA: return "DATA";
	case MIG_SEC_HOLES: return "HOLES";
	case MIG_SEC_FINAL: return "FINAL";
	case MIG_SEC_ACK: return "ACK";
	case MIG_SEC_COMMIT: return "COMMIT";
	case SNAP_SEC_END: return "END";
	}
	return type >= MIG_VMM_SEC_FIRST && type <= MIG_VMM_SEC_LAST ?
	       "VMM" : "unknown";
}

uint64_t mig_sec_max(uint32_t type)
{
	switch (type) {
	case MIG_SEC_IMAGE: return MIG_IMAGE_MAX;
	case MIG_SEC_DATA: return MIG_DATA_MAX;
	case MIG_SEC_HOLES: return MIG_HOLES_MAX;
	case MIG_SEC_FINAL: return MIG_FINAL_SIZE;
	case MIG_SEC_ACK: return MIG_ACK_SIZE;
	case MIG_SEC_COMMIT: return 0;
	case SNAP_SEC_END: return 0;
	}
	return MIG_VMM_SEC_MAX;
}

/* ---- time and waiting ---------------------------------------------------- */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * When moving @len bytes (a section, header included) begun at @start
 * must be done: @timeout_ms for every started MIG_DEADLINE_UNIT.  A
 * deadline, not a timeout per poll(): a peer trickling a byte now and
 * then must not hold a section (and the other side) forever.  -1: none
 * (@timeout_ms <= 0).
 */
static int64_t deadline_of(int64_t start, int timeout_ms, uint64_t len)
{
	uint64_t units = len ? (len - 1) / MIG_DEADLINE_UNIT + 1 : 1;

	if (timeout_ms <= 0)
		return -1;
	if (units > (1u << 20))
		units = 1u << 20;	/* no overflow; years anyway */
	return start + (int64_t)timeout_ms * (int64_t)units;
}

/*
 * Wait until @fd is ready for @events: 0, -ETIMEDOUT once @deadline
 * (CLOCK_MONOTONIC ms; < 0: none) has passed, -ECANCELED if @cancel_fd
 * (>= 0) became readable first.  Past the deadline nothing counts, not
 * even a ready @fd: a peer that keeps a byte ready at every poll would
 * otherwise still hold the section.
 */
static int wait_fd(int fd, short events, int64_t deadline, int cancel_fd)
{
	struct pollfd p[2] = {
		{ .fd = fd, .events = events },
		{ .fd = cancel_fd, .events = POLLIN },
	};
	int64_t left;
	int n;

	if (deadline < 0 && cancel_fd < 0)
		return 0;
	do {
		left = deadline < 0 ? -1 : deadline - mono_ms();
		if (deadline >= 0 && left <= 0)
			return -ETIMEDOUT;
		n = poll(p, cancel_fd >= 0 ? 2 : 1,
			 left > INT_MAX ? INT_MAX : (int)left);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	if (cancel_fd >= 0 && p[1].revents)
		return -ECANCELED;
	return 0;
}

/* ---- sending ------------------------------------------------------------ */

/*
 * write() to a pipe or file with SIGPIPE blocked in this thread, so that
 * a reader that went away is -EPIPE, never a signal that kills the
 * process: the SIGPIPE that write() raises for this thread is taken
 * back before the mask is restored, unless one was already pending
 * (then it is not ours to take).
 */
static ssize_t write_nosig(int fd, const void *p, size_t len)
{
	struct timespec zero = { 0 };
	sigset_t pipe_set, old, pending;
	bool was_pending;
	ssize_t n;
	int saved;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	n = write(fd, p, len);
	saved = errno;
	if (n < 0 && saved == EPIPE && !was_pending)
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 &&
		       errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	return n;
}

/*
 * All of @len bytes by the deadline timeout_ms gives them.
 *
 * A socket: send(MSG_NOSIGNAL), blocking, at most SEND_STEP bytes a call
 * with SO_SNDTIMEO set to an eighth of the time left (the caller's value
 * restored after).  The kernel applies SO_SNDTIMEO to each wait for
 * buffer space, not to the call, and a Unix socket waits once per skb
 * it allocates, up to about 8 per SEND_STEP: so one call overruns the
 * deadline by at most the time that was left, and the next call sees it
 * passed: a reader that trickles cannot hold the sender.
 * (Measured on a Unix socketpair: MSG_DONTWAIT with poll(), or 64 KiB
 * calls, cost about a third more time than this.)  Anything else:
 * write() with SIGPIPE blocked (write_nosig()), poll()ed against the
 * deadline between writes.
 */
static int send_all(int fd, const void *buf, size_t len, int timeout_ms)
{
	int64_t deadline = deadline_of(mono_ms(), timeout_ms, len), left;
	struct timeval old, tv;
	socklen_t old_len = sizeof(old);
	const uint8_t *p = buf;
	bool sock, timed = false;
	ssize_t n;
	int err = 0;

	sock = !getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &old, &old_len);
	while (len && !err) {
		if (deadline >= 0 && sock) {
			left = deadline - mono_ms();
			if (left <= 0) {
				err = -ETIMEDOUT;
				break;
			}
			/* Never 0: that would mean no timeout at all. */
			left = left >= 8 ? left / 8 : 1;
			tv.tv_sec = (time_t)(left / 1000);
			tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
			if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv,
				       sizeof(tv))) {
				err = -errno;
				break;
			}
			timed = true;
		} else if (!sock) {
			err = wait_fd(fd, POLLOUT, deadline, -1);
			if (err)
				break;
		}
		n = sock ? send(fd, p, len < SEND_STEP ? len : SEND_STEP,
				MSG_NOSIGNAL) :
			   write_nosig(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		/* SO_SNDTIMEO ran out (the loop sees the deadline passed),
		 * or a non-blocking socket is full. */
		if (n < 0 && errno == EAGAIN && deadline >= 0) {
			err = wait_fd(fd, POLLOUT, deadline, -1);
			continue;
		}
		if (n < 0)
			err = -errno;
		else if (n == 0)
			err = -EIO;
		else {
			p += n;
			len -= (size_t)n;
		}
	}
	if (timed)
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &old, sizeof(old));
	return err;
}

/* The send buffer asked for (bench_migrate: about 5% less time where
 * net.core.wmem_max allows it). */
#define MIG_SNDBUF (4 << 20)

void mig_out_init(struct mig_out *o, int fd, struct snap_msg *msg)
{
	int sndbuf = MIG_SNDBUF;

	memset(o, 0, sizeof(*o));
	o->fd = fd;
	o->msg = msg;
	/*
	 * A deeper socket buffer (a Unix socket's receive queue is charged
	 * to the sender's): the source and the destination's threads wake
	 * each other less often.  Best effort: the kernel caps it at
	 * net.core.wmem_max (212992 by default, then nothing changes), and
	 * a pipe or file is not a socket at all.
	 */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
}

void mig_out_free(struct mig_out *o)
{
	free(o->buf);
	o->buf = NULL;
	o->cap = o->used = 0;
}

static int out_fail(struct mig_out *o, int err, const char *what)
{
	if (!o->err)
		o->err = snap_err(o->msg, err, "%s after %llu bytes: %s", what,
				  ULL(o->bytes), strerror(-err));
	return o->err;
}

static int out_send(struct mig_out *o, const void *p, size_t len)
{
	int err = send_all(o->fd, p, len, o->timeout_ms);

	if (err)
		return out_fail(o, err, err == -EPIPE || err == -ECONNRESET ?
				"the destination closed the stream (it died "
				"or refused)" : "the migration stream broke");
	o->bytes += len;
	return 0;
}

int mig_out_header(struct mig_out *o)
{
	uint8_t h[MIG_HEADER_SIZE];

	if (o->err)
		return o->err;
	memset(h, 0, sizeof(h));
	memcpy(h, MIG_MAGIC, SNAP_MAGIC_LEN);
	snap_put_le32(h + 8, MIG_VERSION);
	snap_put_le32(h + 28, crc32c(0, h, 28));
	return out_send(o, h, sizeof(h));
}

static int out_reserve(struct mig_out *o, size_t len)
{
	size_t cap = o->cap ? o->cap : (1u << 16);
	void *p;

	if (o->err)
		return o->err;
	if (len <= o->cap - o->used)
		return 0;
	while (cap - o->used < len)
		cap *= 2;
	p = realloc(o->buf, cap);
	if (!p)
		return out_fail(o, -ENOMEM, "building a section");
	o->buf = p;
	o->cap = cap;
	return 0;
}

int mig_out_begin(struct mig_out *o, uint32_t type, uint32_t flags)
{
	if (o->err)
		return o->err;
	if (o->in_section)
		return out_fail(o, -EINVAL, "section begun inside a section");
	o->used = 0;
	if (out_reserve(o, SNAP_SEC_HEADER_SIZE))
		return o->err;
	snap_put_le32(o->buf, type);
	snap_put_le32(o->buf + 4, flags);
	o->used = SNAP_SEC_HEADER_SIZE;
	o->crc = 0;
	o->in_section = true;
	return 0;
}

void *mig_out_space(struct mig_out *o, size_t len)
{
	if (!o->in_section && !o->err)
		out_fail(o, -EINVAL, "payload outside a section");
	if (o->err || out_reserve(o, len))
		return NULL;
	return o->buf + o->used;
}

void mig_out_commit(struct mig_out *o, size_t len)
{
	if (o->err)
		return;
	o->crc = crc32c(o->crc, o->buf + o->used, len);
	o->used += len;
}

int mig_out_put(struct mig_out *o, const void *p, size_t len)
{
	void *dst = mig_out_space(o, len);

	if (!dst)
		return o->err;
	if (len)
		memcpy(dst, p, len);
	mig_out_commit(o, len);
	return 0;
}

size_t mig_out_pending(const struct mig_out *o)
{
	return o->in_section ? o->used - SNAP_SEC_HEADER_SIZE : 0;
}

int mig_out_end(struct mig_out *o)
{
	uint64_t len = o->used - SNAP_SEC_HEADER_SIZE;

	if (o->err)
		return o->err;
	if (!o->in_section)
		return out_fail(o, -EINVAL, "section ended twice");
	o->in_section = false;
	snap_put_le64(o->buf + 8, len);
	snap_put_le32(o->buf + 16, snap_sec_crc(snap_get_le32(o->buf),
						snap_get_le32(o->buf + 4),
						len, o->crc));
	snap_put_le32(o->buf + 20, 0);
	return out_send(o, o->buf, o->used);
}

int mig_out_section(struct mig_out *o, uint32_t type, uint32_t flags,
		    const void *p, size_t len)
{
	if (!mig_out_begin(o, type, flags) && !mig_out_put(o, p, len))
		return mig_out_end(o);
	return o->err;
}

/* ---- receiving ---------------------------------------------------------- */

/*
 * Read-ahead (mig_in_read_ahead()): a thread reads and checks sections
 * into MIG_AHEAD_SLOTS buffers while the caller uses the one it was
 * handed, so the socket is drained and checksummed while the caller
 * writes the last section into guest memory.  Slots [head, tail) are
 * filled and checked (or hold the error that ended the reading); the
 * one before head is the caller's while @held.
 */
#define MIG_AHEAD_SLOTS 4

struct mig_slot {
	uint8_t *buf;
	size_t cap;
	struct mig_sec s;
	int err;		/* 0, or why the reading ended here */
	char why[256];
};

struct mig_ahead {
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* a slot filled, freed, or stop */
	int cancel_fd;		/* an eventfd: wakes the reader's poll() */
	unsigned int head, tail;
	bool held, stop;
	struct mig_slot slot[MIG_AHEAD_SLOTS];
};

void mig_in_init(struct mig_in *in, int fd, int timeout_ms,
		 struct snap_msg *msg)
{
	memset(in, 0, sizeof(*in));
	in->fd = fd;
	in->timeout_ms = timeout_ms;
	in->msg = msg;
	in->cancel_fd = -1;
}

static void ahead_stop(struct mig_in *in)
{
	struct mig_ahead *a = in->ahead;
	uint64_t one = 1;
	unsigned int i;

	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	/* Wakes a reader blocked in poll(); cannot fail (one write never
	 * fills an eventfd's counter). */
	if (write(a->cancel_fd, &one, sizeof(one)) < 0)
		one = 0;
	pthread_join(a->th, NULL);
	close(a->cancel_fd);
	in->cancel_fd = -1;	/* a later read waits on nothing stale */
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	for (i = 0; i < MIG_AHEAD_SLOTS; i++)
		free(a->slot[i].buf);
	free(a);
	in->ahead = NULL;
}

void mig_in_free(struct mig_in *in)
{
	if (in->ahead)
		ahead_stop(in);
	free(in->buf);
	in->buf = NULL;
	in->cap = 0;
}

/*
 * Exactly @len bytes by @deadline: a stream that ends early is a
 * truncated one.  With @crc, the bytes' checksum too, each piece as it
 * arrives (still in the cache).  @what names the bytes for a timeout's
 * message.
 */
static int in_read(struct mig_in *in, struct snap_msg *msg, int64_t deadline,
		   void *buf, size_t len, uint32_t *crc, const char *what)
{
	uint8_t *p = buf;
	ssize_t n;
	int err;

	while (len) {
		err = wait_fd(in->fd, POLLIN, deadline, in->cancel_fd);
		if (err == -ETIMEDOUT)
			return snap_err(msg, err, "%s not whole within its "
					"deadline (%d ms per started %u MiB) "
					"after %llu bytes of the stream", what,
					in->timeout_ms,
					MIG_DEADLINE_UNIT >> 20,
					ULL(in->bytes));
		if (err == -ECANCELED)
			return snap_err(msg, err, "reading stopped");
		if (err)
			return snap_err(msg, err, "waiting for the stream: %s",
					strerror(-err));
		n = read(in->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return snap_err(msg, -errno, "reading the stream "
					"after %llu bytes: %s", ULL(in->bytes),
					strerror(errno));
		if (n == 0)
			return snap_err(msg, -EBADMSG, "the stream ends "
					"after %llu bytes: truncated",
					ULL(in->bytes));
		if (crc)
			*crc = crc32c(*crc, p, (size_t)n);
		p += n;
		len -= (size_t)n;
		in->bytes += (uint64_t)n;
	}
	return 0;
}

int mig_in_header(struct mig_in *in)
{
	int64_t deadline = deadline_of(mono_ms(), in->timeout_ms,
				       MIG_HEADER_SIZE);
	uint8_t h[MIG_HEADER_SIZE];
	size_t i;
	int err;

	err = in_read(in, in->msg, deadline, h, sizeof(h), NULL,
		      "the stream header");
	if (err)
		return err;
	if (memcmp(h, MIG_MAGIC, SNAP_MAGIC_LEN))
		return snap_err(in->msg, -EINVAL, "not a gmvm migration "
				"stream (no \"%s\" magic)", MIG_MAGIC);
	if (snap_get_le32(h + 8) != MIG_VERSION)
		return snap_err(in->msg, -EPROTO, "stream version %u: this "
				"gmvm reads version %u only",
				snap_get_le32(h + 8), MIG_VERSION);
	if (crc32c(0, h, 28) != snap_get_le32(h + 28))
		return snap_err(in->msg, -EBADMSG, "stream header: checksum "
				"mismatch");
	if (snap_get_le32(h + 12))
		return snap_err(in->msg, -EPROTO, "stream header: unknown "
				"flags %#x", snap_get_le32(h + 12));
	for (i = 16; i < 28; i++)
		if (h[i])
			return snap_err(in->msg, -EBADMSG, "stream header: "
					"reserved bytes are not zero");
	return 0;
}

/*
 * The next section into *@bufp (grown as needed, *@capp bytes), checked,
 * described in @s; failures in @msg.  The deadline starts as the header
 * is waited for: timeout_ms for the header, then as many as the whole
 * section is given (deadline_of()).
 */
static int read_section(struct mig_in *in, struct snap_msg *msg,
			uint8_t **bufp, size_t *capp, struct mig_sec *s)
{
	const size_t hs = SNAP_SEC_HEADER_SIZE;
	int64_t start = mono_ms();
	uint64_t len, max;
	uint8_t *h;
	uint32_t crc;
	int err;

	s->off = in->bytes;
	if (*capp < hs) {
		h = realloc(*bufp, 1u << 16);
		if (!h)
			return snap_err(msg, -ENOMEM, "no memory");
		*bufp = h;
		*capp = 1u << 16;
	}
	err = in_read(in, msg, deadline_of(start, in->timeout_ms, hs), *bufp,
		      hs, NULL, "a section header");
	if (err)
		return err;
	h = *bufp;
	s->type = snap_get_le32(h);
	s->flags = snap_get_le32(h + 4);
	len = snap_get_le64(h + 8);
	max = mig_sec_max(s->type);
	if (len > max)
		return snap_err(msg, -EBADMSG, "section %s (%#x) at "
				"stream offset %llu: length %llu over its "
				"bound %llu", mig_sec_name(s->type), s->type,
				ULL(s->off), ULL(len), ULL(max));
	if (hs + len > *capp) {
		h = realloc(*bufp, hs + (size_t)len);
		if (!h)
			return snap_err(msg, -ENOMEM, "no memory for a "
					"%llu-byte section", ULL(len));
		*bufp = h;
		*capp = hs + (size_t)len;
	}
	crc = 0;
	err = in_read(in, msg, deadline_of(start, in->timeout_ms, hs + len),
		      h + hs, (size_t)len, &crc, "a section");
	if (err)
		return err;
	s->crc = snap_get_le32(h + 16);
	if (snap_sec_crc(s->type, s->flags, len, crc) != s->crc)
		return snap_err(msg, -EBADMSG, "section %s (%#x) at "
				"stream offset %llu: checksum mismatch",
				mig_sec_name(s->type), s->type, ULL(s->off));
	if (snap_get_le32(h + 20))
		return snap_err(msg, -EBADMSG, "section %s at stream "
				"offset %llu: reserved field is not zero",
				mig_sec_name(s->type), ULL(s->off));
	if (s->flags & ~SNAP_SEC_OPTIONAL)
		return snap_err(msg, -EPROTO, "section %s at stream "
				"offset %llu: unknown flags %#x",
				mig_sec_name(s->type), ULL(s->off), s->flags);
	s->raw = h;
	s->p = h + hs;
	s->len = (size_t)len;
	return 0;
}

/* The reader: fills free slots until a section fails, END, or stop.  It
 * never reads past END: what follows (the COMMIT) is the caller's. */
static void *ahead_main(void *arg)
{
	struct mig_in *in = arg;
	struct mig_ahead *a = in->ahead;
	struct mig_slot *sl;
	struct snap_msg m;
	bool last;

	do {
		pthread_mutex_lock(&a->lock);
		while (!a->stop &&
		       a->tail - a->head + a->held >= MIG_AHEAD_SLOTS)
			pthread_cond_wait(&a->cond, &a->lock);
		if (a->stop) {
			pthread_mutex_unlock(&a->lock);
			break;
		}
		sl = &a->slot[a->tail % MIG_AHEAD_SLOTS];
		pthread_mutex_unlock(&a->lock);
		sl->why[0] = '\0';
		snap_msg_init(&m, sl->why, sizeof(sl->why));
		sl->err = read_section(in, &m, &sl->buf, &sl->cap, &sl->s);
		last = sl->err || sl->s.type == SNAP_SEC_END;
		pthread_mutex_lock(&a->lock);
		a->tail++;
		pthread_cond_broadcast(&a->cond);
		pthread_mutex_unlock(&a->lock);
	} while (!last);
	return NULL;
}

int mig_in_read_ahead(struct mig_in *in)
{
	struct mig_ahead *a;
	int err;

	if (in->ahead)
		return 0;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->cancel_fd = eventfd(0, EFD_CLOEXEC);
	if (a->cancel_fd < 0) {
		err = -errno;
		free(a);
		return err;
	}
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	in->ahead = a;
	in->cancel_fd = a->cancel_fd;
	err = -pthread_create(&a->th, NULL, ahead_main, in);
	if (err) {
		pthread_cond_destroy(&a->cond);
		pthread_mutex_destroy(&a->lock);
		close(a->cancel_fd);
		free(a);
		in->ahead = NULL;
		in->cancel_fd = -1;
	}
	return err;
}

/* The next slot the reader filled, in order; the last one handed out is
 * given back first. */
static int ahead_next(struct mig_in *in, struct mig_sec *s)
{
	struct mig_ahead *a = in->ahead;
	struct mig_slot *sl;

	pthread_mutex_lock(&a->lock);
	if (a->held) {
		a->held = false;
		pthread_cond_broadcast(&a->cond);
	}
	while (a->head == a->tail)
		pthread_cond_wait(&a->cond, &a->lock);
	sl = &a->slot[a->head % MIG_AHEAD_SLOTS];
	if (!sl->err) {
		a->head++;
		a->held = true;
	}
	pthread_mutex_unlock(&a->lock);
	/* An error slot stays: asking again gets the same error, never a
	 * wait for a reader that has ended. */
	if (sl->err)
		return snap_err(in->msg, sl->err, "%s", sl->why);
	*s = sl->s;
	return 0;
}

int mig_in_next(struct mig_in *in, struct mig_sec *s)
{
	if (in->ahead)
		return ahead_next(in, s);
	return read_section(in, in->msg, &in->buf, &in->cap, s);
}

size_t mig_reseal(uint8_t *buf, size_t len)
{
	if (len < MIG_HEADER_SIZE)
		return 0;
	snap_put_le32(buf + 28, crc32c(0, buf, 28));
	return snap_reseal_sections(buf, len, MIG_HEADER_SIZE);
}

/* ---- the acknowledgement ------------------------------------------------ */

int mig_send_ack(int fd, int status)
{
	struct mig_out o;
	struct snap_msg m;
	uint8_t p[MIG_ACK_SIZE];
	int err;

	snap_msg_init(&m, NULL, 0);
	mig_out_init(&o, fd, &m);
	snap_put_le32(p, (uint32_t)status);
	snap_put_le32(p + 4, 0);
	err = mig_out_section(&o, MIG_SEC_ACK, 0, p, sizeof(p));
	mig_out_free(&o);
	return err;
}

/*
 * The peer's one-section reply (@type, @len bytes) into @p: -EPIPE if it
 * closed without one (@closed says what that means), -EBADMSG for another
 * section, or the read's -errno, each with @msg.
 */
static int wait_reply(int fd, int timeout_ms, uint32_t type, size_t len,
		      uint8_t *p, const char *closed, struct snap_msg *msg)
{
	struct snap_msg inner;
	struct mig_in in;
	struct mig_sec s;
	char why[200];
	int err;

	snap_msg_init(&inner, why, sizeof(why));
	mig_in_init(&in, fd, timeout_ms, &inner);
	err = mig_in_next(&in, &s);
	if (err == -EBADMSG && in.bytes == 0)
		err = snap_err(msg, -EPIPE, "the %s", closed);
	else if (err)
		snap_err(msg, err, "waiting for its %s: %s",
			 mig_sec_name(type), why);
	else if (s.type != type || s.len != len)
		err = snap_err(msg, -EBADMSG, "section %#x of %zu bytes where "
			       "%s belongs", s.type, s.len, mig_sec_name(type));
	else if (len)
		memcpy(p, s.p, len);
	mig_in_free(&in);
	return err;
}

int mig_wait_ack(int fd, int timeout_ms, int *status, struct snap_msg *msg)
{
	uint8_t p[MIG_ACK_SIZE];
	int32_t st;
	int err;

	err = wait_reply(fd, timeout_ms, MIG_SEC_ACK, sizeof(p), p,
			 "destination closed the stream without an "
			 "acknowledgement", msg);
	if (err)
		return err;
	st = (int32_t)snap_get_le32(p);
	if (st > 0 || st < -4095 || snap_get_le32(p + 4))
		return snap_err(msg, -EBADMSG, "the destination's "
				"acknowledgement is malformed");
	*status = st;
	return 0;
}

int mig_wait_commit(int fd, int timeout_ms, struct snap_msg *msg)
{
	return wait_reply(fd, timeout_ms, MIG_SEC_COMMIT, 0, NULL,
			  "source closed the stream without committing: it "
			  "keeps the VM", msg);
}

int mig_send_bytes(int fd, const void *p, size_t len, int timeout_ms)
{
	return send_all(fd, p, len, timeout_ms);
}

int mig_send_commit(int fd, int timeout_ms)
{
	uint8_t h[SNAP_SEC_HEADER_SIZE] = { 0 };

	snap_put_le32(h, MIG_SEC_COMMIT);
	snap_reseal_sections(h, sizeof(h), 0);
	return send_all(fd, h, sizeof(h), timeout_ms);
}
