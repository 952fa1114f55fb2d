/* SPDX-License-Identifier: MIT */
/*
 * The guest's devices (guest ABI section 7), all on I/O ports.
 */
#ifndef GMVM_DEVICES_H
#define GMVM_DEVICES_H

#include <stdint.h>
#include <stdio.h>

#include "gmvm/abi.h"

struct vm;

/* exit.c: the exit port. */
int exit_dev_init(struct vm *vm);

/* serial.c: COM1, output only. */
int console_init(struct vm *vm);
void console_flush(struct vm *vm);
void console_destroy(struct vm *vm);

/* dmatest.c: the DMA test device and its IOMMU listener. */
int dmatest_init(struct vm *vm);
/*
 * Forget pins and unregister the listener (before gmem_destroy).  The
 * unregister replays the removal of every shared run, so the IOMMU must
 * end up empty: -EUCLEAN (message printed) if it does not.
 */
int dmatest_teardown(struct vm *vm);
void dmatest_destroy(struct vm *vm);
/*
 * 0, or -EUCLEAN with a message printed if the IOMMU saw notifications
 * that contradict its mappings (a libgmem bug).
 */
int dmatest_check(struct vm *vm);

struct dmatest_stats {
	uint64_t commands[5];	/* by CMD 1..4; [0] unknown */
	uint64_t faults;	/* STATUS 1 */
	uint64_t bad;		/* STATUS 2 */
	uint64_t bytes;		/* FILLed or CHECKSUMed */
	uint64_t bad_accesses;	/* wrong size or alignment */
	unsigned int nr_maps;	/* mappings now */
	unsigned int max_maps;
	uint64_t map_calls;
	uint64_t unmap_calls;
	uint64_t refused;
};

void dmatest_get_stats(struct vm *vm, struct dmatest_stats *st);

#endif /* GMVM_DEVICES_H */
