/* SPDX-License-Identifier: MIT */
/*
 * How many runs of page state this host's mapping limit leaves room for
 * (`gmvm caps`).  The emulated backend gates each view of a page with the
 * protection of its host mapping, so every run of equal state is one
 * mapping (VMA) in each of the two views; Linux refuses a process more
 * than vm.max_map_count of them, and a conversion that would split past
 * it fails with -ENOMEM, which the guest sees as -12 (guest ABI
 * extension 3).
 */
#ifndef GMVM_MAP_LIMIT_H
#define GMVM_MAP_LIMIT_H

/* One mapping in the private view and one in the shared view. */
#define MAP_VMAS_PER_RUN 2

struct map_limit {
	long max_map_count;	/* /proc/sys/vm/max_map_count */
	long mappings;		/* this process's, now (/proc/self/maps) */
	long runs;		/* map_limit_runs() of the two */
};

/* (@max_map_count - @mappings) / MAP_VMAS_PER_RUN, never below 0. */
long map_limit_runs(long max_map_count, long mappings);

/* Read both counts: 0, or -errno (then *@l is unchanged). */
int map_limit_read(struct map_limit *l);

#endif /* GMVM_MAP_LIMIT_H */
