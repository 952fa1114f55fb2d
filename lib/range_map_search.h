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
 * The hot path: first the direct index, whose check is a branch the CPU
 * predicts taken (at 10^6 runs the first entry names the leaf 93% of
 * the time, one of two entries 99.8%), so it reads the leaf before the
 * check is done; then, if neither entry names the
 * leaf, the descent: per level one node, a fixed-length count and no
 * branch that depends on the data, so consecutive lookups overlap in the
 * CPU.  The run's end is the next key in the leaf, else the leaf's upper
 * bound (invariant 11).
 */
static uint8_t SEARCH_NAME(get)(const struct range_map *map, uint64_t page,
				uint64_t *run_start, uint64_t *run_npages)
{
	const struct bt_leaf *lf;
	uint32_t x, l;
	unsigned int c;

	assert(page < map->npages);
	if (map->index) {
		const uint32_t *e = &map->index[page >> map->index_shift];

		/* A granule that straddles two leaves names the first; the
		 * next entry (index[index_len] is NIL) names the second. */
		lf = index_leaf(map, e[0], page);
		if (!lf)
			lf = index_leaf(map, e[1], page);
		if (lf)
			goto found;
	}
	x = map->root;
	for (l = map->levels; l > 1; l--) {
		const struct bt_inner *in = &node(map, x)->inner;

		c = SEARCH_COUNT_LE(in->pivot, INNER_MAX - 1, page);
		x = in->child[c];
	}
	lf = &node(map, x)->leaf;
found:
	/* key[LEAF_HI] > page: counting it changes nothing. */
	c = SEARCH_COUNT_LE(lf->key, LEAF_MAX + 1, page) - 1;
	if (run_start)
		*run_start = lf->key[c];
	if (run_npages)
		*run_npages = min_u64(lf->key[c + 1], lf->key[LEAF_HI]) -
			      lf->key[c];
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
