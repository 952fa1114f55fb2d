/* SPDX-License-Identifier: MIT */
/*
 * Saving a VM's memory: the image (configuration, regions, maps) and, per
 * backing, the resident pages it serves with their content.
 *
 * Content is read with gmem_access() through the view of the page's
 * state, which holds off conversions of the range during the copy and is
 * correct in both modes (in-place mode: both views map the one backing).
 * Only pages a backing serves are saved (plugged, and in discard mode in
 * that backing's state); libgmem's own invariant (the audit's check 4)
 * says no other page holds memory once deferred punches are drained.  The
 * image is taken again at the end: if it changed, the caller did not hold
 * off changes and the file would not be one moment's state, so it fails.
 */
#include <errno.h>
#include <string.h>

#include "machine.h"
#include "mem_image.h"

#define ULL(x) ((unsigned long long)(x))
/* Content read per gmem_access(): the writer flushes about every 4. */
#define SAVE_CHUNK (256u << 10)

struct save {
	struct gmem_vm *vm;
	struct snap_writer *w;
	struct snap_cursor c;
	int want_state;		/* -1: any (in-place) */
	struct snap_save_stats *st;
};

/* One record: header, then the content straight into the writer. */
static int save_record(struct save *s, uint64_t gpa, uint64_t end,
		       enum gmem_state view)
{
	uint8_t h[SNAP_RECORD_SIZE];
	uint64_t n;
	void *p;
	int err;

	snap_put_le64(h, gpa);
	snap_put_le64(h + 8, end - gpa);
	err = snap_writer_put(s->w, h, sizeof(h));
	for (; !err && gpa < end; gpa += n) {
		n = end - gpa < SAVE_CHUNK ? end - gpa : SAVE_CHUNK;
		p = snap_writer_space(s->w, (size_t)n);
		if (!p)
			return s->w->err;
		err = gmem_access(s->vm, gpa, p, n, false, view);
		if (err == -EACCES)
			return snap_err(s->w->msg, -EAGAIN, "page %#llx changed "
					"state while being saved: hold off "
					"conversions during a snapshot",
					ULL(gpa));
		if (err)
			return snap_err(s->w->msg, err, "reading guest memory "
					"at %#llx: %s", ULL(gpa),
					strerror(-err));
		err = snap_writer_commit(s->w, (size_t)n);
	}
	if (!err)
		s->st->data_records++;
	return err;
}

/* A resident range: save the pieces this backing serves. */
static int save_resident(void *arg, uint64_t start, uint64_t end)
{
	struct save *s = arg;
	enum gmem_state st;
	uint64_t next;
	bool plugged;
	int err;

	for (; start < end; start = next) {
		next = snap_cursor_piece(&s->c, start, end, &st, &plugged);
		if (!plugged || (s->want_state >= 0 && (int)st != s->want_state))
			continue;
		err = save_record(s, start, next, st);
		if (err)
			return err;
		s->st->data_bytes += next - start;
	}
	return 0;
}

static int save_data(struct save *s, const struct snap_mem_image *img,
		     unsigned int idx, enum snap_find find)
{
	enum gmem_backing_id id = snap_data_backing(img->mode, idx);
	struct gmem_region_info ri = { .size = sizeof(ri) };
	uint8_t head[SNAP_DATA_HEAD_SIZE];
	size_t i;
	int err;

	snap_put_le32(head, id);
	snap_put_le32(head + 4, 0);
	snap_writer_begin(s->w, SNAP_SEC_DATA, 0);
	err = snap_writer_put(s->w, head, sizeof(head));
	snap_cursor_init(&s->c, img);
	s->want_state = snap_backing_state(img->mode, id);
	for (i = 0; !err && i < img->regions.nr; i++) {
		err = gmem_region_get(s->vm, (unsigned int)i, &ri);
		if (!err && (ri.gpa != img->regions.v[i].start ||
			     ri.gpa + ri.len != img->regions.v[i].end))
			err = -EAGAIN;
		if (err)
			return snap_err(s->w->msg, -EAGAIN, "the VM's regions "
					"changed while being saved");
		err = snap_resident_walk(&ri, id, find, save_resident, s,
					 s->w->msg);
	}
	return err ? err : snap_writer_end(s->w);
}

int snap_mem_save(struct gmem_vm *vm, struct snap_writer *w,
		  const struct snap_save_opts *o, struct snap_save_stats *st)
{
	struct snap_mem_image img, after;
	struct snap_save_stats local;
	struct save s = { .vm = vm, .w = w };
	unsigned int i;
	int err;

	memset(&local, 0, sizeof(local));
	s.st = st ? st : &local;
	memset(s.st, 0, sizeof(*s.st));
	if (w->err)
		return w->err;
	if (gmem_get_backend(vm) != GMEM_BACKEND_EMULATED)
		return snap_err(w->msg, -EOPNOTSUPP, "the %s backend has no "
				"host view of private memory to save",
				gmem_backend_name(gmem_get_backend(vm)));
	if (o->initial_state != GMEM_PRIVATE && o->initial_state != GMEM_SHARED)
		return snap_err(w->msg, -EINVAL, "initial state %d unknown",
				o->initial_state);
	/* A queued punch would make memory look resident that is not the
	 * page's any more. */
	err = gmem_reclaim_drain(vm);
	if (err)
		return snap_err(w->msg, err, "draining deferred punches: %s",
				strerror(-err));
	err = snap_image_from_vm(vm, o->initial_state, &img, w->msg);
	if (err)
		return err;
	err = snap_image_write(w, &img);
	for (i = 0; !err && i < snap_data_sections(img.mode); i++)
		err = save_data(&s, &img, i, o->find);
	if (!err)
		err = snap_image_from_vm(vm, o->initial_state, &after, w->msg);
	if (!err) {
		struct snap_msg diff;
		char why[160];

		snap_msg_init(&diff, why, sizeof(why));
		if (snap_image_compare(&img, &after, "before", "after", &diff))
			err = snap_err(w->msg, -EAGAIN, "the VM's memory "
				       "changed while being saved (%s): hold "
				       "off changes during a snapshot", why);
		snap_image_free(&after);
	}
	s.st->state_runs = img.nr_runs;
	s.st->unplugged_runs = img.unplugged.nr;
	snap_image_free(&img);
	/* A failure may leave a section half written: the writer must not
	 * finish that into a file that looks whole. */
	if (err && !w->err)
		w->err = err;
	return err;
}

int snap_save_file(struct gmem_vm *vm, const char *path,
		   const struct snap_save_opts *o, struct snap_save_stats *st,
		   char *msg, size_t msg_len)
{
	struct snap_save_stats local;
	struct snap_writer w;
	struct snap_file f;
	struct snap_msg m;
	int64_t total;
	int err;

	snap_msg_init(&m, msg, msg_len);
	if (!st)
		st = &local;
	err = snap_file_create(&f, path, &m);
	if (err)
		return err;
	f.no_replace = o->no_replace;
	if (o->prepare) {
		err = o->prepare(o->prepare_data, &m);
		if (err)
			goto err_file;
	}
	err = snap_writer_init(&w, f.fd, o->io, &m);
	if (!err)
		err = snap_mem_save(vm, &w, o, st);
	if (!err && o->machine)
		err = snap_machine_write(&w, o->machine);
	total = err ? err : snap_writer_finish(&w);
	snap_writer_free(&w);
	if (total < 0) {
		err = (int)total;
		goto err_file;
	}
	st->file_bytes = (uint64_t)total;
	return snap_file_commit(&f, &m);	/* it removes PATH.tmp */

err_file:
	snap_file_abort(&f);
	return err;
}
