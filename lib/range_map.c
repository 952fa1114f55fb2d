/* SPDX-License-Identifier: MIT */
/*
 * range_map: page number -> uint8_t value, stored as maximal runs in a
 * B+-tree of 256-byte nodes keyed by run start.  Interface and contract:
 * range_map.h.
 *
 * Why a B+-tree
 * -------------
 * The map used to be an AVL tree with one 24-byte node per run.  A point
 * lookup in it chases ~1.44 log2(n) dependent pointers, each to a random
 * cache line: at 10^6 runs that is ~30 cache misses and about 50 times the
 * cost of a per-page bitmap lookup.  Here a lookup reads one node per
 * level, and a level has 13 to 27 times fewer nodes than the one below it,
 * so 10^6 runs take 5 or 6 levels of which only the last one or two miss
 * the cache; the search inside a node is a branch-free, vectorised count
 * over a fixed number of slots (with AVX2 where the CPU has it: see
 * "Descents"), so it costs no mispredicted branch and consecutive lookups
 * overlap in the CPU.  Same idea as the kernel's maple tree.
 *
 * Representation
 * --------------
 * A leaf holds up to LEAF_MAX runs as sorted starts (keys) with their
 * values.  A run's end is the next key in key order, or npages for the
 * last run; storing no length means coverage cannot be broken by an update
 * that forgets to adjust a neighbour: it follows from the key set alone.
 * An inner node holds up to INNER_MAX children and one pivot fewer:
 * child i holds the keys in [pivot[i - 1], pivot[i]), and pivot[i - 1] is
 * *exactly* the smallest key of child i (invariant 3).  So a descent by a
 * page lands in the leaf whose first key is <= page, and the run holding
 * the page is in that leaf, never in the one before.
 *
 * Unused key and pivot slots hold KEY_NONE (INT64_MAX, above any page,
 * since pages are < npages <= INT64_MAX), and both arrays have one extra
 * slot: KEY_NONE in an inner node, and in a leaf its upper bound hi, the
 * next leaf's first key (npages for the last leaf, invariant 11), which
 * is above every page the leaf holds.  Then "how many keys are <= page"
 * can be counted over all slots without looking at the fill, and the
 * slot after the found one can always be read: it is the next key,
 * KEY_NONE or hi.  With hi in the leaf, a leaf alone says which pages it
 * holds: [key[0], hi), key[0] being exact (invariant 3).  That is what
 * lets a lookup trust a leaf it did not reach by a descent (the direct
 * index, below), and it costs no space: the slot was there.
 *
 * Nodes live in chunks owned by the map and are named by a 32-bit index
 * (chunk = index >> CHUNK_SHIFT, slot = index & CHUNK_MASK), half the size
 * of a pointer, which is what lets an inner node hold 21 children.  Chunks
 * are 64-byte aligned so that a node spans exactly four cache lines.
 * Chunk 0 starts with one node and doubles up to CHUNK_NODES, so that a
 * map of a few runs costs a few hundred bytes; later chunks are always
 * CHUNK_NODES nodes, and from chunk SLAB_FIRST on they are carved eight
 * at a time from 2 MiB slabs offered for transparent huge pages
 * (invariant 10).
 *
 * Memory layout of a node (256 bytes, 64-byte aligned; static assertions
 * below check the offsets):
 *
 *	leaf                               inner
 *	  0 key[28]    u64 (27 + hi)         0 pivot[21] u64 (20 + KEY_NONE)
 *	224 value[27]  u8                  168 child[21] u32
 *	251 (pad)                          252 nr        u8  (children)
 *	252 nr         u8  (keys)          253 kind      u8
 *	253 kind       u8  (KIND_LEAF, KIND_INNER, KIND_FREE)
 *
 * A leaf holds 13 to 27 runs, so a run costs 256 / 27 = 9.5 to
 * 256 / 13 = 19.7 bytes of leaf, plus inner nodes (one per 13 to 21
 * nodes below, under 8% more), plus 8 bytes of chunk table per
 * CHUNK_NODES nodes, plus at most 1.5 chunks of unused nodes
 * (invariant 9) and 7 chunks of a slab not handed out yet (invariant 10:
 * only past 16 chunks, ~190,000 runs: at most ~10 bytes per run),
 * plus the direct index of maps of two chunks or more (2 to 16 entries
 * of 4 bytes per node of capacity, see "The direct index": 2.1 bytes per
 * run at 10^6 runs laid out as in bench_range_map, at most ~5),
 * plus the map itself and one malloc header per
 * allocation: ~23 bytes per run at 10^6 runs and at most ~37 for large
 * maps (just past 16 chunks), under the 64-byte budget;
 * tests/test_range_map_scale.c prints the figures from 10^6 runs down.
 *
 * The direct index
 * ----------------
 * At 10^6 runs a descent is 6 levels, of which the last two or three miss
 * the cache one after the other, and their misses overlap little with the
 * next lookup's: ~100 ns a random lookup, ten times a bitmap's one miss.
 * So maps of at least INDEX_MIN_NODES nodes of capacity (two chunks,
 * from ~25,000 runs) have an array of node indices in front of the tree:
 * entry g for the granule of pages [g << index_shift, (g + 1) <<
 * index_shift), naming the leaf that holds the granule's first page.  A
 * lookup reads entry g and, if the node it names is live (< nr_nodes:
 * checked before the node is read, as a stale entry may name a node
 * whose chunk was given back), a leaf, and [key[0], hi) holds the page,
 * searches that leaf only: two dependent misses instead of a descent's
 * chain.  A granule that straddles two leaves names the first, so
 * entry g + 1 (there is always one: index[index_len] is NIL) is tried
 * next for the pages past it; otherwise the lookup descends as before.
 *
 * The index is a cache, never required to be right: any entry, even
 * garbage, gives the right answer or a descent, because the check uses
 * only the node it names and invariants 3 and 11 (leaves' ranges are
 * disjoint, so a leaf that holds the page is *the* leaf).  So updates
 * need not keep it exact, only mostly right, within their O(log n):
 * after each set the entries of the leaves around its two ends (each
 * leaf and the next: splits, merges and borrows happen there; one
 * descent when both ends are in them), those of a leaf moved by
 * compact(), at most INDEX_FILL_MAX entries per leaf, and every
 * INDEX_SWEEP_EVERY sets the next INDEX_SWEEP_MAX entries of a
 * round-robin sweep (index_sweep()), so that every entry is rewritten now
 * and then even when updates never come near it.
 * Lookups do not write the index: concurrent readers stay readers.
 * Lookups trust the entry's leaf on a predicted branch, so the CPU
 * reads the leaf while the check is pending; choosing between entries g
 * and g + 1 without a branch, by the first leaf's hi, made the leaf's
 * loads wait for that hi and lookups 40% slower.
 *
 * Entries: INDEX_PER_NODE to twice that per node of capacity when
 * built, so that most granules lie inside one leaf (at 10^6 runs, 93% of
 * random lookups hit their first entry, 6.7% the next one, 0.2%
 * descend).  The index is sized only where the map may allocate:
 * ensure_capacity() (a holder's set finds its capacity there already,
 * so it allocates nothing) and shrink(), which already reallocates and
 * whose failures are harmless.  It is rebuilt, by one walk of the
 * leaves, O(n), when its ideal size has moved more than a factor of two
 * away (so it holds 2 to 16 entries per node of capacity; amortised
 * O(1) per node added), and if that malloc() fails the map keeps the
 * old index, or none: lookups descend.
 *
 * Invariants (checked, all of them, by gmem_range_map_validate())
 * ----------
 *  1. Shape: every leaf is at depth levels - 1 (levels >= 1 counts the
 *     leaf level); a node is a leaf iff it is at that depth
 *     (kind == KIND_LEAF); levels <= MAX_LEVELS.
 *  2. Fill: a leaf holds [LEAF_MIN, LEAF_MAX] keys and an inner node
 *     [INNER_MIN, INNER_MAX] children, except the root: a root leaf holds
 *     >= 1 key, a root inner node >= 2 children.  Unused key and pivot
 *     slots, and the extra last slot, hold KEY_NONE; unused child slots NIL.
 *  3. Ordering: keys and pivots strictly increase within a node; every key
 *     under child i of an inner node lies in [lo, hi), where lo is
 *     pivot[i - 1] (the parent's lo for i = 0) and hi is pivot[i] (the
 *     parent's hi for the last child); and the smallest key under each
 *     child is exactly its lo (exact pivots).  The root's [lo, hi) is
 *     [0, npages).  Hence an in-order walk of the leaves visits strictly
 *     increasing keys, and keys are unique.
 *  4. Coverage: the smallest key is 0 (from 3: the root's lo is 0 and is
 *     exact) and every key is < npages.  With lengths implied by the next
 *     key, the runs cover [0, npages) with no gap and no overlap.
 *  5. Merging: two runs adjacent in key order (also across leaves) have
 *     different values, so every run is maximal and the representation of
 *     a given page->value function is unique.  That uniqueness is what
 *     lets gmem_range_map_set() compute the new key set directly.
 *  6. Counts: nr_runs is the number of keys in the leaves; the live nodes
 *     are exactly indices [0, nr_nodes), each reached once from the root
 *     (validate counts the nodes it reaches and relies on 3 to rule out a
 *     node reached twice: its keys would repeat); free_list is NIL
 *     between calls (a set chains the nodes it frees on it, reuses them
 *     first, then fills the rest of the holes by moving the last nodes in,
 *     so memory follows the node count).
 *  7. Chunks: chunks[0 .. nr_chunks) are allocated and 64-byte aligned;
 *     chunk 0 holds chunk0_nodes nodes, a power of two in [1, CHUNK_NODES]
 *     and equal to CHUNK_NODES when there is more than one chunk;
 *     nr_chunks <= chunk_slots.
 *  8. Reservations: promised <= reserved * SET_MAX_NEW_NODES (0 when no
 *     reservation is held) and capacity >= nr_nodes + promised.
 *     promised is what the holders may still need: a reservation adds
 *     SET_MAX_NEW_NODES, a set takes off the nodes it added, and giving a
 *     reservation back caps it at reserved * SET_MAX_NEW_NODES.  A set
 *     adds nodes only by inserting keys; each insert adds at most
 *     levels + 1 <= MAX_LEVELS nodes (a split per level and a new root),
 *     and a set inserts at most two keys, at its start and at its end,
 *     so 2 * MAX_LEVELS + 1 nodes (the +1: the first insert may add a
 *     level) cover one set, and also the several sets libgmem's engine
 *     commits under one reservation, which insert at most two keys in
 *     all (a set that only rewrites whole runs keeps or drops keys, never
 *     inserts).  Every node a set may need is there before it changes
 *     anything, so an update never allocates and cannot fail half-way.
 *     Chunk 0 shrinks no lower than floor_nodes (1, or RESERVE_FLOOR
 *     once the map was reserved: 8 KiB that spare the engine a malloc()
 *     and free() per conversion of an otherwise idle map).
 *  9. Unused capacity is bounded: with more than one chunk,
 *     (nr_chunks - 1) * CHUNK_NODES < nr_nodes + promised + CHUNK_NODES / 2
 *     + SET_MAX_NEW_NODES; i.e. a chunk is released once half a chunk of
 *     spares would remain without it.  The gap between the grow point and
 *     the release point keeps an update pattern that oscillates around a
 *     chunk boundary from calling malloc()/free() every time.
 * 10. Slabs: chunks [0, SLAB_FIRST) are separate allocations; chunk k >=
 *     SLAB_FIRST is chunk (k - SLAB_FIRST) % SLAB_CHUNKS of a 2 MiB slab
 *     aligned to 2 MiB, which its first chunk starts; so each chunk
 *     follows the one before unless it starts a slab.  A slab is mapped
 *     when its first chunk is needed and unmapped with it.
 * 11. Upper bounds: each leaf's key[LEAF_HI] is the next leaf's first key
 *     in key order, npages for the last leaf (with 3: the hi its parent
 *     gives it).  Kept by every update of a leaf's first key (delete_range
 *     and a merge into an emptied leaf: set_prev_hi(), one descent), a
 *     split (the new right leaf takes the old hi, the left one the split
 *     key), a merge (the left leaf takes the right one's) and a borrow
 *     (the left leaf's hi is the moved boundary).
 * 12. Index shape: with an index, index_len is the number of granules of
 *     2^index_shift pages in [0, npages), and index[index_len] is NIL.
 *     Entries may hold anything (the index is a cache).
 *
 * MAX_LEVELS: a tree of h >= 2 levels has a root with >= 2 children and
 * inner nodes with >= INNER_MIN = 11 children, so >= 2 * 11^(h - 2)
 * leaves; with fewer than 2^32 nodes (32-bit indices) h <= 10.
 *
 * Complexity (n runs before the call, k runs the call touches, B = 13 the
 * least fill of a leaf)
 * ----------
 *  gmem_range_map_get()       O(1) if the index names the leaf, else
 *                        O(log n): levels <= log_11(n) + 2
 *  gmem_range_map_for_each()  O(log n + k)
 *  gmem_range_map_set()       O(log n + k) to plan and report; removing
 *                        the k keys takes one descent per leaf they
 *                        touch, O((k / B + 1) log n); inserting the at most
 *                        two new keys O(log n) each; moving nodes into the
 *                        holes O(log n) per node freed; with an
 *                        index, one to three descents more and at most
 *                        6 * INDEX_FILL_MAX entries written (plus
 *                        INDEX_FILL_MAX per leaf compact() moves), and
 *                        an O(n) rebuild where the capacity has moved
 *                        by over a factor of two (amortised O(1)).
 *  gmem_range_map_validate()  O(n), recursion depth <= MAX_LEVELS
 *
 * Limits and callbacks
 * --------------------
 *  - npages is in [1, INT64_MAX], so that the page count a set returns
 *    fits its int64_t and KEY_NONE is above every key;
 *    gmem_range_map_create() fails with EINVAL otherwise.
 *  - At most MAX_CHUNKS * CHUNK_NODES nodes: past that a set that adds
 *    runs returns -ENOMEM, like any other allocation failure.
 *  - A set allocates only when it inserts keys and the spares do not
 *    cover what that may need; a failing set has changed nothing and
 *    reported nothing.
 *  - Callbacks may read the map but must not modify it.  The changed
 *    callback of a set sees the map still in its old state, and is called
 *    for every changed sub-range whatever it returns.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "range_map.h"
#include "violation.h"

#define NIL UINT32_MAX
#define KEY_NONE ((uint64_t)INT64_MAX)

#define NODE_BYTES 256
#define LEAF_MAX 27u
#define LEAF_MIN 13u		/* LEAF_MAX / 2: a split of 28 gives 14 + 14 */
/* The leaf's extra key slot holds its upper bound (invariant 11). */
#define LEAF_HI LEAF_MAX
#define INNER_MAX 21u		/* children */
#define INNER_MIN 11u		/* (INNER_MAX + 1) / 2: a split of 22 gives 11 + 11 */

