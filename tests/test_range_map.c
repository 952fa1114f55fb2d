/* SPDX-License-Identifier: MIT */
/*
 * range_map against a naive model (one byte per page): hand-written edge
 * cases, then rounds of random set/get/for_each on maps of 1 page to 64 Ki
 * pages.  Every set is checked at once (returned count, every reported
 * changed sub-range with its old value, run count); every few operations
 * and at the end of each round the map is validated and compared with the
 * model run by run.
 *
 * Seed: fixed, printed at start, overridden by RANGE_MAP_SEED.
 * Exit 0 pass, 1 fail (with file, line, expected and actual values).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "range_map_expect.h"
#include "vec.h"

#define DEFAULT_SEED 0x5eed2024ULL

/* What the test was doing, printed with any failure. */
static struct {
	unsigned long long seed;
	const char *phase;
	int round;
	uint64_t map_npages;
	uint64_t op;
	const char *op_name;
	uint64_t op_start, op_npages;
	unsigned int op_value;
} where;

static uint64_t total_ops;
static uint64_t max_runs;
/* Whether random rounds fill the map's direct index with garbage at every
 * check, and how many times they did. */
static bool scribbling;
static uint64_t scribbles;
/* What a map of 32 nodes may hold in its direct index: none by default;
 * up to 4 entries per node, twice over (hysteresis), when the test gives
 * such maps one. */
static size_t index_bytes;

void fail_context(void)
{
	fprintf(stderr, "\n  [seed %llu, %s, round %d, map of %llu pages, ",
		where.seed, where.phase, where.round,
		(unsigned long long)where.map_npages);
	fprintf(stderr, "op %llu: %s start %llu npages %llu value %u]\n",
		(unsigned long long)where.op,
		where.op_name ? where.op_name : "-",
		(unsigned long long)where.op_start,
		(unsigned long long)where.op_npages, where.op_value);
}

static uint8_t rnd_value(void)
{
	return rnd_below(100) < 85 ? (uint8_t)rnd_below(2) :
				      (uint8_t)rnd_below(4);
}

/* A length in [1, max], biased to small and to whole-range. */
static uint64_t rnd_len(uint64_t max)
{
	unsigned int r = (unsigned int)rnd_below(100);

	if (r < 55)
		return 1 + rnd_below(max < 8 ? max : 8);
	if (r < 80)
		return 1 + rnd_below(max < 256 ? max : 256);
	if (r < 95)
		return 1 + rnd_below(max);
	return max;
}

/* A valid range of a map of @n pages, biased to small sizes and edges. */
static void rnd_range(uint64_t n, uint64_t *start, uint64_t *npages)
{
	unsigned int r = (unsigned int)rnd_below(100);
	uint64_t s, len;

	if (r < 70) {			/* anywhere */
		s = rnd_below(n);
		len = rnd_len(n - s);
	} else if (r < 80) {		/* from the first page */
		s = 0;
		len = rnd_len(n);
	} else if (r < 90) {		/* up to the last page */
		len = rnd_len(n);
		s = n - len;
	} else if (r < 95) {		/* the whole map */
		s = 0;
		len = n;
	} else {			/* one of the last or first pages */
		s = rnd_below(2) ? n - 1 - rnd_below(n < 3 ? n : 3) :
				   rnd_below(n < 3 ? n : 3);
		len = rnd_len(n - s < 3 ? n - s : 3);
	}
	*start = s;
	*npages = len;
}

/* ---- The model ---- */

struct model {
	uint8_t *v;
	uint64_t n;
	uint64_t runs;	/* kept up to date by checked_set(), then recounted */
};

static uint64_t model_count_runs(const struct model *m)
{
	uint64_t i, runs = 1;

	for (i = 1; i < m->n; i++)
		runs += m->v[i] != m->v[i - 1];
	return runs;
}

/* Run boundaries (i with v[i] != v[i - 1]) in [lo, hi] clipped to the map. */
static uint64_t model_boundaries(const struct model *m, uint64_t lo,
				 uint64_t hi)
{
	uint64_t i, count = 0;

	if (lo < 1)
		lo = 1;
	if (hi > m->n - 1)
		hi = m->n - 1;
	for (i = lo; i <= hi && i < m->n; i++)
		count += m->v[i] != m->v[i - 1];
	return count;
}

