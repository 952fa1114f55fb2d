/* SPDX-License-Identifier: MIT */
/*
 * swiommu: a strict software IOMMU for one device.  It holds the device's
 * DMA mappings (the backend side of a libgmem DMA mapper: map, unmap, cut,
 * merge) and the ranges the device holds pinned, and refuses and counts
 * every request a correct mapper never makes, so mapper bugs surface.
 *
 * Used three times: as the in-process DMA test device's IOMMU, as gmvm's
 * mirror of what an external device process was told, and as that device
 * process's own mapping table.
 */
#ifndef GMVM_SWIOMMU_H
#define GMVM_SWIOMMU_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gmem/gmem.h>

#include "gmvm/abi.h"

/* The DMA test device's pin table, whose size the guest ABI states. */
#define SWIOMMU_MAX_PINS GM_DMA_MAX_PINS

/* Op flags: GMEM_DISCARD_FORCED (pins do not refuse), and: */
#define SWIOMMU_CHECK (1u << 8)	/* validate only: change nothing, count
				   only violations and refusals */

struct swiommu_range {
	uint64_t start;
	uint64_t end;		/* exclusive */
};

struct swiommu_stats {
	uint64_t nr_maps;	/* mappings now */
	uint64_t max_maps;
	uint64_t map_calls;	/* ops done */
	uint64_t unmap_calls;
	uint64_t cut_calls;
	uint64_t merge_calls;
	uint64_t refused;	/* unmap/cut refused because of a pin */
	/* Violations: requests a correct mapper never makes (refused). */
	uint64_t bad_ranges;	/* empty, unaligned, wrapping or outside */
	uint64_t map_overlaps;	/* map over a live mapping */
	uint64_t unmap_mismatches;	/* unmap not exactly a live mapping */
	uint64_t cut_mismatches;	/* cut not inside one live mapping */
	uint64_t merge_mismatches;	/* merge not tiling >= 2 live ones */
};

struct swiommu {
	pthread_mutex_t lock;	/* everything below */
	uint64_t limit;		/* addresses are in [0, limit) */
	void *root;		/* tsearch tree of struct swiommu_range */
	/* Guest PINs, with their exact ADDR/LEN. */
	struct swiommu_range pins[SWIOMMU_MAX_PINS];
	unsigned int nr_pins;
	bool tearing_down;	/* every unmap/cut ignores pins */
	/* Bumped by every unmap or cut: lets a device tell a lost race from
	 * a bug. */
	uint64_t unmap_seq;
	/* The first pinned page the latest refused unmap/cut named. */
	uint64_t busy_gpa;
	struct swiommu_stats st;
};

/* An IOMMU for addresses [0, @limit). */
int swiommu_init(struct swiommu *s, uint64_t limit);
void swiommu_destroy(struct swiommu *s);

/*
 * The ops of struct gmem_dma_ops, strict.  Each returns 0, or
 *   -EINVAL  a violation (counted; nothing changed);
 *   -EAGAIN  unmap/cut without GMEM_DISCARD_FORCED of a range that
 *            intersects a pin (counted in refused; nothing changed); the
 *            first pinned page of the range is named to libgmem with
 *            gmem_report_busy() on the calling thread (the conversion
 *            that asked) and kept for swiommu_busy_gpa();
 *   -ENOMEM.
 * With SWIOMMU_CHECK they only say what the op would return (so that a
 * caller can do the real work in between and then commit, which cannot
 * fail validation while the caller serialises the ops).
 */
int swiommu_map(struct swiommu *s, uint64_t iova, uint64_t len,
		unsigned int flags);
int swiommu_unmap(struct swiommu *s, uint64_t iova, uint64_t len,
		  unsigned int flags);
int swiommu_cut(struct swiommu *s, uint64_t m_iova, uint64_t m_len,
		uint64_t iova, uint64_t len, unsigned int flags);
int swiommu_merge(struct swiommu *s, uint64_t iova, uint64_t len,
		  unsigned int flags);

/*
 * Is every page touched by [start, start + len) mapped?  If @seq is not
 * NULL it gets the unmap sequence number the answer is valid for.
 */
bool swiommu_is_mapped(struct swiommu *s, uint64_t start, uint64_t len,
		       uint64_t *seq);
/* The first pinned page named by the latest refused unmap or cut. */
uint64_t swiommu_busy_gpa(struct swiommu *s);
/* The current unmap sequence number. */
uint64_t swiommu_unmap_seq(struct swiommu *s);

/*
 * Pin [start, start + len) if every page of it is mapped: 0, -EFAULT (a
 * page is not mapped) or -ENOSPC (SWIOMMU_MAX_PINS pins held).
 */
int swiommu_pin(struct swiommu *s, uint64_t start, uint64_t len);
/* Drop a pin with exactly this range: 0 or -ENOENT. */
int swiommu_unpin(struct swiommu *s, uint64_t start, uint64_t len);
/* Forget every pin and let every later unmap or cut through (teardown). */
void swiommu_teardown(struct swiommu *s);

/*
 * Call @fn for each mapping, in address order, under the lock (@fn must
 * not call back into this swiommu).  Stops at the first non-zero return.
 */
int swiommu_report(struct swiommu *s,
		   int (*fn)(void *arg, uint64_t iova, uint64_t len),
		   void *arg);

void swiommu_get_stats(struct swiommu *s, struct swiommu_stats *st);

/* Violations so far (the sum of the mismatch counters). */
uint64_t swiommu_violations(const struct swiommu_stats *st);

/*
 * One line describing the violations in @st ("" if none), e.g. for
 * the DMA device's check.  Returns @buf.
 */
char *swiommu_describe(const struct swiommu_stats *st, char *buf,
		       size_t len);

#endif /* GMVM_SWIOMMU_H */