#define KIND_FREE 0
#define KIND_LEAF 1
#define KIND_INNER 2

#define MAX_LEVELS 10
#define SET_MAX_NEW_NODES (2u * MAX_LEVELS + 1)
/* The smallest power of two that holds a root leaf and one reservation. */
#define RESERVE_FLOOR 32u
_Static_assert(RESERVE_FLOOR >= 1 + SET_MAX_NEW_NODES &&
	       (RESERVE_FLOOR & (RESERVE_FLOOR - 1)) == 0, "reserve floor");

#define CHUNK_SHIFT 10
#define CHUNK_NODES (1u << CHUNK_SHIFT)
#define CHUNK_MASK (CHUNK_NODES - 1)
/* Keeps every index of every chunk below NIL. */
#define MAX_CHUNKS ((1u << (32 - CHUNK_SHIFT)) - 1)

/*
 * Chunks from SLAB_FIRST on are carved, SLAB_CHUNKS at a time, from 2 MiB
 * slabs aligned to 2 MiB and offered to the kernel for transparent huge
 * pages (invariant 10): one TLB entry then covers 8192 nodes instead of
 * 16.  At 10^6 runs a random lookup misses the TLB at its last two levels,
 * and on a virtual machine each miss is a two-dimensional page walk.
 * Only past SLAB_FIRST chunks (~190,000 runs) is the up to 7 chunks of a
 * slab not yet in use small beside the map: ~10 bytes per run at most.
 */
#define SLAB_FIRST 16u
#define SLAB_CHUNKS 8u
#define SLAB_BYTES ((size_t)SLAB_CHUNKS * CHUNK_NODES * NODE_BYTES)
_Static_assert(SLAB_BYTES == (2u << 20), "a slab is one x86-64 huge page");

/*
 * The direct index (see "The direct index" above): maps of at least
 * INDEX_MIN_NODES nodes of capacity have one, of at least INDEX_PER_NODE
 * entries per node; one refresh writes at most INDEX_FILL_MAX entries.
 */
#define INDEX_MIN_NODES (2u * CHUNK_NODES)
#define INDEX_PER_NODE 4u
#define INDEX_FILL_MAX 32u
#define INDEX_SWEEP_EVERY 4u
#define INDEX_SWEEP_MAX (2 * INDEX_FILL_MAX)

/* A variable for the white-box tests, which index small maps too. */
static uint64_t index_min_nodes = INDEX_MIN_NODES;

/* What glibc's malloc adds to each block; only used to make
 * gmem_range_map_bytes() honest about small maps. */
#define MALLOC_OVERHEAD 16u

struct bt_leaf {
	uint64_t key[LEAF_MAX + 1];	/* key[LEAF_HI]: the upper bound */
	uint8_t value[LEAF_MAX];
	uint8_t pad;
	uint8_t nr;
	uint8_t kind;
};

struct bt_inner {
	uint64_t pivot[INNER_MAX];
	uint32_t child[INNER_MAX];
	uint8_t nr;
	uint8_t kind;
};