/* ---- Recording callbacks ---- */

struct seg {
	uint64_t start, npages;
	uint8_t value;
};

struct recorder {
	struct seg *segs;
	size_t nr, cap;
	size_t stop_after;	/* for_each: stop_code after this many */
	int stop_code;
	int ret;		/* what to return otherwise */
};

static int record(void *arg, uint64_t start, uint64_t npages, uint8_t value)
{
	struct recorder *rec = arg;

	if (vec_reserve((void **)&rec->segs, &rec->cap, rec->nr,
			sizeof(*rec->segs)))
		FAIL("out of memory in the test");
	rec->segs[rec->nr++] = (struct seg){ start, npages, value };
	if (rec->stop_after && rec->nr == rec->stop_after)
		return rec->stop_code;
	return rec->ret;
}

/* The recorder saw exactly one segment, this one. */
#define EXPECT_ONE_SEG(rec, s, n, v)					\
	do {								\
		EXPECT_EQ((rec)->nr, 1);				\
		EXPECT_EQ((rec)->segs[0].start, (s));			\
		EXPECT_EQ((rec)->segs[0].npages, (n));			\
		EXPECT_EQ((rec)->segs[0].value, (v));			\
	} while (0)

static void recorder_reset(struct recorder *rec)
{
	rec->nr = 0;
	rec->stop_after = 0;
	rec->stop_code = 0;
	rec->ret = 0;
}

/* ---- Checked operations ---- */

static void note_op(const char *name, uint64_t start, uint64_t npages,
		    unsigned int value)
{
	where.op++;
	where.op_name = name;
	where.op_start = start;
	where.op_npages = npages;
	where.op_value = value;
	total_ops++;
}

/*
 * set, with the reported sub-ranges checked against the model's maximal
 * same-old-value segments of [start, end) whose value differs.
 */
static void checked_set(struct range_map *map, struct model *m,
			struct recorder *rec, uint64_t start, uint64_t npages,
			uint8_t value)
{
	uint64_t end = start + npages, i, expected_changed = 0, before;
	size_t k = 0;
	bool reserved = rnd_below(8) == 0, with_cb = rnd_below(16) != 0;
	size_t bytes_before;
	int64_t ret;

	note_op("set", start, npages, value);
	recorder_reset(rec);
	/* A callback's non-zero return must not stop reports or update. */
	rec->ret = rnd_below(8) == 0 ? 1 : 0;
	if (reserved)
		EXPECT_EQ_S(gmem_range_map_reserve(map), 0);
	bytes_before = gmem_range_map_bytes(map);

	ret = gmem_range_map_set(map, start, npages, value,
			    with_cb ? record : NULL, rec);

	if (reserved && gmem_range_map_bytes(map) > bytes_before)
		FAIL("set after reserve allocated: %zu bytes, then %zu",
		     bytes_before, gmem_range_map_bytes(map));
	if (reserved)
		gmem_range_map_unreserve(map);

	i = start;
	while (i < end) {
		uint64_t j = i;
		uint8_t old = m->v[i];

		while (j < end && m->v[j] == old)
			j++;
		if (old != value) {
			expected_changed += j - i;
			if (with_cb) {
				if (k >= rec->nr)
					FAIL("sub-range [%llu, %llu) old %u not reported (%zu reports)",
					     (unsigned long long)i,
					     (unsigned long long)j, old,
					     rec->nr);
				EXPECT_EQ(rec->segs[k].start, i);
				EXPECT_EQ(rec->segs[k].npages, j - i);
				EXPECT_EQ(rec->segs[k].value, old);
				k++;
			}
		}
		i = j;
	}
	if (with_cb && k != rec->nr)
		FAIL("%zu sub-ranges reported, expected %zu; extra: [%llu +%llu] old %u",
		     rec->nr, k, (unsigned long long)rec->segs[k].start,
		     (unsigned long long)rec->segs[k].npages,
		     rec->segs[k].value);
	EXPECT_EQ_S(ret, (long long)expected_changed);

	before = model_boundaries(m, start, end);
	memset(m->v + start, value, npages);
	m->runs = m->runs - before + model_boundaries(m, start, end);
	EXPECT_EQ(gmem_range_map_nr_runs(map), m->runs);
}

