/* SPDX-License-Identifier: MIT */
/*
 * Deferred reclaim: the punch that gives a converted page's old memory back
 * to the host, taken off the converting vCPU's critical path.
 *
 * A conversion in discard mode queues (backing, range) instead of calling
 * fallocate(); a reclaim thread punches queued ranges in order.
 *
 * Invariants:
 *  1. A page is never handed out again in a view before its old memory in
 *     that view's backing is punched: before a conversion prepares or
 *     grants a view on a range, it flushes every queued entry of that
 *     backing overlapping the range (reclaim_flush_range()), punching it
 *     itself or waiting for the thread to finish it.
 *  2. An entry stays on the queue until its punch has succeeded; one being
 *     punched is marked busy (by whoever punches it), so a flusher can
 *     never miss a punch in flight and return before it is done.
 *  3. A punch that failed leaves its entry queued and marked failed: the
 *     thread does not retry it (no busy loop), but a flusher or a drain
 *     retries it and fails its caller if it fails again.  So failure can
 *     cost memory, never content.
 *  4. pending_bytes is the sum of the queued entries' lengths; when a
 *     conversion would push it past max_pending, that conversion punches
 *     synchronously (back-pressure).
 *  5. New entries overlapping a range can only come from a conversion of
 *     that range, which the range lock excludes while a flusher holds it.
 * Locking: rc->mutex protects the queue and the counters; no punch and no
 * callback runs under it.  The thread takes no range lock (invariant 2
 * makes that unnecessary), so a range holder may wait for it.
 */
#include <sched.h>
#include <stdlib.h>

#include "internal.h"

struct reclaim_entry {
	enum gmem_backing_id backing;
	uint64_t start, end;		/* GPA bytes, inside one region */
	int fd;				/* the region's backing (not owned:
					   region removal flushes first) */
	uint64_t file_off;		/* of start in fd */
	uint64_t discarded;		/* bytes of delta it accounts for */
	bool busy, failed;
	struct reclaim_entry *next;
};

struct reclaim {
	struct gmem_vm *vm;
	pthread_t thread;
	pthread_mutex_t mutex;
	pthread_cond_t work;	/* the thread waits for entries */
	pthread_cond_t done;	/* flushers wait for busy entries */
	struct reclaim_entry *head, **tail;
	uint64_t pending_bytes, max_pending;
	uint64_t discarded_bytes, sync_punches;
	int last_error;
	bool stop;
};

static void entry_remove(struct reclaim *rc, struct reclaim_entry *e)
{
	struct reclaim_entry **pp;

	for (pp = &rc->head; *pp != e; pp = &(*pp)->next)
		;
	*pp = e->next;
	if (rc->tail == &e->next)
		rc->tail = pp;
	rc->pending_bytes -= e->end - e->start;
	rc->discarded_bytes += e->discarded;
	free(e);
}

/*
 * Punch @e, which the caller marked busy, with rc->mutex held on entry and
 * on return (dropped meanwhile).  Removes it on success.
 */
static int entry_punch(struct reclaim *rc, struct reclaim_entry *e)
{
	struct gmem_vm *vm = rc->vm;
	int err;

	pthread_mutex_unlock(&rc->mutex);
	err = gmem_punch(vm, e->fd, e->file_off, e->end - e->start);
	pthread_mutex_lock(&rc->mutex);
	e->busy = false;
	if (err) {
		e->failed = true;
		rc->last_error = err;
	} else {
		entry_remove(rc, e);
	}
	pthread_cond_broadcast(&rc->done);
	return err;
}

static void *reclaim_thread(void *arg)
{
	struct sched_param batch = { 0 };
	struct reclaim *rc = arg;
	struct reclaim_entry *e;

	/*
	 * Measured (make bench): woken by a conversion, a normal-priority
	 * thread is run on the converting vCPU's own CPU at once and does
	 * the punch before the guest re-enters, which puts the cost right
	 * back on the critical path.  SCHED_BATCH (no privilege needed)
	 * stops the wake-up preemption; SCHED_IDLE would starve reclaim and
	 * push the punches onto the next grant.  Best effort.
	 */
	(void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch);
	pthread_mutex_lock(&rc->mutex);
	for (;;) {
		for (e = rc->head; e && (e->busy || e->failed); e = e->next)
			;
		if (!e) {
			if (rc->stop)
				break;
			pthread_cond_wait(&rc->work, &rc->mutex);
			continue;
		}
		e->busy = true;
		entry_punch(rc, e);
	}
	pthread_mutex_unlock(&rc->mutex);
	return NULL;
}

int gmem_reclaim_start(struct gmem_vm *vm, uint64_t max_pending)
{
	struct reclaim *rc = calloc(1, sizeof(*rc));
	int err;

	if (!rc)
		return -ENOMEM;
	rc->vm = vm;
	rc->tail = &rc->head;
	rc->max_pending = max_pending ? max_pending : 1ULL << 30;
	pthread_mutex_init(&rc->mutex, NULL);
	pthread_cond_init(&rc->work, NULL);
	pthread_cond_init(&rc->done, NULL);
	err = -pthread_create(&rc->thread, NULL, reclaim_thread, rc);
	if (err) {
		pthread_cond_destroy(&rc->done);
		pthread_cond_destroy(&rc->work);
		pthread_mutex_destroy(&rc->mutex);
		free(rc);
		return err;
	}
	vm->reclaim = rc;
	return 0;
}

