/* SPDX-License-Identifier: MIT */
/*
 * util/vec.h - the one growable array of the project (internal helper layer).
 *
 * Header-only so that libgmem, gmvm, the tests and the benchmarks share the
 * code without sharing symbols: libgmem exports nothing of it, and nothing
 * links a second copy of a libgmem object.
 *
 * Invariant: *cap is 0 with *v NULL, or the number of elements *v holds.
 * vec_reserve() never shrinks and leaves *v and *cap untouched on failure,
 * so a caller that fails mid-push has lost nothing it had.
 */
#ifndef GMVM_UTIL_VEC_H
#define GMVM_UTIL_VEC_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

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

#endif
