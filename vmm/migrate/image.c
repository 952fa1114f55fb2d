/* SPDX-License-Identifier: MIT */
/*
 * The IMAGE payload as a snapshot document in memory: see image.h.  The
 * snapshot writer writes it through a struct snap_io that stores at the
 * offset it is given (the writer completes headers with positioned
 * writes), the snapshot reader reads it back from memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

int mig_buf_write_at(void *data, int fd, const void *src, size_t len,
		     uint64_t off)
{
	struct mig_buf *b = data;
	size_t cap = b->cap ? b->cap : 4096;
	void *p;

	if (off > SIZE_MAX - len)
		return -EFBIG;
	while (cap < off + len)
		cap *= 2;
	if (cap > b->cap) {
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + off, src, len);
	if (off + len > b->len)
		b->len = (size_t)(off + len);
	return 0;
}

int mig_image_encode(const struct snap_mem_image *img, struct mig_buf *b,
		     struct snap_msg *m)
{
	const struct snap_io io = { .write_at = mig_buf_write_at, .data = b };
	uint8_t head[SNAP_DATA_HEAD_SIZE];
	struct snap_writer w;
	unsigned int i;
	int64_t total;
	int err;

	b->len = 0;
	err = snap_writer_init(&w, -1, &io, m);
	if (!err)
		err = snap_image_write(&w, img);
	for (i = 0; !err && i < snap_data_sections(img->mode); i++) {
		snap_put_le32(head, snap_data_backing(img->mode, i));
		snap_put_le32(head + 4, 0);
		snap_writer_begin(&w, SNAP_SEC_DATA, 0);
		snap_writer_put(&w, head, sizeof(head));
		err = snap_writer_end(&w);
	}
	total = err ? err : snap_writer_finish(&w);
	snap_writer_free(&w);
	return total < 0 ? (int)total : 0;
}

int mig_image_decode(const uint8_t *p, size_t len, struct snap_mem_image *img,
		     struct snap_msg *m)
{
	const struct snap_section *s;
	struct snap_reader r;
	struct snap_src src;
	unsigned int i;
	int err;

	snap_src_mem(&src, p, len);
	err = snap_reader_open(&r, &src, m->buf, m->len);
	if (err)
		return err;
	err = snap_image_read(&r, img);
	for (i = 0; !err && (s = snap_reader_find(&r, SNAP_SEC_DATA, i)); i++)
		if (s->len != SNAP_DATA_HEAD_SIZE) {
			snap_image_free(img);
			err = snap_sec_err(&r, s, -EBADMSG, "a migration image "
					   "carries no page content");
		}
	snap_reader_close(&r);
	return err;
}