static void checked_get(const struct range_map *map, const struct model *m,
			uint64_t page)
{
	uint64_t lo = page, hi = page + 1, rs = ~0ULL, rn = ~0ULL;
	uint8_t v = m->v[page];

	note_op("get", page, 1, 0);
	while (lo > 0 && m->v[lo - 1] == v)
		lo--;
	while (hi < m->n && m->v[hi] == v)
		hi++;
	switch (rnd_below(4)) {
	case 0:
		EXPECT_EQ(gmem_range_map_get(map, page, NULL, NULL), v);
		break;
	case 1:
		EXPECT_EQ(gmem_range_map_get(map, page, &rs, NULL), v);
		EXPECT_EQ(rs, lo);
		break;
	default:
		EXPECT_EQ(gmem_range_map_get(map, page, &rs, &rn), v);
		EXPECT_EQ(rs, lo);
		EXPECT_EQ(rn, hi - lo);
		break;
	}
}

/*
 * for_each over [start, start + npages): the clipped maximal runs, in
 * order, exactly.  With @stop_after > 0, the walk must stop there.
 */
static void checked_for_each(const struct range_map *map,
			     const struct model *m, struct recorder *rec,
			     uint64_t start, uint64_t npages,
			     size_t stop_after)
{
	uint64_t end = start + npages, i = start;
	size_t k = 0;
	int ret;

	note_op("for_each", start, npages, (unsigned int)stop_after);
	recorder_reset(rec);
	rec->stop_after = stop_after;
	rec->stop_code = 42;
	ret = gmem_range_map_for_each(map, start, npages, record, rec);

	while (i < end && (!stop_after || k < stop_after)) {
		uint64_t j = i;
		uint8_t v = m->v[i];

		while (j < end && m->v[j] == v)
			j++;
		if (k >= rec->nr)
			FAIL("run [%llu, %llu) value %u not visited",
			     (unsigned long long)i, (unsigned long long)j, v);
		EXPECT_EQ(rec->segs[k].start, i);
		EXPECT_EQ(rec->segs[k].npages, j - i);
		EXPECT_EQ(rec->segs[k].value, v);
		k++;
		i = j;
	}
	EXPECT_EQ(rec->nr, k);
	if (stop_after && k == stop_after)
		EXPECT_EQ_S(ret, 42);
	else
		EXPECT_EQ_S(ret, 0);
}

/*
 * Every page, with its run: after gmem_range_map_test_scribble() the
 * lookups go through an index that names wrong nodes, freed ones, inner
 * nodes, nodes past the last; each must still answer exactly.
 */
static void check_every_get(const struct range_map *map,
			    const struct model *m)
{
	uint64_t lo = 0, hi, page;

	note_op("every get", 0, m->n, 0);
	while (lo < m->n) {
		for (hi = lo + 1; hi < m->n && m->v[hi] == m->v[lo]; hi++)
			;
		for (page = lo; page < hi; page++) {
			uint64_t rs = ~0ULL, rn = ~0ULL;

			EXPECT_EQ(gmem_range_map_get(map, page, &rs, &rn),
				  m->v[lo]);
			EXPECT_EQ(rs, lo);
			EXPECT_EQ(rn, hi - lo);
		}
		lo = hi;
	}
}

static void check_whole(const struct range_map *map, const struct model *m,
			struct recorder *rec)
{
	EXPECT_VALID(map);
	EXPECT_EQ(gmem_range_map_npages(map), m->n);
	EXPECT_EQ(m->runs, model_count_runs(m));
	EXPECT_EQ(gmem_range_map_nr_runs(map), m->runs);
	checked_for_each(map, m, rec, 0, m->n, 0);
	EXPECT_EQ(rec->nr, m->runs);
}

/* ---- Random rounds ---- */

