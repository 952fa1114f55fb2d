/* SPDX-License-Identifier: MIT */
/*
 * Where a backing holds memory inside a small range (the pages a round
 * re-sends), at a cost that depends on the range only.  The snapshot's
 * snap_resident_walk() suits whole regions (round 0), but its
 * lseek(SEEK_HOLE) scans to the end of the data around the range, which
 * for a page inside 256 MiB of resident memory is 65536 entries per call.
 */
#ifndef GMVM_MIGRATE_RESIDENT_H
#define GMVM_MIGRATE_RESIDENT_H

#include "../snapshot/format.h"
#include "gmem/gmem.h"

/*
 * @fn for each maximal resident range of [start, end) (GPAs inside region
 * @ri, page aligned) in backing @id: mincore() on the view says which
 * pages are in memory; a page it calls absent is asked again with
 * lseek(SEEK_DATA) where the backing can seek (a memfd page swapped out is
 * absent from mincore() but still holds content; a guest_memfd cannot
 * seek, and its pages never swap).
 */
int mig_resident_range(const struct gmem_region_info *ri,
		       enum gmem_backing_id id, uint64_t start, uint64_t end,
		       int (*fn)(void *arg, uint64_t start, uint64_t end),
		       void *arg, struct snap_msg *m);

#endif
