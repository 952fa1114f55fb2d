/* SPDX-License-Identifier: MIT */
/*
 * The snapshot file's framing: a checked, buffered writer and a strict
 * reader.  docs/SNAPSHOT.md is the full description; the invariants every
 * file keeps, and that snap_reader_open() checks before anything reads a
 * payload, are:
 *
 *  1. Bytes 0..31 are the header: "GMVMSNAP", version (u32), flags (u32),
 *     the file's total length (u64), a reserved u32 (0) and the CRC32C of
 *     bytes 0..27.  Bytes 0..11 mean the same in every version, so any
 *     reader can say "a newer format" instead of "damaged".  All integers
 *     are little-endian.
 *  2. The total length is the file's size: a truncated or extended file is
 *     refused before any section is looked at.
 *  3. Sections follow back to back from offset 32, each a 24-byte header
 *     {type u32, flags u32, length u64, crc u32, reserved u32 = 0} and
 *     length bytes of payload.  No section reaches past the total length
 *     (checked without overflow: a length of 2^63 is just too long).
 *  4. crc is the CRC32C of the payload followed by the header's first 16
 *     bytes, so a damaged type, flag or length is a checksum mismatch too,
 *     not a misreading.  Every section's checksum is verified, skipped
 *     ones included, before any payload is used.
 *  5. Flags other than SNAP_SEC_OPTIONAL are refused.  An unknown type is
 *     skipped if OPTIONAL, else refused (-EPROTO): a newer writer marks
 *     what an older reader may ignore.
 *  6. Known sections come in the order of their rank, each no more often
 *     than its rule allows and at least as often as it requires; END
 *     (length 0) is last and ends exactly at the total length.
 *
 * The writer builds files that keep all of this: the header and each
 * section header are written as placeholders and completed with
 * positioned writes once their lengths and checksums are known, and every
 * write is checked (a short or failed write is -errno, and stays so).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "format.h"

/* Known sections: in rank order, how often each must / may appear. */
static const struct sec_rule {
	uint32_t type;
	const char *name;
	unsigned int min, max;
} sec_rules[] = {
	{ SNAP_SEC_CONFIG, "CONFIG", 1, 1 },
	{ SNAP_SEC_REGIONS, "REGIONS", 1, 1 },
	{ SNAP_SEC_STATE, "STATE", 1, 1 },
	{ SNAP_SEC_PLUG, "PLUG", 1, 1 },
	/* Per backing: which and how many follows from CONFIG's mode
	 * (mem_image.c). */
	{ SNAP_SEC_DATA, "DATA", 1, 2 },
};
#define NR_SEC_RULES (sizeof(sec_rules) / sizeof(sec_rules[0]))

static const struct sec_rule *sec_rule(uint32_t type, unsigned int *rank)
{
	unsigned int i;

	for (i = 0; i < NR_SEC_RULES; i++)
		if (sec_rules[i].type == type) {
			if (rank)
				*rank = i;
			return &sec_rules[i];
		}
	return NULL;
}

const char *snap_sec_name(uint32_t type)
{
	const struct sec_rule *rule = sec_rule(type, NULL);

	if (type == SNAP_SEC_END)
		return "END";
	return rule ? rule->name : NULL;
}

/* ---- messages ----------------------------------------------------------- */

void snap_msg_init(struct snap_msg *m, char *buf, size_t len)
{
	m->buf = len ? buf : NULL;
	m->len = len;
	if (m->buf)
		m->buf[0] = '\0';
}

static void snap_verr(struct snap_msg *m, const char *fmt, va_list ap)
{
	if (m && m->buf && !m->buf[0])
		vsnprintf(m->buf, m->len, fmt, ap);
}

int snap_err(struct snap_msg *m, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	snap_verr(m, fmt, ap);
	va_end(ap);
	return err;
}

/* "section NAME" or "section type 0x..", for messages. */
static void sec_label(char *buf, size_t len, uint32_t type)
{
	const char *name = snap_sec_name(type);

	if (name)
		snprintf(buf, len, "section %s", name);
	else
		snprintf(buf, len, "section type %#x", type);
}

