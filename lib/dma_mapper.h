/* SPDX-License-Identifier: MIT */
/*
 * The DMA mapper's state, shared by its two files: lib/dma_mapper.c (the
 * listener that keeps the mappings equal to the reachable runs, and the
 * API) and lib/dma_validate.c (gmem_dma_mapper_validate(), which compares
 * that state with itself and with what the backend reports).  The
 * invariants and the lock order are stated at the top of dma_mapper.c.
 */
#ifndef GMEM_DMA_MAPPER_H
#define GMEM_DMA_MAPPER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "gmem/gmem.h"
#include "range_map.h"
#include "ivals.h"

struct gmem_dma_mapper {
	struct gmem_vm *vm;
	struct gmem_dma_ops ops_copy;	/* what the caller's table said */
	const struct gmem_dma_ops *ops;	/* == &ops_copy */
	void *data;
	bool exact;
	uint64_t block_pages;	/* blocks layout */
	uint64_t npages;
	struct gmem_listener *listener;

	pthread_mutex_t lock;	/* everything below, and every op call */
	struct range_map *mapped;
	struct gmem_dma_stats st;
	/*
	 * First error of an undo inside the current change (0: none).  An
	 * undo that fails leaves the backend holding other mappings than the
	 * mapper's layout says; mapper_change() then marks the memory broken
	 * (after dropping the lock: vm->lock comes first) and fails with -EIO
	 * rather than claim that nothing changed.
	 */
	int undo_err;
};

/* Intervals here are of pages. */
static inline uint64_t pg2b(uint64_t pages)
{
	return pages * GMEM_PAGE_SIZE;
}

/* Every mapping of the layout, in address order; m->lock held. */
int gmem_dma_layout_all(const struct gmem_dma_mapper *m, struct ivals *out);

#endif