union bt_node {
	struct bt_leaf leaf;
	struct bt_inner inner;
	uint8_t bytes[NODE_BYTES];
} __attribute__((aligned(64)));

_Static_assert(sizeof(union bt_node) == NODE_BYTES,
	       "node layout documented at the top of the file");
_Static_assert(offsetof(struct bt_leaf, value) == 224 &&
	       offsetof(struct bt_leaf, nr) == 252 &&
	       offsetof(struct bt_leaf, kind) == 253 &&
	       offsetof(struct bt_inner, child) == 168 &&
	       offsetof(struct bt_inner, nr) == 252 &&
	       offsetof(struct bt_inner, kind) == 253,
	       "node layout documented at the top of the file");

struct range_map {
	uint64_t npages;
	/*
	 * The direct index (a cache, see "The direct index"): entry g names
	 * a node that may be the leaf holding page g << index_shift; NULL
	 * when the map has none.  index_len entries plus one.
	 */
	uint32_t *index;
	uint64_t index_len;
	uint64_t index_sweep;	/* next entry the round-robin refresh visits */
	uint64_t index_cap;	/* the capacity the index was last sized for */
	uint32_t index_ticks;	/* sets, for the sweep's turn */
	uint32_t index_shift;
	uint64_t nr_runs;	/* keys in the leaves */
	union bt_node **chunks;
	uint32_t nr_chunks;
	uint32_t chunk_slots;	/* length of the chunks[] table */
	uint32_t chunk0_nodes;	/* capacity of chunks[0] */
	uint32_t nr_nodes;	/* live nodes: [0, nr_nodes) */
	uint32_t root;
	uint32_t levels;	/* 1: the root is a leaf */
	uint32_t reserved;	/* reservations held (gmem_range_map_reserve) */
	uint32_t promised;	/* nodes the holders may still need */
	uint32_t free_list;	/* nodes freed by the running set */
	/*
	 * Chunk 0 never shrinks below this: 1 until the map is first
	 * reserved, then room for the map's nodes plus one reservation
	 * (RESERVE_FLOOR), so that the engine's reserve/commit/unreserve
	 * cycle on a small map allocates nothing after the first change.
	 */
	uint32_t floor_nodes;
};

/* A root-to-leaf path: node[d] at depth d, and the child (or, at the leaf,
 * the key) slot taken there. */
struct path {
	uint32_t node[MAX_LEVELS];
	unsigned int slot[MAX_LEVELS];
};

static inline union bt_node *node(const struct range_map *map, uint32_t idx)
{
	assert(idx != NIL);
	return &map->chunks[idx >> CHUNK_SHIFT][idx & CHUNK_MASK];
}

static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

typedef uint64_t u64x2 __attribute__((vector_size(16)));

/*
 * How many of the @n slots of @a are <= @x (@n a multiple of 4).  Keys,
 * pages and KEY_NONE are all below 2^63, so a[i] <= x iff x - a[i] has no
 * sign bit: a subtraction and a shift per slot, two lanes at a time, summed
 * in two accumulators.  A plain count (cmp, sbb) is one serial chain of @n
 * flag dependencies, which made a lookup cost ~57 ns even in L1.  GCC's
 * vector extension keeps this portable; on x86-64 it is baseline SSE2.
 */
static inline __attribute__((always_inline)) unsigned int
count_le(const uint64_t *a, unsigned int n, uint64_t x)
{
	u64x2 xv = { x, x }, acc0 = { 0, 0 }, acc1 = { 0, 0 }, a0, a1;
	unsigned int i;

#pragma GCC unroll 8
	for (i = 0; i < n; i += 4) {
		memcpy(&a0, a + i, sizeof(a0));
		memcpy(&a1, a + i + 2, sizeof(a1));
		acc0 += (xv - a0) >> 63;
		acc1 += (xv - a1) >> 63;
	}
	acc0 += acc1;
	return n - (unsigned int)(acc0[0] + acc0[1]);
}

static uint64_t capacity(const struct range_map *map)
{
	if (map->nr_chunks == 1)
		return map->chunk0_nodes;
	return (uint64_t)map->nr_chunks * CHUNK_NODES;
}

/* ---- Memory: growing and shrinking the node chunks ---- */

static union bt_node *chunk_alloc(uint32_t nodes)
{
	return aligned_alloc(64, (size_t)nodes * sizeof(union bt_node));
}

/* Whether chunk @k is the first of a slab (invariant 10). */
static bool slab_starts(uint32_t k)
{
	return k >= SLAB_FIRST && (k - SLAB_FIRST) % SLAB_CHUNKS == 0;
}

/* A slab: mmap()ed with room to align, the rest given back at once. */
static union bt_node *slab_alloc(void)
{
	size_t len = 2 * SLAB_BYTES, head;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	head = (SLAB_BYTES - (uintptr_t)p % SLAB_BYTES) % SLAB_BYTES;
	if (head)
		munmap(p, head);
	munmap(p + head + SLAB_BYTES, SLAB_BYTES - head);
	p += head;
	/* A hint: without THP (or with it off) the slab works the same. */
	(void)madvise(p, SLAB_BYTES, MADV_HUGEPAGE);
	return (union bt_node *)(void *)p;
}

/* Give back chunk @k, the last one (or the map is going): a slab goes
 * with its first chunk, so shrink() unmaps it once all of it is unused. */
static void chunk_release(struct range_map *map, uint32_t k)
{
	if (k < SLAB_FIRST)
		free(map->chunks[k]);
	else if (slab_starts(k))
		munmap(map->chunks[k], SLAB_BYTES);
}

/* Chunk 0 to @nodes nodes, keeping the first @keep (realloc() would not
 * keep the 64-byte alignment). */
static int chunk0_resize(struct range_map *map, uint32_t nodes, uint32_t keep)
{
	union bt_node *chunk = chunk_alloc(nodes);

	if (!chunk)
		return -ENOMEM;
	memcpy(chunk, map->chunks[0], (size_t)keep * sizeof(*chunk));
	free(map->chunks[0]);
	map->chunks[0] = chunk;
	map->chunk0_nodes = nodes;
	return 0;
}

static int grow_once(struct range_map *map)
{
	union bt_node *chunk;

	if (map->nr_chunks == 1 && map->chunk0_nodes < CHUNK_NODES)
		return chunk0_resize(map, map->chunk0_nodes * 2,
				     map->chunk0_nodes);

	if (map->nr_chunks >= MAX_CHUNKS)
		return -ENOMEM;
	if (map->nr_chunks == map->chunk_slots) {
		uint32_t slots = map->chunk_slots * 2;
		union bt_node **table;

		if (slots > MAX_CHUNKS)
			slots = MAX_CHUNKS;
		table = realloc(map->chunks, slots * sizeof(*table));
		if (!table)
			return -ENOMEM;
		map->chunks = table;
		map->chunk_slots = slots;
	}
	if (map->nr_chunks < SLAB_FIRST)
		chunk = chunk_alloc(CHUNK_NODES);
	else if (slab_starts(map->nr_chunks))
		chunk = slab_alloc();
	else
		chunk = map->chunks[map->nr_chunks - 1] + CHUNK_NODES;
	if (!chunk)
		return -ENOMEM;
	map->chunks[map->nr_chunks++] = chunk;
	return 0;
}

static void index_resize_slow(struct range_map *map);

/* Every set comes here (through shrink()): most of the time the capacity
 * has not moved and there is nothing to do. */
static inline void index_resize(struct range_map *map)
{
	if (capacity(map) != map->index_cap)
		index_resize_slow(map);
}

/*
 * Make room for @nodes live nodes.  On failure the map is unchanged apart
 * from possibly more capacity, which is harmless.
 */
static int ensure_capacity(struct range_map *map, uint64_t nodes)
{
	while (capacity(map) < nodes) {
		if (grow_once(map))
			return -ENOMEM;
	}
	index_resize(map);
	return 0;
}

/* Live nodes plus what the reservations held may still need. */
static uint64_t nodes_promised(const struct range_map *map)
{
	return (uint64_t)map->nr_nodes + map->promised;
}

/* Give memory back once the nodes have shrunk well below the capacity. */
static void shrink(struct range_map *map)
{
	while (map->nr_chunks > 1 &&
	       nodes_promised(map) + CHUNK_NODES / 2 + SET_MAX_NEW_NODES <=
	       (uint64_t)(map->nr_chunks - 1) * CHUNK_NODES)
		chunk_release(map, --map->nr_chunks);

	while (map->chunk_slots > 1 && map->nr_chunks * 4 <= map->chunk_slots) {
		uint32_t slots = map->chunk_slots / 2;
		union bt_node **table;

		table = realloc(map->chunks, slots * sizeof(*table));
		if (!table)
			break;	/* keeping the bigger table is fine */
		map->chunks = table;
		map->chunk_slots = slots;
	}

	/* Chunk 0 halves at a quarter full (hysteresis against doubling),
	 * and a map down to its one root leaf gets its one-node chunk back:
	 * that is the idle state of most maps. */
	while (map->nr_chunks == 1 && map->chunk0_nodes > map->floor_nodes &&
	       (nodes_promised(map) * 4 <= map->chunk0_nodes ||
		nodes_promised(map) == 1)) {
		if (chunk0_resize(map, map->chunk0_nodes / 2, map->nr_nodes))
			break;
	}
	index_resize(map);
}

