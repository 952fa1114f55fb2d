/* SPDX-License-Identifier: MIT */
/*
 * range_map's two descents, written once and compiled once per instruction
 * set.  range_map.c includes this file several times, each time inside a
 * "#pragma GCC target" region for one instruction set and with two macros
 * defined: SEARCH_ISA, the suffix of the functions' names, and
 * SEARCH_COUNT_LE, that set's count of the slots <= a key (same contract
 * as count_le()).  Nothing else differs between the copies, so the copies
 * cannot drift apart; which one runs is chosen once, when the library is
 * loaded (see search_pick() in range_map.c).
 *
 * Why copies and not one function with a target_clones attribute: the
 * count must differ between the copies, not only the code generated for
 * it, and it must be inlined into the descent loop; GCC inlines a
 * function compiled for AVX2 only into a caller compiled for AVX2 too.
 */
#define SEARCH_GLUE2(a, b) a##_##b
#define SEARCH_GLUE(a, b) SEARCH_GLUE2(a, b)
#define SEARCH_NAME(fn) SEARCH_GLUE(fn, SEARCH_ISA)

/*
 * The hot path: per level one node, a fixed-length count and no branch
 * that depends on the data, so consecutive lookups overlap in the CPU.
 * The run's end is the next key in the leaf, else the pivot after the
 * child taken at the deepest level that did not take its last child: the
 * smallest such pivot, KEY_NONE filling the rest.
 */
static uint8_t SEARCH_NAME(get)(const struct range_map *map, uint64_t page,
				uint64_t *run_start, uint64_t *run_npages)
{
	uint32_t x = map->root, l;
	uint64_t next = KEY_NONE;
	const struct bt_leaf *lf;
	unsigned int c;

	assert(page < map->npages);
	for (l = map->levels; l > 1; l--) {
		const struct bt_inner *in = &node(map, x)->inner;

		c = SEARCH_COUNT_LE(in->pivot, INNER_MAX - 1, page);
		next = min_u64(next, in->pivot[c]);
		x = in->child[c];
	}
	lf = &node(map, x)->leaf;
	c = SEARCH_COUNT_LE(lf->key, LEAF_MAX + 1, page) - 1;
	if (run_start)
		*run_start = lf->key[c];
	if (run_npages)
		*run_npages = min_u64(min_u64(lf->key[c + 1], next),
				      map->npages) - lf->key[c];
	return lf->value[c];
}

/*
 * Descend to the leaf whose key range holds @key, recording the path; the
 * leaf slot is the number of its keys <= @key (>= 1, by exact pivots).
 */
static void SEARCH_NAME(descend)(const struct range_map *map, uint64_t key,
				 struct path *p)
{
	uint32_t x = map->root, d;

	for (d = 0; d + 1 < map->levels; d++) {
		const struct bt_inner *in = &node(map, x)->inner;
		unsigned int c = SEARCH_COUNT_LE(in->pivot, INNER_MAX - 1, key);

		p->node[d] = x;
		p->slot[d] = c;
		x = in->child[c];
	}
	p->node[d] = x;
	p->slot[d] = SEARCH_COUNT_LE(node(map, x)->leaf.key, LEAF_MAX + 1, key);
}

#undef SEARCH_NAME
#undef SEARCH_GLUE
#undef SEARCH_GLUE2