static int sec_err_at(struct snap_msg *m, uint32_t type, uint64_t off, int err,
		      const char *fmt, va_list ap)
{
	char label[48], what[200];

	if (!m || !m->buf || m->buf[0])
		return err;
	sec_label(label, sizeof(label), type);
	vsnprintf(what, sizeof(what), fmt, ap);
	snprintf(m->buf, m->len, "%s at offset %llu: %s", label,
		 (unsigned long long)off, what);
	return err;
}

int snap_sec_err(struct snap_reader *r, const struct snap_section *s, int err,
		 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err = sec_err_at(&r->msg, s->type, s->off, err, fmt, ap);
	va_end(ap);
	return err;
}

__attribute__((format(printf, 5, 6)))
static int hdr_err(struct snap_msg *m, uint32_t type, uint64_t off, int err,
		   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err = sec_err_at(m, type, off, err, fmt, ap);
	va_end(ap);
	return err;
}

uint32_t snap_sec_crc(uint32_t type, uint32_t flags, uint64_t len,
		      uint32_t payload_crc)
{
	uint8_t h[16];

	snap_put_le32(h, type);
	snap_put_le32(h + 4, flags);
	snap_put_le64(h + 8, len);
	return crc32c(payload_crc, h, sizeof(h));
}

/* ---- writer ------------------------------------------------------------- */

static int pwrite_all(void *data, int fd, const void *buf, size_t len,
		      uint64_t off)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len) {
		n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;	/* never: but no endless loop */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int w_write_at(struct snap_writer *w, const void *buf, size_t len,
		      uint64_t off)
{
	int err;

	if (w->err)
		return w->err;
	if (w->io && w->io->write_at)
		err = w->io->write_at(w->io->data, w->fd, buf, len, off);
	else
		err = pwrite_all(NULL, w->fd, buf, len, off);
	if (err) {
		w->err = err;
		snap_err(w->msg, err, "writing %zu bytes at offset %llu: %s",
			 len, (unsigned long long)off, strerror(-err));
	}
	return err;
}

static int w_flush(struct snap_writer *w)
{
	int err;

	if (!w->used)
		return w->err;
	err = w_write_at(w, w->buf, w->used, w->off);
	if (err)
		return err;
	w->off += w->used;
	w->used = 0;
	return 0;
}

int snap_writer_init(struct snap_writer *w, int fd, const struct snap_io *io,
		     struct snap_msg *msg)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->io = io;
	w->msg = msg;
	w->buf = malloc(SNAP_WRITER_BUF);
	if (!w->buf) {
		w->err = -ENOMEM;
		return snap_err(msg, -ENOMEM, "no memory for a write buffer");
	}
	/* The header's place: snap_writer_finish() fills it in. */
	memset(w->buf, 0, SNAP_HEADER_SIZE);
	w->used = SNAP_HEADER_SIZE;
	return 0;
}

void snap_writer_free(struct snap_writer *w)
{
	free(w->buf);
	w->buf = NULL;
}

static int w_bug(struct snap_writer *w, const char *what)
{
	/* A caller's mistake, not the file's: stop the file here. */
	if (!w->err) {
		w->err = -EINVAL;
		snap_err(w->msg, -EINVAL, "snapshot writer misused: %s", what);
	}
	return w->err;
}

int snap_writer_begin(struct snap_writer *w, uint32_t type, uint32_t flags)
{
	if (w->err)
		return w->err;
	if (w->in_section)
		return w_bug(w, "section begun inside a section");
	if (SNAP_WRITER_BUF - w->used < SNAP_SEC_HEADER_SIZE && w_flush(w))
		return w->err;
	w->in_section = true;
	w->sec_off = w->off + w->used;
	w->sec_type = type;
	w->sec_flags = flags;
	w->sec_len = 0;
	w->crc = 0;
	memset(w->buf + w->used, 0, SNAP_SEC_HEADER_SIZE);
	w->used += SNAP_SEC_HEADER_SIZE;
	return 0;
}

int snap_writer_put(struct snap_writer *w, const void *p, size_t len)
{
	const uint8_t *src = p;
	size_t n;

	if (w->err)
		return w->err;
	if (!w->in_section)
		return w_bug(w, "payload outside a section");
	while (len) {
		if (w->used == SNAP_WRITER_BUF && w_flush(w))
			return w->err;
		n = SNAP_WRITER_BUF - w->used;
		if (n > len)
			n = len;
		memcpy(w->buf + w->used, src, n);
		w->crc = crc32c(w->crc, src, n);
		w->used += n;
		w->sec_len += n;
		src += n;
		len -= n;
	}
	return 0;
}

