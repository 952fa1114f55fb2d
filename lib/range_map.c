/* SPDX-License-Identifier: MIT */
/*
 * range_map: page number -> uint8_t value, stored as maximal runs in an AVL
 * tree keyed by run start.  Interface and contract: range_map.h.
 *
 * Representation
 * --------------
 * Each run is one node holding only its first page and its value; its end
 * is the start of the next run in key order, or npages for the last one.
 * Storing no length means coverage cannot be broken by an update that
 * forgets to adjust a neighbour: it follows from the key set alone.
 *
 * Nodes live in chunks owned by the map and are named by a 32-bit index
 * (chunk = index >> CHUNK_SHIFT, slot = index & CHUNK_MASK), which halves
 * the cost of links compared with pointers.  Chunk 0 starts small and is
 * doubled by realloc() up to CHUNK_NODES, so that a map of a few runs costs
 * a few hundred bytes; later chunks are always CHUNK_NODES nodes.
 *
 * Memory layout of a node (24 bytes on LP64 and ILP32, see the static
 * assertion below):
 *
 *	 0  start   u64   first page of the run
 *	 8  left    u32   index of the left child, or NIL
 *	12  right   u32   index of the right child, or NIL
 *	16  parent  u32   index of the parent, or NIL for the root
 *	20  value   u8    value of every page in the run
 *	21  height  u8    AVL height (a leaf is 1); 0 marks a node being freed
 *	22  (2 bytes of padding)
 *
 * A run therefore costs 24 bytes, plus 8 bytes of chunk table per
 * CHUNK_NODES runs, plus at most 1.5 chunks of unused nodes (see invariant
 * 8), plus the 40-byte map and one malloc header per allocation.  With
 * 10^6 runs that is 24.09 bytes per run (tests/test_range_map_scale.c).
 *
 * Invariants (checked, all of them, by gmem_range_map_validate())
 * ----------
 *  1. Ordering: an in-order walk of the tree visits strictly increasing
 *     starts.  Starts are unique, so they are the keys.
 *  2. Balance: every node's height is 1 + the larger of its children's
 *     heights (NIL has height 0) and those heights differ by at most 1.
 *     Hence the height is at most 1.44 log2(n + 2), below 47 for any n the
 *     32-bit indices allow, and MAX_HEIGHT bounds every recursion.
 *  3. Links: each child's parent field names its parent; the root's is NIL.
 *  4. Coverage: the smallest start is 0 and every start is < npages.  With
 *     lengths implied by the next start, the runs then cover [0, npages)
 *     with no gap and no overlap.
 *  5. Merging: two runs adjacent in key order have different values, so
 *     every run is maximal and the representation of a given page->value
 *     function is unique.  That uniqueness is what lets gmem_range_map_set()
 *     compute the new key set directly instead of splitting then merging.
 *  6. Density: the live nodes are exactly indices [0, nr_nodes), and
 *     nr_nodes is the number of runs (the cached count gmem_range_map_nr_runs()
 *     returns).  A node freed by an update is filled by moving the last
 *     node into it (parent links make the move O(1)), so there is no free
 *     list between calls and memory follows the run count.
 *  7. Chunks: chunks[0 .. nr_chunks) are allocated; chunk 0 holds
 *     chunk0_nodes nodes, a power of two in [MIN_CHUNK0_NODES, CHUNK_NODES]
 *     and equal to CHUNK_NODES when there is more than one chunk;
 *     nr_nodes <= capacity.
 *  8. Spare nodes: a set needs at most SET_MAX_NEW_NODES new nodes.  While
 *     k reservations are held, capacity >= nr_nodes + k * SET_MAX_NEW_NODES
 *     (nodes_promised()), so k sets by the holders cannot fail whatever
 *     other sets run in between.  Nodes are made available before the
 *     update starts (by gmem_range_map_reserve()
 *     or at the top of gmem_range_map_set()), so the update itself never
 *     allocates and cannot fail half-way.  Unused capacity is bounded:
 *     with more than one chunk, (nr_chunks - 1) * CHUNK_NODES <
 *     nr_nodes + CHUNK_NODES / 2 + SET_MAX_NEW_NODES; i.e. a chunk is
 *     released once half a chunk of spares would remain without it.  The
 *     gap between the grow point (< 2 spares) and the release point
 *     (> CHUNK_NODES / 2 spares) keeps an update pattern that oscillates
 *     around a chunk boundary from calling malloc()/free() every time.
 *
 * Complexity (n runs before the call, k runs the call touches)
 * ----------
 *  gmem_range_map_get()       O(log n)
 *  gmem_range_map_for_each()  O(log n + k)
 *  gmem_range_map_set()       O(log n + k): two in-order walks over the k runs,
 *                        two splits and a constant number of joins
 *                        (each O(log n), Blelloch et al., "Just Join for
 *                        Parallel Ordered Sets", SPAA 2016), then O(k) to
 *                        free the runs that disappeared and compact.
 *  gmem_range_map_validate()  O(n), recursion depth O(log n)
 *
 * Limits and callbacks
 * --------------------
 *  - npages is in [1, INT64_MAX], so that the page count a set returns
 *    fits its int64_t; gmem_range_map_create() fails with EINVAL otherwise.
 *  - At most MAX_CHUNKS * CHUNK_NODES (2^32 - 4096) runs: past that a set
 *    that adds runs returns -ENOMEM, like any other allocation failure.
 *  - A set allocates only when it adds more runs than it removes and the
 *    spares do not cover that; a failing set has changed nothing and
 *    reported nothing.
 *  - Callbacks may read the map but must not modify it.  The changed
 *    callback of a set sees the map still in its old state, and is called
 *    for every changed sub-range whatever it returns.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "range_map.h"

#define NIL UINT32_MAX

#define CHUNK_SHIFT 12
#define CHUNK_NODES (1u << CHUNK_SHIFT)
#define CHUNK_MASK (CHUNK_NODES - 1)
#define MIN_CHUNK0_NODES 8u
/* Keeps every index of every chunk below NIL. */
#define MAX_CHUNKS ((1u << (32 - CHUNK_SHIFT)) - 1)

