/* SPDX-License-Identifier: MIT */
/*
 * gmem_get_stats(): the counters the engine, the regions and the reclaim
 * thread keep, and the page counts, runs and map size read from the
 * page-state map, as one snapshot.  Takes vm->lock for the counters and
 * the map walk (reclaim.c takes its own lock for its counters after).
 */
#include "internal.h"

static int count_run(void *arg, uint64_t start, uint64_t npages, uint8_t value)
{
	struct gmem_stats *s = arg;

	if ((value & GMEM_V_STATE) == GMEM_PRIVATE)
		s->pages_private += npages;
	else
		s->pages_shared += npages;
	if (value & GMEM_V_UNPLUGGED)
		s->pages_unplugged += npages;
	return 0;
}

int gmem_get_stats(struct gmem_vm *vm, struct gmem_stats *out)
{
	struct gmem_stats st;

	pthread_mutex_lock(&vm->lock);
	st = vm->stats;
	st.size = sizeof(st);
	st.pages_private = 0;
	st.pages_shared = 0;
	st.pages_unplugged = 0;
	gmem_walk(vm, 0, vm->npages, count_run, &st);
	st.nr_runs = gmem_range_map_nr_runs(vm->map);
	st.map_bytes = gmem_range_map_bytes(vm->map);
	st.nr_regions = vm->nr_regions;
	pthread_mutex_unlock(&vm->lock);
	gmem_reclaim_stats(vm, &st);
	return gmem_copy_out(out, &st, sizeof(st));
}
