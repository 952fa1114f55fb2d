/* SPDX-License-Identifier: MIT */
/*
 * Listeners (users of shared memory, RamDiscardManager done right) and
 * invalidation subscribers.
 *
 * Invariant: outside the window of a conversion in flight, every
 * registered listener has been told populate for exactly the shared pages
 * (one call per run, never per page) and discard for nothing else.
 *
 * The lists change only while the whole space is held in the range lock,
 * so no conversion is in flight and conversions read the lists unlocked
 * (see internal.h).  Registration replays the current reachable runs under
 * the same lock, so a listener can never miss or double a conversion; the
 * callbacks run without vm->lock (see reachable_runs()).
 */
#include <stddef.h>
#include <stdlib.h>

#include "internal.h"

/*
 * The reachable runs of the whole space, per region, in order: a snapshot
 * under vm->lock, called back without it.  The whole space is held in the
 * range lock, so the map cannot change, and a listener may take its own
 * locks in its callbacks while another of its threads queries libgmem
 * (gmem_state_at() takes vm->lock): no lock-order inversion.
 */
static int reachable_runs(struct gmem_vm *vm, struct gmem_run_list *r)
{
	*r = (struct gmem_run_list){ .only = GMEM_SHARED };
	return gmem_snapshot_runs(vm, 0, vm->npages, r);
}

static void discard_runs(struct gmem_listener *l,
			 const struct gmem_run_list *r,
			 size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		l->ops_copy.discard(l->data, r->v[i].start * GMEM_PAGE_SIZE,
				    r->v[i].npages * GMEM_PAGE_SIZE,
				    GMEM_DISCARD_FORCED);
}

int gmem_listener_register_internal(struct gmem_vm *vm,
				    const struct gmem_listener_ops *ops,
				    void *data,
				    int (*validate)(void *data, char *msg,
						    size_t msg_len),
				    struct gmem_listener **out)
{
	struct range_lock_waiter w;
	struct gmem_listener *l, **pp;
	struct gmem_run_list runs = { 0 };
	size_t i;
	int err;

	if (!vm || !out)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	err = gmem_copy_in(&l->ops_copy, sizeof(l->ops_copy), ops,
			   gmem_offsetofend(struct gmem_listener_ops, discard));
	if (err || !l->ops_copy.populate || !l->ops_copy.discard) {
		free(l);
		return err ? err : -EINVAL;
	}
	l->ops = ops;
	l->data = data;
	l->validate = validate;

	gmem_range_lock_acquire(&vm->rlock, &w, 0, vm->npages);
	err = reachable_runs(vm, &runs);
	for (i = 0; !err && i < runs.nr; i++) {
		err = l->ops_copy.populate(data,
					   runs.v[i].start * GMEM_PAGE_SIZE,
					   runs.v[i].npages * GMEM_PAGE_SIZE);
		if (err) {
			err = err < 0 ? err : -EIO;
			discard_runs(l, &runs, i);
		}
	}
	if (!err) {
		/* Append: listeners are told in registration order. */
		for (pp = &vm->listeners; *pp; pp = &(*pp)->next)
			;
		*pp = l;
	}
	gmem_range_lock_release(&vm->rlock, &w);
	free(runs.v);
	if (err) {
		free(l);
		return err;
	}
	*out = l;
	return 0;
}

int gmem_listener_register(struct gmem_vm *vm,
			   const struct gmem_listener_ops *ops, void *data,
			   struct gmem_listener **out)
{
	return gmem_listener_register_internal(vm, ops, data, NULL, out);
}

void gmem_listener_unregister(struct gmem_vm *vm, struct gmem_listener *l)
{
	struct range_lock_waiter w;
	struct gmem_listener **pp;
	struct gmem_run_list runs = { 0 };

	if (!vm || !l)
		return;
	gmem_range_lock_acquire(&vm->rlock, &w, 0, vm->npages);
	for (pp = &vm->listeners; *pp && *pp != l; pp = &(*pp)->next)
		;
	if (*pp) {
		*pp = l->next;
		/*
		 * Out of memory for the snapshot: discard per region instead
		 * (a forced discard of unmapped pages is harmless to a
		 * listener by contract: it must accept any forced discard).
		 */
		if (reachable_runs(vm, &runs) == 0) {
			discard_runs(l, &runs, runs.nr);
		} else {
			unsigned int i;

			for (i = 0; i < vm->nr_regions; i++)
				l->ops_copy.discard(l->data,
						    vm->regions[i].gpa,
						    vm->regions[i].len,
						    GMEM_DISCARD_FORCED);
		}
	}
	gmem_range_lock_release(&vm->rlock, &w);
	free(runs.v);
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
