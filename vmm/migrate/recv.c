/* SPDX-License-Identifier: MIT */
/*
 * The destination of a live migration: see migrate.h, docs/MIGRATION.md.
 *
 * The stream is untrusted.  Each section is checked by the framing
 * (stream.c) before it is looked at, and then by its meaning here:
 *  - the first section is an IMAGE: the VM is created from it exactly as
 *    a snapshot restore creates one (snap_mem_restore() on the IMAGE's
 *    document, which checks every map rule and finds no content);
 *  - a later IMAGE must describe the same configuration and regions; the
 *    pages whose state or plug value differ from the last IMAGE are
 *    converted, unplugged or plugged (discard mode: a converted page's
 *    old content goes with its old backing, as on the source);
 *  - DATA is walked by the snapshot's record walker against the last
 *    IMAGE (records sorted, inside one region, over plugged pages its
 *    backing serves) and written through the view of the pages' state;
 *  - HOLES name plugged pages, sorted and disjoint, each run in one
 *    region: they are unplugged and plugged again, which punches them
 *    out of every backing;
 *  - FINAL closes the last round and says how many bytes came before it
 *    (a lost or repeated section is caught); only the VMM's sections
 *    (0x10-0x3f) and optional unknown ones may follow, then END.
 * Any failure destroys the VM being built and tells the source (a NACK,
 * best effort): nothing half-received ever runs.
 *
 * The stream is read ahead (mig_in_read_ahead()): a thread reads and
 * checksums the next sections while the last one is applied here; each
 * is still applied only once its framing and checksum were checked, and
 * in stream order, so what is refused and why is unchanged.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "image.h"
#include "migrate.h"
#include "stream.h"

#define PG GMEM_PAGE_SIZE
#define ULL(x) ((unsigned long long)(x))

struct receiver {
	const struct mig_recv_opts *o;
	struct snap_msg *m;
	struct mig_in in;
	struct gmem_vm *vm;
	struct snap_mem_image img;	/* the last IMAGE */
	bool final;
	struct snap_content_writer cw;	/* into @vm, once it exists */
	unsigned int images;
};

static int bad(struct receiver *r, const struct mig_sec *s, const char *why)
{
	return snap_err(r->m, -EBADMSG, "section %s at stream offset %llu: "
			"%s", mig_sec_name(s->type), ULL(s->off), why);
}

/* ---- IMAGE --------------------------------------------------------------- */

static int create(struct receiver *r, const struct mig_sec *s)
{
	struct snap_reader rd;
	struct snap_src src;
	int err;

	snap_src_mem(&src, s->p, s->len);
	err = snap_reader_open(&rd, &src, r->m->buf, r->m->len);
	if (!err)
		err = snap_mem_restore(&rd, &r->o->restore, &r->vm);
	snap_reader_close(&rd);
	if (!err)
		snap_content_writer_init(&r->cw, r->vm,
					 r->o->through_views);
	return err;
}

/* Make the VM's maps @next's, piece by piece where they differ from the
 * last image (both have the same regions). */
static int apply(struct receiver *r, const struct snap_mem_image *next)
{
	struct snap_cursor a, b;
	enum gmem_state sa, sb;
	uint64_t pos, end, na, nb;
	bool pa, pb;
	int64_t n;
	size_t i;

	snap_cursor_init(&a, &r->img);
	snap_cursor_init(&b, next);
	for (i = 0; i < next->regions.nr; i++) {
		end = next->regions.v[i].end;
		for (pos = next->regions.v[i].start; pos < end;
		     pos = na < nb ? na : nb) {
			na = snap_cursor_piece(&a, pos, end, &sa, &pa);
			nb = snap_cursor_piece(&b, pos, end, &sb, &pb);
			n = 0;
			if (sa != sb)
				n = gmem_convert(r->vm, pos,
						 (na < nb ? na : nb) - pos, sb);
			if (n >= 0 && pa != pb)
				n = gmem_set_plugged(r->vm, pos,
						     (na < nb ? na : nb) - pos,
						     pb);
			if (n < 0)
				return snap_err(r->m, (int)n, "applying the "
						"maps at %#llx: %s", ULL(pos),
						strerror((int)-n));
		}
	}
	return 0;
}

