/* SPDX-License-Identifier: MIT */
/*
 * The gmvm snapshot file format (docs/SNAPSHOT.md): its constants, the
 * checked, buffered writer (format_write.c), and the strict reader of the
 * framing (header, sections, checksums, section order: format_read.c,
 * which states the invariants every file must keep); format.c holds what
 * both share.  What a payload means is the job of its user (mem_image.c
 * for the memory sections).
 *
 * Errors are -errno with one line in a caller's buffer (struct snap_msg);
 * nothing here prints or exits.
 */
#ifndef GMVM_SNAPSHOT_FORMAT_H
#define GMVM_SNAPSHOT_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAP_MAGIC "GMVMSNAP"
#define SNAP_MAGIC_LEN 8
#define SNAP_VERSION 1
#define SNAP_HEADER_SIZE 32
#define SNAP_SEC_HEADER_SIZE 24

/* Section flags: a reader that does not know the type skips the section
 * instead of refusing the file. */
#define SNAP_SEC_OPTIONAL (1u << 0)

/* Section types (docs/SNAPSHOT.md reserves 0x10-0x1f for vCPU state,
 * 0x20-0x2f for devices, 0x30-0x3f for run options). */
enum snap_sec_type {
	SNAP_SEC_CONFIG = 0x01,
	SNAP_SEC_REGIONS = 0x02,
	SNAP_SEC_STATE = 0x03,
	SNAP_SEC_PLUG = 0x04,
	SNAP_SEC_DATA = 0x05,
	/* Beyond memory (machine.h): */
	SNAP_SEC_VCPU = 0x10,		/* one per vCPU */
	SNAP_SEC_CLOCK = 0x11,
	SNAP_SEC_DMADEV = 0x20,
	SNAP_SEC_RUNOPTS = 0x30,
	SNAP_SEC_END = 0xffffffffu,
};

/* The most VCPU sections a file may hold. */
#define SNAP_MAX_VCPUS 64

/* The name of a known section type, NULL for an unknown one. */
const char *snap_sec_name(uint32_t type);

/* ---- messages ----------------------------------------------------------- */

/* A caller's buffer for the one line that says what went wrong. */
struct snap_msg {
	char *buf;
	size_t len;
};

void snap_msg_init(struct snap_msg *m, char *buf, size_t len);

/*
 * Describe a failure and return @err (negative).  The first description
 * wins: the innermost failure knows most, and the callers it unwinds
 * through only add one where none was given.
 */