void *snap_writer_space(struct snap_writer *w, size_t len)
{
	if (w->err)
		return NULL;
	if (!w->in_section || len > SNAP_WRITER_BUF) {
		w_bug(w, "space outside a section or over the buffer");
		return NULL;
	}
	if (SNAP_WRITER_BUF - w->used < len && w_flush(w))
		return NULL;
	return w->buf + w->used;
}

int snap_writer_commit(struct snap_writer *w, size_t len)
{
	if (w->err)
		return w->err;
	if (!w->in_section || len > SNAP_WRITER_BUF - w->used)
		return w_bug(w, "commit of more than the space given");
	w->crc = crc32c(w->crc, w->buf + w->used, len);
	w->used += len;
	w->sec_len += len;
	return 0;
}

int snap_writer_end(struct snap_writer *w)
{
	uint8_t h[SNAP_SEC_HEADER_SIZE];

	if (w->err)
		return w->err;
	if (!w->in_section)
		return w_bug(w, "section ended twice");
	snap_put_le32(h, w->sec_type);
	snap_put_le32(h + 4, w->sec_flags);
	snap_put_le64(h + 8, w->sec_len);
	snap_put_le32(h + 16, snap_sec_crc(w->sec_type, w->sec_flags,
					   w->sec_len, w->crc));
	snap_put_le32(h + 20, 0);
	w->in_section = false;
	/* Still buffered: complete it in place; else where it was written. */
	if (w->sec_off >= w->off) {
		memcpy(w->buf + (w->sec_off - w->off), h, sizeof(h));
		return 0;
	}
	return w_write_at(w, h, sizeof(h), w->sec_off);
}

int64_t snap_writer_finish(struct snap_writer *w)
{
	uint8_t h[SNAP_HEADER_SIZE];
	uint64_t total;

	if (w->err)
		return w->err;
	if (w->in_section)
		return w_bug(w, "finished inside a section");
	if (snap_writer_begin(w, SNAP_SEC_END, 0) || snap_writer_end(w))
		return w->err;
	total = w->off + w->used;
	memcpy(h, SNAP_MAGIC, SNAP_MAGIC_LEN);
	snap_put_le32(h + 8, SNAP_VERSION);
	snap_put_le32(h + 12, 0);
	snap_put_le64(h + 16, total);
	snap_put_le32(h + 24, 0);
	snap_put_le32(h + 28, crc32c(0, h, 28));
	if (w->off == 0)
		memcpy(w->buf, h, sizeof(h));
	else if (w_write_at(w, h, sizeof(h), 0))
		return w->err;
	if (w_flush(w))
		return w->err;
	return (int64_t)total;
}

/* ---- files -------------------------------------------------------------- */

int snap_file_create(struct snap_file *f, const char *path,
		     struct snap_msg *msg)
{
	size_t n = strlen(path);

	f->fd = -1;
	f->path = strdup(path);
	f->tmp = malloc(n + sizeof(".tmp"));
	if (!f->path || !f->tmp) {
		free(f->path);
		free(f->tmp);
		f->path = f->tmp = NULL;
		return snap_err(msg, -ENOMEM, "no memory");
	}
	memcpy(f->tmp, path, n);
	memcpy(f->tmp + n, ".tmp", sizeof(".tmp"));
	/* O_TRUNC, not O_EXCL: a PATH.tmp left by a crash is ours to
	 * replace.  O_NOFOLLOW: never write through a planted symlink. */
	f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
			     O_NOFOLLOW, 0600);
	if (f->fd < 0) {
		int err = -errno;

		free(f->path);
		free(f->tmp);
		f->path = f->tmp = NULL;
		return snap_err(msg, err, "%s.tmp: %s", path, strerror(-err));
	}
	return 0;
}

void snap_file_abort(struct snap_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->tmp)
		unlink(f->tmp);
	free(f->path);
	free(f->tmp);
	f->fd = -1;
	f->path = f->tmp = NULL;
}

