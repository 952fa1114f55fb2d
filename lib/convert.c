/* SPDX-License-Identifier: MIT */
/*
 * The engine: the only code that changes a page's value once its region
 * exists.  Its front ends are gmem_convert() and gmem_set_plugged() (here)
 * and gmem_convert_batch() (batch.c), through engine.h; what the map says
 * is read in accessors.c.
 *
 * A page's value in the map has two independent bits (internal.h):
 * its state (private or shared) and whether it is unplugged.  What a page
 * is given follows from its value:
 *   view       plugged: the view of its state; unplugged: none
 *   listeners  map it iff it is shared and plugged ("reachable")
 *   platform   prepared iff it is private and plugged
 *   backings   in discard mode only the backing of its state may hold its
 *              memory; an unplugged page holds memory in no backing
 *
 * A change of [offset, offset + len) (a conversion sets the state bit, a
 * plug change the plug bit) works on the delta, the runs of the range whose
 * value it changes (pages already as asked are never touched), each with
 * its old and new value, in this order:
 *
 *   1. lock the range, compute the delta, reserve map nodes (-ENOMEM here
 *      is free: nothing has happened yet);
 *   2. listeners drop the runs that stop being reachable (may veto:
 *      -EAGAIN);
 *   3. revoke the old view of the runs whose view changes (mprotect
 *      PROT_NONE); subscribers hear CONVERT for the old backing;
 *   4. platform prepare of the runs that become private and plugged;
 *   5. grant the new view of the runs whose view changes (mprotect RW);
 *   6. listeners map the runs that become reachable;
 *   7. platform invalidate of the runs that stop being private and plugged;
 *   8. punch each old backing that must give up memory (the from-state
 *      backing of a conversion in discard mode, every backing of an
 *      unplug) over the delta's hull in ONE fallocate per backing (or queue
 *      it for the reclaim thread, see reclaim.c: before step 4 every change
 *      flushes queued punches of the backings it is about to hand out);
 *      subscribers hear PUNCH;
 *   9. commit the new values to the map (cannot fail: nodes reserved).
 *
 * Why this order:
 *  - the old view is revoked (3) before the new one is granted (5): a page
 *    is never accessible in two views at once;
 *  - every step that can fail comes before the punches (8), and a failed
 *    punch undoes only its own backing's nothing (a punch either happens or
 *    not; see the rollback below for two backings), so a failure anywhere
 *    undoes the finished steps in reverse and leaves map, protections,
 *    listeners and backings exactly as they were (content included);
 *  - punching the hull, not each run, is safe: every page of the hull
 *    outside the delta already has what the change asks for, so (by the
 *    backing rule above) its memory in the punched backing is already
 *    gone; it turns n punches into one;
 *  - the new view is empty already when granted: a page's memory in a
 *    backing is punched whenever it leaves that backing's state or is
 *    unplugged (and was never written before), so converted and re-plugged
 *    pages read zeros (in in-place mode a conversion keeps content: one
 *    backing serves both views);
 *  - listeners see a range mapped only once it is accessible (6 after 5),
 *    and unmapped before it stops being accessible (2 before 3);
 *  - the only fallible steps after the grant (5) are the listeners' map
 *    (6) and the punch (8).  Anything may write through the granted view
 *    meanwhile (a device through a fresh mapping, another vCPU), so in
 *    discard mode a rollback from there punches what was granted out of
 *    the new backing again, synchronously: the new view was empty when
 *    granted, and empty is what "nothing changed" means for it.  (In
 *    in-place mode one backing serves both views, so such writes are
 *    writes to the page's one content, as they would be after a
 *    successful conversion; they stay.)
 *
 * Runs never cross a region (gmem_walk() cuts them at region boundaries),
 * so every listener, hook and backend call names one region, and the
 * punch of step 8 is one fallocate per backing per region of the hull.
 * A rollback step that fails (a backend that cannot restore a view, a
 * punch that cannot empty one) leaves the memory in a state the map does
 * not describe: the VM is marked broken (gmem_mark_broken()), the call
 * fails with -EIO, every later change is refused with -EIO and the audit
 * reports why.  Nothing ever lies about a page's state.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine.h"
#include "internal.h"
#include "vec.h"

#define VIEW_NONE (-1)		/* an unplugged page's view */

