/* SPDX-License-Identifier: MIT */
/*
 * Does a VM hold exactly what a snapshot describes?  The check a restore
 * can be judged by (tests, the fuzzer), and that a VMM can run on the VM
 * it just saved: configuration, regions and both maps equal, every DATA
 * page's content equal (read through gmem_access(), as saved), and each
 * backing's resident memory exactly the union of its DATA records, so
 * that a page the file does not name is a hole.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mem_image.h"

#define ULL(x) ((unsigned long long)(x))

struct verify {
	struct gmem_vm *vm;
	struct snap_msg *msg;
	uint8_t *buf;			/* SNAP_READ_CHUNK bytes */
	struct ivals recs, resident;	/* joined where they touch */
};

static int add_record(void *arg, uint64_t gpa, uint64_t len)
{
	struct verify *v = arg;

	return ivals_push_joined(&v->recs, gpa, gpa + len) ?
		snap_err(v->msg, -ENOMEM, "no memory") : 0;
}

static int add_resident(void *arg, uint64_t start, uint64_t end)
{
	struct verify *v = arg;

	return ivals_push_joined(&v->resident, start, end) ?
		snap_err(v->msg, -ENOMEM, "no memory") : 0;
}

static int compare_content(void *arg, uint64_t gpa, const void *buf,
			   size_t len, enum gmem_state view)
{
	struct verify *v = arg;
	const uint8_t *want = buf;
	size_t i;
	int err;

	err = gmem_access(v->vm, gpa, v->buf, len, false, view);
	if (err)
		return snap_err(v->msg, -EUCLEAN, "reading %s memory at %#llx "
				"of the VM: %s", gmem_state_name(view),
				ULL(gpa), strerror(-err));
	if (!memcmp(v->buf, want, len))
		return 0;
	for (i = 0; v->buf[i] == want[i]; i++)
		;
	return snap_err(v->msg, -EUCLEAN, "byte %#llx: the VM holds %#x, the "
			"file %#x", ULL(gpa + i), v->buf[i], want[i]);
}

static bool holds(const struct ivals *a, uint64_t gpa)
{
	size_t i;

	for (i = 0; i < a->nr; i++)
		if (a->v[i].start <= gpa && gpa < a->v[i].end)
			return true;
	return false;
}

/* The first address where the two joined lists differ, and who has it. */
static int compare_resident(struct verify *v, const char *backing)
{
	const struct ivals *f = &v->recs, *m = &v->resident;
	size_t i = snap_ivals_diff(f, m);
	uint64_t at;

	if (i == SIZE_MAX)
		return 0;
	if (i == f->nr)
		at = m->v[i].start;
	else if (i == m->nr)
		at = f->v[i].start;
	else if (f->v[i].start != m->v[i].start)
		at = f->v[i].start < m->v[i].start ? f->v[i].start :
						     m->v[i].start;
	else
		at = f->v[i].end < m->v[i].end ? f->v[i].end : m->v[i].end;
	return snap_err(v->msg, -EUCLEAN, "page %#llx: %s in the VM's %s "
			"backing, %s in the file", ULL(at),
			holds(m, at) ? "resident" : "a hole", backing,
			holds(f, at) ? "saved" : "not saved");
}

static int verify_data(struct snap_reader *r, const struct snap_mem_image *img,
		       struct verify *v, unsigned int idx, enum snap_find find)
{
	static const struct snap_data_ops ops = {
		.record = add_record,
		.content = compare_content,
	};
	enum gmem_backing_id id = snap_data_backing(img->mode, idx);
	struct gmem_region_info ri = { .size = sizeof(ri) };
	size_t k;
	int err;

	v->recs.nr = v->resident.nr = 0;
	err = snap_data_walk(r, img, idx, &ops, v);
	for (k = 0; !err && k < img->regions.nr; k++) {
		err = gmem_region_get(v->vm, (unsigned int)k, &ri);
		if (err)
			return snap_err(v->msg, -EUCLEAN, "region %zu: %s", k,
					strerror(-err));
		err = snap_resident_walk(&ri, id, find, add_resident, v,
					 v->msg);
	}
	if (!err)
		err = compare_resident(v, id == GMEM_BACKING_SHARED ?
					  "shared" : "private");
	return err;
}

int snap_mem_verify(struct gmem_vm *vm, struct snap_reader *r,
		    enum snap_find find)
{
	struct verify v = { .vm = vm, .msg = &r->msg };
	struct snap_mem_image file, now;
	unsigned int i;
	int err;

	err = snap_image_read(r, &file);
	if (err)
		return err;
	err = snap_image_from_vm(vm, file.initial, &now, &r->msg);
	if (!err) {
		err = snap_image_compare(&file, &now, "the file", "the VM",
					 &r->msg);
		snap_image_free(&now);
	}
	if (!err) {
		v.buf = malloc(SNAP_READ_CHUNK);
		if (!v.buf)
			err = snap_err(&r->msg, -ENOMEM, "no memory");
	}
	for (i = 0; !err && i < snap_data_sections(file.mode); i++)
		err = verify_data(r, &file, &v, i, find);
	free(v.buf);
	ivals_free(&v.recs);
	ivals_free(&v.resident);
	snap_image_free(&file);
	return err;
}