/* A node for the running set: one it freed, else a fresh index (capacity
 * was ensured before the set changed anything). */
static uint32_t node_take(struct range_map *map)
{
	uint32_t idx = map->free_list;

	if (idx != NIL) {
		map->free_list = node(map, idx)->inner.child[0];
		return idx;
	}
	assert(map->nr_nodes < capacity(map));
	return map->nr_nodes++;
}

static void node_free(struct range_map *map, uint32_t idx)
{
	union bt_node *n = node(map, idx);

	n->inner.kind = KIND_FREE;
	n->inner.child[0] = map->free_list;
	map->free_list = idx;
}

/* Store @n keys and values in @lf, KEY_NONE after them, and its upper
 * bound @hi (invariant 11). */
static void leaf_fill(struct bt_leaf *lf, const uint64_t *key,
		      const uint8_t *value, unsigned int n, uint64_t hi)
{
	unsigned int i;

	assert(n <= LEAF_MAX);
	memmove(lf->key, key, n * sizeof(*key));
	memmove(lf->value, value, n);
	/* All slots to the end, then hi over the last: the loop's fixed
	 * length, a multiple of 4 like the array, vectorises cleanly. */
	for (i = n; i <= LEAF_MAX; i++)
		lf->key[i] = KEY_NONE;
	lf->key[LEAF_HI] = hi;
	for (i = n; i < LEAF_MAX; i++)
		lf->value[i] = 0;
	lf->pad = 0;
	lf->nr = (uint8_t)n;
	lf->kind = KIND_LEAF;
}

/* Store @n children and the n - 1 pivots between them in @in. */
static void inner_fill(struct bt_inner *in, const uint64_t *pivot,
		       const uint32_t *child, unsigned int n)
{
	unsigned int i;

	assert(n >= 1 && n <= INNER_MAX);
	memmove(in->pivot, pivot, (n - 1) * sizeof(*pivot));
	memmove(in->child, child, n * sizeof(*child));
	for (i = n - 1; i < INNER_MAX; i++)
		in->pivot[i] = KEY_NONE;
	for (i = n; i < INNER_MAX; i++)
		in->child[i] = NIL;
	in->nr = (uint8_t)n;
	in->kind = KIND_INNER;
}

/* The smallest key under @idx. */
static uint64_t subtree_min(const struct range_map *map, uint32_t idx)
{
	const union bt_node *n = node(map, idx);

	while (n->inner.kind == KIND_INNER)
		n = node(map, n->inner.child[0]);
	return n->leaf.key[0];
}

/* ---- The direct index ---- */

/*
 * Point the index entries of the granules that start in leaf @idx at it,
 * from granule @g on (earlier ones are left alone) and at most @max of
 * them.  Returns the granule after the last one written.  Entries past
 * the leaf are never written, so this only ever makes entries right.
 */
static uint64_t index_fill_leaf(struct range_map *map, uint32_t idx,
				uint64_t g, uint64_t max)
{
	const struct bt_leaf *lf = &node(map, idx)->leaf;
	uint32_t shift = map->index_shift;
	uint64_t lo = lf->key[0], first, last, end;

	/* The first granule that starts at or after lo, and the one that
	 * holds the leaf's last page (hi <= npages: within the index). */
	first = (lo >> shift) + ((lo & ((1ULL << shift) - 1)) != 0);
	last = (lf->key[LEAF_HI] - 1) >> shift;
	if (g < first)
		g = first;
	if (g > last)
		return g;
	/* A plain run of stores (it vectorises): min(last + 1, g + max). */
	end = last - g < max ? last + 1 : g + max;
	for (; g < end; g++)
		map->index[g] = idx;
	return g;
}

/*
 * Move live node @from to free slot @to and repoint its parent, found by a
 * descent by the node's smallest key (exact pivots, invariant 3, make that
 * descent pass through it).
 */
static void node_move(struct range_map *map, uint32_t from, uint32_t to)
{
	uint32_t x = map->root;
	uint64_t key;

	*node(map, to) = *node(map, from);
	/* Entries naming @from fail the bounds check once it is gone; its
	 * leaf is found through @to at once. */
	if (map->index && node(map, to)->leaf.kind == KIND_LEAF)
		index_fill_leaf(map, to, 0, INDEX_FILL_MAX);
	if (x == from) {
		map->root = to;
		return;
	}
	key = subtree_min(map, to);
	for (;;) {
		struct bt_inner *in = &node(map, x)->inner;
		unsigned int c;

		assert(in->kind == KIND_INNER);
		c = count_le(in->pivot, INNER_MAX - 1, key);
		if (in->child[c] == from) {
			in->child[c] = to;
			return;
		}
		x = in->child[c];
	}
}

/*
 * Restore density (invariant 6) after a set: move the last live nodes into
 * the holes it left.  Chunks are released only afterwards, by shrink().
 */
static void compact(struct range_map *map)
{
	while (map->free_list != NIL) {
		uint32_t hole = map->free_list;

		map->free_list = node(map, hole)->inner.child[0];
		while (node(map, map->nr_nodes - 1)->inner.kind == KIND_FREE)
			map->nr_nodes--;
		if (hole >= map->nr_nodes)
			continue;
		node_move(map, map->nr_nodes - 1, hole);
		map->nr_nodes--;
	}
}

/* ---- Descents ---- */

/*
 * The leaf that direct-index entry @x names, if it holds @page, else
 * NULL.  Any node will do as long as it is live (bounds first: a stale
 * entry may name a node in a chunk given back) and a leaf whose
 * [key[0], hi) holds the page: leaves' ranges do not overlap, so that is
 * the leaf a descent would reach.  The three tests are combined without
 * branches; only the answer is one, and the CPU predicts it.
 */
static inline const struct bt_leaf *index_leaf(const struct range_map *map,
					       uint32_t x, uint64_t page)
{
	const struct bt_leaf *lf;

	if (x >= map->nr_nodes)
		return NULL;
	lf = &node(map, x)->leaf;
	return ((lf->kind == KIND_LEAF) & (lf->key[0] <= page) &
		(page < lf->key[LEAF_HI])) ? lf : NULL;
}

/*
 * The descents are compiled twice (range_map_search.h): "generic", with
 * count_le() above (SSE2 on x86-64, the baseline a shared library may
 * assume), and on x86-64 "avx2", with count_le_avx2() below, picked once
 * at load time if the CPU has AVX2.  At 10^6 runs a lookup is then ~250
 * instructions instead of ~470 (callgrind), so the CPU's window holds
 * about twice as many lookups and overlaps their cache misses: random
 * lookups take about half the time (bench/results.md).  AVX-512 versions
 * of the count were no faster than AVX2 on the EPYC measured (they need
 * mask-to-count steps AVX2's vector sum does not), so there are none.
 */
#define SEARCH_ISA generic
#define SEARCH_COUNT_LE count_le
#include "range_map_search.h"
#undef SEARCH_COUNT_LE
#undef SEARCH_ISA

#ifdef __x86_64__
#define RANGE_MAP_X86 1
#include <immintrin.h>

/* GCC and clang (the fuzzers' compiler) spell "compile for AVX2" apart. */
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif
/*
 * count_le() four slots at a time: a compare gives -1 per slot > @x
 * (signed compare: everything is below 2^63), summed across the vector.
 */
static inline __attribute__((always_inline)) unsigned int
count_le_avx2(const uint64_t *a, unsigned int n, uint64_t x)
{
	__m256i xv = _mm256_set1_epi64x((long long)x);
	__m256i acc = _mm256_setzero_si256();
	__m128i s;
	unsigned int i;

#pragma GCC unroll 8
	for (i = 0; i < n; i += 4)
		acc = _mm256_add_epi64(acc, _mm256_cmpgt_epi64(
				_mm256_loadu_si256((const __m256i *)(const void *)(a + i)),
				xv));
	s = _mm_add_epi64(_mm256_castsi256_si128(acc),
			  _mm256_extracti128_si256(acc, 1));
	s = _mm_add_epi64(s, _mm_unpackhi_epi64(s, s));
	return n + (unsigned int)_mm_cvtsi128_si64(s);
}

#define SEARCH_ISA avx2
#define SEARCH_COUNT_LE count_le_avx2
#include "range_map_search.h"
#undef SEARCH_COUNT_LE
#undef SEARCH_ISA
#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

struct search_ops {
	const char *name;
	uint8_t (*get)(const struct range_map *map, uint64_t page,
		       uint64_t *run_start, uint64_t *run_npages);
	void (*descend)(const struct range_map *map, uint64_t key,
			struct path *p);
};

static const struct search_ops search_isas[] = {
	{ "generic", get_generic, descend_generic },
#ifdef RANGE_MAP_X86
	{ "avx2", get_avx2, descend_avx2 },
#endif
};