static void random_op(struct range_map *map, struct model *m,
		      struct recorder *rec, bool fragmenting)
{
	unsigned int r = (unsigned int)rnd_below(100);
	uint64_t n = m->n, start, npages;

	if (fragmenting && r < 90) {
		start = rnd_below(n);
		npages = 1 + rnd_below(n - start < 4 ? n - start : 4);
		checked_set(map, m, rec, start, npages, (uint8_t)rnd_below(4));
		return;
	}
	rnd_range(n, &start, &npages);
	if (r < 70) {
		checked_set(map, m, rec, start, npages, rnd_value());
	} else if (r < 85) {
		checked_get(map, m, start + rnd_below(npages));
	} else {
		size_t stop = rnd_below(4) == 0 ? 1 + rnd_below(4) : 0;

		checked_for_each(map, m, rec, start, npages, stop);
	}
}

/*
 * With @fragment_every > 0, every other stretch of that many operations
 * writes short ranges with values 0..3, driving the run count up through
 * several node chunks; the stretches between bring it back down.
 */
static void random_round(struct recorder *rec, uint64_t n, uint64_t ops,
			 uint64_t check_every, uint64_t fragment_every)
{
	struct model m;
	struct range_map *map;
	uint8_t initial = rnd_value();
	uint64_t op;

	where.round++;
	where.map_npages = n;
	where.op = 0;
	m.n = n;
	m.runs = 1;
	m.v = malloc(n);
	if (!m.v)
		FAIL("out of memory in the test");
	memset(m.v, initial, n);
	map = gmem_range_map_create(n, initial);
	EXPECT(map != NULL);
	check_whole(map, &m, rec);

	for (op = 0; op < ops; op++) {
		bool fragmenting = fragment_every &&
				   (op / fragment_every) % 2 == 1;

		random_op(map, &m, rec, fragmenting);
		if (gmem_range_map_nr_runs(map) > max_runs)
			max_runs = gmem_range_map_nr_runs(map);
		if ((op + 1) % check_every == 0)
			check_whole(map, &m, rec);
		/* The updates that follow plan with lookups through the
		 * garbage too. */
		if ((op + 1) % check_every == 0 && scribbling &&
		    gmem_range_map_test_scribble(map, rnd_below(~0ULL))) {
			scribbles++;
			check_every_get(map, &m);
		}
	}
	check_whole(map, &m, rec);

	/* Collapse to one run: memory must come back down (to the 32 nodes a
	 * map keeps once it was reserved, see test_reserve()). */
	checked_set(map, &m, rec, 0, n, 0);
	EXPECT_EQ(gmem_range_map_nr_runs(map), 1);
	EXPECT(gmem_range_map_bytes(map) <= 32 * 256 + 512 + index_bytes);
	check_whole(map, &m, rec);

	gmem_range_map_destroy(map);
	free(m.v);
}

/* ---- Hand-written edge cases ---- */

static void test_create(void)
{
	struct range_map *map;
	uint64_t rs, rn;

	where.phase = "create";
	EXPECT(gmem_range_map_create(0, 0) == NULL);
	EXPECT(gmem_range_map_create(UINT64_MAX, 0) == NULL);

	map = gmem_range_map_create(1, 5);
	EXPECT(map != NULL);
	EXPECT_VALID(map);
	EXPECT_EQ(gmem_range_map_npages(map), 1);
	EXPECT_EQ(gmem_range_map_nr_runs(map), 1);
	EXPECT_EQ(gmem_range_map_get(map, 0, &rs, &rn), 5);
	EXPECT_EQ(rs, 0);
	EXPECT_EQ(rn, 1);
	EXPECT(gmem_range_map_bytes(map) >= 24);
	gmem_range_map_destroy(map);
	gmem_range_map_destroy(NULL);
}