int snap_err(struct snap_msg *m, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- little-endian fields ----------------------------------------------- */

static inline void snap_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void snap_put_le64(uint8_t *p, uint64_t v)
{
	snap_put_le32(p, (uint32_t)v);
	snap_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t snap_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t snap_get_le64(const uint8_t *p)
{
	return snap_get_le32(p) | (uint64_t)snap_get_le32(p + 4) << 32;
}

/* ---- writer ------------------------------------------------------------- */

/*
 * Where the writer's bytes go.  NULL: pwrite() to the fd.  Tests put a
 * sink here that fails at the Nth call.
 */
struct snap_io {
	/* Write all @len bytes at @off of @fd: 0 or -errno. */
	int (*write_at)(void *data, int fd, const void *buf, size_t len,
			uint64_t off);
	void *data;
};

/* Bytes the writer buffers; also the most snap_writer_space() gives. */
#define SNAP_WRITER_BUF (1u << 20)

struct snap_writer {
	int fd;
	const struct snap_io *io;
	struct snap_msg *msg;
	uint8_t *buf;
	size_t used;
	uint64_t off;		/* file offset of buf[0] */
	bool in_section;
	uint64_t sec_off;	/* file offset of the open section's header */
	uint32_t sec_type, sec_flags, crc;
	uint64_t sec_len;
	int err;		/* sticky: once a write failed, all fail */
};

/*
 * Start a file on @fd (written from offset 0 with positioned writes, so
 * it must be a regular file): the header, whose length and checksum
 * snap_writer_finish() fills in.
 */
int snap_writer_init(struct snap_writer *w, int fd, const struct snap_io *io,
		     struct snap_msg *msg);
int snap_writer_begin(struct snap_writer *w, uint32_t type, uint32_t flags);
int snap_writer_put(struct snap_writer *w, const void *p, size_t len);
/* All of @len bytes at @off, through short writes and EINTR: 0, -errno. */
int snap_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/*
 * @len (<= SNAP_WRITER_BUF) contiguous bytes of payload to fill in place,
 * then snap_writer_commit(): the content of a page goes from guest memory
 * to the buffer without another copy.  NULL after a write failed.
 */
void *snap_writer_space(struct snap_writer *w, size_t len);
int snap_writer_commit(struct snap_writer *w, size_t len);
int snap_writer_end(struct snap_writer *w);
/* The END section, the header's length and checksum; the file's bytes. */
int64_t snap_writer_finish(struct snap_writer *w);
void snap_writer_free(struct snap_writer *w);

/*
 * A snapshot file is written to PATH.tmp and renamed over PATH only once
 * complete and synced, so PATH is always either the old file or the whole
 * new one.
 */
struct snap_file {
	char *path, *tmp;
	int fd;
	/* Set after snap_file_create() for a file that must be new: the
	 * rename then fails with -EEXIST rather than replace what appeared
	 * at PATH meanwhile (RENAME_NOREPLACE, or link() where the file
	 * system lacks it). */
	bool no_replace;
};

int snap_file_create(struct snap_file *f, const char *path,
		     struct snap_msg *msg);
/* fsync, close and rename; on failure PATH.tmp is removed. */
int snap_file_commit(struct snap_file *f, struct snap_msg *msg);
/* Close and remove PATH.tmp (after any failure). */
void snap_file_abort(struct snap_file *f);

/* ---- reader ------------------------------------------------------------- */

/* Where a snapshot is read from: a file (pread) or bytes in memory. */
struct snap_src {
	int fd;			/* >= 0: pread() from it */
	const uint8_t *mem;	/* else these bytes */
	uint64_t size;
};

int snap_src_fd(struct snap_src *s, int fd);
void snap_src_mem(struct snap_src *s, const void *p, size_t len);

/* A section the reader knows, as it found it in the file. */
struct snap_section {
	uint32_t type, flags;
	uint64_t off;		/* of its header; the payload follows */
	uint64_t len;		/* payload bytes */
	uint32_t crc;
};

/* Bytes read at a time (the size of snap_reader.buf). */
#define SNAP_READ_CHUNK (256u << 10)

struct snap_reader {
	struct snap_src src;
	struct snap_msg msg;
	uint32_t version;
	struct snap_section *sec;	/* known sections in file order, no
					   END, no skipped optional ones */
	size_t nr, cap;
	uint8_t *buf;			/* snap_reader_buf() */
};

/*
 * Check the whole framing of @src before anything uses it: magic,
 * version, flags, lengths (nothing past the end, no overflow), every
 * checksum, section order and multiplicity, END last and nothing after
 * it.  Then the payloads may be read with the functions below.  0, or
 * -EINVAL (not a snapshot), -EBADMSG (damaged: truncated, checksum,
 * structure), -EPROTO (a newer format: version, flags, a required
 * section type this reader does not know), -ENOMEM, -EIO.
 */
int snap_reader_open(struct snap_reader *r, const struct snap_src *src,
		     char *msg, size_t msg_len);
void snap_reader_close(struct snap_reader *r);

/* SNAP_READ_CHUNK bytes of scratch, allocated at the first call (a file
 * refused early costs no allocation); NULL with a message if out of
 * memory. */
uint8_t *snap_reader_buf(struct snap_reader *r);

/* The @nth section of @type (0-based), NULL if there are fewer. */
const struct snap_section *snap_reader_find(const struct snap_reader *r,
					    uint32_t type, unsigned int nth);
unsigned int snap_reader_count(const struct snap_reader *r, uint32_t type);

/* Fail with "section NAME at offset N: ..." */
int snap_sec_err(struct snap_reader *r, const struct snap_section *s, int err,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Read [pos, pos + len) of @s's payload: 0, -EBADMSG past its end. */
int snap_payload_read(struct snap_reader *r, const struct snap_section *s,
		      uint64_t pos, void *buf, size_t len);
/*
 * The whole payload in a new buffer (free() it), for the small sections
 * that are parsed as a whole; -EFBIG past @max bytes.
 */
int snap_payload_load(struct snap_reader *r, const struct snap_section *s,
		      uint64_t max, uint8_t **out);
/* The CRC a section header must hold for @crc over its payload. */
uint32_t snap_sec_crc(uint32_t type, uint32_t flags, uint64_t len,
		      uint32_t payload_crc);

/*
 * After an edit of a snapshot held in memory: set the header's length to
 * @len and recompute its checksum and that of every section, front to
 * back, up to one whose length runs past the end.  Returns the sections
 * resealed.  For tests and fuzzers, which change payloads on purpose and
 * want the checks behind the checksums exercised; never used on a file
 * being read.
 */
size_t snap_reseal(uint8_t *buf, size_t len);
/* The sections part of snap_reseal(), from offset @off (the migration
 * stream frames its sections the same way). */
size_t snap_reseal_sections(uint8_t *buf, size_t len, size_t off);

#endif
