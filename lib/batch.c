/* SPDX-License-Identifier: MIT */
/*
 * Batched conversions (gmem_convert_batch(), libgmem 2.1): a list of
 * ranges, each to its own state, checked whole before anything happens
 * and then applied as ONE change by the engine (engine.h, convert.c):
 * one range lock over the hull, one delta, all or nothing.
 *
 * Entries are sorted by GPA; overlapping entries are refused whatever
 * their targets, so that the result never depends on the order of the
 * list.  Each entry is a segment of the delta (run.seg): the engine
 * punches per segment, never over the pages between two entries.
 */
#include <stdlib.h>

#include "engine.h"
#include "internal.h"

struct sorted_entry {
	uint64_t gpa, len;
	uint8_t to;
	unsigned int idx;	/* in the caller's array */
};

/* By GPA, equal GPAs by index: which entry an overlap names must not
 * depend on qsort(), which is not stable (guest ABI extension 3 says). */
static int cmp_entry(const void *a, const void *b)
{
	const struct sorted_entry *x = a, *y = b;

	if (x->gpa != y->gpa)
		return x->gpa < y->gpa ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The caller's index of the entry holding @gpa, or -1. */
static int entry_of(const struct sorted_entry *e, unsigned int n, uint64_t gpa)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (gpa >= e[i].gpa && gpa - e[i].gpa < e[i].len)
			return (int)e[i].idx;
	return -1;
}

int64_t gmem_convert_batch(struct gmem_vm *vm,
			   const struct gmem_batch_entry *entries,
			   unsigned int n, int *failed_entry,
			   uint64_t *busy_gpa)
{
	struct delta d = { .mask = GMEM_V_STATE };
	struct sorted_entry *e;
	struct range_lock_waiter w;
	unsigned int i;
	int failed = -1;
	int64_t ret;

	if (failed_entry)
		*failed_entry = -1;
	if (!vm || (!entries && n))
		return -EINVAL;
	if (n == 0)
		return 0;
	if (n > GMEM_BATCH_MAX)
		return -E2BIG;
	e = malloc(n * sizeof(*e));
	if (!e)
		return -ENOMEM;
	/* Every entry is checked before anything happens. */
	for (i = 0; i < n; i++) {
		const struct gmem_batch_entry *x = &entries[i];

		if (x->flags || (x->to != GMEM_PRIVATE && x->to != GMEM_SHARED) ||
		    gmem_check_range(vm, x->gpa, x->len)) {
			failed = (int)i;
			ret = -EINVAL;
			goto out_free;
		}
		e[i] = (struct sorted_entry){ .gpa = x->gpa, .len = x->len,
					      .to = (uint8_t)x->to, .idx = i };
	}
	qsort(e, n, sizeof(*e), cmp_entry);
	/* Overlapping entries are refused whatever their targets, so that
	 * the result never depends on the order of the list. */
	for (i = 1; i < n; i++)
		if (e[i].gpa < e[i - 1].gpa + e[i - 1].len) {
			failed = (int)e[i].idx;
			ret = -EINVAL;
			goto out_free;
		}

	/* One range lock over the hull: the batch is one change. */
	gmem_range_lock_acquire(&vm->rlock, &w, e[0].gpa / GMEM_PAGE_SIZE,
				(e[n - 1].gpa + e[n - 1].len) / GMEM_PAGE_SIZE);
	pthread_mutex_lock(&vm->lock);
	ret = vm->broken ? -EIO : 0;
	for (i = 0; !ret && i < n; i++) {
		d.seg = i;
		d.bits = e[i].to;
		ret = gmem_walk_ex(vm, e[i].gpa / GMEM_PAGE_SIZE,
				   e[i].len / GMEM_PAGE_SIZE, gmem_delta_collect, &d,
				   -EINVAL);
		if (ret == -EINVAL)
			failed = (int)e[i].idx;	/* touches a hole */
	}
	/* Each entry's sets may clip two runs: one reservation each. */
	ret = gmem_delta_apply(vm, &d, ret, n);
	gmem_range_lock_release(&vm->rlock, &w);
	if (ret == -EAGAIN) {
		failed = entry_of(e, n, d.busy_gpa);
		if (busy_gpa)
			*busy_gpa = d.busy_gpa;
	}
	gmem_delta_release(&d);
out_free:
	free(e);
	if (ret < 0 && failed_entry)
		*failed_entry = failed;
	return ret;
}