static void test_invalid_args(struct recorder *rec)
{
	struct range_map *map = gmem_range_map_create(100, 0);
	uint64_t bad[][2] = {
		{ 0, 0 }, { 50, 0 }, { 100, 1 }, { 99, 2 }, { 0, 101 },
		{ 1, UINT64_MAX }, { UINT64_MAX, 2 }, { UINT64_MAX, 1 },
		{ 101, 1 },
	};
	size_t i;

	where.phase = "invalid arguments";
	EXPECT(map != NULL);
	EXPECT(gmem_range_map_set(map, 10, 5, 1, NULL, NULL) == 5);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		recorder_reset(rec);
		EXPECT_EQ_S(gmem_range_map_set(map, bad[i][0], bad[i][1], 1, record,
					  rec), -EINVAL);
		EXPECT_EQ_S(gmem_range_map_set(map, bad[i][0], bad[i][1], 0, record,
					  rec), -EINVAL);
		EXPECT_EQ_S(gmem_range_map_for_each(map, bad[i][0], bad[i][1],
					       record, rec), -EINVAL);
		EXPECT_EQ(rec->nr, 0);
	}
	/* Unchanged. */
	EXPECT_VALID(map);
	EXPECT_EQ(gmem_range_map_nr_runs(map), 3);
	EXPECT_EQ(gmem_range_map_get(map, 9, NULL, NULL), 0);
	EXPECT_EQ(gmem_range_map_get(map, 10, NULL, NULL), 1);
	EXPECT_EQ(gmem_range_map_get(map, 15, NULL, NULL), 0);
	gmem_range_map_destroy(map);
}

static void test_whole_and_last_page(struct recorder *rec)
{
	struct range_map *map = gmem_range_map_create(1000, 0);
	uint64_t rs, rn, i;

	where.phase = "whole map and last page";
	EXPECT(map != NULL);

	/* Set at the last page. */
	recorder_reset(rec);
	EXPECT_EQ_S(gmem_range_map_set(map, 999, 1, 1, record, rec), 1);
	EXPECT_ONE_SEG(rec, 999, 1, 0);
	EXPECT_EQ(gmem_range_map_nr_runs(map), 2);
	EXPECT_EQ(gmem_range_map_get(map, 999, &rs, &rn), 1);
	EXPECT_EQ(rs, 999);
	EXPECT_EQ(rn, 1);
	EXPECT_EQ(gmem_range_map_get(map, 998, &rs, &rn), 0);
	EXPECT_EQ(rs, 0);
	EXPECT_EQ(rn, 999);
	EXPECT_VALID(map);

	/* Setting it again changes nothing and reports nothing. */
	recorder_reset(rec);
	EXPECT_EQ_S(gmem_range_map_set(map, 999, 1, 1, record, rec), 0);
	EXPECT_EQ(rec->nr, 0);

	/* First page, and merging back. */
	EXPECT_EQ_S(gmem_range_map_set(map, 0, 1, 1, NULL, NULL), 1);
	EXPECT_EQ(gmem_range_map_nr_runs(map), 3);
	EXPECT_EQ_S(gmem_range_map_set(map, 0, 1, 0, NULL, NULL), 1);
	EXPECT_EQ_S(gmem_range_map_set(map, 999, 1, 0, NULL, NULL), 1);
	EXPECT_EQ(gmem_range_map_nr_runs(map), 1);
	EXPECT_VALID(map);

	/* Fragment every other page, then set the whole map. */
	for (i = 1; i < 1000; i += 2)
		EXPECT_EQ_S(gmem_range_map_set(map, i, 1, (uint8_t)(1 + i % 3), NULL,
					  NULL), 1);
	EXPECT_EQ(gmem_range_map_nr_runs(map), 1000);
	EXPECT_VALID(map);
	recorder_reset(rec);
	EXPECT_EQ_S(gmem_range_map_set(map, 0, 1000, 0, record, rec), 500);
	EXPECT_EQ(rec->nr, 500);
	for (i = 0; i < 500; i++) {
		EXPECT_EQ(rec->segs[i].start, 2 * i + 1);
		EXPECT_EQ(rec->segs[i].npages, 1);
		EXPECT_EQ(rec->segs[i].value, 1 + (2 * i + 1) % 3);
	}
	EXPECT_EQ(gmem_range_map_nr_runs(map), 1);
	EXPECT_VALID(map);

	/* The whole map to a new value: one report, one run. */
	recorder_reset(rec);
	EXPECT_EQ_S(gmem_range_map_set(map, 0, 1000, 3, record, rec), 1000);
	EXPECT_ONE_SEG(rec, 0, 1000, 0);
	EXPECT_EQ(gmem_range_map_get(map, 500, &rs, &rn), 3);
	EXPECT_EQ(rs, 0);
	EXPECT_EQ(rn, 1000);
	gmem_range_map_destroy(map);
}