/* A set keeps the run before it and the one after it and adds at most the
 * run it writes and the tail of the run it cut: two keys. */
#define SET_MAX_NEW_NODES 2u

/* Bound on the height of any valid tree (see invariant 2), used to stop a
 * walk of a corrupted tree that loops. */
#define MAX_HEIGHT 64

/* What glibc's malloc adds to each block; only used to make
 * gmem_range_map_bytes() honest about small maps. */
#define MALLOC_OVERHEAD 16u

struct range_node {
	uint64_t start;
	uint32_t left;
	uint32_t right;
	uint32_t parent;
	uint8_t value;
	uint8_t height;
};

_Static_assert(sizeof(struct range_node) == 24,
	       "range_node layout documented at the top of the file");

struct range_map {
	uint64_t npages;
	struct range_node **chunks;
	uint32_t nr_chunks;
	uint32_t chunk_slots;	/* length of the chunks[] table */
	uint32_t chunk0_nodes;	/* capacity of chunks[0] */
	uint32_t nr_nodes;	/* live nodes == runs: [0, nr_nodes) */
	uint32_t root;
	uint32_t reserved;	/* reservations held (gmem_range_map_reserve) */
};

static inline struct range_node *node(const struct range_map *map,
				      uint32_t idx)
{
	assert(idx != NIL);
	return &map->chunks[idx >> CHUNK_SHIFT][idx & CHUNK_MASK];
}

static inline int height(const struct range_map *map, uint32_t idx)
{
	return idx == NIL ? 0 : node(map, idx)->height;
}

static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t capacity(const struct range_map *map)
{
	if (map->nr_chunks == 1)
		return map->chunk0_nodes;
	return (uint64_t)map->nr_chunks * CHUNK_NODES;
}

/* ---- Memory: growing and shrinking the node chunks ---- */

