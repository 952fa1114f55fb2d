/* SPDX-License-Identifier: MIT */
/*
 * A strict fake DMA backend for the mapper's tests: it holds its mappings
 * the way an IOMMU would and records the first thing the mapper must never
 * ask for (a map over a live mapping, an unmap that is not exactly one live
 * mapping, a cut outside one mapping, a merge that does not tile live
 * mappings, or a page unmapped outside the window [x0, x1) - widened to
 * whole blocks when @block is set).  Pinned pages refuse non-forced unmap
 * and cut with -EAGAIN.  Thread-safe.
 */
#ifndef GMEM_FAKE_IOMMU_H
#define GMEM_FAKE_IOMMU_H

#include "test_util.h"

struct ival {
	uint64_t s, e;		/* bytes */
};

struct fake {
	pthread_mutex_t lock;
	struct ival *v;		/* live mappings, sorted */
	size_t nr, cap;
	uint64_t block;		/* blocks layout: block bytes; 0: exact */
	uint64_t x0, x1;	/* the range being changed (bytes) */
	uint8_t *pinned;	/* per page */
	unsigned int fail_map_nth;	/* fail the nth map from now... */
	int fail_err;		/* ...with this */
	bool fail_map_sticky;	/* ...and every map after it */
	char why[256];		/* first violation */
	uint64_t calls;
};

/* cut and merge (exact layout) / map and unmap only (VFIO type1). */
extern const struct gmem_dma_ops fake_exact_ops;
extern const struct gmem_dma_ops fake_type1_ops;

void fake_init(struct fake *f, uint64_t ram, uint64_t block);
void fake_free(struct fake *f);
/* Fail the test with the first violation, if any. */
void check_backend(struct fake *f);
int fake_map(void *data, uint64_t iova, uint64_t len);

#endif /* GMEM_FAKE_IOMMU_H */