static void test_adjacent_old_values(struct recorder *rec)
{
	struct range_map *map = gmem_range_map_create(20, 0);

	where.phase = "adjacent old values";
	EXPECT(map != NULL);
	EXPECT_EQ_S(gmem_range_map_set(map, 0, 3, 1, NULL, NULL), 3);
	EXPECT_EQ_S(gmem_range_map_set(map, 3, 2, 2, NULL, NULL), 2);
	EXPECT_EQ_S(gmem_range_map_set(map, 5, 2, 3, NULL, NULL), 2);
	/* [0,3)=1 [3,5)=2 [5,7)=3 [7,20)=0; set [1, 9) to 3 */
	recorder_reset(rec);
	rec->ret = -1;	/* must not stop the reports or the update */
	EXPECT_EQ_S(gmem_range_map_set(map, 1, 8, 3, record, rec), 6);
	EXPECT_EQ(rec->nr, 3);
	EXPECT_EQ(rec->segs[0].start, 1);
	EXPECT_EQ(rec->segs[0].npages, 2);
	EXPECT_EQ(rec->segs[0].value, 1);
	EXPECT_EQ(rec->segs[1].start, 3);
	EXPECT_EQ(rec->segs[1].npages, 2);
	EXPECT_EQ(rec->segs[1].value, 2);
	EXPECT_EQ(rec->segs[2].start, 7);
	EXPECT_EQ(rec->segs[2].npages, 2);
	EXPECT_EQ(rec->segs[2].value, 0);
	/* [0,1)=1 [1,9)=3 [9,20)=0 */
	EXPECT_EQ(gmem_range_map_nr_runs(map), 3);
	EXPECT_VALID(map);
	gmem_range_map_destroy(map);
}

static void test_reserve(void)
{
	struct range_map *map = gmem_range_map_create(1 << 20, 0);
	size_t bytes;
	uint64_t i;

	where.phase = "reserve";
	EXPECT(map != NULL);
	/* Across chunk boundaries too: each set adds two runs. */
	for (i = 0; i < 6000; i++) {
		EXPECT_EQ_S(gmem_range_map_reserve(map), 0);
		bytes = gmem_range_map_bytes(map);
		EXPECT_EQ_S(gmem_range_map_set(map, 3 * i + 1, 1, 1, NULL, NULL), 1);
		if (gmem_range_map_bytes(map) > bytes)
			FAIL("set %llu after reserve grew the map from %zu to %zu bytes",
			     (unsigned long long)i, bytes,
			     gmem_range_map_bytes(map));
		gmem_range_map_unreserve(map);
	}
	EXPECT_EQ(gmem_range_map_nr_runs(map), 12001);
	EXPECT_VALID(map);
	/*
	 * Reservations are counted (the race libgmem's engine has: several
	 * converters reserve, then commit in any order): six holders reserve
	 * first, then all six sets run; none may allocate.
	 */
	for (i = 0; i < 6; i++)
		EXPECT_EQ_S(gmem_range_map_reserve(map), 0);
	EXPECT_VALID(map);
	bytes = gmem_range_map_bytes(map);
	for (i = 0; i < 6; i++) {
		EXPECT_EQ_S(gmem_range_map_set(map, 3 * (6000 + i) + 1, 1, 1, NULL,
					  NULL), 1);
		if (gmem_range_map_bytes(map) > bytes)
			FAIL("holder %llu's set allocated: reservations are "
			     "not counted", (unsigned long long)i);
		gmem_range_map_unreserve(map);
		EXPECT_VALID(map);
	}
	EXPECT_EQ(gmem_range_map_nr_runs(map), 12001 + 12);
	EXPECT_EQ_S(gmem_range_map_set(map, 0, 1 << 20, 0, NULL, NULL), 6006);
	EXPECT_EQ(gmem_range_map_nr_runs(map), 1);
	/* Memory comes back down, to the room a reserved map keeps for its
	 * next change (32 nodes of 256 bytes: the engine's reserve/commit
	 * cycle then never allocates) plus the map's own header. */
	EXPECT(gmem_range_map_bytes(map) <= 32 * 256 + 512);
	EXPECT(gmem_range_map_bytes(map) < bytes / 25);
	EXPECT_VALID(map);
	/* And a reserve/set/unreserve cycle on it allocates nothing. */
	bytes = gmem_range_map_bytes(map);
	for (i = 0; i < 100; i++) {
		EXPECT_EQ_S(gmem_range_map_reserve(map), 0);
		EXPECT_EQ_S(gmem_range_map_set(map, 7, 1, i % 2 ? 0 : 1, NULL,
					  NULL), 1);
		gmem_range_map_unreserve(map);
		EXPECT_EQ(gmem_range_map_bytes(map), bytes);
	}
	gmem_range_map_destroy(map);
}

