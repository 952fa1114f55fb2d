/* SPDX-License-Identifier: MIT */
/*
 * util/vec.h - the one growable array of the project (internal helper layer).
 *
 * Header-only so that libgmem, gmvm, the tests and the benchmarks share the
 * code without sharing symbols: libgmem exports nothing of it, and nothing
 * links a second copy of a libgmem object.
 *
 * Invariant: *cap is 0 with *v NULL, or the number of elements *v holds
 * (for vec_reserve_inline(), *v may be the caller's own storage).
 * vec_reserve() never shrinks and leaves *v and *cap untouched on failure,
 * so a caller that fails mid-push has lost nothing it had.
 */
#ifndef GMVM_UTIL_VEC_H
#define GMVM_UTIL_VEC_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Make room for element index @nr (so nr + 1 elements): 0 or -ENOMEM. */
static inline int vec_reserve(void **v, size_t *cap, size_t nr, size_t size)
{
	size_t n;
	void *p;

	if (nr < *cap)
		return 0;
	n = *cap ? *cap * 2 : 16;
	while (n <= nr)
		n *= 2;
	if (size && n > SIZE_MAX / size)
		return -ENOMEM;
	p = realloc(*v, n * size);
	if (!p)
		return -ENOMEM;
	*v = p;
	*cap = n;
	return 0;
}

/*
 * The same for a vector that starts in the caller's storage @buf of
 * @buf_cap elements (*v NULL: not started yet), so that a short one costs
 * no malloc(); past it, the elements move to the heap.  The caller frees
 * *v only if it is not @buf.
 */
static inline int vec_reserve_inline(void **v, size_t *cap, size_t nr,
				     size_t size, void *buf, size_t buf_cap)
{
	void *heap = NULL;
	size_t n = 0;

	if (!*v) {
		*v = buf;
		*cap = buf_cap;
	}
	if (nr < *cap)
		return 0;
	if (*v != buf)
		return vec_reserve(v, cap, nr, size);
	if (vec_reserve(&heap, &n, nr, size))
		return -ENOMEM;
	memcpy(heap, buf, *cap * size);
	*v = heap;
	*cap = n;
	return 0;
}

#endif