/* Make the rename itself durable: sync the directory holding PATH. */
static int sync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd, err = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0 && errno != EINVAL)	/* EINVAL: cannot sync */
		err = -errno;
	close(fd);
	return err;
}

int snap_file_commit(struct snap_file *f, struct snap_msg *msg)
{
	int err = 0;

	/* Data first, then the name: PATH never names a partial file. */
	if (fsync(f->fd) < 0)
		err = snap_err(msg, -errno, "%s: fsync: %s", f->tmp,
			       strerror(errno));
	if (close(f->fd) < 0 && !err)
		err = snap_err(msg, -errno, "%s: close: %s", f->tmp,
			       strerror(errno));
	f->fd = -1;
	if (!err && rename(f->tmp, f->path) < 0)
		err = snap_err(msg, -errno, "rename %s to %s: %s", f->tmp,
			       f->path, strerror(errno));
	if (err) {
		snap_file_abort(f);
		return err;
	}
	err = sync_dir_of(f->path);
	if (err)
		snap_err(msg, err, "%s: syncing its directory: %s", f->path,
			 strerror(-err));
	free(f->path);
	free(f->tmp);
	f->path = f->tmp = NULL;
	return err;
}

/* ---- reader ------------------------------------------------------------- */


int snap_src_fd(struct snap_src *s, int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	s->fd = fd;
	s->mem = NULL;
	s->size = (uint64_t)st.st_size;
	return 0;
}

void snap_src_mem(struct snap_src *s, const void *p, size_t len)
{
	s->fd = -1;
	s->mem = p;
	s->size = len;
}