static int on_image(struct receiver *r, const struct mig_sec *s)
{
	struct snap_mem_image next;
	int err;

	if (r->final)
		return bad(r, s, "after FINAL");
	err = mig_image_decode(s->p, s->len, &next, r->m);
	if (err)
		return err;
	if (!r->vm) {
		err = create(r, s);
	} else if (next.mode != r->img.mode || next.max_gpa != r->img.max_gpa ||
		   next.initial != r->img.initial ||
		   snap_ivals_diff(&next.regions, &r->img.regions) != SIZE_MAX) {
		err = bad(r, s, "the configuration or regions changed");
	} else {
		err = apply(r, &next);
	}
	if (err) {
		snap_image_free(&next);
		return err;
	}
	snap_image_free(&r->img);
	r->img = next;
	r->images++;
	return 0;
}

/* ---- DATA and HOLES ------------------------------------------------------ */

/* Content through snap_content_write(): pwrite() into the backing where
 * it takes it, else the view (vmm/snapshot/mem_write.c). */
static int write_content(void *arg, uint64_t gpa, const void *buf, size_t len,
			 enum gmem_state view)
{
	struct receiver *r = arg;
	int err = snap_content_write(&r->cw, gpa, buf, len, view);

	if (err)
		return snap_err(r->m, err, "writing guest memory at %#llx: %s",
				ULL(gpa), strerror(-err));
	return 0;
}

static int on_data(struct receiver *r, const struct mig_sec *s)
{
	static const struct snap_data_ops ops = { .content = write_content };
	struct snap_section sec = {
		.type = s->type, .flags = s->flags, .off = 0,
		.len = s->len, .crc = s->crc,
	};
	struct snap_reader rd;
	uint32_t backing;
	int err;

	if (!r->vm || r->final)
		return bad(r, s, r->vm ? "after FINAL" : "before any IMAGE");
	if (s->len < SNAP_DATA_HEAD_SIZE)
		return bad(r, s, "shorter than its head");
	backing = snap_get_le32(s->p);
	if (backing >= snap_data_sections(r->img.mode))
		return bad(r, s, "a backing this mode does not have");
	/* The DATA walker reads a reader's section: this one, in memory,
	 * framed as the snapshot frames it (same header, same checksum). */
	memset(&rd, 0, sizeof(rd));
	snap_src_mem(&rd.src, s->raw, SNAP_SEC_HEADER_SIZE + s->len);
	rd.msg = *r->m;
	err = snap_data_walk_section(&rd, &sec, &r->img,
				     (enum gmem_backing_id)backing, &ops, r);
	free(rd.buf);
	return err;
}

static int on_holes(struct receiver *r, const struct mig_sec *s)
{
	struct snap_cursor c;
	uint64_t start, end, prev = 0, pos, next;
	enum gmem_state st;
	const char *why;
	size_t i, reg = 0;
	bool plugged;
	int64_t n;

	if (!r->vm || r->final)
		return bad(r, s, r->vm ? "after FINAL" : "before any IMAGE");
	if (s->len % SNAP_PLUG_SIZE)
		return bad(r, s, "not a whole number of runs");
	/* Every run checked before any is punched. */
	snap_cursor_init(&c, &r->img);
	for (i = 0; i < s->len; i += SNAP_PLUG_SIZE) {
		uint64_t np = snap_get_le64(s->p + i + 8);

		why = np > SNAP_MAX_GPA / PG ? "too long" :
		      snap_decode_range(snap_get_le64(s->p + i), np * PG,
					&start, &end);
		if (!why && start < prev)
			why = "runs overlap or are out of order";
		while (!why && reg < r->img.regions.nr &&
		       r->img.regions.v[reg].end <= start)
			reg++;
		if (!why && (reg == r->img.regions.nr ||
			     r->img.regions.v[reg].start > start ||
			     end > r->img.regions.v[reg].end))
			why = "a run is not inside one region";
		for (pos = start; !why && pos < end; pos = next) {
			next = snap_cursor_piece(&c, pos, end, &st, &plugged);
			if (!plugged)
				why = "a run names an unplugged page";
		}
		if (why)
			return bad(r, s, why);
		prev = end;
	}
	for (i = 0; i < s->len; i += SNAP_PLUG_SIZE) {
		start = snap_get_le64(s->p + i);
		end = start + snap_get_le64(s->p + i + 8) * PG;
		n = gmem_set_plugged(r->vm, start, end - start, false);
		if (n >= 0)
			n = gmem_set_plugged(r->vm, start, end - start, true);
		if (n < 0)
			return snap_err(r->m, (int)n, "punching [%#llx, %#llx): "
					"%s", ULL(start), ULL(end),
					strerror((int)-n));
	}
	return 0;
}