/* The page a refusing listener named (gmem_report_busy()), per thread. */
static __thread uint64_t tls_busy_gpa;
static __thread bool tls_busy_named;

void gmem_report_busy(uint64_t gpa)
{
	tls_busy_gpa = gpa;
	tls_busy_named = true;
}

int gmem_delta_collect(void *arg, uint64_t start, uint64_t npages,
		       uint8_t value)
{
	struct delta *d = arg;

	if ((value & d->mask) == d->bits)
		return 0;
	if (vec_reserve_inline((void **)&d->runs, &d->cap, d->nr,
			       sizeof(*d->runs), d->inline_runs,
			       DELTA_INLINE_RUNS))
		return -ENOMEM;
	d->runs[d->nr].start = start;
	d->runs[d->nr].npages = npages;
	d->runs[d->nr].old = value;
	d->runs[d->nr].new = (uint8_t)((value & ~d->mask) | d->bits);
	d->runs[d->nr].seg = d->seg;
	d->nr++;
	d->pages += npages;
	return 0;
}

void gmem_delta_release(struct delta *d)
{
	if (d->runs != d->inline_runs)
		free(d->runs);
	d->runs = NULL;
	d->nr = d->cap = 0;
}

static inline uint64_t run_off(const struct run *r)
{
	return r->start * GMEM_PAGE_SIZE;
}

static inline uint64_t run_len(const struct run *r)
{
	return r->npages * GMEM_PAGE_SIZE;
}

/*
 * Segments: the runs of one requested range (one entry of a batch; a
 * plain change is one segment).  Punches and flushes work per segment,
 * over its hull: pages between two entries of a batch are not part of the
 * change, so a hull spanning them would punch memory that is in use.
 */
static size_t seg_end(const struct delta *d, size_t i)
{
	size_t j = i + 1;

	while (j < d->nr && d->runs[j].seg == d->runs[i].seg)
		j++;
	return j;
}

static uint64_t seg_hull(const struct delta *d, size_t i, size_t j)
{
	return run_off(&d->runs[j - 1]) + run_len(&d->runs[j - 1]) -
	       run_off(&d->runs[i]);
}

/* ---- what each step does to a run ----------------------------------------- */

static inline int value_view(uint8_t v)
{
	return (v & GMEM_V_UNPLUGGED) ? VIEW_NONE : (int)(v & GMEM_V_STATE);
}

static inline bool reachable(uint8_t v)
{
	return v == GMEM_SHARED;	/* shared and plugged */
}

static inline bool live_private(uint8_t v)
{
	return v == GMEM_PRIVATE;	/* private and plugged */
}

enum step {
	STEP_DROP,		/* 2: listeners unmap */
	STEP_REVOKE,		/* 3: old view closed */
	STEP_PREPARE,		/* 4 */
	STEP_GRANT,		/* 5: new view opened */
	STEP_MAP,		/* 6: listeners map */
	STEP_INVALIDATE,	/* 7 */
};

static bool run_in_step(const struct run *r, enum step step)
{
	bool view_changes = value_view(r->old) != value_view(r->new);

	switch (step) {
	case STEP_DROP:
		return reachable(r->old) && !reachable(r->new);
	case STEP_REVOKE:
		return view_changes && value_view(r->old) != VIEW_NONE;
	case STEP_PREPARE:
		return live_private(r->new) && !live_private(r->old);
	case STEP_GRANT:
		return view_changes && value_view(r->new) != VIEW_NONE;
	case STEP_MAP:
		return reachable(r->new) && !reachable(r->old);
	case STEP_INVALIDATE:
		return live_private(r->old) && !live_private(r->new);
	}
	return false;
}

/* The view a run has before (revoke) or after (grant) the change. */
static enum gmem_state step_view(const struct run *r, enum step step)
{
	return (enum gmem_state)value_view(step == STEP_REVOKE ? r->old :
								  r->new);
}

/*
 * Must the old memory of @r in backing @b be punched?  In discard mode a
 * page leaving a state leaves that state's backing; in both modes an
 * unplugged page leaves every backing.
 */
