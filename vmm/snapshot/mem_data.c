/* SPDX-License-Identifier: MIT */
/*
 * The DATA sections' records: the one walker that checks them, used to
 * validate a file before anything changes (headers only), to restore
 * (content written into a VM) and to verify (content compared).
 *
 * A DATA payload is an 8-byte head {backing u32, reserved u32} and then
 * records {gpa u64, len u64, len bytes of content} up to its end.  Every
 * record is checked against the image before its content is touched, and
 * when content is read from a file the checksum is computed again (the
 * file may have changed since snap_reader_open() checked it; bytes in
 * memory cannot, and are handed on in place): the caller learns of a
 * mismatch only at the end, so it must be able to undo what the content
 * callback did (restore destroys the VM it was building).
 */
#include <errno.h>
#include <string.h>

#include "crc32c.h"
#include "mem_image.h"

#define ULL(x) ((unsigned long long)(x))

struct walk {
	struct snap_reader *r;
	const struct snap_section *s;
	const struct snap_mem_image *img;
	int want_state;		/* -1: any (in-place) */
	uint64_t pos;		/* in the payload */
	uint32_t crc;
	bool content;
	bool in_mem;		/* bytes in memory: they cannot change */
};

static int walk_read(struct walk *w, void *buf, size_t len)
{
	int err = snap_payload_read(w->r, w->s, w->pos, buf, len);

	if (err)
		return err;
	if (w->content)
		w->crc = crc32c(w->crc, buf, len);
	w->pos += len;
	return 0;
}

static int check_head(struct walk *w, enum gmem_backing_id want)
{
	uint8_t h[SNAP_DATA_HEAD_SIZE];
	uint32_t backing;
	int err;

	if (w->s->len < SNAP_DATA_HEAD_SIZE)
		return snap_sec_err(w->r, w->s, -EBADMSG,
				    "%llu bytes: shorter than its head",
				    ULL(w->s->len));
	err = walk_read(w, h, sizeof(h));
	if (err)
		return err;
	backing = snap_get_le32(h);
	if (backing != want)
		return snap_sec_err(w->r, w->s, -EBADMSG,
				    "backing %u where %s mode has %s here",
				    backing, gmem_mode_name(w->img->mode),
				    want == GMEM_BACKING_SHARED ? "shared (1)" :
								  "private (0)");
	if (snap_get_le32(h + 4))
		return snap_sec_err(w->r, w->s, -EBADMSG,
				    "reserved field is not zero");
	return 0;
}

/* Every page of [start, end) is plugged and served by this backing. */
static int check_pages(struct walk *w, struct snap_cursor *c, uint64_t rec_pos,
		       uint64_t start, uint64_t end)
{
	enum gmem_state st;
	uint64_t next;
	bool plugged;

	for (; start < end; start = next) {
		next = snap_cursor_piece(c, start, end, &st, &plugged);
		if (!plugged)
			return snap_sec_err(w->r, w->s, -EBADMSG,
					    "record at payload offset %llu: "
					    "page %#llx is unplugged and holds "
					    "no memory", ULL(rec_pos),
					    ULL(start));
		if (w->want_state >= 0 && (int)st != w->want_state)
			return snap_sec_err(w->r, w->s, -EBADMSG,
					    "record at payload offset %llu: "
					    "page %#llx is %s, not served by "
					    "this backing", ULL(rec_pos),
					    ULL(start), gmem_state_name(st));
	}
	return 0;
}

