/* SPDX-License-Identifier: MIT */
/*
 * The conversion engine: gmem_convert() and the accessors that must not
 * race with it.
 *
 * A conversion of [offset, offset + len) to state @to works on the delta,
 * the runs of the range whose state differs from @to (pages already in
 * @to are never touched), in this order:
 *
 *   1. lock the range, compute the delta, reserve map nodes (-ENOMEM here
 *      is free: nothing has happened yet);
 *   2. to private: every listener drops each delta run (may veto: -EAGAIN);
 *   3. revoke the old view on each delta run (mprotect PROT_NONE);
 *      subscribers hear CONVERT for the old backing;
 *   4. to private: platform prepare of each delta run;
 *   5. grant the new view on each delta run (mprotect RW);
 *   6. to shared: every listener maps each delta run;
 *   7. from private: platform invalidate of each delta run;
 *   8. discard mode: punch the old backing over the delta's hull in ONE
 *      fallocate (or queue it for the reclaim thread, see reclaim.c:
 *      before step 4 every conversion flushes queued punches of the
 *      backing it is about to hand out); subscribers hear PUNCH;
 *   9. commit the new state to the map (cannot fail: nodes reserved).
 *
 * Why this order:
 *  - the old view is revoked (3) before the new one is granted (5): a page
 *    is never accessible in two views at once;
 *  - every step that can fail comes before the punch (8), and the punch is
 *    one syscall that either happens or not, so a failure anywhere undoes
 *    the finished steps in reverse and leaves map, protections, listeners
 *    and backings exactly as they were (content included);
 *  - punching the hull, not each run, is safe because every page of the
 *    hull outside the delta is already in state @to, so its old backing is
 *    already empty; it turns n punches into one;
 *  - the new view is empty already when granted: in discard mode a page's
 *    backing of the state it is not in is punched whenever it leaves that
 *    state (and was never written before), so converted pages read zeros.
 *  - listeners see a range mapped only once it is accessible (6 after 5),
 *    and unmapped before it stops being accessible (2 before 3).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define VIEW_RW (PROT_READ | PROT_WRITE)

struct run {
	uint64_t start, npages;	/* pages */
	uint8_t state;		/* gmem_for_each_run() only */
};

struct delta {
	struct run *runs;
	size_t nr, cap;
	uint64_t pages;		/* pages in the delta */
	uint64_t start, range_pages;	/* the requested range */
	enum gmem_state to;
};

static int collect_run(void *arg, uint64_t start, uint64_t npages,
		       uint8_t value)
{
	struct delta *d = arg;

	if (value == d->to)
		return 0;
	if (d->nr == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct run *runs = realloc(d->runs, cap * sizeof(*runs));

		if (!runs)
			return -ENOMEM;
		d->runs = runs;
		d->cap = cap;
	}
	d->runs[d->nr].start = start;
	d->runs[d->nr].npages = npages;
	d->nr++;
	d->pages += npages;
	return 0;
}

static inline uint64_t run_off(const struct run *r)
{
	return r->start * GMEM_PAGE_SIZE;
}

static inline uint64_t run_len(const struct run *r)
{
	return r->npages * GMEM_PAGE_SIZE;
}

/* The delta's hull: from its first page to the end of its last run. */
static inline uint64_t delta_off(const struct delta *d)
{
	return run_off(&d->runs[0]);
}

static inline uint64_t delta_hull(const struct delta *d)
{
	const struct run *last = &d->runs[d->nr - 1];

	return run_off(last) + run_len(last) - delta_off(d);
}

/* ---- listeners: steps 2 and 6 ------------------------------------------- */

/*
 * Drop (@populate false) or map the first @n_runs runs of the delta in
 * listener @l.
 */
static int listener_apply(struct gmem_listener *l, const struct delta *d,
			  size_t n_runs, bool populate, size_t *done)
{
	size_t i;
	int err;

	for (i = 0; i < n_runs; i++) {
		const struct run *r = &d->runs[i];

		err = populate ? l->ops->populate(l->data, run_off(r),
						  run_len(r)) :
				 l->ops->discard(l->data, run_off(r),
						 run_len(r));
		if (err) {
			*done = i;
			return err < 0 ? err : -EIO;
		}
	}
	*done = n_runs;
	return 0;
}

