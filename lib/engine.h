/* SPDX-License-Identifier: MIT */
/*
 * The engine's interface to its front ends: convert.c changes one range
 * (gmem_convert(), gmem_set_plugged()), batch.c a sorted list of ranges
 * (gmem_convert_batch()).  Both collect a delta, the runs whose value the
 * change alters, and hand it to the engine; convert.c explains the steps
 * and their order.  Internal to libgmem.
 *
 * Locking: the caller holds every page of the delta in the range lock;
 * runs are collected under vm->lock (gmem_delta_collect() is a
 * gmem_walk_ex() callback), and gmem_delta_apply() is entered with
 * vm->lock still held from that walk.
 */
#ifndef GMEM_ENGINE_H
#define GMEM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

struct gmem_vm;

struct run {
	uint64_t start, npages;	/* pages */
	uint8_t old, new;	/* map values */
	uint32_t seg;		/* batch: the (sorted) entry it belongs to */
};

/*
 * Runs a delta holds without allocating: a conversion of one range
 * changes at most a few runs (one for a range in one run, more across a
 * checkerboard), and the engine's hot path must not call malloc().
 */
#define DELTA_INLINE_RUNS 8

struct delta {
	struct run *runs;	/* inline_runs, or the heap past them */
	size_t nr, cap;
	uint64_t pages;		/* pages in the delta */
	uint8_t mask, bits;	/* new value = (old & ~mask) | bits */
	uint64_t busy_gpa;	/* -EAGAIN: the first page refused */
	uint32_t seg;		/* batch: the entry being collected */
	struct run inline_runs[DELTA_INLINE_RUNS];
};

/* Give back what a delta allocated (nothing for up to
 * DELTA_INLINE_RUNS runs). */
void gmem_delta_release(struct delta *d);

/*
 * gmem_walk_ex() callback adding each run whose value (old & ~mask) | bits
 * changes to delta @arg (entry d->seg): 0 or -ENOMEM.
 */
int gmem_delta_collect(void *arg, uint64_t start, uint64_t npages,
		       uint8_t value);

/*
 * Apply delta @d whose collection returned @ret: reserve @n_reserve map
 * nodes (step 1; each range of the change may clip two runs, which one
 * reservation covers), run steps 2 to 9 without vm->lock, and count a
 * failure.  Entered with vm->lock held, returns without it.  Returns the
 * pages changed or -errno; nothing changed on failure.
 */
int64_t gmem_delta_apply(struct gmem_vm *vm, struct delta *d, int64_t ret,
			 unsigned int n_reserve);

#endif /* GMEM_ENGINE_H */