/* Generic until search_pick() runs, so a call before it is still right. */
static struct search_ops search = { "generic", get_generic, descend_generic };

static bool search_isa_supported(const struct search_ops *ops)
{
#ifdef RANGE_MAP_X86
	__builtin_cpu_init();
	if (ops->get == get_avx2)
		return __builtin_cpu_supports("avx2");
#endif
	return true;
}

/* The widest the CPU has (later entries of search_isas[] are wider). */
static void __attribute__((constructor)) search_pick(void)
{
	unsigned int i;

	for (i = 0; i < sizeof(search_isas) / sizeof(search_isas[0]); i++)
		if (search_isa_supported(&search_isas[i]))
			search = search_isas[i];
}

const char *gmem_range_map_isa(void)
{
	return search.name;
}

int gmem_range_map_use_isa(const char *name)
{
	unsigned int i;

	for (i = 0; i < sizeof(search_isas) / sizeof(search_isas[0]); i++) {
		if (strcmp(search_isas[i].name, name))
			continue;
		if (!search_isa_supported(&search_isas[i]))
			return -ENOTSUP;
		search = search_isas[i];
		return 0;
	}
	return -EINVAL;
}

static inline void descend(const struct range_map *map, uint64_t key,
			   struct path *p)
{
	search.descend(map, key, p);
}

/* Move @p to the first key of the next leaf; false at the last leaf. */
static bool path_next_leaf(const struct range_map *map, struct path *p)
{
	int d;

	for (d = (int)map->levels - 2; d >= 0; d--) {
		const struct bt_inner *in = &node(map, p->node[d])->inner;

		if (p->slot[d] + 1 < in->nr) {
			uint32_t x = in->child[++p->slot[d]];

			for (d++; d < (int)map->levels; d++) {
				p->node[d] = x;
				p->slot[d] = 0;
				if (d + 1 < (int)map->levels)
					x = node(map, x)->inner.child[0];
			}
			return true;
		}
	}
	return false;
}

/* Every entry of the index right: a walk over all the leaves. */
static void index_build(struct range_map *map)
{
	struct path p;

	descend(map, 0, &p);
	do
		index_fill_leaf(map, p.node[map->levels - 1], 0, UINT64_MAX);
	while (path_next_leaf(map, &p));
}

/*
 * Size the index for the map's capacity, only from the paths that may
 * allocate (ensure_capacity(), shrink()): entries of at least
 * INDEX_PER_NODE per node of capacity, a power of two of pages each, and
 * rebuilt only when the ideal size is more than twice or less than half
 * the one there (so a map that oscillates around a chunk boundary does
 * not rebuild every time).  Without memory the old index stays, or there
 * is none: it is a cache.
 */
static void index_resize_slow(struct range_map *map)
{
	uint64_t cap = capacity(map), want = INDEX_PER_NODE * cap, len;
	uint32_t shift = 0, *index;

	if (cap < index_min_nodes) {
		free(map->index);
		map->index = NULL;
		map->index_len = 0;
		map->index_cap = cap;
		return;
	}
	while (shift < 63 && ((map->npages - 1) >> (shift + 1)) + 1 >= want)
		shift++;
	if (map->index && map->index_shift <= shift + 1 &&
	    shift <= map->index_shift + 1) {
		map->index_cap = cap;
		return;
	}
	len = ((map->npages - 1) >> shift) + 1;
	index = malloc((len + 1) * sizeof(*index));
	if (!index)
		return;
	free(map->index);
	map->index = index;
	map->index_len = len;
	map->index_shift = shift;
	map->index_sweep = 0;
	map->index_cap = cap;
	index[len] = NIL;
	index_build(map);
}

/*
 * Point the entries around @page at the leaf that holds it and those of
 * the next leaf at that one (at most INDEX_FILL_MAX each): an update
 * changes the leaves at its ends, and a split leaves the granules of the
 * new right half naming the left one.
 */
static uint64_t index_refresh(struct range_map *map, uint64_t page)
{
	uint64_t g = page >> map->index_shift;
	int d = (int)map->levels - 1;
	struct path p;

	descend(map, page, &p);
	g = g > INDEX_FILL_MAX / 2 ? g - INDEX_FILL_MAX / 2 : 0;
	index_fill_leaf(map, p.node[d], g, INDEX_FILL_MAX);
	if (path_next_leaf(map, &p))
		index_fill_leaf(map, p.node[d], 0, INDEX_FILL_MAX);
	/* Where the leaves refreshed end. */
	return node(map, p.node[d])->leaf.key[LEAF_HI];
}

/*
 * The round-robin refresh, every INDEX_SWEEP_EVERY sets: the entries of
 * the next few leaves (up to INDEX_SWEEP_MAX entries), from where the
 * last call stopped, so that every entry is rewritten now and then.
 */
static void index_sweep(struct range_map *map)
{
	uint64_t g = map->index_sweep, budget = INDEX_SWEEP_MAX;
	int d = (int)map->levels - 1;
	struct path p;

	if (++map->index_ticks % INDEX_SWEEP_EVERY)
		return;
	if (g >= map->index_len)
		g = 0;
	descend(map, g << map->index_shift, &p);
	do {
		uint64_t next = index_fill_leaf(map, p.node[d], g, budget);

		budget -= next - g;
		g = next;
	} while (budget > 0 && path_next_leaf(map, &p));
	map->index_sweep = g;
}

/* A cursor over the runs: the path with the leaf slot at the current key. */
struct cursor {
	struct path p;
	const struct bt_leaf *leaf;
};

static void cursor_at(const struct range_map *map, uint64_t page,
		      struct cursor *c)
{
	uint32_t leaf_depth = map->levels - 1;

	descend(map, page, &c->p);
	c->p.slot[leaf_depth]--;	/* the run holding page */
	c->leaf = &node(map, c->p.node[leaf_depth])->leaf;
}

static inline uint64_t cursor_key(const struct range_map *map,
				  const struct cursor *c)
{
	return c->leaf->key[c->p.slot[map->levels - 1]];
}

static inline uint8_t cursor_value(const struct range_map *map,
				   const struct cursor *c)
{
	return c->leaf->value[c->p.slot[map->levels - 1]];
}

/* Advance to the next run; false (cursor unusable) after the last one. */
static bool cursor_next(const struct range_map *map, struct cursor *c)
{
	uint32_t leaf_depth = map->levels - 1;

	if (++c->p.slot[leaf_depth] < c->leaf->nr)
		return true;
	if (!path_next_leaf(map, &c->p))
		return false;
	c->leaf = &node(map, c->p.node[leaf_depth])->leaf;
	return true;
}

static bool range_ok(const struct range_map *map, uint64_t start,
		     uint64_t npages)
{
	return npages != 0 && start < map->npages &&
	       npages <= map->npages - start;
}

/* ---- Updates ---- */

/*
 * The smallest key under path node @d became @min: the pivot that names it
 * is in the nearest ancestor where the path did not take child 0.  There
 * always is one: the leftmost subtree's smallest key is 0, never removed.
 */
static void fix_min(struct range_map *map, const struct path *p, int d,
		    uint64_t min)
{
	for (d--; d >= 0; d--) {
		if (p->slot[d] > 0) {
			node(map, p->node[d])->inner.pivot[p->slot[d] - 1] = min;
			return;
		}
	}
	assert(min == 0);
}

/*
 * The leaf after the one holding page @key - 1 now starts at @key: that
 * leaf's upper bound (invariant 11).  The tree's pivots must already be
 * right (fix_min()); the descent uses them only, not the leaf's count,
 * which this bound, still stale, could upset.
 */
static void set_prev_hi(struct range_map *map, uint64_t key)
{
	struct path p;

	assert(key > 0);
	descend(map, key - 1, &p);
	node(map, p.node[map->levels - 1])->leaf.key[LEAF_HI] = key;
}

/* Add child @child, whose smallest key is @pivot, right after the child the
 * path took at depth @d; splits cascade up and may add a root. */
static void inner_insert(struct range_map *map, const struct path *p, int d,
			 uint64_t pivot, uint32_t child)
{
	uint64_t q[INNER_MAX];
	uint32_t c[INNER_MAX + 1];
	struct bt_inner *in;
	unsigned int s, n, a;
	uint32_t right;

	if (d < 0) {
		uint32_t root = node_take(map);

		c[0] = map->root;
		c[1] = child;
		inner_fill(&node(map, root)->inner, &pivot, c, 2);
		map->root = root;
		map->levels++;
		assert(map->levels <= MAX_LEVELS);
		return;
	}
	in = &node(map, p->node[d])->inner;
	s = p->slot[d];
	n = in->nr;
	memcpy(q, in->pivot, s * sizeof(*q));
	q[s] = pivot;
	memcpy(q + s + 1, in->pivot + s, (n - 1 - s) * sizeof(*q));
	memcpy(c, in->child, (s + 1) * sizeof(*c));
	c[s + 1] = child;
	memcpy(c + s + 2, in->child + s + 1, (n - 1 - s) * sizeof(*c));
	n++;
	if (n <= INNER_MAX) {
		inner_fill(in, q, c, n);
		return;
	}
	a = n / 2;
	right = node_take(map);
	in = &node(map, p->node[d])->inner;
	inner_fill(in, q, c, a);
	inner_fill(&node(map, right)->inner, q + a, c + a, n - a);
	inner_insert(map, p, d - 1, q[a - 1], right);
}

