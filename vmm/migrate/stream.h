/* SPDX-License-Identifier: MIT */
/*
 * The migration stream's framing (docs/MIGRATION.md): a 32-byte stream
 * header, then sections framed exactly as in a snapshot file (a 24-byte
 * header {type, flags, length, crc, reserved} and the payload, the crc
 * being CRC32C of the payload and of the header's first 16 bytes, so
 * snap_sec_crc() computes it), sent and received one at a time because a
 * stream has no end to seek to.
 *
 * Sending: one section is built in a growing buffer and written whole
 * with send(MSG_NOSIGNAL), or, to a pipe or file, write() with SIGPIPE
 * blocked in the thread: a closed peer is -EPIPE, never a signal.
 * Receiving: a section's header is checked (reserved zero, flags known,
 * length within the type's bound) before its payload is read, and its
 * checksum before the payload is handed out: nothing from the stream is
 * used unchecked.  Optionally a thread reads and checks the next
 * sections while the caller uses the last one (mig_in_read_ahead()).
 * Both count the bytes that went by.
 *
 * Timeouts are deadlines: a section (header included) must be sent or
 * received whole within timeout_ms for every started MIG_DEADLINE_UNIT
 * of it, counted from when sending it or waiting for it began, so a
 * peer that trickles bytes cannot hold either side for longer.
 *
 * Errors are -errno with one line in a struct snap_msg; nothing prints.
 */
#ifndef GMVM_MIGRATE_STREAM_H
#define GMVM_MIGRATE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../snapshot/format.h"
#include "../snapshot/mem_image.h"

#define MIG_MAGIC "GMVMMIGR"
#define MIG_VERSION 1
#define MIG_HEADER_SIZE 32

/* Section types of the stream (the snapshot's 0x01-0x05 never appear;
 * 0x10-0x3f carry the VMM's vCPU, device and run-option sections). */
enum mig_sec_type {
	MIG_SEC_IMAGE = 0x40,	/* a snapshot document: the maps now */
	MIG_SEC_DATA = 0x41,	/* a snapshot DATA payload: some pages */
	MIG_SEC_HOLES = 0x42,	/* runs the destination must punch */
	MIG_SEC_FINAL = 0x43,	/* the source is stopped: last round done */
	MIG_SEC_ACK = 0x44,	/* destination to source: the outcome */
	MIG_SEC_COMMIT = 0x45,	/* source to destination: run it */
};

#define MIG_VMM_SEC_FIRST 0x10
#define MIG_VMM_SEC_LAST 0x3f

/* Payload bounds, so that a hostile length costs no memory. */
#define MIG_DATA_CHUNK (1u << 20)	/* content per DATA section */
#define MIG_DATA_MAX (2u << 20)		/* a DATA payload, records included */
#define MIG_IMAGE_MAX (2 * SNAP_META_MAX + (1u << 20))
#define MIG_HOLES_MAX SNAP_META_MAX
#define MIG_VMM_SEC_MAX (64u << 20)
#define MIG_FINAL_SIZE 16
#define MIG_ACK_SIZE 8

/* A section gets timeout_ms per started unit of this many bytes: one
 * timeout for every section but the largest IMAGEs, HOLES and VMM
 * sections, which a slow link needs longer for. */
#define MIG_DEADLINE_UNIT (16u << 20)

/* ---- sending ------------------------------------------------------------ */

struct mig_out {
	int fd;
	struct snap_msg *msg;
	uint8_t *buf;		/* the section being built, header first */
	size_t used, cap;
	uint32_t crc;		/* of the payload so far, computed while
				   it is still in the cache */
	bool in_section;
	uint64_t bytes;		/* sent so far */
	int timeout_ms;		/* a section's deadline (see above);
				   <= 0: wait forever */
	int err;		/* sticky */
};

