/* SPDX-License-Identifier: MIT */
/*
 * What the snapshot file's writer (format_write.c) and reader
 * (format_read.c) share: the one-line error messages and a section's
 * checksum; and snap_reseal(), which recomputes every checksum of a file
 * held in memory for the tests and fuzzers that edit files on purpose.
 */
#include <stdarg.h>
#include <stdio.h>

#include "crc32c.h"
#include "format.h"

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

uint32_t snap_sec_crc(uint32_t type, uint32_t flags, uint64_t len,
		      uint32_t payload_crc)
{
	uint8_t h[16];

	snap_put_le32(h, type);
	snap_put_le32(h + 4, flags);
	snap_put_le64(h + 8, len);
	return crc32c(payload_crc, h, sizeof(h));
}

/* ---- editing ------------------------------------------------------------ */

size_t snap_reseal_sections(uint8_t *buf, size_t len, size_t off)
{
	uint64_t slen;
	size_t n = 0;

	while (off <= len && len - off >= SNAP_SEC_HEADER_SIZE) {
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

size_t snap_reseal(uint8_t *buf, size_t len)
{
	if (len < SNAP_HEADER_SIZE)
		return 0;
	snap_put_le64(buf + 16, len);
	snap_put_le32(buf + 28, crc32c(0, buf, 28));
	return snap_reseal_sections(buf, len, SNAP_HEADER_SIZE);
}
