/* SPDX-License-Identifier: MIT */
/*
 * The audit: every invariant of a VM's memory, checked against the real
 * state of the kernel rather than against libgmem's own bookkeeping.
 *
 *  0. the memory was not marked broken by a failed rollback;
 *  1. the page-state map is valid (gmem_range_map_validate) and the
 *     regions agree with it (holes exactly outside them);
 *  2. the backend enforces the map (emulated: each view's mapping is
 *     PROT_READ|PROT_WRITE exactly on the plugged pages in that view's
 *     state and PROT_NONE elsewhere, holes included, as /proc/self/maps
 *     says: so a page is accessible in at most one view);
 *  3. every listener that reports its mappings maps exactly the reachable
 *     pages, and every DMA mapper passes gmem_dma_mapper_validate(), which
 *     compares the backend's own report when it has one;
 *  4. discard mode: no page is resident in the backing of the state it is
 *     not in (mincore), i.e. no page is backed twice.  The reclaim queue is
 *     not drained first (that would erase the evidence of a page handed
 *     out before its punch): a page may be resident there only while its
 *     punch is still queued.
 * The whole space is held in the range lock meanwhile, so no change is in
 * flight and the kernel's state is stable (the reclaim thread only ever
 * removes memory).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "proc_maps.h"
#include "ivals.h"
#include "violation.h"

struct audit {
	struct gmem_vm *vm;
	char *msg;
	size_t msg_len;
	/* check 2 */
	enum gmem_state view;
	bool accessible;
	/* check 3 */
	struct ivals maps;	/* bytes */
	int err;
	/* check 4 */
	unsigned char *vec;
};

/* Describe the first violation found in the caller's buffer: -EUCLEAN. */
#define fail(a, ...) gmem_violation((a)->msg, (a)->msg_len, __VA_ARGS__)

/* ---- 2: view protections ---------------------------------------------- */

static int check_prot_run(void *arg, uint64_t start, uint64_t npages,
			  uint8_t value)
{
	struct audit *a = arg;
	bool want = value == a->view;

	if (want != a->accessible)
		return fail(a, "%s view: pages [%#llx, +%#llx) are %s but "
			    "%s there (page state %s)",
			    gmem_state_name(a->view),
			    (unsigned long long)(start * GMEM_PAGE_SIZE),
			    (unsigned long long)(npages * GMEM_PAGE_SIZE),
			    a->accessible ? "accessible" : "inaccessible",
			    want ? "must be accessible" : "must not be",
			    gmem_state_name((enum gmem_state)value));
	return 0;
}

/* One view's walk of /proc/self/maps. */
struct view_walk {
	struct audit *a;
	enum gmem_state view;
	uintptr_t base, end;	/* the view's reservation */
	uintptr_t covered;	/* checked up to here */
};

static int check_view_mapping(const struct proc_map *m, void *arg)
{
	struct view_walk *w = arg;
	struct audit *a = w->a;
	unsigned long lo = (unsigned long)m->start, hi = (unsigned long)m->end;
	int err;

	if (hi <= w->base || lo >= w->end)
		return 0;
	if (lo > w->covered)
		return fail(a, "%s view: hole in the mapping at %#lx",
			    gmem_state_name(w->view), (unsigned long)w->covered);
	if (lo < w->base)
		lo = w->base;
	if (hi > w->end)
		hi = w->end;
	a->view = w->view;
	if (!strncmp(m->perms, "rw-", 3))
		a->accessible = true;
	else if (!strncmp(m->perms, "---", 3))
		a->accessible = false;
	else
		return fail(a, "%s view: unexpected protection %s at %#lx",
			    gmem_state_name(w->view), m->perms, lo);
	err = gmem_range_map_for_each(a->vm->map,
				      (lo - w->base) / GMEM_PAGE_SIZE,
				      (hi - lo) / GMEM_PAGE_SIZE,
				      check_prot_run, a);
	w->covered = hi;
	return err;
}

static int audit_view(struct audit *a, enum gmem_state view)
{
	struct gmem_vm *vm = a->vm;
	struct view_walk w = { .a = a, .view = view };
	int err;

	w.base = (uintptr_t)gmem_view(vm, view);
	w.end = w.base + vm->max_gpa;
	w.covered = w.base;
	err = proc_maps_for_each(0, check_view_mapping, &w);
	if (!err && w.covered < w.end)
		err = fail(a, "%s view: mapping ends early at %#lx",
			   gmem_state_name(view), (unsigned long)w.covered);
	return err;
}

/* ---- 3: listeners' mappings ------------------------------------------- */

static int push_mapping(struct audit *a, uint64_t start, uint64_t end)
{
	if (ivals_push(&a->maps, start, end)) {
		a->err = -ENOMEM;
		return 1;
	}
	return 0;
}

