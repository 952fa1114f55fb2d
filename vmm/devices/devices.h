/* SPDX-License-Identifier: MIT */
/*
 * The guest's devices (guest ABI section 7), all on I/O ports.
 */
#ifndef GMVM_DEVICES_H
#define GMVM_DEVICES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <gmem/gmem.h>

#include "gmvm/abi.h"

struct vm;

/* exit.c: the exit port. */
int exit_dev_init(struct vm *vm);

/* serial.c: COM1, output only. */
int console_init(struct vm *vm);
void console_flush(struct vm *vm);
void console_destroy(struct vm *vm);

/*
 * dmatest.c: the DMA test device, behind a libgmem DMA mapper whose
 * backend is either gmvm's own software IOMMU (internal) or a device
 * process (external, dmadev.c).
 */
int dmatest_init(struct vm *vm);
/*
 * At exit, before gmem_destroy: forget pins, destroy the mapper (which
 * unmaps everything, forced), check that the backend ended up empty and,
 * for an external device, stop the process.  -EUCLEAN (message printed)
 * if something was left or the process did not exit cleanly.
 */
int dmatest_teardown(struct vm *vm);
void dmatest_destroy(struct vm *vm);
/*
 * 0, or -EUCLEAN with a message printed if the backend got requests a
 * correct mapper never makes, or gmem_dma_mapper_validate() fails (its
 * mappings are not the layout of the reachable pages, or the backend does
 * not hold exactly them: for an external device, its real mappings).
 * Thread-safe: may be called from any thread at any time.
 */
int dmatest_check(struct vm *vm);

struct dmatest_stats {
	uint64_t commands[5];	/* by CMD 1..4; [0] unknown */
	uint64_t faults;	/* STATUS 1 */
	uint64_t bad;		/* STATUS 2 */
	uint64_t no_resources;	/* STATUS 3: PIN with the pin table full */
	uint64_t bytes;		/* FILLed or CHECKSUMed */
	uint64_t bad_accesses;	/* wrong size or alignment */
	bool external;		/* a device process */
	int pid;		/* external: its pid */
	bool died;		/* external: it died during the run */
	/* The mapper's counters (the last ones if it was destroyed). */
	struct gmem_dma_stats dma;
};

void dmatest_get_stats(struct vm *vm, struct dmatest_stats *st);

#endif /* GMVM_DEVICES_H */
