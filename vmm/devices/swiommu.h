/* SPDX-License-Identifier: MIT */
/*
 * swiommu: an in-process software IOMMU for one device.  It holds the set
 * of guest ranges the device may reach (its DMA mappings) and the ranges
 * the device holds pinned.  It is fed only by libgmem's listener callbacks,
 * so the device sees exactly what the notifications said, right or wrong.
 */
#ifndef GMVM_SWIOMMU_H
#define GMVM_SWIOMMU_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define SWIOMMU_MAX_PINS 64

struct swiommu_range {
	uint64_t start;
	uint64_t end;		/* exclusive */
};

struct swiommu {
	pthread_mutex_t lock;	/* everything below */
	struct swiommu_range *maps;	/* sorted, disjoint, not adjacent */
	unsigned int nr_maps;
	unsigned int cap_maps;
	/* Guest PINs, with their exact ADDR/LEN. */
	struct swiommu_range pins[SWIOMMU_MAX_PINS];
	unsigned int nr_pins;
	bool tearing_down;	/* discards ignore pins */
	/* Bumped by every unmap: lets a device tell a lost race from a bug. */
	uint64_t unmap_seq;
	/* Notifications that did not match the mappings (libgmem bugs). */
	uint64_t map_overlaps;	/* populate of an already mapped page */
	uint64_t unmap_holes;	/* discard of a page that was not mapped */
	uint64_t nr_map_calls;
	uint64_t nr_unmap_calls;
	uint64_t nr_refused;	/* discards refused because of a pin */
	unsigned int max_maps;
};

int swiommu_init(struct swiommu *s);
void swiommu_destroy(struct swiommu *s);

/* Map [start, end): merges with neighbours.  0 or -ENOMEM. */
int swiommu_map(struct swiommu *s, uint64_t start, uint64_t len);
/*
 * Unmap [start, end), splitting a mapping if needed.  -EAGAIN (nothing
 * unmapped) if the range intersects a pinned range, unless tearing down.
 */
int swiommu_unmap(struct swiommu *s, uint64_t start, uint64_t len);
/*
 * Is every page touched by [start, start + len) mapped?  If @seq is not
 * NULL it gets the unmap sequence number the answer is valid for.
 */
bool swiommu_is_mapped(struct swiommu *s, uint64_t start, uint64_t len,
		       uint64_t *seq);
/* The current unmap sequence number. */
uint64_t swiommu_unmap_seq(struct swiommu *s);

/*
 * Pin [start, start + len) if every page of it is mapped: 0, -EFAULT (a
 * page is not mapped) or -ENOSPC (SWIOMMU_MAX_PINS pins held).
 */
int swiommu_pin(struct swiommu *s, uint64_t start, uint64_t len);
/* Drop a pin with exactly this range: 0 or -ENOENT. */
int swiommu_unpin(struct swiommu *s, uint64_t start, uint64_t len);
/* Forget every pin and let every later discard through (teardown). */
void swiommu_teardown(struct swiommu *s);

/* Call @fn for each mapping (for gmem_audit). */
int swiommu_report(struct swiommu *s,
		   int (*fn)(void *arg, uint64_t offset, uint64_t len),
		   void *arg);

#endif /* GMVM_SWIOMMU_H */