static void test_for_each_stop(struct recorder *rec)
{
	struct range_map *map = gmem_range_map_create(64, 0);
	uint64_t i;

	where.phase = "for_each stop";
	EXPECT(map != NULL);
	for (i = 0; i < 64; i += 4)
		gmem_range_map_set(map, i, 2, 1, NULL, NULL);
	EXPECT_EQ(gmem_range_map_nr_runs(map), 32);

	recorder_reset(rec);
	rec->stop_after = 3;
	rec->stop_code = -7;
	EXPECT_EQ_S(gmem_range_map_for_each(map, 1, 60, record, rec), -7);
	EXPECT_EQ(rec->nr, 3);
	EXPECT_EQ(rec->segs[0].start, 1);	/* clipped */
	EXPECT_EQ(rec->segs[0].npages, 1);
	EXPECT_EQ(rec->segs[0].value, 1);
	EXPECT_EQ(rec->segs[2].start, 4);

	recorder_reset(rec);
	EXPECT_EQ_S(gmem_range_map_for_each(map, 5, 1, record, rec), 0);
	EXPECT_EQ(rec->nr, 1);
	EXPECT_EQ(rec->segs[0].start, 5);
	EXPECT_EQ(rec->segs[0].npages, 1);

	recorder_reset(rec);
	EXPECT_EQ_S(gmem_range_map_for_each(map, 62, 2, record, rec), 0);
	EXPECT_EQ(rec->nr, 1);
	EXPECT_EQ(rec->segs[0].start, 62);
	EXPECT_EQ(rec->segs[0].value, 0);
	gmem_range_map_destroy(map);
}

static void test_huge_map(struct recorder *rec)
{
	uint64_t n = (uint64_t)INT64_MAX, rs, rn;
	struct range_map *map = gmem_range_map_create(n, 0);

	where.phase = "huge map";
	EXPECT(map != NULL);
	EXPECT_EQ_S(gmem_range_map_set(map, n - 1, 1, 1, NULL, NULL), 1);
	EXPECT_EQ_S(gmem_range_map_set(map, 1ULL << 52, 1ULL << 40, 2, NULL, NULL),
		    1LL << 40);
	EXPECT_EQ(gmem_range_map_nr_runs(map), 4);
	EXPECT_EQ(gmem_range_map_get(map, (1ULL << 52) + 5, &rs, &rn), 2);
	EXPECT_EQ(rs, 1ULL << 52);
	EXPECT_EQ(rn, 1ULL << 40);
	EXPECT_EQ(gmem_range_map_get(map, n - 2, &rs, &rn), 0);
	EXPECT_EQ(rs, (1ULL << 52) + (1ULL << 40));
	EXPECT_EQ(rn, n - 1 - rs);
	EXPECT_VALID(map);
	recorder_reset(rec);
	EXPECT_EQ_S(gmem_range_map_set(map, 0, n, 1, record, rec),
		    (long long)(n - 1));
	EXPECT_EQ(rec->nr, 3);
	EXPECT_EQ(gmem_range_map_nr_runs(map), 1);
	EXPECT_EQ_S(gmem_range_map_set(map, 0, n, 0, NULL, NULL), (long long)n);
	EXPECT_VALID(map);
	gmem_range_map_destroy(map);
}

