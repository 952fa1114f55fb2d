/* SPDX-License-Identifier: MIT */
/*
 * Restoring a VM's memory from a snapshot, all or nothing.
 *
 * Order, and why:
 *  1. the whole memory image is read and checked, DATA record headers
 *     included (snap_image_read), before anything is created: a damaged
 *     file changes nothing anywhere;
 *  2. a new VM is created from the file's configuration and must be what
 *     the file describes and hold no memory yet, so that every page the
 *     file does not name is a hole afterwards;
 *  3. page states: one gmem_convert_batch() per GMEM_BATCH_MAX runs that
 *     differ from the initial state (nothing is resident yet, so nothing
 *     is punched);
 *  4. plugs: unplugged runs are unplugged (again nothing to punch);
 *  5. content: each DATA record is written into the backing that serves
 *     its pages' state (discard: private pages in the private backing,
 *     shared in the shared one; in-place: the one backing), with pwrite()
 *     where the backing takes it (a memfd), else with gmem_access()
 *     through that state's view (a guest_memfd); in discard mode the
 *     shared backing's records on a thread of their own, beside the
 *     private one's.  Writing after 3 and 4 is what keeps it there: a
 *     later conversion would discard it.
 * Any failure destroys the new VM: the caller gets a whole VM or none.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem_image.h"

#define PG GMEM_PAGE_SIZE
#define ULL(x) ((unsigned long long)(x))

static int create_vm(struct snap_reader *r, const struct snap_mem_image *img,
		     const struct snap_restore_opts *o, struct gmem_vm **vm)
{
	struct gmem_region_config *rc;
	struct gmem_config cfg;
	size_t i;
	int err;

	rc = calloc(img->regions.nr, sizeof(*rc));
	if (!rc)
		return snap_err(&r->msg, -ENOMEM, "no memory");
	for (i = 0; i < img->regions.nr; i++)
		rc[i] = GMEM_INIT(struct gmem_region_config,
				  .gpa = img->regions.v[i].start,
				  .len = img->regions.v[i].end -
					 img->regions.v[i].start,
				  .private_fd = -1, .shared_fd = -1);
	/* An extensible struct: as many bytes as its caller knows of. */
	memset(&cfg, 0, sizeof(cfg));
	memcpy(&cfg, o->base, o->base->size < sizeof(cfg) ? o->base->size :
							     sizeof(cfg));
	cfg.size = sizeof(cfg);
	cfg.mode = img->mode;
	cfg.initial_state = img->initial;
	cfg.max_gpa = img->max_gpa;
	cfg.regions = rc;
	cfg.nr_regions = (uint32_t)img->regions.nr;
	err = o->create ? o->create(o->create_data, &cfg, vm) :
			  gmem_create(&cfg, vm);
	free(rc);
	if (err)
		return snap_err(&r->msg, err, "creating the VM (%s mode, %zu "
				"regions, max_gpa %#llx): %s",
				gmem_mode_name(img->mode), img->regions.nr,
				ULL(img->max_gpa), strerror(-err));
	return 0;
}

static int found_memory(void *arg, uint64_t start, uint64_t end)
{
	*(uint64_t *)arg = start;
	return -ENOTEMPTY;
}

/* The new VM is the file's configuration, fresh: one run per region in
 * the initial state, all plugged, no memory in any backing. */
static int check_new(struct snap_reader *r, const struct snap_mem_image *img,
		     struct gmem_vm *vm, enum snap_find find)
{
	struct gmem_region_info ri = { .size = sizeof(ri) };
	struct snap_mem_image now, fresh = *img;
	enum gmem_backing_id id;
	uint64_t at = 0;
	unsigned int i;
	size_t k;
	int err;