static bool run_gives_up(const struct gmem_vm *vm, const struct run *r,
			 enum gmem_backing_id b)
{
	if (value_view(r->old) == VIEW_NONE)
		return false;	/* was unplugged: holds nothing */
	if (gmem_backing_of(vm, (enum gmem_state)value_view(r->old)) != b)
		return false;
	if (value_view(r->new) == VIEW_NONE)
		return true;
	return vm->mode == GMEM_MODE_DISCARD &&
	       value_view(r->new) != value_view(r->old);
}

/* ---- listeners: steps 2 and 6 ------------------------------------------- */

/*
 * Drop (@populate false) or map, in listener @l, the runs of @step among
 * the first @n_runs runs of the delta (an undo maps the runs of DROP).
 */
static int listener_apply(struct gmem_listener *l, const struct delta *d,
			  enum step step, size_t n_runs, bool populate,
			  unsigned int flags, size_t *done)
{
	size_t i;
	int err;

	for (i = 0; i < n_runs; i++) {
		const struct run *r = &d->runs[i];

		if (!run_in_step(r, step))
			continue;
		tls_busy_named = false;
		err = populate ? l->ops_copy.populate(l->data, run_off(r),
						      run_len(r)) :
				 l->ops_copy.discard(l->data, run_off(r),
						     run_len(r), flags);
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
 * @stop_done runs.  An undone populate is a forced discard and an undone
 * discard a populate.  A listener is asked to accept both, but it can
 * fail them (the DMA mapper's bookkeeping or its backend's map at
 * ENOMEM): it then maps other pages than the reachable ones, the state
 * the map describes cannot be restored, and, as for a view that cannot be
 * restored, the memory is marked broken and the undo returns -EIO.  Every
 * run is still tried, so that as much as possible is restored.
 */
static int listeners_undo(struct gmem_vm *vm, const struct delta *d,
			  struct gmem_listener *stop, size_t stop_done,
			  bool populated)
{
	enum step step = populated ? STEP_MAP : STEP_DROP;
	struct gmem_listener *l;
	int ret = 0;
	size_t i;

	for (l = vm->listeners; l; l = l->next) {
		size_t n = l == stop ? stop_done : d->nr;

		for (i = 0; i < n; i++) {
			const struct run *r = &d->runs[i];
			int err;

			if (!run_in_step(r, step))
				continue;
			err = populated ?
			      l->ops_copy.discard(l->data, run_off(r),
						  run_len(r),
						  GMEM_DISCARD_FORCED) :
			      l->ops_copy.populate(l->data, run_off(r),
						   run_len(r));
			if (err && !ret) {
				gmem_mark_broken(vm, "rollback: a listener could not %s [%#llx, +%#llx) again: %d",
						 populated ? "unmap" : "map",
						 (unsigned long long)run_off(r),
						 (unsigned long long)run_len(r),
						 err);
				ret = -EIO;
			}
		}
		if (l == stop)
			break;
	}
	return ret;
}

static int listeners_all(struct gmem_vm *vm, struct delta *d,
			 bool populate)
{
	struct gmem_listener *l;
	size_t done;
	int err;

	for (l = vm->listeners; l; l = l->next) {
		err = listener_apply(l, d, populate ? STEP_MAP : STEP_DROP,
				     d->nr, populate, 0, &done);
		if (err) {
			/* Name the refused page before the undo calls
			 * listeners again. */
			if (err == -EAGAIN && !populate)
				d->busy_gpa = tls_busy_named ? tls_busy_gpa :
					      run_off(&d->runs[done]);
			if (listeners_undo(vm, d, l, done, populate))
				return -EIO;
			return err;
		}
	}
	return 0;
}

/* ---- views: steps 3 and 5 (the backend) ----------------------------------- */

typedef int (*backend_fn)(struct gmem_vm *vm, uint64_t page, uint64_t npages,
			  uint8_t old, uint8_t new_value);

#define RESTORE_VIEW "restore the view"

/*
 * Undo on the runs of @step among the first @n runs, last first: each
 * undo then returns the views to a state the change went through, so it
 * never needs more host mappings than the change had (forwards, undoing
 * a run whose revoke merged mappings could need the ones a later run's
 * split took, and fail at vm.max_map_count).  An undo that fails leaves
 * memory the map does not describe (@what it could not do): mark the
 * memory broken.
 */
static int undo_runs(struct gmem_vm *vm, const struct delta *d,
		     enum step step, size_t n, backend_fn undo,
		     const char *what)
{
	size_t i;
	int err, ret = 0;

	for (i = n; i-- > 0;) {
		const struct run *r = &d->runs[i];

		if (!run_in_step(r, step))
			continue;
		err = undo(vm, r->start, r->npages, r->old, r->new);
		if (err && !ret) {
			gmem_mark_broken(vm, "rollback could not %s of "
					 "[%#llx, +%#llx): %d", what,
					 (unsigned long long)run_off(r),
					 (unsigned long long)run_len(r), err);
			ret = -EIO;
		}
	}
	return ret;
}

static int backend_runs(struct gmem_vm *vm, const struct delta *d,
			enum step step, backend_fn fn, backend_fn undo)
{
	size_t i;
	int err;

	for (i = 0; i < d->nr; i++) {
		const struct run *r = &d->runs[i];

		if (!run_in_step(r, step))
			continue;
		err = fn(vm, r->start, r->npages, r->old, r->new);
		if (err) {
			if (undo_runs(vm, d, step, i, undo, RESTORE_VIEW))
				return -EIO;
			return err;
		}
	}
	return 0;
}

/*
 * Rollback after the grant, discard mode: empty the new backing of the
 * granted runs again (see the top of the file).  Synchronous: the pages
 * go back to the state whose view was just closed, and they must read as
 * before (nothing) if granted again.
 */
static int punch_granted(struct gmem_vm *vm, uint64_t page, uint64_t npages,
			 uint8_t old, uint8_t new_value)
{
	return gmem_punch_range(vm, gmem_backing_of(vm,
				(enum gmem_state)value_view(new_value)),
				page * GMEM_PAGE_SIZE, npages * GMEM_PAGE_SIZE);
}

static int unwrite_granted(struct gmem_vm *vm, const struct delta *d)
{
	if (vm->mode != GMEM_MODE_DISCARD)
		return 0;
	return undo_runs(vm, d, STEP_GRANT, d->nr, punch_granted,
			 "empty the new view");
}

/* ---- platform hooks: steps 4 and 7 -------------------------------------- */

static void invalidate_runs(struct gmem_vm *vm, const struct delta *d,
			    enum step step, size_t n_runs)
{
	size_t i;

	if (!vm->has_platform || !vm->platform.invalidate)
		return;
	for (i = 0; i < n_runs; i++)
		if (run_in_step(&d->runs[i], step))
			vm->platform.invalidate(vm->platform_data,
						 run_off(&d->runs[i]),
						 run_len(&d->runs[i]));
}

/* Prepare the runs of @step (PREPARE, or INVALIDATE when undoing 7). */
static int prepare_runs(struct gmem_vm *vm, const struct delta *d,
			enum step step)
{
	size_t i;
	int err;

	if (!vm->has_platform || !vm->platform.prepare)
		return 0;
	for (i = 0; i < d->nr; i++) {
		if (!run_in_step(&d->runs[i], step))
			continue;
		err = vm->platform.prepare(vm->platform_data,
					    run_off(&d->runs[i]),
					    run_len(&d->runs[i]));
		if (err) {
			invalidate_runs(vm, d, step, i);
			return err < 0 ? err : -EIO;
		}
	}
	return 0;
}

static void notify_runs(struct gmem_vm *vm, const struct delta *d,
			enum gmem_inval_reason reason,
			enum gmem_backing_id backing)
{
	size_t i;

	if (!vm->subs)
		return;
	for (i = 0; i < d->nr; i++) {
		const struct run *r = &d->runs[i];
		bool hit = reason == GMEM_INVAL_PUNCH ?
			   run_gives_up(vm, r, backing) :
			   run_in_step(r, STEP_REVOKE) &&
			   value_view(r->new) != VIEW_NONE &&
			   gmem_backing_of(vm, step_view(r, STEP_REVOKE)) ==
				   backing;

		if (hit)
			gmem_notify_subscribers(vm, reason, backing,
						run_off(r), run_len(r));
	}
}

/* ---- backings: step 8 ----------------------------------------------------- */

struct punch_plan {
	bool need[2];		/* by enum gmem_backing_id */
	uint64_t bytes[2];	/* delta bytes that leave the backing */
	bool now[2];		/* punched here (not queued) */
};

static void plan_punches(const struct gmem_vm *vm, const struct delta *d,
			 struct punch_plan *p)
{
	size_t i;
	int b;

	memset(p, 0, sizeof(*p));
	for (i = 0; i < d->nr; i++)
		for (b = 0; b < 2; b++)
			if (run_gives_up(vm, &d->runs[i],
					 (enum gmem_backing_id)b)) {
				p->need[b] = true;
				p->bytes[b] += run_len(&d->runs[i]);
			}
}

/*
 * Punch (or queue) every backing of the plan, one fallocate per backing
 * per segment (per region inside gmem_punch_range()).  With one backing
 * and one segment (every plain conversion) this is all or nothing.  With
 * two backings (an unplug of mixed runs, or a batch converting both ways,
 * in discard mode) the shared one goes first, and with several segments
 * (a batch) they go in order; a punch failing after another of the same
 * call succeeded leaves that one done: its pages were leaving that
 * backing, and the rollback hands them out again zero-filled - content
 * lost from pages the call was giving up, never from any other page.
 */
static int punch_backings(struct gmem_vm *vm, const struct delta *d,
			  struct punch_plan *p)
{
	static const enum gmem_backing_id order[2] = { GMEM_BACKING_SHARED,
						       GMEM_BACKING_PRIVATE };
	unsigned int k;
	size_t i, j, r;
	int err;

	for (k = 0; k < 2; k++) {
		enum gmem_backing_id b = order[k];

		if (!p->need[b])
			continue;
		p->now[b] = true;
		for (i = 0; i < d->nr; i = j) {
			uint64_t off = run_off(&d->runs[i]), bytes = 0;

			j = seg_end(d, i);
			for (r = i; r < j; r++)
				if (run_gives_up(vm, &d->runs[r], b))
					bytes += run_len(&d->runs[r]);
			if (!bytes)
				continue;
			if (vm->reclaim &&
			    gmem_reclaim_queue(vm, b, off, seg_hull(d, i, j),
					       bytes) == 0) {
				p->now[b] = false;
				continue;
			}
			err = gmem_punch_range(vm, b, off, seg_hull(d, i, j));
			if (err) {
				/* The rollback hands pages of this change out
				 * again: what is still queued for them must
				 * be punched first (reclaim.c invariant 1). */
				for (i = 0; i < d->nr; i = j) {
					j = seg_end(d, i);
					gmem_reclaim_flush_range(vm, order[0],
						run_off(&d->runs[i]),
						seg_hull(d, i, j));
					gmem_reclaim_flush_range(vm, order[1],
						run_off(&d->runs[i]),
						seg_hull(d, i, j));
				}
				return err;
			}
		}
	}
	for (k = 0; k < 2; k++)
		if (p->need[order[k]])
			notify_runs(vm, d, GMEM_INVAL_PUNCH, order[k]);
	return 0;
}

/*
 * Deferred reclaim: punches still queued for a backing must be done before
 * its pages are prepared or handed out again (reclaim.c invariant 1).
 */
static int flush_granted(struct gmem_vm *vm, const struct delta *d)
{
	bool need[2] = { false, false };
	size_t i;
	int b, err;

	if (!vm->reclaim)
		return 0;
	for (i = 0; i < d->nr; i++)
		if (run_in_step(&d->runs[i], STEP_GRANT))
			need[gmem_backing_of(vm,
				step_view(&d->runs[i], STEP_GRANT))] = true;
	for (b = 0; b < 2; b++) {
		size_t i2, j;

		if (!need[b])
			continue;
		for (i2 = 0; i2 < d->nr; i2 = j) {
			j = seg_end(d, i2);
			err = gmem_reclaim_flush_range(vm,
					(enum gmem_backing_id)b,
					run_off(&d->runs[i2]),
					seg_hull(d, i2, j));
			if (err)
				return err;
		}
	}
	return 0;
}

/* ---- the engine ----------------------------------------------------------- */

/*
 * Commit: one set per delta run.  Only the first and the last run can be
 * clipped by the range, and a set of a whole run adds no node, so all the
 * sets together need at most the two nodes reserved in step 1 and cannot
 * fail (asserted: a failure here would lose state).
 */
static void commit_runs(struct gmem_vm *vm, const struct delta *d)
{
	int64_t ret;
	size_t i;

	for (i = 0; i < d->nr; i++) {
		ret = gmem_range_map_set(vm->map, d->runs[i].start,
				    d->runs[i].npages, d->runs[i].new, NULL,
				    NULL);
		assert(ret == (int64_t)d->runs[i].npages);
		(void)ret;
	}
}

/*
 * Steps 2-9 with vm->lock dropped; the commit takes it again and, in the
 * same critical section, gives back the *@reserved map reservations
 * (zeroing it), so that a successful conversion locks vm->lock twice in
 * all (collect, commit), not three times.
 */
static int64_t change_locked(struct gmem_vm *vm, struct delta *d,
			     unsigned int *reserved)
{
	struct punch_plan punch;
	int err;

	/* 2. Users of shared memory let go first; any may veto. */
	err = listeners_all(vm, d, false);
	if (err)
		return err;
	/* 3. Close the old views. */
	err = backend_runs(vm, d, STEP_REVOKE, vm->backend->revoke,
			   vm->backend->unrevoke);
	if (err)
		goto err_listeners_dropped;
	notify_runs(vm, d, GMEM_INVAL_CONVERT, GMEM_BACKING_PRIVATE);
	if (vm->mode == GMEM_MODE_DISCARD)
		notify_runs(vm, d, GMEM_INVAL_CONVERT, GMEM_BACKING_SHARED);
	err = flush_granted(vm, d);
	if (err)
		goto err_revoked;
	/* 4. Prepare pages about to be private. */
	err = prepare_runs(vm, d, STEP_PREPARE);
	if (err)
		goto err_revoked;
	/* 5. Open the new views. */
	err = backend_runs(vm, d, STEP_GRANT, vm->backend->grant,
			   vm->backend->ungrant);
	if (err)
		goto err_prepared;
	/* 6. Users of shared memory map what became reachable. */
	err = listeners_all(vm, d, true);
	if (err)
		goto err_granted;
	/* 7. Pages leaving private are invalidated before being freed. */
	invalidate_runs(vm, d, STEP_INVALIDATE, d->nr);
	/* 8. Give the old memory back: one punch per backing over the hull,
	 *    now or by the reclaim thread (subscribers are told now: the
	 *    backing is given up either way). */
	plan_punches(vm, d, &punch);
	err = punch_backings(vm, d, &punch);
	if (err)
		goto err_invalidated;
	/* 9. Commit. */
	pthread_mutex_lock(&vm->lock);
	commit_runs(vm, d);
	for (; *reserved; (*reserved)--)
		gmem_range_map_unreserve(vm->map);
	if (d->mask == GMEM_V_STATE) {
		/* A batch may convert both ways: count each direction. */
		uint64_t to[2] = { 0, 0 };
		size_t i;

		for (i = 0; i < d->nr; i++)
			to[d->runs[i].new & GMEM_V_STATE] += d->runs[i].npages;
		vm->stats.conversions_to_private += !!to[GMEM_PRIVATE];
		vm->stats.pages_to_private += to[GMEM_PRIVATE];
		vm->stats.conversions_to_shared += !!to[GMEM_SHARED];
		vm->stats.pages_to_shared += to[GMEM_SHARED];
	} else if (d->bits) {
		vm->stats.unplugs++;
	} else {
		vm->stats.plugs++;
	}
	if (punch.now[GMEM_BACKING_PRIVATE])
		vm->stats.bytes_discarded += punch.bytes[GMEM_BACKING_PRIVATE];
	if (punch.now[GMEM_BACKING_SHARED])
		vm->stats.bytes_discarded += punch.bytes[GMEM_BACKING_SHARED];
	pthread_mutex_unlock(&vm->lock);
	return (int64_t)d->pages;

err_invalidated:
	/* The pages stay private after all: prepare them again. */
	prepare_runs(vm, d, STEP_INVALIDATE);
	if (listeners_undo(vm, d, NULL, 0, true))
		err = -EIO;
err_granted:
	/* Close the new views first, then empty what was written through
	 * them meanwhile (nothing can write once they are closed). */
	if (undo_runs(vm, d, STEP_GRANT, d->nr, vm->backend->ungrant,
		      RESTORE_VIEW) ||
	    unwrite_granted(vm, d))
		err = -EIO;
err_prepared:
	invalidate_runs(vm, d, STEP_PREPARE, d->nr);
err_revoked:
	if (undo_runs(vm, d, STEP_REVOKE, d->nr, vm->backend->unrevoke,
		      RESTORE_VIEW))
		err = -EIO;
err_listeners_dropped:
	if (listeners_undo(vm, d, NULL, 0, false))
		err = -EIO;
	return err;
}

int64_t gmem_delta_apply(struct gmem_vm *vm, struct delta *d, int64_t ret,
			 unsigned int n_reserve)
{
	unsigned int reserved = 0;

	/* Held until the commit: other conversions commit in between, and
	 * their sets must not use the nodes this one's sets need. */
	while (!ret && d->nr && reserved < n_reserve) {
		ret = gmem_range_map_reserve(vm->map);
		if (!ret)
			reserved++;
	}
	pthread_mutex_unlock(&vm->lock);
	if (!ret && d->nr) {
		ret = change_locked(vm, d, &reserved);
		if (ret >= 0)
			return ret;	/* committed, reservations given back */
	}
	if (!reserved && ret >= 0)
		return ret;		/* nothing to change */
	pthread_mutex_lock(&vm->lock);
	for (; reserved; reserved--)
		gmem_range_map_unreserve(vm->map);
	if (ret < 0)
		vm->stats.conversions_failed++;
	if (ret == -EAGAIN)
		vm->stats.conversions_busy++;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

/* Change the bits @mask of every page of the range to @bits. */
static int64_t change_range(struct gmem_vm *vm, uint64_t gpa, uint64_t len,
			    uint8_t mask, uint8_t bits, uint64_t *busy)
{
	struct range_lock_waiter w;
	struct delta d = { .mask = mask, .bits = bits };
	uint64_t start, npages;
	int64_t ret;
	int err;

	err = gmem_check_range(vm, gpa, len);
	if (err)
		return err;
	start = gpa / GMEM_PAGE_SIZE;
	npages = len / GMEM_PAGE_SIZE;

	gmem_range_lock_acquire(&vm->rlock, &w, start, start + npages);
	pthread_mutex_lock(&vm->lock);
	if (vm->broken)
		ret = -EIO;
	else
		ret = gmem_walk_ex(vm, start, npages, gmem_delta_collect, &d,
				   -EINVAL);
	ret = gmem_delta_apply(vm, &d, ret, 1);
	gmem_range_lock_release(&vm->rlock, &w);
	if (ret == -EAGAIN && busy)
		*busy = d.busy_gpa;
	gmem_delta_release(&d);
	return ret;
}

int64_t gmem_convert(struct gmem_vm *vm, uint64_t gpa, uint64_t len,
		     enum gmem_state to)
{
	return gmem_convert_ex(vm, gpa, len, to, NULL);
}

int64_t gmem_convert_ex(struct gmem_vm *vm, uint64_t gpa, uint64_t len,
			enum gmem_state to, uint64_t *busy_gpa)
{
	if (to != GMEM_PRIVATE && to != GMEM_SHARED)
		return -EINVAL;
	return change_range(vm, gpa, len, GMEM_V_STATE, (uint8_t)to, busy_gpa);
}

int64_t gmem_set_plugged(struct gmem_vm *vm, uint64_t gpa, uint64_t len,
			 bool plugged)
{
	return change_range(vm, gpa, len, GMEM_V_UNPLUGGED,
			    plugged ? 0 : GMEM_V_UNPLUGGED, NULL);
}
