/* SPDX-License-Identifier: MIT */
/*
 * The one way libgmem's checkers report a broken invariant: the audit
 * (audit.c), the validation of the page-state map (range_map.c), of the
 * regions (region.c) and of the DMA mapper (dma_mapper.c).  The first
 * violation found is described in the caller's buffer, if it gave one
 * (libgmem never prints), and the check fails with -EUCLEAN ("structure
 * needs cleaning").
 *
 * Header-only, so that range_map.c, which the white-box tests and
 * bench_range_map use on its own, stays one object with no other.
 */
#ifndef GMEM_VIOLATION_H
#define GMEM_VIOLATION_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

__attribute__((format(printf, 3, 4)))
static inline int gmem_violation(char *msg, size_t msg_len, const char *fmt,
				 ...)
{
	va_list ap;

	if (msg && msg_len) {
		va_start(ap, fmt);
		vsnprintf(msg, msg_len, fmt, ap);
		va_end(ap);
	}
	return -EUCLEAN;
}

#endif /* GMEM_VIOLATION_H */