/* Insert @key (not present, > 0) with @value. */
static void insert_key(struct range_map *map, uint64_t key, uint8_t value)
{
	uint64_t k[LEAF_MAX + 1];
	uint8_t v[LEAF_MAX + 1];
	int d = (int)map->levels - 1;
	struct bt_leaf *lf;
	unsigned int pos, n, a;
	struct path p;
	uint32_t right;
	uint64_t hi;

	descend(map, key, &p);
	lf = &node(map, p.node[d])->leaf;
	pos = p.slot[d];
	n = lf->nr;
	assert(pos >= 1 && lf->key[pos - 1] < key);
	memcpy(k, lf->key, pos * sizeof(*k));
	memcpy(v, lf->value, pos);
	k[pos] = key;
	v[pos] = value;
	memcpy(k + pos + 1, lf->key + pos, (n - pos) * sizeof(*k));
	memcpy(v + pos + 1, lf->value + pos, n - pos);
	n++;
	map->nr_runs++;
	hi = lf->key[LEAF_HI];
	if (n <= LEAF_MAX) {
		leaf_fill(lf, k, v, n, hi);
		return;
	}
	/* The new leaf follows this one: it takes its upper bound, and its
	 * first key is this one's. */
	a = n / 2;
	right = node_take(map);
	lf = &node(map, p.node[d])->leaf;
	leaf_fill(lf, k, v, a, k[a]);
	leaf_fill(&node(map, right)->leaf, k + a, v + a, n - a, hi);
	inner_insert(map, &p, d - 1, k[a], right);
}

/* Drop child @s + 1 of @in and the pivot before it. */
static void inner_remove(struct bt_inner *in, unsigned int s)
{
	uint64_t q[INNER_MAX];
	uint32_t c[INNER_MAX];
	unsigned int n = in->nr;

	memcpy(q, in->pivot, s * sizeof(*q));
	memcpy(q + s, in->pivot + s + 1, (n - 2 - s) * sizeof(*q));
	memcpy(c, in->child, (s + 1) * sizeof(*c));
	memcpy(c + s + 1, in->child + s + 2, (n - 2 - s) * sizeof(*c));
	inner_fill(in, q, c, n - 1);
}

/*
 * Path node @d may be under-full: merge it with a sibling or even the two
 * out, then fix the parent the same way.  A root inner node left with one
 * child gives way to it.
 */
static void rebalance(struct range_map *map, const struct path *p, int d)
{
	union bt_node *n = node(map, p->node[d]), *l, *r;
	struct bt_inner *parent;
	unsigned int s, ls, nl, nr;
	uint32_t li, ri;

	if (d == 0) {
		if (n->inner.kind == KIND_INNER && n->inner.nr == 1) {
			map->root = n->inner.child[0];
			node_free(map, p->node[0]);
			map->levels--;
		}
		return;
	}
	if (n->inner.nr >= (n->inner.kind == KIND_LEAF ? LEAF_MIN : INNER_MIN))
		return;

	parent = &node(map, p->node[d - 1])->inner;
	s = p->slot[d - 1];
	ls = s > 0 ? s - 1 : s;		/* the pair is children ls, ls + 1 */
	li = parent->child[ls];
	ri = parent->child[ls + 1];
	l = node(map, li);
	r = node(map, ri);
	nl = l->inner.nr;
	nr = r->inner.nr;

	if (n->inner.kind == KIND_LEAF) {
		uint64_t k[2 * LEAF_MAX];
		uint8_t v[2 * LEAF_MAX];
		unsigned int t = nl + nr;

		memcpy(k, l->leaf.key, nl * sizeof(*k));
		memcpy(v, l->leaf.value, nl);
		memcpy(k + nl, r->leaf.key, nr * sizeof(*k));
		memcpy(v + nl, r->leaf.value, nr);
		if (t <= LEAF_MAX) {
			/* The merged leaf ends where the right one did. */
			leaf_fill(&l->leaf, k, v, t, r->leaf.key[LEAF_HI]);
			node_free(map, ri);
			inner_remove(parent, ls);
			/* Only an emptied leaf merged with its right sibling
			 * gets a new smallest key, and the leaf before it a
			 * new upper bound. */
			if (nl == 0) {
				fix_min(map, p, d, k[0]);
				set_prev_hi(map, k[0]);
			}
			rebalance(map, p, d - 1);
			return;
		}
		/* Both keep >= LEAF_MIN; an empty leaf always merges, so
		 * the left one keeps its smallest key, and only the
		 * boundary between the two moves. */
		leaf_fill(&l->leaf, k, v, t / 2, k[t / 2]);
		leaf_fill(&r->leaf, k + t / 2, v + t / 2, t - t / 2,
			  r->leaf.key[LEAF_HI]);
		parent->pivot[ls] = k[t / 2];
	} else {
		uint64_t q[2 * INNER_MAX];
		uint32_t c[2 * INNER_MAX];
		unsigned int t = nl + nr;

		memcpy(q, l->inner.pivot, (nl - 1) * sizeof(*q));
		q[nl - 1] = parent->pivot[ls];
		memcpy(q + nl, r->inner.pivot, (nr - 1) * sizeof(*q));
		memcpy(c, l->inner.child, nl * sizeof(*c));
		memcpy(c + nl, r->inner.child, nr * sizeof(*c));
		if (t <= INNER_MAX) {
			inner_fill(&l->inner, q, c, t);
			node_free(map, ri);
			inner_remove(parent, ls);
			rebalance(map, p, d - 1);
			return;
		}
		inner_fill(&l->inner, q, c, t / 2);
		inner_fill(&r->inner, q + t / 2, c + t / 2, t - t / 2);
		parent->pivot[ls] = q[t / 2 - 1];
	}
}

/*
 * Remove every key in [lo, hi] (lo >= 1, so key 0 stays and the tree never
 * empties): one leaf at a time, each followed by a rebalance, then a new
 * descent, since the rebalance may have moved keys between leaves.
 */
static void delete_range(struct range_map *map, uint64_t lo, uint64_t hi)
{
	struct path p;

	assert(lo >= 1 && lo <= hi);
	for (;;) {
		int d = (int)map->levels - 1;
		struct bt_leaf *lf;
		unsigned int i, j, n;

		descend(map, lo, &p);
		lf = &node(map, p.node[d])->leaf;
		i = p.slot[d];
		if (i > 0 && lf->key[i - 1] == lo)
			i--;		/* first key >= lo */
		if (i == lf->nr) {
			if (!path_next_leaf(map, &p))
				return;
			lf = &node(map, p.node[d])->leaf;
			i = 0;
		}
		n = lf->nr;
		for (j = i; j < n && lf->key[j] <= hi; j++)
			;
		if (j == i)
			return;
		memmove(lf->key + i, lf->key + j, (n - j) * sizeof(*lf->key));
		memmove(lf->value + i, lf->value + j, n - j);
		leaf_fill(lf, lf->key, lf->value, n - (j - i),
			  lf->key[LEAF_HI]);
		map->nr_runs -= j - i;
		if (i == 0 && lf->nr > 0) {
			fix_min(map, &p, d, lf->key[0]);
			set_prev_hi(map, lf->key[0]);
		}
		rebalance(map, &p, d);
	}
}

/* ---- Public interface ---- */

struct range_map *gmem_range_map_create(uint64_t npages, uint8_t initial)
{
	struct range_map *map;
	uint64_t key = 0;

	/* The page count set() returns must fit its int64_t. */
	if (npages == 0 || npages > (uint64_t)INT64_MAX) {
		errno = EINVAL;
		return NULL;
	}
	map = malloc(sizeof(*map));
	if (!map)
		return NULL;
	/* One leaf, the root, holding one run; no index (small maps). */
	*map = (struct range_map){
		.npages = npages, .nr_runs = 1, .nr_chunks = 1,
		.chunk_slots = 1, .chunk0_nodes = 1, .floor_nodes = 1,
		.nr_nodes = 1, .root = 0, .levels = 1, .free_list = NIL,
	};
	map->chunks = malloc(sizeof(*map->chunks));
	if (!map->chunks)
		goto err_map;
	map->chunks[0] = chunk_alloc(1);
	if (!map->chunks[0])
		goto err_table;
	leaf_fill(&node(map, 0)->leaf, &key, &initial, 1, npages);
	return map;

err_table:
	free(map->chunks);
err_map:
	free(map);
	return NULL;
}

void gmem_range_map_destroy(struct range_map *map)
{
	uint32_t i;

	if (!map)
		return;
	for (i = 0; i < map->nr_chunks; i++)
		chunk_release(map, i);
	free(map->chunks);
	free(map->index);
	free(map);
}

