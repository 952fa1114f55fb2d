/* SPDX-License-Identifier: MIT */
/*
 * util/ivals.h - the one growable array of half-open intervals
 * (internal helper layer, header-only like util/vec.h).
 *
 * Used where code collects ranges and then compares them: the DMA
 * mapper's layout and its backend's report (lib/dma_mapper.c,
 * lib/dma_validate.c), the audit's listener mappings (lib/audit.c), the
 * device process's real mappings (vmm/devices/dma_remote_ops.c).  Units
 * are the caller's (pages or bytes).
 *
 * Invariant: v holds nr intervals, cap >= nr (util/vec.h); a push that
 * fails leaves the array as it was.
 */
#ifndef GMVM_UTIL_IVALS_H
#define GMVM_UTIL_IVALS_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "vec.h"

struct ival {
	uint64_t start, end;	/* [start, end) */
};

struct ivals {
	struct ival *v;
	size_t nr, cap;
};

static inline int ivals_push(struct ivals *a, uint64_t start, uint64_t end)
{
	if (vec_reserve((void **)&a->v, &a->cap, a->nr, sizeof(*a->v)))
		return -ENOMEM;
	a->v[a->nr].start = start;
	a->v[a->nr].end = end;
	a->nr++;
	return 0;
}

/* Append, extending the last interval instead when @start touches it. */
static inline int ivals_push_joined(struct ivals *a, uint64_t start,
				    uint64_t end)
{
	if (a->nr && a->v[a->nr - 1].end == start) {
		a->v[a->nr - 1].end = end;
		return 0;
	}
	return ivals_push(a, start, end);
}

static inline int ivals_cmp_start(const void *x, const void *y)
{
	const struct ival *a = x, *b = y;

	return a->start < b->start ? -1 : a->start > b->start;
}

/* Sort by start (qsort is not given a NULL array). */
static inline void ivals_sort(struct ivals *a)
{
	if (a->nr > 1)
		qsort(a->v, a->nr, sizeof(*a->v), ivals_cmp_start);
}

/* Sort and join touching intervals; -1 (array sorted) if two overlap. */
static inline int ivals_union(struct ivals *a)
{
	size_t i, n = 0;

	ivals_sort(a);
	for (i = 0; i < a->nr; i++) {
		if (n && a->v[i].start < a->v[n - 1].end)
			return -1;
		if (n && a->v[i].start == a->v[n - 1].end)
			a->v[n - 1].end = a->v[i].end;
		else
			a->v[n++] = a->v[i];
	}
	a->nr = n;
	return 0;
}

static inline void ivals_free(struct ivals *a)
{
	free(a->v);
	a->v = NULL;
	a->nr = a->cap = 0;
}

#endif