static int grow_once(struct range_map *map)
{
	struct range_node *chunk;

	if (map->nr_chunks == 1 && map->chunk0_nodes < CHUNK_NODES) {
		uint32_t nodes = map->chunk0_nodes * 2;

		chunk = realloc(map->chunks[0], nodes * sizeof(*chunk));
		if (!chunk)
			return -ENOMEM;
		map->chunks[0] = chunk;
		map->chunk0_nodes = nodes;
		return 0;
	}

	if (map->nr_chunks >= MAX_CHUNKS)
		return -ENOMEM;
	if (map->nr_chunks == map->chunk_slots) {
		uint32_t slots = map->chunk_slots * 2;
		struct range_node **table;

		if (slots > MAX_CHUNKS)
			slots = MAX_CHUNKS;
		table = realloc(map->chunks, slots * sizeof(*table));
		if (!table)
			return -ENOMEM;
		map->chunks = table;
		map->chunk_slots = slots;
	}
	chunk = malloc(CHUNK_NODES * sizeof(*chunk));
	if (!chunk)
		return -ENOMEM;
	map->chunks[map->nr_chunks++] = chunk;
	return 0;
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
	return 0;
}

/* Give memory back once the runs have shrunk well below the capacity. */
static uint64_t nodes_promised(const struct range_map *map)
{
	/* Live nodes plus what every reservation held may still need. */
	return (uint64_t)map->nr_nodes +
	       (uint64_t)map->reserved * SET_MAX_NEW_NODES;
}

static void shrink(struct range_map *map)
{
	while (map->nr_chunks > 1 &&
	       nodes_promised(map) + CHUNK_NODES / 2 + SET_MAX_NEW_NODES <=
	       (uint64_t)(map->nr_chunks - 1) * CHUNK_NODES)
		free(map->chunks[--map->nr_chunks]);

	while (map->chunk_slots > 1 && map->nr_chunks * 4 <= map->chunk_slots) {
		uint32_t slots = map->chunk_slots / 2;
		struct range_node **table;

		table = realloc(map->chunks, slots * sizeof(*table));
		if (!table)
			break;	/* keeping the bigger table is fine */
		map->chunks = table;
		map->chunk_slots = slots;
	}

	while (map->nr_chunks == 1 && map->chunk0_nodes > MIN_CHUNK0_NODES &&
	       nodes_promised(map) + SET_MAX_NEW_NODES <=
	       map->chunk0_nodes / 4) {
		uint32_t nodes = map->chunk0_nodes / 2;
		struct range_node *chunk;

		chunk = realloc(map->chunks[0], nodes * sizeof(*chunk));
		if (!chunk)
			break;
		map->chunks[0] = chunk;
		map->chunk0_nodes = nodes;
	}
}

/*
 * During a set, nodes of runs that disappear are chained through ->left
 * (height 0 marks them) on a "spare" list.  They are reused first for the
 * new runs; the rest are holes that compact() fills.
 */
static uint32_t node_take(struct range_map *map, uint32_t *spare)
{
	uint32_t idx = *spare;

	if (idx != NIL) {
		*spare = node(map, idx)->left;
		return idx;
	}
	assert(map->nr_nodes < capacity(map));
	return map->nr_nodes++;
}

static void node_release_subtree(struct range_map *map, uint32_t idx,
				 uint32_t *spare)
{
	struct range_node *n;

	if (idx == NIL)
		return;
	n = node(map, idx);
	node_release_subtree(map, n->left, spare);
	node_release_subtree(map, n->right, spare);
	n->height = 0;
	n->left = *spare;
	*spare = idx;
}

/* Move live node @from to free slot @to, fixing the three links to it. */
static void node_move(struct range_map *map, uint32_t from, uint32_t to)
{
	struct range_node *dst = node(map, to);

	*dst = *node(map, from);
	if (dst->parent == NIL) {
		map->root = to;
	} else {
		struct range_node *p = node(map, dst->parent);

		if (p->left == from) {
			p->left = to;
		} else {
			assert(p->right == from);
			p->right = to;
		}
	}
	if (dst->left != NIL)
		node(map, dst->left)->parent = to;
	if (dst->right != NIL)
		node(map, dst->right)->parent = to;
}

/*
 * Restore density (invariant 6) after a set freed the nodes on @holes.
 * Chunks are released only afterwards, by shrink(), because the list
 * links of holes past the new end are still read here.
 */
static void compact(struct range_map *map, uint32_t holes)
{
	while (holes != NIL) {
		uint32_t hole = holes;

		holes = node(map, hole)->left;
		while (node(map, map->nr_nodes - 1)->height == 0)
			map->nr_nodes--;
		if (hole >= map->nr_nodes)
			continue;
		node_move(map, map->nr_nodes - 1, hole);
		map->nr_nodes--;
	}
}