uint64_t gmem_range_map_npages(const struct range_map *map)
{
	return map->npages;
}

uint8_t gmem_range_map_get(const struct range_map *map, uint64_t page,
		      uint64_t *run_start, uint64_t *run_npages)
{
	return search.get(map, page, run_start, run_npages);
}

/*
 * @fn must not modify the map; reading it is fine.
 */
int gmem_range_map_for_each(const struct range_map *map, uint64_t start,
		       uint64_t npages, range_map_run_fn fn, void *arg)
{
	uint64_t end = start + npages, run, run_end;
	struct cursor c;
	bool more;

	if (!range_ok(map, start, npages))
		return -EINVAL;
	cursor_at(map, start, &c);
	do {
		uint8_t value = cursor_value(map, &c);
		int ret;

		run = max_u64(cursor_key(map, &c), start);
		more = cursor_next(map, &c);
		run_end = more ? cursor_key(map, &c) : map->npages;
		ret = fn(arg, run, min_u64(run_end, end) - run, value);
		if (ret)
			return ret;
	} while (more && run_end < end);
	return 0;
}

/*
 * Reservations are counted: each adds SET_MAX_NEW_NODES to promised, and
 * capacity stays at least nr_nodes + promised (invariant 8), so the sets of
 * every holder find their nodes, whichever order they come in.  A holder
 * gives its reservation back with gmem_range_map_unreserve() after its set
 * (or instead of it).
 */
int gmem_range_map_reserve(struct range_map *map)
{
	int err = ensure_capacity(map, nodes_promised(map) +
					SET_MAX_NEW_NODES);

	if (!err) {
		map->reserved++;
		map->promised += SET_MAX_NEW_NODES;
		/* A map that is reserved once is reserved again: keep the
		 * room (see floor_nodes). */
		if (map->floor_nodes < RESERVE_FLOOR &&
		    map->chunk0_nodes >= RESERVE_FLOOR)
			map->floor_nodes = RESERVE_FLOOR;
	}
	return err;
}

void gmem_range_map_unreserve(struct range_map *map)
{
	uint32_t cap;

	assert(map->reserved > 0);
	map->reserved--;
	/* What the others may still need is at most their full share. */
	cap = map->reserved * SET_MAX_NEW_NODES;
	if (map->promised > cap)
		map->promised = cap;
	shrink(map);
}

/*
 * @changed is called with the map still in its old state; it may read the
 * map but must not modify it.
 */
int64_t gmem_range_map_set(struct range_map *map, uint64_t start, uint64_t npages,
		      uint8_t value, range_map_run_fn changed, void *arg)
{
	uint64_t end = start + npages, changed_pages = 0, rs, run, run_end;
	bool need_start, need_end = false, key_at_start, key_at_end = false;
	uint8_t end_value = 0, old;
	unsigned int inserts, new_nodes;
	uint32_t nodes_before;
	struct cursor c;
	bool more;

	if (!range_ok(map, start, npages))
		return -EINVAL;

	/*
	 * By invariant 5 the result is unique: a key at start iff start is 0
	 * or the page before keeps a value other than @value, a key at end
	 * iff the page at end keeps a value other than @value.  Every other
	 * key in [start, end] goes.  Keys already there are kept in place,
	 * so only a key that is new is inserted.
	 */
	gmem_range_map_get(map, start, &rs, NULL);
	key_at_start = rs == start;
	need_start = start == 0 ||
		     gmem_range_map_get(map, start - 1, NULL, NULL) != value;
	if (end < map->npages) {
		end_value = gmem_range_map_get(map, end, &rs, NULL);
		key_at_end = rs == end;
		need_end = end_value != value;
	}
	inserts = (need_start && !key_at_start) + (need_end && !key_at_end);

	/*
	 * The only allocation, before any change: after it nothing fails.
	 * Each insert adds at most levels + 1 nodes, and the first may add a
	 * level.  A lone root leaf (most maps, most of the time) is exact
	 * instead: removals only empty it, and it splits, into two leaves
	 * and a root, only if the new keys overflow it; without that a map
	 * of one leaf would grow and shrink its chunk on every set.  A
	 * holder's promise covers either bound: no allocation.
	 */
	if (map->levels == 1)
		new_nodes = node(map, map->root)->leaf.nr + inserts > LEAF_MAX ?
			    2 : 0;
	else
		new_nodes = inserts ? inserts * (map->levels + 1) +
				      (inserts - 1) : 0;
	if (new_nodes && ensure_capacity(map, (uint64_t)map->nr_nodes +
					 new_nodes))
		return -ENOMEM;

	/* One walk, before anything changes: count and report. */
	cursor_at(map, start, &c);
	do {
		old = cursor_value(map, &c);
		run = max_u64(cursor_key(map, &c), start);
		more = cursor_next(map, &c);
		run_end = min_u64(more ? cursor_key(map, &c) : map->npages,
				  end);
		if (old != value) {
			changed_pages += run_end - run;
			/* Every change is reported whatever the callback
			 * returns: the update goes ahead regardless. */
			if (changed)
				(void)changed(arg, run, run_end - run, old);
		}
	} while (more && run_end < end);
	if (changed_pages == 0)
		return 0;	/* unique representation: nothing to do */

	nodes_before = map->nr_nodes;
	if (need_start && key_at_start) {
		struct path p;
		int d = (int)map->levels - 1;

		descend(map, start, &p);
		node(map, p.node[d])->leaf.value[p.slot[d] - 1] = value;
	}
	{
		uint64_t lo = need_start ? start + 1 : start;
		uint64_t hi = need_end ? end - 1 : end;

		if (lo <= hi)
			delete_range(map, lo, hi);
	}
	if (need_start && !key_at_start)
		insert_key(map, start, value);
	if (need_end && !key_at_end)
		insert_key(map, end, end_value);

	/* Nodes taken from the free list were counted in nodes_before; the
	 * rest of the list is about to go. */
	compact(map);
	if (map->nr_nodes > nodes_before) {
		uint32_t added = map->nr_nodes - nodes_before;

		map->promised -= added < map->promised ? added : map->promised;
	}
	/* Nodes are where they stay now: point the index at the leaves
	 * around the change, and sweep on (O(log n): at most three
	 * descents, one when the change is within a leaf and not a sweep's
	 * turn). */
	if (map->index) {
		if (index_refresh(map, start) <= end && end < map->npages)
			index_refresh(map, end);
		index_sweep(map);
	}
	shrink(map);
	return (int64_t)changed_pages;
}

uint64_t gmem_range_map_nr_runs(const struct range_map *map)
{
	return map->nr_runs;
}

size_t gmem_range_map_bytes(const struct range_map *map)
{
	size_t bytes = sizeof(*map) + MALLOC_OVERHEAD;

	if (map->index)
		bytes += (map->index_len + 1) * sizeof(*map->index) +
			 MALLOC_OVERHEAD;

	bytes += map->chunk_slots * sizeof(*map->chunks) + MALLOC_OVERHEAD;
	bytes += map->chunk0_nodes * sizeof(union bt_node) + MALLOC_OVERHEAD;
	if (map->nr_chunks <= SLAB_FIRST) {
		bytes += (size_t)(map->nr_chunks - 1) *
			 (CHUNK_NODES * sizeof(union bt_node) + MALLOC_OVERHEAD);
		return bytes;
	}
	bytes += (size_t)(SLAB_FIRST - 1) *
		 (CHUNK_NODES * sizeof(union bt_node) + MALLOC_OVERHEAD);
	/* Whole slabs, including chunks not yet handed out. */
	bytes += (size_t)((map->nr_chunks - SLAB_FIRST + SLAB_CHUNKS - 1) /
			  SLAB_CHUNKS) * SLAB_BYTES;
	return bytes;
}

/* ---- Validation ---- */

struct validate_walk {
	const struct range_map *map;
	char *msg;
	size_t msg_len;
	uint64_t keys_seen;
	uint64_t nodes_seen;
	uint64_t prev_key;
	uint8_t prev_value;
};

/* Describe the first violation found in the caller's buffer: -EUCLEAN. */
#define violation(w, ...) gmem_violation((w)->msg, (w)->msg_len, __VA_ARGS__)