/*
 * Undo listener work: listeners before @stop did all runs, @stop did
 * @stop_done runs.  Undo errors cannot be reported better than the
 * original failure; listeners are required to accept the undo.
 */
static void listeners_undo(struct gmem_vm *vm, const struct delta *d,
			   struct gmem_listener *stop, size_t stop_done,
			   bool populated)
{
	struct gmem_listener *l;
	size_t done;

	for (l = vm->listeners; l; l = l->next) {
		size_t n = l == stop ? stop_done : d->nr;

		listener_apply(l, d, n, !populated, &done);
		if (l == stop)
			break;
	}
}

static int listeners_all(struct gmem_vm *vm, const struct delta *d,
			 bool populate)
{
	struct gmem_listener *l;
	size_t done;
	int err;

	for (l = vm->listeners; l; l = l->next) {
		err = listener_apply(l, d, d->nr, populate, &done);
		if (err) {
			listeners_undo(vm, d, l, done, populate);
			return err;
		}
	}
	return 0;
}

/* ---- views: steps 3 and 5 ---------------------------------------------- */

static int protect_runs(struct gmem_vm *vm, const struct delta *d,
			enum gmem_state view, int prot, int undo_prot)
{
	size_t i, j;
	int err;

	for (i = 0; i < d->nr; i++) {
		err = gmem_view_protect(vm, view, d->runs[i].start,
					d->runs[i].npages, prot);
		if (err) {
			for (j = 0; j < i; j++)
				mprotect(gmem_view(vm, view) +
					 run_off(&d->runs[j]),
					 run_len(&d->runs[j]), undo_prot);
			return err;
		}
	}
	return 0;
}

/* Unconditional (rollback): the protection a run had before. */
static void restore_runs(struct gmem_vm *vm, const struct delta *d,
			 enum gmem_state view, int prot)
{
	size_t i;

	for (i = 0; i < d->nr; i++)
		mprotect(gmem_view(vm, view) + run_off(&d->runs[i]),
			 run_len(&d->runs[i]), prot);
}

/* ---- platform hooks: steps 4 and 7 -------------------------------------- */

static int prepare_runs(struct gmem_vm *vm, const struct delta *d)
{
	size_t i, j;
	int err;

	if (!vm->platform || !vm->platform->prepare)
		return 0;
	for (i = 0; i < d->nr; i++) {
		err = vm->platform->prepare(vm->platform_data,
					    run_off(&d->runs[i]),
					    run_len(&d->runs[i]));
		if (err) {
			if (vm->platform->invalidate)
				for (j = 0; j < i; j++)
					vm->platform->invalidate(
						vm->platform_data,
						run_off(&d->runs[j]),
						run_len(&d->runs[j]));
			return err < 0 ? err : -EIO;
		}
	}
	return 0;
}

static void invalidate_runs(struct gmem_vm *vm, const struct delta *d)
{
	size_t i;

	if (!vm->platform || !vm->platform->invalidate)
		return;
	for (i = 0; i < d->nr; i++)
		vm->platform->invalidate(vm->platform_data,
					 run_off(&d->runs[i]),
					 run_len(&d->runs[i]));
}

static void notify_runs(struct gmem_vm *vm, const struct delta *d,
			enum gmem_inval_reason reason,
			enum gmem_backing_id backing)
{
	size_t i;

	if (!vm->subs)
		return;
	for (i = 0; i < d->nr; i++)
		gmem_notify_subscribers(vm, reason, backing,
					run_off(&d->runs[i]),
					run_len(&d->runs[i]));
}

/* ---- the engine ----------------------------------------------------------- */