void gmem_reclaim_stop(struct gmem_vm *vm)
{
	struct reclaim *rc = vm->reclaim;

	if (!rc)
		return;
	pthread_mutex_lock(&rc->mutex);
	rc->stop = true;
	pthread_cond_signal(&rc->work);
	pthread_mutex_unlock(&rc->mutex);
	pthread_join(rc->thread, NULL);
	/* Only failed entries can remain; the files are closed next, which
	 * frees their memory anyway. */
	while (rc->head)
		entry_remove(rc, rc->head);
	pthread_cond_destroy(&rc->done);
	pthread_cond_destroy(&rc->work);
	pthread_mutex_destroy(&rc->mutex);
	free(rc);
	vm->reclaim = NULL;
}

/*
 * Queue the punch of [gpa, gpa + len) in @backing, one entry per region it
 * touches (resolved to fd and offset now, under the caller's range lock,
 * so the thread never reads the region array).  All entries or none.
 */
int gmem_reclaim_queue(struct gmem_vm *vm, enum gmem_backing_id backing,
		       uint64_t gpa, uint64_t len, uint64_t discarded)
{
	struct reclaim *rc = vm->reclaim;
	struct reclaim_entry *first = NULL, **link = &first, *e;
	uint64_t page = gpa / GMEM_PAGE_SIZE, end = page + len / GMEM_PAGE_SIZE;
	uint64_t queued = 0;
	unsigned int i;

	for (i = 0; i < vm->nr_regions; i++) {
		struct gmem_region *r = &vm->regions[i];
		uint64_t s = page > r->first ? page : r->first;
		uint64_t t = end < r->first + r->npages ? end :
			     r->first + r->npages;

		if (s >= t)
			continue;
		e = malloc(sizeof(*e));
		if (!e)
			goto punch_now;
		*e = (struct reclaim_entry){
			.backing = backing,
			.start = s * GMEM_PAGE_SIZE,
			.end = t * GMEM_PAGE_SIZE,
			.discarded = first ? 0 : discarded,
		};
		e->fd = gmem_region_fd(r, backing, s, &e->file_off);
		*link = e;
		link = &e->next;
		queued += e->end - e->start;
	}
	if (!first)
		return 0;
	pthread_mutex_lock(&rc->mutex);
	if (rc->pending_bytes + queued > rc->max_pending) {
		rc->sync_punches++;
		pthread_mutex_unlock(&rc->mutex);
		goto free_entries;
	}
	*rc->tail = first;
	rc->tail = link;
	rc->pending_bytes += queued;
	pthread_cond_signal(&rc->work);
	pthread_mutex_unlock(&rc->mutex);
	return 0;

punch_now:
	pthread_mutex_lock(&rc->mutex);
	rc->sync_punches++;
	pthread_mutex_unlock(&rc->mutex);
free_entries:
	while (first) {
		e = first->next;
		free(first);
		first = e;
	}
	return 1;
}

/*
 * The audit's view of the queue.  An entry is removed only under the mutex,
 * after its punch: so while the audit holds it, a page found resident (by
 * mincore) in a backing is excused exactly if a punch of it was still
 * queued when it looked, even if the thread is punching it right now.
 */
void gmem_reclaim_lock(struct gmem_vm *vm)
{
	if (vm->reclaim)
		pthread_mutex_lock(&vm->reclaim->mutex);
}

void gmem_reclaim_unlock(struct gmem_vm *vm)
{
	if (vm->reclaim)
		pthread_mutex_unlock(&vm->reclaim->mutex);
}

bool gmem_reclaim_pending_locked(struct gmem_vm *vm,
				 enum gmem_backing_id backing, uint64_t gpa,
				 uint64_t len)
{
	struct reclaim_entry *e;

	if (!vm->reclaim)
		return false;
	for (e = vm->reclaim->head; e; e = e->next)
		if (e->backing == backing && e->start < gpa + len &&
		    gpa < e->end)
			return true;
	return false;
}

/* Punch (or wait for) every entry of @backing overlapping the range; all
 * backings and the whole file when @all. */
static int flush(struct reclaim *rc, bool all, enum gmem_backing_id backing,
		 uint64_t start, uint64_t end)
{
	struct reclaim_entry *e;
	int err = 0;

	pthread_mutex_lock(&rc->mutex);
	for (;;) {
		for (e = rc->head; e; e = e->next)
			if (all || (e->backing == backing && e->start < end &&
				    start < e->end))
				break;
		if (!e)
			break;
		if (e->busy) {
			pthread_cond_wait(&rc->done, &rc->mutex);
			continue;
		}
		e->busy = true;
		rc->sync_punches++;
		err = entry_punch(rc, e);
		if (err)
			break;
	}
	pthread_mutex_unlock(&rc->mutex);
	return err;
}

int gmem_reclaim_flush_range(struct gmem_vm *vm, enum gmem_backing_id backing,
			     uint64_t gpa, uint64_t len)
{
	if (!vm->reclaim)
		return 0;
	return flush(vm->reclaim, false, backing, gpa, gpa + len);
}

int gmem_reclaim_drain(struct gmem_vm *vm)
{
	if (!vm->reclaim)
		return 0;
	return flush(vm->reclaim, true, GMEM_BACKING_PRIVATE, 0, 0);
}

void gmem_reclaim_stats(struct gmem_vm *vm, struct gmem_stats *stats)
{
	struct reclaim *rc = vm->reclaim;

	if (!rc)
		return;
	pthread_mutex_lock(&rc->mutex);
	stats->reclaim_pending_bytes = rc->pending_bytes;
	stats->reclaim_sync_punches = rc->sync_punches;
	stats->bytes_discarded += rc->discarded_bytes;
	pthread_mutex_unlock(&rc->mutex);
}
