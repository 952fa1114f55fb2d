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
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../snapshot/crc32c.h"
#include "stream.h"

#define ULL(x) ((unsigned long long)(x))

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

/* ---- sending ------------------------------------------------------------ */

static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	if (timeout_ms <= 0)
		return 0;
	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n ? 0 : -ETIMEDOUT;
}

static int send_all(int fd, const void *buf, size_t len, int timeout_ms)
{
	const uint8_t *p = buf;
	ssize_t n;
	int err;

	while (len) {
		err = wait_fd(fd, POLLOUT, timeout_ms);
		if (err)
			return err;
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, p, len);	/* a pipe or file */
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void mig_out_init(struct mig_out *o, int fd, struct snap_msg *msg)
{
	memset(o, 0, sizeof(*o));
	o->fd = fd;
	o->msg = msg;
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

void mig_in_init(struct mig_in *in, int fd, int timeout_ms,
		 struct snap_msg *msg)
{
	memset(in, 0, sizeof(*in));
	in->fd = fd;
	in->timeout_ms = timeout_ms;
	in->msg = msg;
}

void mig_in_free(struct mig_in *in)
{
	free(in->buf);
	in->buf = NULL;
	in->cap = 0;
}

/* Exactly @len bytes: a stream that ends early is a truncated one.  With
 * @crc, the bytes' checksum too, each piece as it arrives (still in the
 * cache). */
static int in_read(struct mig_in *in, void *buf, size_t len, uint32_t *crc)
{
	uint8_t *p = buf;
	ssize_t n;
	int err;

	while (len) {
		err = wait_fd(in->fd, POLLIN, in->timeout_ms);
		if (err)
			return snap_err(in->msg, err, "no data for %d ms after "
					"%llu bytes of the stream",
					in->timeout_ms, ULL(in->bytes));
		n = read(in->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return snap_err(in->msg, -errno, "reading the stream "
					"after %llu bytes: %s", ULL(in->bytes),
					strerror(errno));
		if (n == 0)
			return snap_err(in->msg, -EBADMSG, "the stream ends "
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
	uint8_t h[MIG_HEADER_SIZE];
	size_t i;
	int err;

	err = in_read(in, h, sizeof(h), NULL);
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

int mig_in_next(struct mig_in *in, struct mig_sec *s)
{
	const size_t hs = SNAP_SEC_HEADER_SIZE;
	uint64_t len, max;
	uint8_t *h;
	uint32_t crc;
	int err;

	s->off = in->bytes;
	if (in->cap < hs) {
		h = realloc(in->buf, 1u << 16);
		if (!h)
			return snap_err(in->msg, -ENOMEM, "no memory");
		in->buf = h;
		in->cap = 1u << 16;
	}
	err = in_read(in, in->buf, hs, NULL);
	if (err)
		return err;
	h = in->buf;
	s->type = snap_get_le32(h);
	s->flags = snap_get_le32(h + 4);
	len = snap_get_le64(h + 8);
	max = mig_sec_max(s->type);
	if (len > max)
		return snap_err(in->msg, -EBADMSG, "section %s (%#x) at "
				"stream offset %llu: length %llu over its "
				"bound %llu", mig_sec_name(s->type), s->type,
				ULL(s->off), ULL(len), ULL(max));
	if (hs + len > in->cap) {
		h = realloc(in->buf, hs + (size_t)len);
		if (!h)
			return snap_err(in->msg, -ENOMEM, "no memory for a "
					"%llu-byte section", ULL(len));
		in->buf = h;
		in->cap = hs + (size_t)len;
	}
	crc = 0;
	err = in_read(in, h + hs, (size_t)len, &crc);
	if (err)
		return err;
	s->crc = snap_get_le32(h + 16);
	if (snap_sec_crc(s->type, s->flags, len, crc) != s->crc)
		return snap_err(in->msg, -EBADMSG, "section %s (%#x) at "
				"stream offset %llu: checksum mismatch",
				mig_sec_name(s->type), s->type, ULL(s->off));
	if (snap_get_le32(h + 20))
		return snap_err(in->msg, -EBADMSG, "section %s at stream "
				"offset %llu: reserved field is not zero",
				mig_sec_name(s->type), ULL(s->off));
	if (s->flags & ~SNAP_SEC_OPTIONAL)
		return snap_err(in->msg, -EPROTO, "section %s at stream "
				"offset %llu: unknown flags %#x",
				mig_sec_name(s->type), ULL(s->off), s->flags);
	s->raw = h;
	s->p = h + hs;
	s->len = (size_t)len;
	return 0;
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