static int64_t convert_locked(struct gmem_vm *vm, struct delta *d)
{
	enum gmem_state to = d->to;
	enum gmem_state from = to == GMEM_PRIVATE ? GMEM_SHARED : GMEM_PRIVATE;
	enum gmem_backing_id old_backing = gmem_backing_of(vm, from);
	bool punched_now = false;
	int64_t ret;
	int err;

	/* 2. Users of shared memory let go first; any may veto. */
	if (to == GMEM_PRIVATE) {
		err = listeners_all(vm, d, false);
		if (err)
			return err;
	}
	/* 3. Close the old view. */
	err = protect_runs(vm, d, from, PROT_NONE, VIEW_RW);
	if (err)
		goto err_listeners_dropped;
	notify_runs(vm, d, GMEM_INVAL_CONVERT, old_backing);
	/* Deferred reclaim: punches of the new backing still queued for
	 * these pages must be done before they are prepared or handed out. */
	if (vm->reclaim) {
		err = gmem_reclaim_flush_range(vm, gmem_backing_of(vm, to),
					       delta_off(d), delta_hull(d));
		if (err)
			goto err_revoked;
	}
	/* 4. Prepare pages about to be private. */
	if (to == GMEM_PRIVATE) {
		err = prepare_runs(vm, d);
		if (err)
			goto err_revoked;
	}
	/* 5. Open the new view. */
	err = protect_runs(vm, d, to, VIEW_RW, PROT_NONE);
	if (err)
		goto err_prepared;
	/* 6. Users of shared memory map what became shared. */
	if (to == GMEM_SHARED) {
		err = listeners_all(vm, d, true);
		if (err)
			goto err_granted;
	}
	/* 7. Pages leaving private are invalidated before being freed. */
	if (from == GMEM_PRIVATE)
		invalidate_runs(vm, d);
	/* 8. Discard the old content: one punch over the hull, now or by the
	 *    reclaim thread (which subscribers are told of now: the backing
	 *    is given up either way). */
	if (vm->mode == GMEM_MODE_DISCARD) {
		if (!vm->reclaim ||
		    gmem_reclaim_queue(vm, old_backing, delta_off(d),
				       delta_hull(d),
				       d->pages * GMEM_PAGE_SIZE) != 0) {
			err = gmem_punch(vm, gmem_backing_fd(vm, old_backing),
					 delta_off(d), delta_hull(d));
			if (err)
				goto err_invalidated;
			punched_now = true;
		}
		notify_runs(vm, d, GMEM_INVAL_PUNCH, old_backing);
	}
	/* 9. Commit. */
	pthread_mutex_lock(&vm->lock);
	/* One set over the whole range: pages already in @to are unchanged,
	 * and a single set needs at most the two nodes reserved in step 1,
	 * so it cannot fail (asserted: a failure here would lose state). */
	ret = range_map_set(vm->map, d->start, d->range_pages, (uint8_t)to,
			    NULL, NULL);
	assert(ret == (int64_t)d->pages);
	if (to == GMEM_PRIVATE) {
		vm->stats.conversions_to_private++;
		vm->stats.pages_to_private += d->pages;
	} else {
		vm->stats.conversions_to_shared++;
		vm->stats.pages_to_shared += d->pages;
	}
	if (punched_now)
		vm->stats.bytes_discarded += d->pages * GMEM_PAGE_SIZE;
	pthread_mutex_unlock(&vm->lock);
	return (int64_t)d->pages;

err_invalidated:
	/* The pages stay private after all: prepare them again. */
	if (from == GMEM_PRIVATE && vm->platform && vm->platform->prepare) {
		size_t i;

		for (i = 0; i < d->nr; i++)
			vm->platform->prepare(vm->platform_data,
					      run_off(&d->runs[i]),
					      run_len(&d->runs[i]));
	}
	if (to == GMEM_SHARED)
		listeners_undo(vm, d, NULL, 0, true);
err_granted:
	restore_runs(vm, d, to, PROT_NONE);
err_prepared:
	if (to == GMEM_PRIVATE)
		invalidate_runs(vm, d);
err_revoked:
	restore_runs(vm, d, from, VIEW_RW);
err_listeners_dropped:
	if (to == GMEM_PRIVATE)
		listeners_undo(vm, d, NULL, 0, false);
	return err;
}

int64_t gmem_convert(struct gmem_vm *vm, uint64_t offset, uint64_t len,
		     enum gmem_state to)
{
	struct range_lock_waiter w;
	struct delta d = { .to = to };
	uint64_t start, npages;
	bool reserved = false;
	int64_t ret;
	int err;

	err = gmem_check_range(vm, offset, len);
	if (err)
		return err;
	if (to != GMEM_PRIVATE && to != GMEM_SHARED)
		return -EINVAL;
	start = offset / GMEM_PAGE_SIZE;
	npages = len / GMEM_PAGE_SIZE;
	d.start = start;
	d.range_pages = npages;