/* ---- AVL primitives on indices ---- */

/* Make @l and @r the children of @x and recompute its height. */
static void node_link(struct range_map *map, uint32_t x, uint32_t l,
		      uint32_t r)
{
	struct range_node *n = node(map, x);
	int hl = height(map, l), hr = height(map, r);

	n->left = l;
	n->right = r;
	n->height = (uint8_t)(1 + (hl > hr ? hl : hr));
	if (l != NIL)
		node(map, l)->parent = x;
	if (r != NIL)
		node(map, r)->parent = x;
}

static uint32_t rotate_left(struct range_map *map, uint32_t x)
{
	uint32_t r = node(map, x)->right;

	node_link(map, x, node(map, x)->left, node(map, r)->left);
	node_link(map, r, x, node(map, r)->right);
	return r;
}

static uint32_t rotate_right(struct range_map *map, uint32_t x)
{
	uint32_t l = node(map, x)->left;

	node_link(map, x, node(map, l)->right, node(map, x)->right);
	node_link(map, l, node(map, l)->left, x);
	return l;
}

/* join() when @tl is more than one level taller than @tr. */
static uint32_t join_right(struct range_map *map, uint32_t tl, uint32_t k,
			   uint32_t tr)
{
	uint32_t l = node(map, tl)->left, c = node(map, tl)->right;
	uint32_t t;

	if (height(map, c) <= height(map, tr) + 1) {
		node_link(map, k, c, tr);
		if (height(map, k) <= height(map, l) + 1) {
			node_link(map, tl, l, k);
			return tl;
		}
		node_link(map, tl, l, rotate_right(map, k));
		return rotate_left(map, tl);
	}
	t = join_right(map, c, k, tr);
	node_link(map, tl, l, t);
	if (height(map, t) <= height(map, l) + 1)
		return tl;
	return rotate_left(map, tl);
}

/* join() when @tr is more than one level taller than @tl. */
static uint32_t join_left(struct range_map *map, uint32_t tl, uint32_t k,
			  uint32_t tr)
{
	uint32_t r = node(map, tr)->right, c = node(map, tr)->left;
	uint32_t t;

	if (height(map, c) <= height(map, tl) + 1) {
		node_link(map, k, tl, c);
		if (height(map, k) <= height(map, r) + 1) {
			node_link(map, tr, k, r);
			return tr;
		}
		node_link(map, tr, rotate_left(map, k), r);
		return rotate_right(map, tr);
	}
	t = join_left(map, tl, k, c);
	node_link(map, tr, t, r);
	if (height(map, t) <= height(map, r) + 1)
		return tr;
	return rotate_right(map, tr);
}

/*
 * A balanced tree of @tl, node @k, then @tr, where every key of @tl is
 * below k's and every key of @tr above.  O(|height(tl) - height(tr)| + 1).
 * Parent links of the returned root are left for the caller.
 */
static uint32_t join(struct range_map *map, uint32_t tl, uint32_t k,
		     uint32_t tr)
{
	int hl = height(map, tl), hr = height(map, tr);

	if (hl > hr + 1)
		return join_right(map, tl, k, tr);
	if (hr > hl + 1)
		return join_left(map, tl, k, tr);
	node_link(map, k, tl, tr);
	return k;
}

/* Detach the largest node of @t (returned); the rest goes to @rest. */
static uint32_t split_last(struct range_map *map, uint32_t t, uint32_t *rest)
{
	uint32_t l = node(map, t)->left, r = node(map, t)->right;
	uint32_t last;

	if (r == NIL) {
		*rest = l;
		return t;
	}
	last = split_last(map, r, &r);
	*rest = join(map, l, t, r);
	return last;
}

/* join() without a middle node. */
static uint32_t join2(struct range_map *map, uint32_t tl, uint32_t tr)
{
	uint32_t last;

	if (tl == NIL)
		return tr;
	if (tr == NIL)
		return tl;
	last = split_last(map, tl, &tl);
	return join(map, tl, last, tr);
}

