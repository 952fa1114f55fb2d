/* SPDX-License-Identifier: MIT */
/*
 * A range lock over page numbers.
 *
 * Invariants:
 *  - the queue (head..tail) holds every holder and every waiter, in
 *    arrival order;
 *  - an entry holds its range iff no earlier entry in the queue overlaps
 *    it; so two overlapping ranges are never held at once, and overlapping
 *    requests are granted first come, first served (a whole-range audit is
 *    not starved by a stream of small conversions);
 *  - entries live in the caller's stack frame between acquire and release.
 * All fields are protected by rl->mutex.  Waiters sleep on rl->cond, which
 * is broadcast on every release (few threads: the vCPUs of one VM).
 */
#include <assert.h>

#include "internal.h"

void gmem_range_lock_init(struct range_lock *rl)
{
	pthread_mutex_init(&rl->mutex, NULL);
	pthread_cond_init(&rl->cond, NULL);
	rl->head = NULL;
	rl->tail = &rl->head;
}

void gmem_range_lock_destroy(struct range_lock *rl)
{
	assert(rl->head == NULL);
	pthread_cond_destroy(&rl->cond);
	pthread_mutex_destroy(&rl->mutex);
}

static bool earlier_overlap(const struct range_lock *rl,
			    const struct range_lock_waiter *w)
{
	const struct range_lock_waiter *e;

	for (e = rl->head; e != w; e = e->next)
		if (e->start < w->end && w->start < e->end)
			return true;
	return false;
}

void gmem_range_lock_acquire(struct range_lock *rl, struct range_lock_waiter *w,
			uint64_t start, uint64_t end)
{
	assert(start < end);
	w->start = start;
	w->end = end;
	w->next = NULL;
	pthread_mutex_lock(&rl->mutex);
	*rl->tail = w;
	rl->tail = &w->next;
	while (earlier_overlap(rl, w))
		pthread_cond_wait(&rl->cond, &rl->mutex);
	pthread_mutex_unlock(&rl->mutex);
}

void gmem_range_lock_release(struct range_lock *rl, struct range_lock_waiter *w)
{
	struct range_lock_waiter **pp;

	pthread_mutex_lock(&rl->mutex);
	for (pp = &rl->head; *pp != w; pp = &(*pp)->next)
		assert(*pp != NULL);
	*pp = w->next;
	if (rl->tail == &w->next)
		rl->tail = pp;
	pthread_cond_broadcast(&rl->cond);
	pthread_mutex_unlock(&rl->mutex);
}