	range_lock_acquire(&vm->rlock, &w, start, start + npages);
	pthread_mutex_lock(&vm->lock);
	ret = range_map_for_each(vm->map, start, npages, collect_run, &d);
	/* Held until the commit: other conversions commit in between, and
	 * their sets must not use the nodes this one's set needs. */
	if (!ret && d.nr) {
		ret = range_map_reserve(vm->map);
		reserved = ret == 0;
	}
	pthread_mutex_unlock(&vm->lock);
	if (reserved)
		ret = convert_locked(vm, &d);
	pthread_mutex_lock(&vm->lock);
	if (reserved)
		range_map_unreserve(vm->map);
	if (ret < 0)
		vm->stats.conversions_failed++;
	pthread_mutex_unlock(&vm->lock);
	range_lock_release(&vm->rlock, &w);
	free(d.runs);
	return ret;
}

/* ---- accessors ------------------------------------------------------------ */

struct all_in_state {
	enum gmem_state state;
	bool ok;
};

static int check_state(void *arg, uint64_t start, uint64_t npages,
		       uint8_t value)
{
	struct all_in_state *a = arg;

	if (value != a->state) {
		a->ok = false;
		return 1;
	}
	return 0;
}

int gmem_access(struct gmem_vm *vm, uint64_t offset, void *buf, uint64_t len,
		bool write, enum gmem_state view)
{
	struct all_in_state a = { .state = view, .ok = true };
	struct range_lock_waiter w;
	uint64_t first, last;
	uint8_t *p;

	if (len == 0 || offset >= vm->ram_size || len > vm->ram_size - offset)
		return -EINVAL;
	if (view != GMEM_PRIVATE && view != GMEM_SHARED)
		return -EINVAL;
	first = offset / GMEM_PAGE_SIZE;
	last = (offset + len - 1) / GMEM_PAGE_SIZE;

	range_lock_acquire(&vm->rlock, &w, first, last + 1);
	pthread_mutex_lock(&vm->lock);
	range_map_for_each(vm->map, first, last - first + 1, check_state, &a);
	pthread_mutex_unlock(&vm->lock);
	if (a.ok) {
		p = gmem_view(vm, view) + offset;
		if (write)
			memcpy(p, buf, len);
		else
			memcpy(buf, p, len);
	}
	range_lock_release(&vm->rlock, &w);
	return a.ok ? 0 : -EACCES;
}

int gmem_state_at(struct gmem_vm *vm, uint64_t offset, uint64_t *run_start,
		  uint64_t *run_len)
{
	uint64_t start, npages;
	uint8_t v;

	if (offset >= vm->ram_size)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	v = range_map_get(vm->map, offset / GMEM_PAGE_SIZE, &start, &npages);
	pthread_mutex_unlock(&vm->lock);
	if (run_start)
		*run_start = start * GMEM_PAGE_SIZE;
	if (run_len)
		*run_len = npages * GMEM_PAGE_SIZE;
	return v;
}

static int collect_any(void *arg, uint64_t start, uint64_t npages,
		       uint8_t value)
{
	struct delta *d = arg;
	int err;

	/* d->to is an impossible state, so collect_run() keeps every run. */
	err = collect_run(arg, start, npages, value);
	if (!err)
		d->runs[d->nr - 1].state = value;
	return err;
}

int gmem_for_each_run(struct gmem_vm *vm, uint64_t offset, uint64_t len,
		      int (*fn)(void *arg, uint64_t offset, uint64_t len,
				enum gmem_state state),
		      void *arg)
{
	struct delta d = { .to = (enum gmem_state)0xff };
	uint64_t start, npages;
	size_t i;
	int err;

	err = gmem_check_range(vm, offset, len);
	if (err)
		return err;
	start = offset / GMEM_PAGE_SIZE;
	npages = len / GMEM_PAGE_SIZE;
	/*
	 * Snapshot under the map mutex (other threads rebalance the tree
	 * while converting other ranges), then call @fn without any lock
	 * held, so that @fn may take as long as it likes.
	 */
	pthread_mutex_lock(&vm->lock);
	err = range_map_for_each(vm->map, start, npages, collect_any, &d);
	pthread_mutex_unlock(&vm->lock);
	for (i = 0; !err && i < d.nr; i++)
		err = fn(arg, run_off(&d.runs[i]), run_len(&d.runs[i]),
			 (enum gmem_state)d.runs[i].state);
	free(d.runs);
	return err;
}