/* [off, off + len) of the source; the caller checked it is inside. */
static int src_read(struct snap_reader *r, uint64_t off, void *buf, size_t len)
{
	uint8_t *p = buf;
	ssize_t n;

	if (off > r->src.size || len > r->src.size - off)
		return snap_err(&r->msg, -EBADMSG,
				"read of %zu bytes at offset %llu is past the "
				"end of the file", len,
				(unsigned long long)off);
	if (r->src.fd < 0) {
		memcpy(buf, r->src.mem + off, len);
		return 0;
	}
	while (len) {
		n = pread(r->src.fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return snap_err(&r->msg, -errno,
					"reading at offset %llu: %s",
					(unsigned long long)off,
					strerror(errno));
		if (n == 0)
			return snap_err(&r->msg, -EBADMSG,
					"the file ends at offset %llu: it "
					"shrank while being read",
					(unsigned long long)off);
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

uint8_t *snap_reader_buf(struct snap_reader *r)
{
	if (!r->buf)
		r->buf = malloc(SNAP_READ_CHUNK);
	if (!r->buf)
		snap_err(&r->msg, -ENOMEM, "no memory");
	return r->buf;
}

/* CRC32C of [off, off + len) of the source (inside it: the caller
 * checked). */
static int src_crc(struct snap_reader *r, uint64_t off, uint64_t len,
		   uint32_t *crc)
{
	uint32_t c = 0;
	size_t n;
	int err;

	if (r->src.fd < 0) {
		*crc = crc32c(0, r->src.mem + off, (size_t)len);
		return 0;
	}
	if (len && !snap_reader_buf(r))
		return -ENOMEM;
	while (len) {
		n = len < SNAP_READ_CHUNK ? (size_t)len : SNAP_READ_CHUNK;
		err = src_read(r, off, r->buf, n);
		if (err)
			return err;
		c = crc32c(c, r->buf, n);
		off += n;
		len -= n;
	}
	*crc = c;
	return 0;
}

static int read_header(struct snap_reader *r)
{
	uint8_t h[SNAP_HEADER_SIZE];
	uint64_t size = r->src.size, total;
	uint32_t flags;
	size_t n = size < SNAP_HEADER_SIZE ? (size_t)size : SNAP_HEADER_SIZE;
	int err;

	err = src_read(r, 0, h, n);
	if (err)
		return err;
	/* A short file that starts like a snapshot is a truncated one. */
	if (!n || memcmp(h, SNAP_MAGIC, n < SNAP_MAGIC_LEN ? n : SNAP_MAGIC_LEN))
		return snap_err(&r->msg, -EINVAL,
				"not a gmvm snapshot (no \"%s\" magic)",
				SNAP_MAGIC);
	if (n < SNAP_HEADER_SIZE)
		return snap_err(&r->msg, -EBADMSG,
				"truncated: %llu bytes, less than the %u-byte "
				"header", (unsigned long long)size,
				SNAP_HEADER_SIZE);
	r->version = snap_get_le32(h + 8);
	if (r->version != SNAP_VERSION)
		return snap_err(&r->msg, -EPROTO,
				"format version %u: this gmvm reads version "
				"%u only", r->version, SNAP_VERSION);
	if (crc32c(0, h, 28) != snap_get_le32(h + 28))
		return snap_err(&r->msg, -EBADMSG,
				"header: checksum mismatch");
	flags = snap_get_le32(h + 12);
	if (flags)
		return snap_err(&r->msg, -EPROTO,
				"header: unknown flags %#x", flags);
	if (snap_get_le32(h + 24))
		return snap_err(&r->msg, -EBADMSG,
				"header: reserved field is not zero");
	total = snap_get_le64(h + 16);
	if (total != size)
		return snap_err(&r->msg, -EBADMSG,
				"the file is %llu bytes but its header says "
				"%llu: %s", (unsigned long long)size,
				(unsigned long long)total,
				size < total ? "truncated" : "extended");
	return 0;
}

static int add_section(struct snap_reader *r, const struct snap_section *s)
{
	void *p;

	if (r->nr == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 8;

		p = realloc(r->sec, cap * sizeof(*r->sec));
		if (!p)
			return snap_err(&r->msg, -ENOMEM, "no memory");
		r->sec = p;
		r->cap = cap;
	}
	r->sec[r->nr++] = *s;
	return 0;
}

/* Section order and multiplicity (invariant 6) for a known type. */
static int check_order(struct snap_reader *r, const struct snap_section *s,
		       unsigned int *last_rank)
{
	unsigned int rank = 0, count = snap_reader_count(r, s->type);
	const struct sec_rule *rule = sec_rule(s->type, &rank);

	if (rank < *last_rank)
		return snap_sec_err(r, s, -EBADMSG,
				    "out of order (after section %s)",
				    sec_rules[*last_rank].name);
	if (count >= rule->max)
		return snap_sec_err(r, s, -EBADMSG,
				    "more than %u such section%s", rule->max,
				    rule->max == 1 ? "" : "s");
	*last_rank = rank;
	return 0;
}

static int read_sections(struct snap_reader *r)
{
	uint64_t off = SNAP_HEADER_SIZE, total = r->src.size;
	unsigned int last_rank = 0, i;
	uint8_t h[SNAP_SEC_HEADER_SIZE];
	struct snap_section s;
	uint32_t crc;
	int err;

	for (;;) {
		if (total - off < SNAP_SEC_HEADER_SIZE)
			return snap_err(&r->msg, -EBADMSG,
					"at offset %llu: no room for a section "
					"header before the end of the file "
					"(no END section)",
					(unsigned long long)off);
		err = src_read(r, off, h, sizeof(h));
		if (err)
			return err;
		s.type = snap_get_le32(h);
		s.flags = snap_get_le32(h + 4);
		s.len = snap_get_le64(h + 8);
		s.crc = snap_get_le32(h + 16);
		s.off = off;
		off += SNAP_SEC_HEADER_SIZE;
		if (s.len > total - off)
			return hdr_err(&r->msg, s.type, s.off, -EBADMSG,
				       "length %llu runs past the end of the "
				       "file (%llu bytes)",
				       (unsigned long long)s.len,
				       (unsigned long long)total);
		err = src_crc(r, off, s.len, &crc);
		if (err)
			return err;
		if (snap_sec_crc(s.type, s.flags, s.len, crc) != s.crc)
			return hdr_err(&r->msg, s.type, s.off, -EBADMSG,
				       "checksum mismatch");
		if (snap_get_le32(h + 20))
			return hdr_err(&r->msg, s.type, s.off, -EBADMSG,
				       "reserved field is not zero");
		if (s.flags & ~SNAP_SEC_OPTIONAL)
			return hdr_err(&r->msg, s.type, s.off, -EPROTO,
				       "unknown flags %#x", s.flags);
		off += s.len;
		if (s.type == SNAP_SEC_END)
			break;
		if (!sec_rule(s.type, NULL)) {
			if (s.flags & SNAP_SEC_OPTIONAL)
				continue;	/* a newer writer's extra */
			return hdr_err(&r->msg, s.type, s.off, -EPROTO,
				       "unknown type and not optional "
				       "(written by a newer gmvm?)");
		}
		err = check_order(r, &s, &last_rank);
		if (!err)
			err = add_section(r, &s);
		if (err)
			return err;
	}
	if (s.len || s.flags)
		return hdr_err(&r->msg, s.type, s.off, -EBADMSG,
			       "END must have no payload and no flags");
	if (off != total)
		return hdr_err(&r->msg, s.type, s.off, -EBADMSG,
			       "%llu bytes follow it",
			       (unsigned long long)(total - off));
	for (i = 0; i < NR_SEC_RULES; i++)
		if (snap_reader_count(r, sec_rules[i].type) < sec_rules[i].min)
			return snap_err(&r->msg, -EBADMSG,
					"no section %s", sec_rules[i].name);
	return 0;
}

int snap_reader_open(struct snap_reader *r, const struct snap_src *src,
		     char *msg, size_t msg_len)
{
	int err;

	memset(r, 0, sizeof(*r));
	r->src = *src;
	snap_msg_init(&r->msg, msg, msg_len);
	err = read_header(r);
	if (!err)
		err = read_sections(r);
	if (err)
		snap_reader_close(r);
	return err;
}

void snap_reader_close(struct snap_reader *r)
{
	free(r->sec);
	free(r->buf);
	r->sec = NULL;
	r->buf = NULL;
	r->nr = r->cap = 0;
}

const struct snap_section *snap_reader_find(const struct snap_reader *r,
					    uint32_t type, unsigned int nth)
{
	size_t i;

	for (i = 0; i < r->nr; i++)
		if (r->sec[i].type == type && nth-- == 0)
			return &r->sec[i];
	return NULL;
}

unsigned int snap_reader_count(const struct snap_reader *r, uint32_t type)
{
	unsigned int n = 0;
	size_t i;

	for (i = 0; i < r->nr; i++)
		n += r->sec[i].type == type;
	return n;
}

int snap_payload_read(struct snap_reader *r, const struct snap_section *s,
		      uint64_t pos, void *buf, size_t len)
{
	if (pos > s->len || len > s->len - pos)
		return snap_sec_err(r, s, -EBADMSG,
				    "%zu bytes at payload offset %llu run "
				    "past its end (%llu bytes)", len,
				    (unsigned long long)pos,
				    (unsigned long long)s->len);
	return src_read(r, s->off + SNAP_SEC_HEADER_SIZE + pos, buf, len);
}

int snap_payload_load(struct snap_reader *r, const struct snap_section *s,
		      uint64_t max, uint8_t **out)
{
	uint8_t *p;
	int err;

	if (s->len > max)
		return snap_sec_err(r, s, -EFBIG,
				    "%llu bytes: more than the %llu this "
				    "reader holds in memory",
				    (unsigned long long)s->len,
				    (unsigned long long)max);
	p = malloc(s->len ? (size_t)s->len : 1);
	if (!p)
		return snap_sec_err(r, s, -ENOMEM, "no memory for %llu bytes",
				    (unsigned long long)s->len);
	err = snap_payload_read(r, s, 0, p, (size_t)s->len);
	if (err) {
		free(p);
		return err;
	}
	*out = p;
	return 0;
}

/* ---- editing ------------------------------------------------------------ */

size_t snap_reseal(uint8_t *buf, size_t len)
{
	uint64_t off = SNAP_HEADER_SIZE, slen;
	size_t n = 0;

	if (len < SNAP_HEADER_SIZE)
		return 0;
	snap_put_le64(buf + 16, len);
	snap_put_le32(buf + 28, crc32c(0, buf, 28));
	while (len - off >= SNAP_SEC_HEADER_SIZE) {
		uint8_t *h = buf + off;

		slen = snap_get_le64(h + 8);
		off += SNAP_SEC_HEADER_SIZE;
		if (slen > len - off)
			break;
		snap_put_le32(h + 16, snap_sec_crc(snap_get_le32(h),
						   snap_get_le32(h + 4), slen,
						   crc32c(0, buf + off, slen)));
		off += slen;
		n++;
	}
	return n;
}