	if (gmem_get_backend(vm) != GMEM_BACKEND_EMULATED)
		return snap_err(&r->msg, -EOPNOTSUPP, "the new VM runs the %s "
				"backend, whose private memory cannot be "
				"written from the host",
				gmem_backend_name(gmem_get_backend(vm)));
	fresh.runs = calloc(img->regions.nr, sizeof(*fresh.runs));
	if (!fresh.runs)
		return snap_err(&r->msg, -ENOMEM, "no memory");
	fresh.nr_runs = img->regions.nr;
	memset(&fresh.unplugged, 0, sizeof(fresh.unplugged));
	for (k = 0; k < img->regions.nr; k++) {
		fresh.runs[k].start = img->regions.v[k].start;
		fresh.runs[k].end = img->regions.v[k].end;
		fresh.runs[k].state = img->initial;
	}
	err = snap_image_from_vm(vm, img->initial, &now, &r->msg);
	if (!err) {
		err = snap_image_compare(&fresh, &now, "the file",
					 "the new VM", &r->msg);
		snap_image_free(&now);
	}
	free(fresh.runs);
	if (err)
		return snap_err(&r->msg, err, "the new VM is not what the file "
				"describes");
	for (k = 0; k < img->regions.nr; k++) {
		err = gmem_region_get(vm, (unsigned int)k, &ri);
		for (i = 0; !err && i < snap_data_sections(img->mode); i++) {
			id = snap_data_backing(img->mode, i);
			err = snap_resident_walk(&ri, id, find, found_memory,
						 &at, &r->msg);
			if (err == -ENOTEMPTY)
				return snap_err(&r->msg, err, "the new VM's %s "
						"backing already holds memory "
						"at %#llx: a restore needs "
						"empty backings",
						id == GMEM_BACKING_SHARED ?
							"shared" : "private",
						ULL(at));
		}
		if (err)
			return snap_err(&r->msg, err, "region %zu of the new "
					"VM: %s", k, strerror(-err));
	}
	return 0;
}

static int convert_batch(struct snap_reader *r, struct gmem_vm *vm,
			 const struct gmem_batch_entry *b, unsigned int n,
			 uint64_t pages)
{
	int failed = -1;
	uint64_t busy = 0;
	int64_t changed;

	if (!n)
		return 0;
	changed = gmem_convert_batch(vm, b, n, &failed, &busy);
	if (changed < 0)
		return snap_err(&r->msg, (int)changed, "converting %u runs "
				"from %#llx: %s (entry %d)", n, ULL(b[0].gpa),
				strerror((int)-changed), failed);
	if ((uint64_t)changed != pages)
		return snap_err(&r->msg, -EIO, "converting %u runs from %#llx "
				"changed %lld pages, not %llu", n,
				ULL(b[0].gpa), (long long)changed, ULL(pages));
	return 0;
}

static int apply_states(struct snap_reader *r, const struct snap_mem_image *img,
			struct gmem_vm *vm)
{
	struct gmem_batch_entry *b;
	uint64_t pages = 0;
	unsigned int n = 0;
	size_t i;
	int err = 0;

	b = calloc(GMEM_BATCH_MAX, sizeof(*b));
	if (!b)
		return snap_err(&r->msg, -ENOMEM, "no memory");
	for (i = 0; !err && i < img->nr_runs; i++) {
		const struct snap_run *run = &img->runs[i];

		if (run->state == img->initial)
			continue;
		b[n].gpa = run->start;
		b[n].len = run->end - run->start;
		b[n].to = run->state;
		pages += b[n].len / PG;
		if (++n == GMEM_BATCH_MAX) {
			err = convert_batch(r, vm, b, n, pages);
			n = 0;
			pages = 0;
		}
	}
	if (!err)
		err = convert_batch(r, vm, b, n, pages);
	free(b);
	return err;
}

static int apply_plugs(struct snap_reader *r, const struct snap_mem_image *img,
		       struct gmem_vm *vm)
{
	const struct ivals *u = &img->unplugged;
	int64_t changed;
	size_t i;

	for (i = 0; i < u->nr; i++) {
		uint64_t len = u->v[i].end - u->v[i].start;

		changed = gmem_set_plugged(vm, u->v[i].start, len, false);
		if (changed < 0)
			return snap_err(&r->msg, (int)changed, "unplugging "
					"[%#llx, %#llx): %s",
					ULL(u->v[i].start), ULL(u->v[i].end),
					strerror((int)-changed));
		if ((uint64_t)changed != len / PG)
			return snap_err(&r->msg, -EIO, "unplugging [%#llx, "
					"%#llx) changed %lld pages",
					ULL(u->v[i].start), ULL(u->v[i].end),
					(long long)changed);
	}
	return 0;
}

struct writing {
	struct snap_content_writer cw;
	struct snap_msg *msg;
};

static int write_content(void *arg, uint64_t gpa, const void *buf, size_t len,
			 enum gmem_state view)
{
	struct writing *w = arg;
	int err = snap_content_write(&w->cw, gpa, buf, len, view);

	if (err)
		return snap_err(w->msg, err, "writing %zu bytes of %s memory "
				"at %#llx: %s", len, gmem_state_name(view),
				ULL(gpa), strerror(-err));
	return 0;
}

static const struct snap_data_ops write_ops = {
	.content = write_content,
};

/*
 * The second backing's DATA (discard mode: the shared one) on a thread
 * of its own, through a reader of its own (its buffer, its message; the
 * section table and the source are read-only by now): the two backings'
 * content is independent (other pages, other fds), and on two cores the
 * copies overlap.
 */