/* Invariants 2 and 3 for a leaf, 4 and 5 across leaves in key order. */
static int validate_leaf(struct validate_walk *w, uint32_t idx,
			 const struct bt_leaf *lf, bool is_root, uint64_t lo,
			 uint64_t hi)
{
	unsigned int i;

	if (lf->nr < (is_root ? 1 : LEAF_MIN) || lf->nr > LEAF_MAX)
		return violation(w, "leaf %" PRIu32 " holds %u keys", idx,
				 lf->nr);
	for (i = lf->nr; i < LEAF_MAX; i++)
		if (lf->key[i] != KEY_NONE)
			return violation(w, "leaf %" PRIu32 ": unused key slot "
					 "%u is %" PRIu64, idx, i, lf->key[i]);
	if (lf->key[0] != lo)
		return violation(w, "leaf %" PRIu32 " starts at %" PRIu64
				 ", its pivot says %" PRIu64, idx, lf->key[0],
				 lo);
	/* hi is exact too (pivots are): the next leaf's first key. */
	if (lf->key[LEAF_HI] != hi)
		return violation(w, "leaf %" PRIu32 " ends at %" PRIu64
				 ", the next leaf starts at %" PRIu64, idx,
				 lf->key[LEAF_HI], hi);
	for (i = 0; i < lf->nr; i++) {
		uint64_t key = lf->key[i];

		if (key >= hi)
			return violation(w, "leaf %" PRIu32 ": key %" PRIu64
					 " not below %" PRIu64, idx, key, hi);
		if (w->keys_seen > 0 && key <= w->prev_key)
			return violation(w, "run at %" PRIu64 " after run at %"
					 PRIu64, key, w->prev_key);
		if (w->keys_seen > 0 && lf->value[i] == w->prev_value)
			return violation(w, "runs at %" PRIu64 " and %" PRIu64
					 " both have value %u", w->prev_key,
					 key, lf->value[i]);
		w->keys_seen++;
		w->prev_key = key;
		w->prev_value = lf->value[i];
	}
	return 0;
}

/*
 * In-order check of the subtree at @idx, at @depth, whose keys must lie in
 * [lo, hi) with lo exact (invariants 1 to 6).
 */
static int validate_subtree(struct validate_walk *w, uint32_t idx,
			    uint32_t depth, uint64_t lo, uint64_t hi)
{
	const struct range_map *map = w->map;
	const union bt_node *n;
	const struct bt_inner *in;
	bool leaf_depth = depth + 1 == map->levels;
	unsigned int i;
	int ret;

	if (idx >= map->nr_nodes)
		return violation(w, "node %" PRIu32 " in the tree, nr_nodes %"
				 PRIu32, idx, map->nr_nodes);
	if (++w->nodes_seen > map->nr_nodes)
		return violation(w, "more than nr_nodes=%" PRIu32
				 " nodes in the tree", map->nr_nodes);
	n = node(map, idx);
	if (n->inner.kind != (leaf_depth ? KIND_LEAF : KIND_INNER))
		return violation(w, "node %" PRIu32 " at depth %" PRIu32
				 " of %" PRIu32 " has kind %u", idx, depth,
				 map->levels, n->inner.kind);
	if (leaf_depth)
		return validate_leaf(w, idx, &n->leaf, depth == 0, lo, hi);

	in = &n->inner;
	if (in->nr < (depth == 0 ? 2 : INNER_MIN) || in->nr > INNER_MAX)
		return violation(w, "inner node %" PRIu32 " has %u children",
				 idx, in->nr);
	for (i = in->nr - 1; i < INNER_MAX; i++)
		if (in->pivot[i] != KEY_NONE)
			return violation(w, "inner node %" PRIu32 ": unused "
					 "pivot slot %u is %" PRIu64, idx, i,
					 in->pivot[i]);
	for (i = in->nr; i < INNER_MAX; i++)
		if (in->child[i] != NIL)
			return violation(w, "inner node %" PRIu32 ": unused "
					 "child slot %u is %" PRIu32, idx, i,
					 in->child[i]);
	for (i = 0; i + 1 < in->nr; i++) {
		uint64_t below = i ? in->pivot[i - 1] : lo;

		if (in->pivot[i] <= below || in->pivot[i] >= hi)
			return violation(w, "inner node %" PRIu32 ": pivot %u "
					 "is %" PRIu64 ", outside (%" PRIu64
					 ", %" PRIu64 ")", idx, i,
					 in->pivot[i], below, hi);
	}
	for (i = 0; i < in->nr; i++) {
		ret = validate_subtree(w, in->child[i], depth + 1,
				       i ? in->pivot[i - 1] : lo,
				       i + 1 < in->nr ? in->pivot[i] : hi);
		if (ret)
			return ret;
	}
	return 0;
}

/* Invariants 7 to 10: the chunks, reservations, spare nodes, slabs. */
static int validate_memory(struct validate_walk *w)
{
	const struct range_map *map = w->map;
	uint32_t i;

	if (map->nr_chunks < 1 || map->nr_chunks > map->chunk_slots ||
	    map->nr_chunks > MAX_CHUNKS)
		return violation(w, "nr_chunks %" PRIu32 ", chunk_slots %"
				 PRIu32, map->nr_chunks, map->chunk_slots);
	for (i = 0; i < map->nr_chunks; i++)
		if (!map->chunks[i] || (uintptr_t)map->chunks[i] % 64)
			return violation(w, "chunk %" PRIu32 " of %" PRIu32
					 " missing or misaligned", i,
					 map->nr_chunks);
	for (i = SLAB_FIRST; i < map->nr_chunks; i++) {
		if (slab_starts(i) ?
		    (uintptr_t)map->chunks[i] % SLAB_BYTES != 0 :
		    map->chunks[i] != map->chunks[i - 1] + CHUNK_NODES)
			return violation(w, "chunk %" PRIu32 " is not where "
					 "its slab puts it", i);
	}
	if (map->chunk0_nodes < 1 || map->chunk0_nodes > CHUNK_NODES ||
	    (map->chunk0_nodes & (map->chunk0_nodes - 1)))
		return violation(w, "chunk 0 holds %" PRIu32 " nodes",
				 map->chunk0_nodes);
	if (map->nr_chunks > 1 && map->chunk0_nodes != CHUNK_NODES)
		return violation(w, "%" PRIu32 " chunks but chunk 0 holds %"
				 PRIu32 " nodes", map->nr_chunks,
				 map->chunk0_nodes);
	if (map->nr_nodes == 0 || map->nr_nodes > capacity(map))
		return violation(w, "nr_nodes %" PRIu32 ", capacity %" PRIu64,
				 map->nr_nodes, capacity(map));
	if ((uint64_t)map->promised >
	    (uint64_t)map->reserved * SET_MAX_NEW_NODES)
		return violation(w, "%" PRIu32 " nodes promised to %" PRIu32
				 " reservations", map->promised,
				 map->reserved);
	if (nodes_promised(map) > capacity(map))
		return violation(w, "%" PRIu32 " nodes promised but only %"
				 PRIu64 " nodes of capacity for %" PRIu32
				 " nodes", map->promised, capacity(map),
				 map->nr_nodes);
	if (map->nr_chunks > 1 &&
	    (uint64_t)(map->nr_chunks - 1) * CHUNK_NODES >=
	    nodes_promised(map) + CHUNK_NODES / 2 + SET_MAX_NEW_NODES)
		return violation(w, "%" PRIu32 " chunks kept for %" PRIu32
				 " nodes", map->nr_chunks, map->nr_nodes);
	if (map->free_list != NIL)
		return violation(w, "free list not empty between calls");
	if (map->index &&
	    (map->index_shift > 63 ||
	     map->index_len != ((map->npages - 1) >> map->index_shift) + 1 ||
	     map->index[map->index_len] != NIL))
		return violation(w, "index of %" PRIu64 " entries of 2^%" PRIu32
				 " pages for %" PRIu64 " pages",
				 map->index_len, map->index_shift, map->npages);
	return 0;
}

int gmem_range_map_validate(const struct range_map *map, char *msg,
		       size_t msg_len)
{
	struct validate_walk w = {
		.map = map, .msg = msg, .msg_len = msg_len,
	};
	int ret;

	if (map->npages == 0 || map->npages > (uint64_t)INT64_MAX)
		return violation(&w, "npages %" PRIu64 " out of range",
				 map->npages);
	ret = validate_memory(&w);
	if (ret)
		return ret;
	if (map->levels < 1 || map->levels > MAX_LEVELS)
		return violation(&w, "%" PRIu32 " levels", map->levels);
	ret = validate_subtree(&w, map->root, 0, 0, map->npages);
	if (ret)
		return ret;
	if (w.nodes_seen != map->nr_nodes)
		return violation(&w, "%" PRIu64 " nodes in the tree, nr_nodes %"
				 PRIu32, w.nodes_seen, map->nr_nodes);
	if (w.keys_seen != map->nr_runs)
		return violation(&w, "%" PRIu64 " keys in the leaves, nr_runs %"
				 PRIu64, w.keys_seen, map->nr_runs);
	return 0;
}

#ifdef GMEM_TESTING
void gmem_range_map_test_index_min(uint64_t nodes)
{
	index_min_nodes = nodes;
}

bool gmem_range_map_test_scribble(struct range_map *map, uint64_t seed)
{
	uint64_t g;

	if (!map->index)
		return false;
	for (g = 0; g < map->index_len; g++) {
		uint32_t r;

		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		r = (uint32_t)(seed >> 32);
		switch (seed >> 30 & 3) {
		case 0:		/* anything, mostly past the nodes */
			map->index[g] = r;
			break;
		case 1:		/* a live node or just past the last */
			map->index[g] = r % (map->nr_nodes + 4);
			break;
		case 2:
			map->index[g] = NIL;
			break;
		default:	/* left as it was */
			break;
		}
	}
	return true;
}
#endif
