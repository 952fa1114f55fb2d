/* SPDX-License-Identifier: MIT */
/*
 * The accessors: what the page-state map says about guest memory
 * (gmem_state_at(), gmem_plugged_at(), gmem_for_each_run(),
 * gmem_for_each_extent()), and guest memory read or written through the
 * view the map allows (gmem_access()).  Nothing here changes the map; the
 * engine that does is convert.c.
 *
 * Locking (internal.h): a point query takes vm->lock only; a walk
 * snapshots the runs under vm->lock and calls back with no lock held, so
 * a callback may call libgmem; gmem_access() holds its range in the range
 * lock for the copy, so no conversion of it can run meanwhile (the page
 * cannot change view under the memcpy).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- guest memory through a view --------------------------------------- */

struct all_in_state {
	uint8_t value;		/* in that view's state and plugged */
	bool ok;
};

static int check_state(void *arg, uint64_t start, uint64_t npages,
		       uint8_t value)
{
	struct all_in_state *a = arg;

	/* Keep walking: a hole further on is -EINVAL, not -EACCES. */
	if (value != a->value)
		a->ok = false;
	return 0;
}

int gmem_access(struct gmem_vm *vm, uint64_t gpa, void *buf, uint64_t len,
		bool write, enum gmem_state view)
{
	struct all_in_state a = { .value = (uint8_t)view, .ok = true };
	struct range_lock_waiter w;
	uint64_t first, last;
	uint8_t *p = NULL;
	int err;

	if (len == 0 || gpa >= vm->max_gpa || len > vm->max_gpa - gpa)
		return -EINVAL;
	if (view != GMEM_PRIVATE && view != GMEM_SHARED)
		return -EINVAL;
	first = gpa / GMEM_PAGE_SIZE;
	last = (gpa + len - 1) / GMEM_PAGE_SIZE;

	gmem_range_lock_acquire(&vm->rlock, &w, first, last + 1);
	pthread_mutex_lock(&vm->lock);
	/* A hole fails the walk itself (-EINVAL), a page in another state
	 * or unplugged stops it (-EACCES). */
	err = gmem_walk_ex(vm, first, last - first + 1, check_state, &a,
			   -EINVAL);
	pthread_mutex_unlock(&vm->lock);
	if (!err && a.ok) {
		p = vm->backend->host_addr(vm, view, first);
		if (!p)
			err = -EPERM;
	}
	if (!err && a.ok) {
		p += gpa % GMEM_PAGE_SIZE;
		if (write)
			memcpy(p, buf, len);
		else
			memcpy(buf, p, len);
	}
	gmem_range_lock_release(&vm->rlock, &w);
	if (err < 0)
		return err;
	return a.ok ? 0 : -EACCES;
}

/* The value of the page at @gpa and its run (clipped to its region), or
 * -EINVAL in a hole. */
static int value_at(struct gmem_vm *vm, uint64_t gpa, uint64_t *run_start,
		    uint64_t *run_len)
{
	uint64_t start, npages, page = gpa / GMEM_PAGE_SIZE;
	struct gmem_region *r;
	uint8_t v;

	if (gpa >= vm->max_gpa)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	v = gmem_range_map_get(vm->map, page, &start, &npages);
	r = gmem_region_of(vm, page);
	if (r) {
		uint64_t end = start + npages;

		if (start < r->first)
			start = r->first;
		if (end > r->first + r->npages)
			end = r->first + r->npages;
		npages = end - start;
	}
	pthread_mutex_unlock(&vm->lock);
	if (!r)
		return -EINVAL;
	if (run_start)
		*run_start = start * GMEM_PAGE_SIZE;
	if (run_len)
		*run_len = npages * GMEM_PAGE_SIZE;
	return v;
}

int gmem_state_at(struct gmem_vm *vm, uint64_t gpa, uint64_t *run_start,
		  uint64_t *run_len)
{
	int v = value_at(vm, gpa, run_start, run_len);

	return v < 0 ? v : (int)(v & GMEM_V_STATE);
}

int gmem_plugged_at(struct gmem_vm *vm, uint64_t gpa, uint64_t *run_start,
		    uint64_t *run_len)
{
	int v = value_at(vm, gpa, run_start, run_len);

	return v < 0 ? v : !(v & (int)GMEM_V_UNPLUGGED);
}

/*
 * Snapshot the runs of [gpa, gpa+len) under the map mutex (other threads
 * rebalance the tree while converting other ranges), so that the caller's
 * callback runs without any lock held and may take as long as it likes.
 * Holes are skipped; runs are cut at region boundaries.
 */
static int snapshot(struct gmem_vm *vm, uint64_t gpa, uint64_t len,
		    struct gmem_run_list *l)
{
	int err;

	err = gmem_check_range(vm, gpa, len);
	if (err)
		return err;
	return gmem_snapshot_runs(vm, gpa / GMEM_PAGE_SIZE, len / GMEM_PAGE_SIZE,
				  l);
}

int gmem_for_each_run(struct gmem_vm *vm, uint64_t gpa, uint64_t len,
		      int (*fn)(void *arg, uint64_t gpa, uint64_t len,
				enum gmem_state state),
		      void *arg)
{
	struct gmem_run_list l = { .only = -1 };
	size_t i, j;
	int err;

	if (!fn)
		return -EINVAL;
	err = snapshot(vm, gpa, len, &l);
	/* Runs of equal state differing only in plug state are one, as long
	 * as they are contiguous and in one region. */
	for (i = 0; !err && i < l.nr; i = j) {
		uint8_t st = l.v[i].value & GMEM_V_STATE;
		uint64_t pages = l.v[i].npages;

		for (j = i + 1; j < l.nr &&
		     (l.v[j].value & GMEM_V_STATE) == st &&
		     l.v[j].start == l.v[i].start + pages &&
		     !l.v[j].region_start; j++)
			pages += l.v[j].npages;
		err = fn(arg, l.v[i].start * GMEM_PAGE_SIZE,
			 pages * GMEM_PAGE_SIZE, (enum gmem_state)st);
	}
	free(l.v);
	return err;
}

int gmem_for_each_extent(struct gmem_vm *vm, uint64_t gpa, uint64_t len,
			 int (*fn)(void *arg, const struct gmem_extent *e),
			 void *arg)
{
	struct gmem_run_list l = { .only = -1 };
	struct gmem_extent e;
	size_t i;
	int err;

	if (!fn)
		return -EINVAL;
	err = snapshot(vm, gpa, len, &l);
	for (i = 0; !err && i < l.nr; i++) {
		e.gpa = l.v[i].start * GMEM_PAGE_SIZE;
		e.len = l.v[i].npages * GMEM_PAGE_SIZE;
		e.state = (enum gmem_state)(l.v[i].value & GMEM_V_STATE);
		e.plugged = !(l.v[i].value & GMEM_V_UNPLUGGED);
		err = fn(arg, &e);
	}
	free(l.v);
	return err;
}