/*
 * Lookups and descents are compiled once per instruction set; the rounds
 * above ran the one picked at load time.  Run every other one this CPU has
 * on deep trees (4 levels) and small ones, and check the switch itself.
 */
static void test_isas(struct recorder *rec)
{
	static const char *const isas[] = { "generic", "avx2" };
	const char *picked = gmem_range_map_isa();
	unsigned int i;
	int j;

	where.phase = "isa";
	if (gmem_range_map_use_isa("no-such-isa") != -EINVAL)
		FAIL("use_isa accepted an unknown name");
	for (i = 0; i < sizeof(isas) / sizeof(isas[0]); i++) {
		int ret = gmem_range_map_use_isa(isas[i]);

		if (ret == -ENOTSUP) {
			printf("isa %s: not on this CPU, skipped\n", isas[i]);
			continue;
		}
		if (ret || strcmp(gmem_range_map_isa(), isas[i]))
			FAIL("use_isa(%s) = %d, in use %s", isas[i], ret,
			     gmem_range_map_isa());
		for (j = 0; j < 20; j++)
			random_round(rec, 1 + rnd_below(200), 2000, 31, 0);
		for (j = 0; j < 2; j++)
			random_round(rec, 65536, 50000, 2039, 12500);
		printf("isa %s: ok\n", isas[i]);
	}
	if (gmem_range_map_use_isa(picked))
		FAIL("cannot switch back to %s", picked);
}

int main(void)
{
	struct recorder rec = { 0 };
	const char *env = getenv("RANGE_MAP_SEED");
	int i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	where.seed = env ? strtoull(env, NULL, 0) : DEFAULT_SEED;
	rng_state = where.seed;
	printf("test_range_map: seed %llu (set RANGE_MAP_SEED to override)\n",
	       where.seed);

	test_create();
	test_invalid_args(&rec);
	test_whole_and_last_page(&rec);
	test_adjacent_old_values(&rec);
	test_reserve();
	test_for_each_stop(&rec);
	test_huge_map(&rec);
	printf("edge cases: ok\n");

	where.phase = "random";
	/* Tiny maps, where every range touches an edge. */
	for (i = 0; i < 60; i++)
		random_round(&rec, 1 + i % 3, 1000, 7, 0);
	/* Small maps. */
	for (i = 0; i < 100; i++)
		random_round(&rec, 4 + rnd_below(125), 2000, 31, 0);
	/* Odd sizes. */
	for (i = 0; i < 10; i++)
		random_round(&rec, 1000 + rnd_below(20000), 10000, 509, 0);
	/* The main sizes. */
	for (i = 0; i < 20; i++)
		random_round(&rec, 4096, 25000, 127, 0);
	for (i = 0; i < 4; i++)
		random_round(&rec, 65536, 50000, 2039, 12500);

	/*
	 * The direct index, a cache in front of the tree, on maps from 16
	 * nodes (without this, from 2048: beyond these sizes), right and
	 * garbage; and through both instruction sets.
	 */
	where.phase = "index";
	gmem_range_map_test_index_min(16);
	index_bytes = 2 * 4 * 32 * sizeof(uint32_t) * 2 + 32;
	scribbling = true;
	for (i = 0; i < 10; i++)
		random_round(&rec, 4096, 25000, 127, 0);
	for (i = 0; i < 2; i++)
		random_round(&rec, 65536, 50000, 2039, 12500);
	scribbling = false;
	printf("index: %llu scribbles: ok\n", (unsigned long long)scribbles);
	if (scribbles < 100)
		FAIL("only %llu scribbled indexes",
		     (unsigned long long)scribbles);
	test_isas(&rec);

	printf("random: %llu operations in %d rounds, up to %llu runs: ok\n",
	       (unsigned long long)total_ops, where.round,
	       (unsigned long long)max_runs);
	free(rec.segs);
	return 0;
}
