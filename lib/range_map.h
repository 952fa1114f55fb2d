/* SPDX-License-Identifier: MIT */
/*
 * range_map: a map from page numbers [0, npages) to small values, stored as
 * maximal runs of equal value in a balanced tree.  Internal to libgmem.
 *
 * Every page has exactly one value; the runs cover [0, npages) without gap
 * or overlap and no two adjacent runs have the same value.  Lookup and
 * update are O(log n) in the number of runs n.  Not thread-safe: the owner
 * serialises access.  See range_map.c for the invariants and the layout.
 */
#ifndef GMEM_RANGE_MAP_H
#define GMEM_RANGE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct range_map;

/* Called for each maximal sub-range whose value an update changes, in
 * ascending order, with the value it had before.  Returns 0 or stops the
 * walk with its (non-zero) return. */
typedef int (*range_map_run_fn)(void *arg, uint64_t start, uint64_t npages,
				uint8_t value);

/* A map of @npages pages (>= 1), all with value @initial.  NULL on ENOMEM. */
struct range_map *gmem_range_map_create(uint64_t npages, uint8_t initial);
void gmem_range_map_destroy(struct range_map *map);

uint64_t gmem_range_map_npages(const struct range_map *map);

/*
 * The value of page @page (< npages); if @run_start/@run_npages are not
 * NULL, the maximal run containing it.
 */
uint8_t gmem_range_map_get(const struct range_map *map, uint64_t page,
		      uint64_t *run_start, uint64_t *run_npages);

/*
 * Call @fn for each run intersecting [start, start + npages), clipped to
 * that range, in ascending order.  Returns 0, -EINVAL for a range outside
 * the map, or the first non-zero return of @fn.
 */
int gmem_range_map_for_each(const struct range_map *map, uint64_t start,
		       uint64_t npages, range_map_run_fn fn, void *arg);

/*
 * Take a reservation: until it is given back with gmem_range_map_unreserve(),
 * one gmem_range_map_set() by its holder cannot fail for lack of memory, even
 * if other sets run first (reservations are counted; each keeps room for
 * the nodes a set may add).  The guarantee assumes that every
 * set made while reservations are held is made by a holder (libgmem's
 * engine reserves for every conversion).  0 or -ENOMEM (nothing taken).
 */
int gmem_range_map_reserve(struct range_map *map);
void gmem_range_map_unreserve(struct range_map *map);

/*
 * Set [start, start + npages) to @value and merge equal neighbours.  If
 * @changed is not NULL it is called, before the function returns, for each
 * maximal sub-range whose value changed, with its old value (a page already
 * at @value is not reported).  Returns the number of pages that changed,
 * -EINVAL for an empty range or one outside the map, -ENOMEM if no
 * reservation is held and memory ran out (the map is then unchanged).
 * A valid call by the holder of a reservation cannot fail.
 * A non-zero return of @changed does not stop the update.
 */
int64_t gmem_range_map_set(struct range_map *map, uint64_t start, uint64_t npages,
		      uint8_t value, range_map_run_fn changed, void *arg);

/*
 * Lookups are compiled for any CPU ("generic") and, on x86-64, for
 * "avx2", used if the CPU has it (picked when the library is loaded).
 * gmem_range_map_isa() names the one in use; gmem_range_map_use_isa()
 * switches, for all maps, to the one named: 0, -EINVAL for an unknown
 * name, -ENOTSUP if the CPU lacks it.  For tests and benchmarks; not
 * thread-safe.
 */
const char *gmem_range_map_isa(void);
int gmem_range_map_use_isa(const char *name);

uint64_t gmem_range_map_nr_runs(const struct range_map *map);

/* Bytes of memory the map holds now (nodes, spares, the map itself). */
size_t gmem_range_map_bytes(const struct range_map *map);

/*
 * Check every invariant (ordering, balance, coverage, merging, cached
 * counts).  0, or -EUCLEAN with a description of the first violation in
 * @msg (if non-NULL).
 */
int gmem_range_map_validate(const struct range_map *map, char *msg,
		       size_t msg_len);

#ifdef GMEM_TESTING
/*
 * White-box hooks.  gmem_range_map_test_index_min(): maps of at least
 * @nodes nodes of capacity get a direct index (2048 by default), from
 * their next update on.  gmem_range_map_test_scribble(): overwrite the
 * map's direct index with node numbers from @seed, in range or not, of
 * leaves, inner nodes or none: a cache that is wrong must not change an
 * answer.  False if the map has no index.
 */
void gmem_range_map_test_index_min(uint64_t nodes);
bool gmem_range_map_test_scribble(struct range_map *map, uint64_t seed);
#endif

#endif /* GMEM_RANGE_MAP_H */