/* Split @t into the keys below @key (@below) and the others (@rest). */
static void split(struct range_map *map, uint32_t t, uint64_t key,
		  uint32_t *below, uint32_t *rest)
{
	uint32_t l, r, a, b;

	if (t == NIL) {
		*below = NIL;
		*rest = NIL;
		return;
	}
	l = node(map, t)->left;
	r = node(map, t)->right;
	if (node(map, t)->start < key) {
		split(map, r, key, &a, &b);
		*below = join(map, l, t, a);
		*rest = b;
	} else {
		split(map, l, key, &a, &b);
		*below = a;
		*rest = join(map, b, t, r);
	}
}

/* ---- Lookups ---- */

/* The run containing @page (< npages): the node with the largest start
 * <= page.  Node 0's start is 0, so there always is one. */
static uint32_t find_run(const struct range_map *map, uint64_t page)
{
	uint32_t x = map->root, best = NIL;

	while (x != NIL) {
		const struct range_node *n = node(map, x);

		if (n->start <= page) {
			best = x;
			x = n->right;
		} else {
			x = n->left;
		}
	}
	assert(best != NIL);
	return best;
}

static uint32_t next_run(const struct range_map *map, uint32_t x)
{
	uint32_t p;

	if (node(map, x)->right != NIL) {
		x = node(map, x)->right;
		while (node(map, x)->left != NIL)
			x = node(map, x)->left;
		return x;
	}
	p = node(map, x)->parent;
	while (p != NIL && node(map, p)->right == x) {
		x = p;
		p = node(map, p)->parent;
	}
	return p;
}

static uint32_t prev_run(const struct range_map *map, uint32_t x)
{
	uint32_t p;

	if (node(map, x)->left != NIL) {
		x = node(map, x)->left;
		while (node(map, x)->right != NIL)
			x = node(map, x)->right;
		return x;
	}
	p = node(map, x)->parent;
	while (p != NIL && node(map, p)->left == x) {
		x = p;
		p = node(map, p)->parent;
	}
	return p;
}

/* The end of a run whose successor is @next. */
static uint64_t run_end(const struct range_map *map, uint32_t next)
{
	return next == NIL ? map->npages : node(map, next)->start;
}

static bool range_ok(const struct range_map *map, uint64_t start,
		     uint64_t npages)
{
	return npages != 0 && start < map->npages &&
	       npages <= map->npages - start;
}

/* ---- Public interface ---- */

struct range_map *gmem_range_map_create(uint64_t npages, uint8_t initial)
{
	struct range_map *map;
	struct range_node *n;

	/* The page count set() returns must fit its int64_t. */
	if (npages == 0 || npages > (uint64_t)INT64_MAX) {
		errno = EINVAL;
		return NULL;
	}
	map = malloc(sizeof(*map));
	if (!map)
		return NULL;
	map->chunks = malloc(sizeof(*map->chunks));
	if (!map->chunks)
		goto err_map;
	map->chunks[0] = malloc(MIN_CHUNK0_NODES * sizeof(*map->chunks[0]));
	if (!map->chunks[0])
		goto err_table;
	map->npages = npages;
	map->nr_chunks = 1;
	map->chunk_slots = 1;
	map->chunk0_nodes = MIN_CHUNK0_NODES;
	map->nr_nodes = 1;
	map->root = 0;
	map->reserved = 0;
	n = node(map, 0);
	n->start = 0;
	n->value = initial;
	n->left = NIL;
	n->right = NIL;
	n->parent = NIL;
	n->height = 1;
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
		free(map->chunks[i]);
	free(map->chunks);
	free(map);
}

uint64_t gmem_range_map_npages(const struct range_map *map)
{
	return map->npages;
}

uint8_t gmem_range_map_get(const struct range_map *map, uint64_t page,
		      uint64_t *run_start, uint64_t *run_npages)
{
	uint32_t x = map->root, best = NIL, succ = NIL;
	const struct range_node *n;

	assert(page < map->npages);
	/* One descent finds both the run and its successor, which is the
	 * last node at which the descent turned left. */
	while (x != NIL) {
		n = node(map, x);
		if (n->start <= page) {
			best = x;
			x = n->right;
		} else {
			succ = x;
			x = n->left;
		}
	}
	n = node(map, best);
	if (run_start)
		*run_start = n->start;
	if (run_npages)
		*run_npages = run_end(map, succ) - n->start;
	return n->value;
}