/* Read [start, end)'s content and hand it on in pieces of one state. */
static int pass_content(struct walk *w, struct snap_cursor *c,
			const struct snap_data_ops *ops, void *arg,
			uint64_t start, uint64_t end)
{
	uint8_t *buf = w->in_mem ? NULL : snap_reader_buf(w->r);
	const uint8_t *p;
	enum gmem_state st;
	uint64_t next;
	bool plugged;
	size_t n;
	int err = 0;

	if (!buf && !w->in_mem)
		return -ENOMEM;
	for (; start < end; start = next) {
		next = snap_cursor_piece(c, start, end, &st, &plugged);
		if (next - start > SNAP_READ_CHUNK)
			next = start + SNAP_READ_CHUNK;
		n = (size_t)(next - start);
		/* In memory (checked by the reader, the record by its
		 * caller): handed on in place, no copy, no second checksum. */
		if (w->in_mem) {
			p = w->r->src.mem + w->s->off + SNAP_SEC_HEADER_SIZE +
			    w->pos;
			w->pos += n;
		} else {
			err = walk_read(w, buf, n);
			p = buf;
		}
		if (!err)
			err = ops->content(arg, start, p, n, st);
		if (err)
			return err;
	}
	return 0;
}

int snap_data_walk(struct snap_reader *r, const struct snap_mem_image *img,
		   unsigned int idx, const struct snap_data_ops *ops,
		   void *arg)
{
	return snap_data_walk_section(r, snap_reader_find(r, SNAP_SEC_DATA,
							  idx),
				      img, snap_data_backing(img->mode, idx),
				      ops, arg);
}

int snap_data_walk_section(struct snap_reader *r, const struct snap_section *s,
			   const struct snap_mem_image *img,
			   enum gmem_backing_id backing,
			   const struct snap_data_ops *ops, void *arg)
{
	struct walk w = {
		.r = r,
		.s = s,
		.img = img,
		.want_state = snap_backing_state(img->mode, backing),
		.content = ops && ops->content,
		.in_mem = r->src.fd < 0,
	};
	const struct ivals *regions = &img->regions;
	uint64_t prev_end = 0, start = 0, end = 0, rec_pos;
	struct snap_cursor c, before;
	uint8_t h[SNAP_RECORD_SIZE];
	const char *why;
	size_t reg = 0;
	int err;

	snap_cursor_init(&c, img);
	err = check_head(&w, backing);
	while (!err && w.pos < w.s->len) {
		rec_pos = w.pos;
		if (w.s->len - w.pos < SNAP_RECORD_SIZE)
			return snap_sec_err(r, w.s, -EBADMSG,
					    "record at payload offset %llu: "
					    "truncated header", ULL(rec_pos));
		err = walk_read(&w, h, sizeof(h));
		if (err)
			return err;
		why = snap_decode_range(snap_get_le64(h), snap_get_le64(h + 8),
					&start, &end);
		if (!why && end - start > w.s->len - w.pos)
			why = "content runs past the end of the section";
		if (!why && start < prev_end)
			why = "overlaps or precedes the record before it";
		if (!why) {
			while (reg < regions->nr && regions->v[reg].end <= start)
				reg++;
			if (reg == regions->nr ||
			    regions->v[reg].start > start ||
			    end > regions->v[reg].end)
				why = "not inside one region";
		}
		if (why)
			return snap_sec_err(r, w.s, -EBADMSG,
					    "record at payload offset %llu "
					    "[%#llx, +%#llx): %s", ULL(rec_pos),
					    ULL(snap_get_le64(h)),
					    ULL(snap_get_le64(h + 8)), why);
		/* All its pages first, then its content: nothing is handed
		 * on from a record that is wrong further on. */
		before = c;
		err = check_pages(&w, &c, rec_pos, start, end);
		if (!err && w.content) {
			c = before;
			err = pass_content(&w, &c, ops, arg, start, end);
		} else if (!err) {
			w.pos += end - start;
		}
		if (!err && ops && ops->record)
			err = ops->record(arg, start, end - start);
		prev_end = end;
	}
	if (!err && w.content && !w.in_mem &&
	    snap_sec_crc(w.s->type, w.s->flags, w.s->len, w.crc) != w.s->crc)
		return snap_sec_err(r, w.s, -EBADMSG,
				    "checksum mismatch: the file changed "
				    "while being read");
	return err;
}
