/* SPDX-License-Identifier: MIT */
/*
 * A set of guest pages over a VM's regions (which stay fixed during a
 * migration): one bitmap per region.  What the source still has to send
 * (written, converted, punched, device-mapped pages) is collected here.
 *
 * Not locked: its owner serialises access (send.c guards the set that
 * libgmem's callbacks fill with a mutex).  Ranges outside every region
 * are ignored (clipped).
 */
#ifndef GMVM_MIGRATE_PAGES_H
#define GMVM_MIGRATE_PAGES_H

#include <stdint.h>

#include "ivals.h"

struct mig_pages_rgn {
	uint64_t gpa, npages;
	uint64_t *bits;
};

struct mig_pages {
	struct mig_pages_rgn *r;
	size_t nr;
};

/* An empty set over @regions (bytes, sorted, page aligned). */
int mig_pages_init(struct mig_pages *s, const struct ivals *regions);
void mig_pages_free(struct mig_pages *s);
void mig_pages_add(struct mig_pages *s, uint64_t gpa, uint64_t len);
/* Move every page of @from into @to (same regions); @from is empty after. */
void mig_pages_move(struct mig_pages *to, struct mig_pages *from);
uint64_t mig_pages_count(const struct mig_pages *s);
/* @fn for each maximal run [start, end) of pages in the set, in order
 * (never across a region); a non-zero return stops and is returned. */
int mig_pages_for_each(const struct mig_pages *s,
		       int (*fn)(void *arg, uint64_t start, uint64_t end),
		       void *arg);
void mig_pages_clear(struct mig_pages *s);

#endif