void mig_out_init(struct mig_out *o, int fd, struct snap_msg *msg);
void mig_out_free(struct mig_out *o);
int mig_out_header(struct mig_out *o);
int mig_out_begin(struct mig_out *o, uint32_t type, uint32_t flags);
int mig_out_put(struct mig_out *o, const void *p, size_t len);
/* @len bytes of payload to fill in place, then mig_out_commit(). */
void *mig_out_space(struct mig_out *o, size_t len);
void mig_out_commit(struct mig_out *o, size_t len);
/* Payload bytes of the open section so far. */
size_t mig_out_pending(const struct mig_out *o);
/* Seal the section (length, checksum) and send it. */
int mig_out_end(struct mig_out *o);
/* A whole section at once. */
int mig_out_section(struct mig_out *o, uint32_t type, uint32_t flags,
		    const void *p, size_t len);

/* ---- receiving ---------------------------------------------------------- */

struct mig_ahead;

struct mig_in {
	int fd;
	int timeout_ms;		/* a section's deadline (see above);
				   <= 0: wait forever */
	struct snap_msg *msg;
	uint8_t *buf;		/* the last section, header first */
	size_t cap;
	uint64_t bytes;		/* received so far (by the reader while
				   one reads ahead) */
	int cancel_fd;		/* the reader's wake-up, or -1 */
	struct mig_ahead *ahead;	/* the reader, or NULL */
};

struct mig_sec {
	uint32_t type, flags;
	uint64_t off;		/* of its header in the stream */
	const uint8_t *p;	/* payload, checked */
	size_t len;
	const uint8_t *raw;	/* header and payload as received */
	uint32_t crc;		/* the header's checksum */
};

void mig_in_init(struct mig_in *in, int fd, int timeout_ms,
		 struct snap_msg *msg);
void mig_in_free(struct mig_in *in);
/* The stream header: 0, -EINVAL (not a migration stream), -EPROTO (a
 * newer version or flags), -EBADMSG (damaged or truncated). */
int mig_in_header(struct mig_in *in);
/*
 * The next section, checked: -EBADMSG (truncated, checksum, reserved
 * field, a length over the type's bound), -EPROTO (unknown flags),
 * -ETIMEDOUT (not whole by its deadline), or the read's -errno.  @s->p
 * stays valid until the next call.
 */
int mig_in_next(struct mig_in *in, struct mig_sec *s);
/*
 * After the header: from now on a thread reads and checks the sections
 * ahead (a few, each in its own buffer) and mig_in_next() hands them out
 * in order, with the same checks, errors and lifetime of @s->p.  It
 * stops after END or the first failure (never reading past either) and
 * is stopped and joined by mig_in_free().  0, or -errno (no thread:
 * mig_in_next() reads as before).
 */
int mig_in_read_ahead(struct mig_in *in);

/* The most a payload of @type may hold (0 for END). */
uint64_t mig_sec_max(uint32_t type);
const char *mig_sec_name(uint32_t type);

/* ---- the acknowledgement ------------------------------------------------ */

/* Destination: send ACK with @status (0: the VM is here; -errno: not). */
int mig_send_ack(int fd, int status);
/*
 * Source: wait up to @timeout_ms (<= 0: forever) for the ACK.  0 with
 * *status the destination's word, or -errno (-ETIMEDOUT, -EBADMSG, the
 * peer closed: -EPIPE) with @msg.
 */
int mig_wait_ack(int fd, int timeout_ms, int *status, struct snap_msg *msg);

/*
 * After an edit of a stream held in memory: recompute the header's
 * checksum and every section's, front to back, up to one whose length
 * runs past the end.  Returns the sections resealed.  For tests and
 * fuzzers (as snap_reseal()), never used on a stream being received.
 */
size_t mig_reseal(uint8_t *buf, size_t len);

/* Destination: wait for the source's COMMIT after a positive ACK. */
int mig_wait_commit(int fd, int timeout_ms, struct snap_msg *msg);
/* Source: the COMMIT (the point of no return). */
int mig_send_commit(int fd, int timeout_ms);
/* All of @p, as the stream's sections are sent (no SIGPIPE): for tests
 * and fuzzers that play a recorded stream. */
int mig_send_bytes(int fd, const void *p, size_t len, int timeout_ms);

#endif