/* ---- FINAL, the VMM's sections, END ------------------------------------- */

static int on_final(struct receiver *r, const struct mig_sec *s)
{
	if (!r->vm || r->final)
		return bad(r, s, r->vm ? "repeated" : "before any IMAGE");
	if (s->len != MIG_FINAL_SIZE || snap_get_le32(s->p + 4))
		return bad(r, s, "malformed");
	if (snap_get_le32(s->p) != r->images)
		return bad(r, s, "its round count is not the IMAGEs received");
	if (snap_get_le64(s->p + 8) != s->off)
		return bad(r, s, "bytes were lost or repeated before it");
	r->final = true;
	return 0;
}

static int on_other(struct receiver *r, const struct mig_sec *s)
{
	bool vmm = s->type >= MIG_VMM_SEC_FIRST && s->type <= MIG_VMM_SEC_LAST;
	int err;

	if (vmm && !r->final)
		return bad(r, s, "a VMM section before FINAL");
	if (vmm && r->o->section) {
		err = r->o->section(r->o->section_data, s->type, s->flags,
				    s->p, s->len);
		return err ? snap_err(r->m, err, "the VMM refused section "
				      "%#x: %s", s->type, strerror(-err)) : 0;
	}
	if (s->flags & SNAP_SEC_OPTIONAL)
		return 0;
	return snap_err(r->m, -EPROTO, "section type %#x at stream offset "
			"%llu: unknown and not optional (a newer gmvm?)",
			s->type, ULL(s->off));
}

static int receive(struct receiver *r)
{
	struct mig_sec s;
	int err;

	err = mig_in_header(&r->in);
	/*
	 * Sections are read and checked by a thread while the one before
	 * is applied here (writing content into fresh pages is what takes
	 * the time): the checks and their order are the same.  Without the
	 * thread (none could be started) they are read here, one by one.
	 */
	if (!err)
		mig_in_read_ahead(&r->in);
	while (!err) {
		err = mig_in_next(&r->in, &s);
		if (err)
			break;
		if (!r->vm && s.type != MIG_SEC_IMAGE)
			return bad(r, &s, "the stream must start with IMAGE");
		switch (s.type) {
		case MIG_SEC_IMAGE: err = on_image(r, &s); break;
		case MIG_SEC_DATA: err = on_data(r, &s); break;
		case MIG_SEC_HOLES: err = on_holes(r, &s); break;
		case MIG_SEC_FINAL: err = on_final(r, &s); break;
		case MIG_SEC_ACK:
		case MIG_SEC_COMMIT: err = bad(r, &s, "out of place"); break;
		case SNAP_SEC_END:
			return r->final ? 0 : bad(r, &s, "before FINAL");
		default: err = on_other(r, &s); break;
		}
	}
	return err;
}

int mig_receive(int fd, const struct mig_recv_opts *o, struct gmem_vm **out,
		char *msg, size_t msg_len)
{
	struct receiver r;
	struct snap_msg m;
	int err;

	snap_msg_init(&m, msg, msg_len);
	*out = NULL;
	if (!o || !o->restore.base)
		return snap_err(&m, -EINVAL, "no base configuration");
	memset(&r, 0, sizeof(r));
	r.o = o;
	r.m = &m;
	mig_in_init(&r.in, fd, o->timeout_ms, &m);
	err = receive(&r);
	/* The reader (stopped at END or a failure) is joined before the
	 * ACK: nothing else reads the socket meanwhile. */
	mig_in_free(&r.in);
	/* The VMM's last word on the whole stream (it may miss a section
	 * it needs): a refusal here is a NACK like any other. */
	if (!err && o->before_ack)
		err = o->before_ack(o->section_data);
	/*
	 * ACK, then the source's COMMIT: only a VM whose source knows it
	 * moved is ours to run.  If the ACK is lost the source resumes the
	 * guest and sends no COMMIT, so this one must not run it.
	 */
	if (!err) {
		err = mig_send_ack(fd, 0);
		if (err)
			snap_err(&m, err, "acknowledging: %s", strerror(-err));
		else
			err = mig_wait_commit(fd, o->timeout_ms, &m);
	}
	if (err) {
		/* The source must not wait for bytes that will not be read. */
		mig_send_ack(fd, err);
		shutdown(fd, SHUT_RDWR);
	}
	snap_image_free(&r.img);
	if (err && r.vm)
		gmem_destroy(r.vm);
	else
		*out = r.vm;
	return err;
}
