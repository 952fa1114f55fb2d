/* SPDX-License-Identifier: MIT */
/*
 * The snapshot file's strict reader of the framing.  docs/SNAPSHOT.md is
 * the full description; the invariants every file keeps, and that
 * snap_reader_open() checks before anything reads a payload, are:
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
 * The writer (format_write.c) builds files that keep all of this.
 */
#include <errno.h>
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
	/* The machine beyond memory (machine.h): a whole-VM snapshot has
	 * them all (snap_machine_parse() says so); a memory-only file none. */
	{ SNAP_SEC_VCPU, "VCPU", 0, SNAP_MAX_VCPUS },
	{ SNAP_SEC_CLOCK, "CLOCK", 0, 1 },
	{ SNAP_SEC_DMADEV, "DMADEV", 0, 1 },
	{ SNAP_SEC_RUNOPTS, "RUNOPTS", 0, 1 },
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