/*
 * @fn must not modify the map; reading it is fine.
 */
int gmem_range_map_for_each(const struct range_map *map, uint64_t start,
		       uint64_t npages, range_map_run_fn fn, void *arg)
{
	uint64_t end = start + npages;
	uint32_t x, next;

	if (!range_ok(map, start, npages))
		return -EINVAL;
	for (x = find_run(map, start); x != NIL && node(map, x)->start < end;
	     x = next) {
		const struct range_node *n = node(map, x);
		uint64_t lo = max_u64(n->start, start);
		int ret;

		next = next_run(map, x);
		ret = fn(arg, lo, min_u64(run_end(map, next), end) - lo,
			 n->value);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Reservations are counted: while k are held, capacity stays at least
 * nr_nodes + k * SET_MAX_NEW_NODES (shrink() keeps that margin), so each of
 * the next k sets finds its nodes, whichever order they come in.  A holder
 * gives its reservation back with gmem_range_map_unreserve() after its set (or
 * instead of it).
 */
int gmem_range_map_reserve(struct range_map *map)
{
	int err = ensure_capacity(map, nodes_promised(map) +
					SET_MAX_NEW_NODES);

	if (!err)
		map->reserved++;
	return err;
}

void gmem_range_map_unreserve(struct range_map *map)
{
	assert(map->reserved > 0);
	map->reserved--;
	shrink(map);
}

/*
 * Everything a set needs to know about the current map, gathered by one
 * walk over the runs it touches before anything is modified.
 */
struct set_plan {
	uint64_t pages_changed;
	uint32_t keys_inside;	/* keys in [start, end]: nodes to free */
	bool need_start_key;	/* a run must begin at start */
	bool need_end_key;	/* a run must begin at end... */
	uint8_t end_value;	/* ...with this value */
};

static void plan_set(const struct range_map *map, uint32_t first,
		     uint64_t start, uint64_t end, uint8_t value,
		     struct set_plan *plan)
{
	uint32_t x = first, last, next;

	plan->pages_changed = 0;
	plan->keys_inside = 0;
	do {
		const struct range_node *n = node(map, x);

		next = next_run(map, x);
		if (n->value != value)
			plan->pages_changed +=
				min_u64(run_end(map, next), end) -
				max_u64(n->start, start);
		if (n->start >= start)
			plan->keys_inside++;
		last = x;
		x = next;
	} while (x != NIL && node(map, x)->start < end);

	/*
	 * By invariant 5 the result is unique: a key at start iff the page
	 * before differs from @value (or start is 0), a key at end iff the
	 * page at end keeps a value other than @value.  Every other key in
	 * [start, end] goes.
	 */
	plan->need_end_key = false;
	plan->end_value = 0;
	if (end < map->npages) {
		if (x != NIL && node(map, x)->start == end) {
			plan->keys_inside++;
			plan->end_value = node(map, x)->value;
		} else {
			plan->end_value = node(map, last)->value;
		}
		plan->need_end_key = plan->end_value != value;
	}
	plan->need_start_key = true;
	if (start > 0) {
		uint32_t before = first;

		if (node(map, first)->start == start)
			before = prev_run(map, first);
		plan->need_start_key = node(map, before)->value != value;
	}
}

static void report_changes(const struct range_map *map, uint32_t first,
			   uint64_t start, uint64_t end, uint8_t value,
			   range_map_run_fn changed, void *arg)
{
	uint32_t x, next;

	for (x = first; x != NIL && node(map, x)->start < end; x = next) {
		const struct range_node *n = node(map, x);
		uint64_t lo = max_u64(n->start, start);

		next = next_run(map, x);
		/* Every change is reported whatever the callback returns:
		 * the update goes ahead regardless (see range_map.h). */
		if (n->value != value)
			(void)changed(arg, lo,
				      min_u64(run_end(map, next), end) - lo,
				      n->value);
	}
}

static uint32_t node_init(struct range_map *map, uint32_t *spare,
			  uint64_t start, uint8_t value)
{
	uint32_t idx = node_take(map, spare);
	struct range_node *n = node(map, idx);

	n->start = start;
	n->value = value;
	n->left = NIL;
	n->right = NIL;
	n->parent = NIL;
	n->height = 1;
	return idx;
}

/*
 * @changed is called with the map still in its old state; it may read the
 * map but must not modify it.
 */
int64_t gmem_range_map_set(struct range_map *map, uint64_t start, uint64_t npages,
		      uint8_t value, range_map_run_fn changed, void *arg)
{
	uint64_t end = start + npages;
	uint32_t first, below, rest, inside, above, spare = NIL;
	uint32_t start_node = NIL, end_node = NIL, root;
	struct set_plan plan;
	uint32_t new_nodes;

	if (!range_ok(map, start, npages))
		return -EINVAL;
	first = find_run(map, start);
	plan_set(map, first, start, end, value, &plan);
	if (plan.pages_changed == 0)
		return 0;	/* unique representation: nothing to do */

	/* The only allocation, before any change: after it nothing fails. */
	new_nodes = plan.need_start_key + plan.need_end_key;
	if (new_nodes > plan.keys_inside &&
	    ensure_capacity(map, (uint64_t)map->nr_nodes + new_nodes -
				 plan.keys_inside))
		return -ENOMEM;

	if (changed)
		report_changes(map, first, start, end, value, changed, arg);

	/* Cut out the keys in [start, end], recycle their nodes for the at
	 * most two new keys, and join the pieces back together. */
	split(map, map->root, start, &below, &rest);
	if (end < map->npages) {
		split(map, rest, end + 1, &inside, &above);
	} else {
		inside = rest;
		above = NIL;
	}
	node_release_subtree(map, inside, &spare);

	if (plan.need_start_key)
		start_node = node_init(map, &spare, start, value);
	if (plan.need_end_key)
		end_node = node_init(map, &spare, end, plan.end_value);

	if (start_node != NIL && end_node != NIL)
		root = join(map, below, start_node,
			    join(map, NIL, end_node, above));
	else if (start_node != NIL)
		root = join(map, below, start_node, above);
	else if (end_node != NIL)
		root = join(map, below, end_node, above);
	else
		root = join2(map, below, above);
	map->root = root;
	node(map, root)->parent = NIL;

	compact(map, spare);
	shrink(map);
	return (int64_t)plan.pages_changed;
}

uint64_t gmem_range_map_nr_runs(const struct range_map *map)
{
	return map->nr_nodes;
}

size_t gmem_range_map_bytes(const struct range_map *map)
{
	size_t bytes = sizeof(*map) + MALLOC_OVERHEAD;

	bytes += map->chunk_slots * sizeof(*map->chunks) + MALLOC_OVERHEAD;
	bytes += map->chunk0_nodes * sizeof(struct range_node) +
		 MALLOC_OVERHEAD;
	bytes += (size_t)(map->nr_chunks - 1) *
		 (CHUNK_NODES * sizeof(struct range_node) + MALLOC_OVERHEAD);
	return bytes;
}

/* ---- Validation ---- */

struct validate_walk {
	const struct range_map *map;
	char *msg;
	size_t msg_len;
	uint64_t nodes_seen;
	uint64_t prev_start;
	uint8_t prev_value;
};

/* Describe the first violation found; never prints. */
__attribute__((format(printf, 2, 3)))
static int violation(struct validate_walk *w, const char *fmt, ...)
{
	va_list ap;

	if (w->msg && w->msg_len) {
		va_start(ap, fmt);
		vsnprintf(w->msg, w->msg_len, fmt, ap);
		va_end(ap);
	}
	return -EUCLEAN;
}

/*
 * In-order check of the subtree at @idx (invariants 1 to 6); its height
 * goes to @h.  The depth bound stops a corrupted tree that loops.
 */
static int validate_subtree(struct validate_walk *w, uint32_t idx,
			    uint32_t parent, int depth, int *h)
{
	const struct range_map *map = w->map;
	const struct range_node *n;
	int hl, hr, ret;

	if (idx == NIL) {
		*h = 0;
		return 0;
	}
	if (depth > MAX_HEIGHT)
		return violation(w, "tree deeper than %d at node %" PRIu32,
				 MAX_HEIGHT, idx);
	if (idx >= map->nr_nodes)
		return violation(w, "node %" PRIu32 " in the tree, nr_nodes %"
				 PRIu32, idx, map->nr_nodes);
	n = node(map, idx);
	if (n->parent != parent)
		return violation(w, "node %" PRIu32 " (start %" PRIu64
				 "): parent %" PRIu32 ", expected %" PRIu32,
				 idx, n->start, n->parent, parent);

	ret = validate_subtree(w, n->left, idx, depth + 1, &hl);
	if (ret)
		return ret;

	if (w->nodes_seen == 0 && n->start != 0)
		return violation(w, "first run starts at %" PRIu64, n->start);
	if (w->nodes_seen > 0 && n->start <= w->prev_start)
		return violation(w, "run at %" PRIu64 " after run at %" PRIu64,
				 n->start, w->prev_start);
	if (w->nodes_seen > 0 && n->value == w->prev_value)
		return violation(w, "runs at %" PRIu64 " and %" PRIu64
				 " both have value %u", w->prev_start,
				 n->start, n->value);
	if (n->start >= map->npages)
		return violation(w, "run at %" PRIu64 " beyond npages %" PRIu64,
				 n->start, map->npages);
	if (++w->nodes_seen > map->nr_nodes)
		return violation(w, "more than nr_nodes=%" PRIu32
				 " nodes in the tree", map->nr_nodes);
	w->prev_start = n->start;
	w->prev_value = n->value;

	ret = validate_subtree(w, n->right, idx, depth + 1, &hr);
	if (ret)
		return ret;

	if (hl - hr > 1 || hr - hl > 1)
		return violation(w, "node %" PRIu32 " (start %" PRIu64
				 ") unbalanced: heights %d and %d", idx,
				 n->start, hl, hr);
	*h = 1 + (hl > hr ? hl : hr);
	if (n->height != *h)
		return violation(w, "node %" PRIu32 " (start %" PRIu64
				 "): height %u, expected %d", idx, n->start,
				 n->height, *h);
	return 0;
}

/* Invariants 7 and 8: the chunks and the spare nodes. */
static int validate_memory(struct validate_walk *w)
{
	const struct range_map *map = w->map;
	uint32_t i;

	if (map->nr_chunks < 1 || map->nr_chunks > map->chunk_slots ||
	    map->nr_chunks > MAX_CHUNKS)
		return violation(w, "nr_chunks %" PRIu32 ", chunk_slots %"
				 PRIu32, map->nr_chunks, map->chunk_slots);
	for (i = 0; i < map->nr_chunks; i++)
		if (!map->chunks[i])
			return violation(w, "chunk %" PRIu32 " of %" PRIu32
					 " missing", i, map->nr_chunks);
	if (map->chunk0_nodes < MIN_CHUNK0_NODES ||
	    map->chunk0_nodes > CHUNK_NODES ||
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
	if (nodes_promised(map) > capacity(map))
		return violation(w, "%" PRIu32 " reservations held but only %"
				 PRIu64 " nodes of capacity for %" PRIu32
				 " runs", map->reserved, capacity(map),
				 map->nr_nodes);
	if (map->nr_chunks > 1 &&
	    (uint64_t)(map->nr_chunks - 1) * CHUNK_NODES >=
	    nodes_promised(map) + CHUNK_NODES / 2 + SET_MAX_NEW_NODES)
		return violation(w, "%" PRIu32 " chunks kept for %" PRIu32
				 " nodes", map->nr_chunks, map->nr_nodes);
	return 0;
}

int gmem_range_map_validate(const struct range_map *map, char *msg,
		       size_t msg_len)
{
	struct validate_walk w = {
		.map = map, .msg = msg, .msg_len = msg_len,
	};
	int h, ret;

	if (map->npages == 0 || map->npages > (uint64_t)INT64_MAX)
		return violation(&w, "npages %" PRIu64 " out of range",
				 map->npages);
	ret = validate_memory(&w);
	if (ret)
		return ret;
	if (map->root == NIL)
		return violation(&w, "empty tree");
	ret = validate_subtree(&w, map->root, NIL, 1, &h);
	if (ret)
		return ret;
	if (w.nodes_seen != map->nr_nodes)
		return violation(&w, "%" PRIu64 " nodes in the tree, nr_nodes %"
				 PRIu32, w.nodes_seen, map->nr_nodes);
	return 0;
}
