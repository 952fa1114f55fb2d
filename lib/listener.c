/* SPDX-License-Identifier: MIT */
/*
 * Listeners (users of shared memory, RamDiscardManager done right) and
 * invalidation subscribers.
 *
 * Invariant: outside the window of a conversion in flight, every
 * registered listener has been told populate for exactly the shared pages
 * (one call per run, never per page) and discard for nothing else.
 *
 * The lists change only while the whole RAM is held in the range lock, so
 * no conversion is in flight and conversions read the lists unlocked (see
 * internal.h).  Registration replays the current shared runs under the
 * same lock, so a listener can never miss or double a conversion.
 */
#include <stdlib.h>

#include "internal.h"

struct replay {
	struct gmem_vm *vm;
	struct gmem_listener *l;
	bool populate;
	uint64_t done_end;	/* pages: replayed runs end before this */
	int err;
};

static int replay_run(void *arg, uint64_t start, uint64_t npages,
		      uint8_t value)
{
	struct replay *r = arg;
	uint64_t off = start * GMEM_PAGE_SIZE, len = npages * GMEM_PAGE_SIZE;
	int err;

	if (value != GMEM_SHARED)
		return 0;
	if (r->populate) {
		err = r->l->ops->populate(r->l->data, off, len);
		if (err) {
			r->err = err < 0 ? err : -EIO;
			return 1;
		}
		r->done_end = start + npages;
	} else {
		r->l->ops->discard(r->l->data, off, len, GMEM_DISCARD_FORCED);
	}
	return 0;
}

/*
 * The map cannot change while the whole range is held, but the walk still
 * runs under the map mutex for the tree's sake; callbacks must not call
 * back into libgmem (documented in gmem.h).
 */
static void replay(struct gmem_vm *vm, struct replay *r, uint64_t npages)
{
	pthread_mutex_lock(&vm->lock);
	gmem_range_map_for_each(vm->map, 0, npages, replay_run, r);
	pthread_mutex_unlock(&vm->lock);
}

int gmem_listener_register(struct gmem_vm *vm,
			   const struct gmem_listener_ops *ops, void *data,
			   struct gmem_listener **out)
{
	struct range_lock_waiter w;
	struct gmem_listener *l, **pp;
	struct replay r;

	if (!ops || !ops->populate || !ops->discard)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->ops = ops;
	l->data = data;

	gmem_range_lock_acquire(&vm->rlock, &w, 0, vm->npages);
	r = (struct replay){ .vm = vm, .l = l, .populate = true };
	replay(vm, &r, vm->npages);
	if (r.err) {
		struct replay undo = { .vm = vm, .l = l, .populate = false };

		if (r.done_end)
			replay(vm, &undo, r.done_end);
		gmem_range_lock_release(&vm->rlock, &w);
		free(l);
		return r.err;
	}
	/* Append: listeners are told in registration order. */
	for (pp = &vm->listeners; *pp; pp = &(*pp)->next)
		;
	*pp = l;
	gmem_range_lock_release(&vm->rlock, &w);
	*out = l;
	return 0;
}

void gmem_listener_unregister(struct gmem_vm *vm, struct gmem_listener *l)
{
	struct range_lock_waiter w;
	struct gmem_listener **pp;
	struct replay r = { .vm = vm, .l = l, .populate = false };

	if (!l)
		return;
	gmem_range_lock_acquire(&vm->rlock, &w, 0, vm->npages);
	for (pp = &vm->listeners; *pp && *pp != l; pp = &(*pp)->next)
		;
	if (*pp) {
		*pp = l->next;
		replay(vm, &r, vm->npages);
	}
	gmem_range_lock_release(&vm->rlock, &w);
	free(l);
}

int gmem_subscribe(struct gmem_vm *vm, gmem_invalidate_fn fn, void *data,
		   struct gmem_subscription **out)
{
	struct range_lock_waiter w;
	struct gmem_subscription *s, **pp;

	if (!fn)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fn = fn;
	s->data = data;
	gmem_range_lock_acquire(&vm->rlock, &w, 0, vm->npages);
	for (pp = &vm->subs; *pp; pp = &(*pp)->next)
		;
	*pp = s;
	gmem_range_lock_release(&vm->rlock, &w);
	*out = s;
	return 0;
}

void gmem_unsubscribe(struct gmem_vm *vm, struct gmem_subscription *sub)
{
	struct range_lock_waiter w;
	struct gmem_subscription **pp;

	if (!sub)
		return;
	gmem_range_lock_acquire(&vm->rlock, &w, 0, vm->npages);
	for (pp = &vm->subs; *pp && *pp != sub; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = sub->next;
	gmem_range_lock_release(&vm->rlock, &w);
	free(sub);
}

void gmem_notify_subscribers(struct gmem_vm *vm, enum gmem_inval_reason reason,
			     enum gmem_backing_id backing, uint64_t offset,
			     uint64_t len)
{
	struct gmem_subscription *s;

	for (s = vm->subs; s; s = s->next)
		s->fn(s->data, reason, backing, offset, len);
}