/*
 * A listener may report a range across two adjacent regions (it maps what
 * it was told, and may merge it): cut it at region boundaries, as the map's
 * runs are cut, so that the two compare.
 */
static int collect_mapping(void *arg, uint64_t gpa, uint64_t len)
{
	struct audit *a = arg;
	uint64_t end = gpa + len;

	while (gpa < end && gpa < a->vm->max_gpa) {
		const struct gmem_region *r = gmem_region_of(a->vm,
							     gpa / GMEM_PAGE_SIZE);
		uint64_t stop = r ? r->gpa + r->len : end;

		if (stop > end || !r)
			stop = end;
		if (push_mapping(a, gpa, stop))
			return 1;
		gpa = stop;
	}
	return gpa < end ? push_mapping(a, gpa, end) : 0;
}

struct shared_cursor {
	struct audit *a;
	size_t i;		/* next merged listener range */
	uint64_t pos;		/* bytes: compared up to here */
};

/* Walk the map's runs and the merged listener ranges side by side. */
static int compare_shared_run(void *arg, uint64_t start, uint64_t npages,
			      uint8_t value)
{
	struct shared_cursor *c = arg;
	struct audit *a = c->a;
	uint64_t off = start * GMEM_PAGE_SIZE, end = off + npages * GMEM_PAGE_SIZE;

	if (value != GMEM_SHARED) {
		if (c->i < a->maps.nr && a->maps.v[c->i].start < end)
			return fail(a, "listener maps [%#llx, %#llx) but "
				    "[%#llx, %#llx) is private or unplugged",
				    (unsigned long long)a->maps.v[c->i].start,
				    (unsigned long long)a->maps.v[c->i].end,
				    (unsigned long long)off,
				    (unsigned long long)end);
		return 0;
	}
	/* A shared run must be exactly one merged range. */
	if (c->i >= a->maps.nr || a->maps.v[c->i].start != off ||
	    a->maps.v[c->i].end != end)
		return fail(a, "listener mappings differ from shared run "
			    "[%#llx, %#llx)%s", (unsigned long long)off,
			    (unsigned long long)end,
			    c->i < a->maps.nr ? "" : ": not mapped");
	c->i++;
	return 0;
}

static bool region_starts_at(const struct gmem_vm *vm, uint64_t gpa)
{
	const struct gmem_region *r = gpa < vm->max_gpa ?
		gmem_region_of(vm, gpa / GMEM_PAGE_SIZE) : NULL;

	return r && r->gpa == gpa;
}

static int audit_listener(struct audit *a, struct gmem_listener *l)
{
	struct shared_cursor c = { .a = a };
	size_t i, j;
	int err;

	a->maps.nr = 0;
	a->err = 0;
	err = l->ops_copy.report(l->data, collect_mapping, a);
	if (a->err)
		return a->err;
	if (err)
		return err < 0 ? err : -EIO;
	ivals_sort(&a->maps);
	/* Merge touching ranges: a listener may map a run in pieces. */
	for (i = 0, j = 0; i < a->maps.nr; i++) {
		if (a->maps.v[i].start >= a->maps.v[i].end ||
		    a->maps.v[i].end > a->vm->max_gpa)
			return fail(a, "listener reports a bad range "
				    "[%#llx, %#llx)",
				    (unsigned long long)a->maps.v[i].start,
				    (unsigned long long)a->maps.v[i].end);
		if (j && a->maps.v[i].start < a->maps.v[j - 1].end)
			return fail(a, "listener maps [%#llx, %#llx) twice",
				    (unsigned long long)a->maps.v[i].start,
				    (unsigned long long)a->maps.v[j - 1].end);
		if (j && a->maps.v[i].start == a->maps.v[j - 1].end &&
		    !region_starts_at(a->vm, a->maps.v[i].start))
			a->maps.v[j - 1].end = a->maps.v[i].end;
		else
			a->maps.v[j++] = a->maps.v[i];
	}
	a->maps.nr = j;
	/* Walked per region: a listener never maps across two. */
	err = gmem_walk(a->vm, 0, a->vm->npages, compare_shared_run, &c);
	if (!err && c.i < a->maps.nr)
		return fail(a, "listener maps [%#llx, %#llx) outside RAM",
			    (unsigned long long)a->maps.v[c.i].start,
			    (unsigned long long)a->maps.v[c.i].end);
	return err;
}

/* ---- 4: nothing backed twice ----------------------------------------- */

#define AUDIT_CHUNK_PAGES (1ULL << 18)