struct side_walk {
	struct snap_reader r;
	char msg[256];
	struct writing w;
	const struct snap_mem_image *img;
	int err;
	pthread_t th;
};

uint64_t snap_restore_side_min = 4ULL << 20;

static void *side_walk_main(void *arg)
{
	struct side_walk *sw = arg;

	sw->err = snap_data_walk(&sw->r, sw->img, 1, &write_ops, &sw->w);
	return NULL;
}

/* Both backings' content, the second on a thread where one starts. */
static int write_all(struct snap_reader *r, const struct snap_mem_image *img,
		     struct gmem_vm *vm, bool through_views)
{
	struct writing w = { .msg = &r->msg };
	const struct snap_section *side;
	struct side_walk *sw = NULL;
	unsigned int i, n = snap_data_sections(img->mode);
	int err = 0;

	snap_content_writer_init(&w.cw, vm, through_views);
	side = n == 2 ? snap_reader_find(r, SNAP_SEC_DATA, 1) : NULL;
	/* Below a few MiB a thread costs more than it saves. */
	if (side && side->len >= snap_restore_side_min) {
		sw = calloc(1, sizeof(*sw));
		if (sw) {
			sw->r = *r;
			sw->r.buf = NULL;
			snap_msg_init(&sw->r.msg, sw->msg, sizeof(sw->msg));
			sw->w.msg = &sw->r.msg;
			snap_content_writer_init(&sw->w.cw, vm, through_views);
			sw->img = img;
			if (pthread_create(&sw->th, NULL, side_walk_main, sw)) {
				free(sw);
				sw = NULL;
			} else {
				n = 1;	/* the thread has the second */
			}
		}
	}
	for (i = 0; !err && i < n; i++)
		err = snap_data_walk(r, img, i, &write_ops, &w);
	if (sw) {
		pthread_join(sw->th, NULL);
		/* Ours first; else the thread's, with its message. */
		if (!err && sw->err) {
			err = sw->err;
			snap_err(&r->msg, err, "%s", sw->msg);
		}
		free(sw->r.buf);	/* its own; the rest is r's */
		free(sw);
	}
	return err;
}

int snap_mem_restore(struct snap_reader *r, const struct snap_restore_opts *o,
		     struct gmem_vm **out)
{
	struct snap_mem_image img;
	struct gmem_vm *vm = NULL;
	int err;

	if (!o || !o->base || !o->base->size)
		return snap_err(&r->msg, -EINVAL, "restore: no base "
				"configuration (GMEM_INIT sets its size)");
	err = snap_image_read(r, &img);
	if (err)
		return err;
	err = create_vm(r, &img, o, &vm);
	if (!err)
		err = check_new(r, &img, vm, o->find);
	if (!err)
		err = apply_states(r, &img, vm);
	if (!err)
		err = apply_plugs(r, &img, vm);
	if (!err)
		err = write_all(r, &img, vm, o->through_views);
	snap_image_free(&img);
	if (err) {
		gmem_destroy(vm);	/* no half-restored VM */
		return err;
	}
	*out = vm;
	return 0;
}

/* snap_image_read() checks everything, DATA record headers included. */
int snap_mem_check(struct snap_reader *r, struct snap_mem_info *info)
{
	struct snap_mem_image img;
	size_t i, max = info ? sizeof(info->region) / sizeof(info->region[0]) : 0;
	int err = snap_image_read(r, &img);

	if (err)
		return err;
	if (info) {
		memset(info, 0, sizeof(*info));
		info->mode = img.mode;
		info->initial_state = img.initial;
		info->max_gpa = img.max_gpa;
		info->nr_regions = (unsigned int)img.regions.nr;
		for (i = 0; i < img.regions.nr && i < max; i++) {
			info->region[i].gpa = img.regions.v[i].start;
			info->region[i].len = img.regions.v[i].end -
					      img.regions.v[i].start;
		}
	}
	snap_image_free(&img);
	return 0;
}

int snap_mem_restore_file(const char *path, const struct snap_restore_opts *o,
			  struct gmem_vm **out, char *msg, size_t msg_len)
{
	struct snap_reader r;
	struct snap_src src;
	struct snap_msg m;
	int fd, err;

	snap_msg_init(&m, msg, msg_len);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return snap_err(&m, -errno, "%s: %s", path, strerror(errno));
	err = snap_src_fd(&src, fd);
	if (err) {
		close(fd);
		return snap_err(&m, err, "%s: %s", path,
				err == -EINVAL ? "not a regular file" :
						 strerror(-err));
	}
	err = snap_reader_open(&r, &src, msg, msg_len);
	if (!err) {
		err = snap_mem_restore(&r, o, out);
		snap_reader_close(&r);
	}
	close(fd);
	return err;
}