/* No page of [start, start + npages) may be resident in @view's backing. */
static int check_not_backed(struct audit *a, uint64_t start, uint64_t npages,
			    uint8_t value, enum gmem_state view)
{
	struct gmem_vm *vm = a->vm;
	uint64_t done, n, i;
	int err;

	for (done = 0; done < npages; done += n) {
		/* Where the backend maps that backing (a run never crosses a
		 * region, so one address serves the chunk); a backing the
		 * host cannot map (native private memory) is not checked. */
		const uint8_t *p = vm->backend->host_addr(vm, view,
							  start + done);

		n = npages - done;
		if (n > AUDIT_CHUNK_PAGES)
			n = AUDIT_CHUNK_PAGES;
		if (!p)
			continue;
		gmem_reclaim_lock(vm);
		err = gmem_resident_pages(p, n, a->vec);
		for (i = 0; !err && i < n; i++)
			if ((a->vec[i] & 1) &&
			    !gmem_reclaim_pending_locked(vm,
					gmem_backing_of(vm, view),
					(start + done + i) * GMEM_PAGE_SIZE,
					GMEM_PAGE_SIZE))
				break;
		gmem_reclaim_unlock(vm);
		if (err)
			return err;
		if (i < n)
			return fail(a, "page %#llx is %s%s but "
				    "backed in the %s backing",
				    (unsigned long long)((start + done + i) *
							 GMEM_PAGE_SIZE),
				    gmem_state_name((enum gmem_state)
					(value & GMEM_V_STATE)),
				    (value & GMEM_V_UNPLUGGED) ?
					" and unplugged" : "",
				    gmem_state_name(view));
	}
	return 0;
}

/*
 * Discard mode: a plugged page holds memory only in the backing of its
 * state.  Both modes: an unplugged page holds memory in no backing.
 */
static int check_backing_run(void *arg, uint64_t start, uint64_t npages,
			     uint8_t value)
{
	struct audit *a = arg;
	struct gmem_vm *vm = a->vm;
	enum gmem_state state = (enum gmem_state)(value & GMEM_V_STATE);
	enum gmem_state other = state == GMEM_PRIVATE ? GMEM_SHARED :
							GMEM_PRIVATE;
	int err = 0;

	if (value & GMEM_V_UNPLUGGED) {
		err = check_not_backed(a, start, npages, value, GMEM_PRIVATE);
		if (!err && vm->mode == GMEM_MODE_DISCARD)
			err = check_not_backed(a, start, npages, value,
					       GMEM_SHARED);
	} else if (vm->mode == GMEM_MODE_DISCARD) {
		err = check_not_backed(a, start, npages, value, other);
	}
	return err;
}

/* Check 2 for the emulated backend (vm->lock and the whole space held). */
int gmem_audit_views(struct gmem_vm *vm, char *msg, size_t msg_len)
{
	struct audit a = { .vm = vm, .msg = msg, .msg_len = msg_len };
	int err;

	err = audit_view(&a, GMEM_PRIVATE);
	if (!err)
		err = audit_view(&a, GMEM_SHARED);
	return err;
}

int gmem_regions_validate(struct gmem_vm *vm, char *msg, size_t msg_len);

int gmem_audit(struct gmem_vm *vm, char *msg, size_t msg_len)
{
	struct audit a = { .vm = vm, .msg = msg, .msg_len = msg_len };
	struct range_lock_waiter w;
	struct gmem_listener *l;
	int err;

	if (msg && msg_len)
		msg[0] = '\0';
	gmem_range_lock_acquire(&vm->rlock, &w, 0, vm->npages);
	pthread_mutex_lock(&vm->lock);
	if (vm->broken) {
		err = fail(&a, "memory is broken: %s", vm->broken_why);
		goto out;
	}
	err = gmem_range_map_validate(vm->map, msg, msg_len);
	if (!err)
		err = gmem_regions_validate(vm, msg, msg_len);
	if (!err)
		err = vm->backend->audit(vm, msg, msg_len);
	if (err)
		goto out;
	/*
	 * Callbacks run without vm->lock (internal.h): a listener may take
	 * its own locks in report() while another of its threads queries
	 * the map.  The whole space stays held, so nothing changes.
	 */
	pthread_mutex_unlock(&vm->lock);
	for (l = vm->listeners; l && !err; l = l->next) {
		if (l->validate)
			err = l->validate(l->data, msg, msg_len);
		if (!err && l->ops_copy.report)
			err = audit_listener(&a, l);
	}
	pthread_mutex_lock(&vm->lock);
	if (err)
		goto out;

	a.vec = malloc(AUDIT_CHUNK_PAGES);
	if (!a.vec) {
		err = -ENOMEM;
		goto out;
	}
	err = gmem_walk(vm, 0, vm->npages, check_backing_run, &a);
out:
	pthread_mutex_unlock(&vm->lock);
	gmem_range_lock_release(&vm->rlock, &w);
	ivals_free(&a.maps);
	free(a.vec);
	return err;
}
