/* SPDX-License-Identifier: MIT */
/*
 * range_map at scale: a 1 TiB map (2^28 pages of 4 KiB) holding 10^6 runs.
 *
 * Alternating 256-page blocks (1 MiB each) give exactly 10^6 runs; the
 * test checks the run count, validates once, bounds the memory per run,
 * checks lookups against the formula (also through a scribbled direct
 * index), then does a mixed update over a
 * 1 GiB window checked against a model of that window, and finally
 * collapses the map to one run and checks that memory went down.
 *
 * No timing assertions: bytes per run are printed, not judged beyond the
 * 64-byte budget.  Seed: fixed, printed, overridden by RANGE_MAP_SEED.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "range_map_expect.h"

#define DEFAULT_SEED 0x5ca1eULL

#define MAP_PAGES (1ULL << 28)		/* 1 TiB of 4 KiB pages */
#define BLOCK_PAGES 256ULL		/* one run each */
#define TARGET_RUNS 1000000ULL
/* Blocks [0, LAST_BLOCK) alternate 0, 1, 0, ...; the last run, of 1s,
 * runs from block LAST_BLOCK to the end of the map. */
#define LAST_BLOCK (TARGET_RUNS - 1)
#define MAX_BYTES_PER_RUN 64

/* The 1 GiB window, on an even (value 0) block inside the pattern, with
 * one untouched block of margin on each side in the model. */
#define WINDOW_START (1ULL << 26)
#define WINDOW_PAGES (1ULL << 18)
#define MARGIN_START (WINDOW_START - BLOCK_PAGES)
#define MARGIN_PAGES (WINDOW_PAGES + 2 * BLOCK_PAGES)
#define WINDOW_OPS 20000

void fail_context(void)
{
	fputc('\n', stderr);
}


/* The value of @page in the initial pattern. */
static uint8_t pattern_value(uint64_t page)
{
	uint64_t block = page / BLOCK_PAGES;

	return block >= LAST_BLOCK || block % 2 == 1;
}

static void pattern_run(uint64_t page, uint64_t *start, uint64_t *npages)
{
	uint64_t block = page / BLOCK_PAGES;

	if (block >= LAST_BLOCK) {
		*start = LAST_BLOCK * BLOCK_PAGES;
		*npages = MAP_PAGES - *start;
	} else {
		*start = block * BLOCK_PAGES;
		*npages = BLOCK_PAGES;
	}
}

static uint64_t pattern_ones(void)
{
	/* Odd blocks below LAST_BLOCK, then the tail. */
	return LAST_BLOCK / 2 * BLOCK_PAGES +
	       (MAP_PAGES - LAST_BLOCK * BLOCK_PAGES);
}

static void build(struct range_map *map)
{
	uint64_t block;

	for (block = 1; block < LAST_BLOCK; block += 2)
		EXPECT_EQ_S(gmem_range_map_set(map, block * BLOCK_PAGES,
					  BLOCK_PAGES, 1, NULL, NULL),
			    BLOCK_PAGES);
	EXPECT_EQ_S(gmem_range_map_set(map, LAST_BLOCK * BLOCK_PAGES,
				  MAP_PAGES - LAST_BLOCK * BLOCK_PAGES, 1,
				  NULL, NULL),
		    MAP_PAGES - LAST_BLOCK * BLOCK_PAGES);
}

static void check_lookups(const struct range_map *map)
{
	uint64_t i, page, rs, rn, want_start, want_npages;

	for (i = 0; i < 200000; i++) {
		page = i < 4 ? (uint64_t[]){ 0, MAP_PAGES - 1,
					     LAST_BLOCK * BLOCK_PAGES,
					     LAST_BLOCK * BLOCK_PAGES - 1 }[i] :
			       rnd_below(MAP_PAGES);
		pattern_run(page, &want_start, &want_npages);
		EXPECT_EQ(gmem_range_map_get(map, page, &rs, &rn),
			  pattern_value(page));
		EXPECT_EQ(rs, want_start);
		EXPECT_EQ(rn, want_npages);
	}
}

/* ---- The 1 GiB window, against a model of the window and its margin ---- */

struct window {
	uint8_t v[MARGIN_PAGES];	/* page MARGIN_START + i */
};

struct walk {
	const struct window *w;
	uint64_t next;		/* page the next run must start at */
	uint64_t runs;
};

static int check_run(void *arg, uint64_t start, uint64_t npages,
		     uint8_t value)
{
	struct walk *walk = arg;
	uint64_t i;

	EXPECT_EQ(start, walk->next);
	EXPECT(npages > 0);
	for (i = start; i < start + npages; i++)
		EXPECT_EQ(walk->w->v[i - MARGIN_START], value);
	/* Maximal within the clip. */
	if (start > MARGIN_START)
		EXPECT(walk->w->v[start - 1 - MARGIN_START] != value);
	walk->next = start + npages;
	walk->runs++;
	return 0;
}

static uint64_t window_model_runs(const struct window *w)
{
	uint64_t i, runs = 1;

	for (i = 1; i < MARGIN_PAGES; i++)
		runs += w->v[i] != w->v[i - 1];
	return runs;
}

static void check_window(const struct range_map *map, const struct window *w,
			 uint64_t runs_outside)
{
	struct walk walk = { .w = w, .next = MARGIN_START };

	EXPECT_EQ_S(gmem_range_map_for_each(map, MARGIN_START, MARGIN_PAGES,
				       check_run, &walk), 0);
	EXPECT_EQ(walk.next, MARGIN_START + MARGIN_PAGES);
	EXPECT_EQ(walk.runs, window_model_runs(w));
	EXPECT_EQ(gmem_range_map_nr_runs(map), runs_outside + walk.runs);
}

struct sum {
	uint64_t pages, calls, next;
};

static int sum_changes(void *arg, uint64_t start, uint64_t npages,
		       uint8_t old)
{
	struct sum *sum = arg;

	EXPECT(start >= sum->next);
	sum->next = start + npages;
	sum->pages += npages;
	sum->calls++;
	return 0;
}

/*
 * Returns how many pages of the window and margin are non-zero at the end,
 * for the final collapse.
 */
static uint64_t mixed_window_update(struct range_map *map)
{
	/* The margin blocks are whole runs, so the runs outside the model
	 * region stay put whatever happens inside. */
	uint64_t runs_outside = TARGET_RUNS - MARGIN_PAGES / BLOCK_PAGES;
	struct window *w = malloc(sizeof(*w));
	uint64_t i, op, start, npages, expected, ones = 0;
	struct sum sum = { 0 };
	uint8_t value;

	EXPECT(w != NULL);
	for (i = 0; i < MARGIN_PAGES; i++)
		w->v[i] = pattern_value(MARGIN_START + i);
	check_window(map, w, runs_outside);

	/* Whole window to 2: 1024 runs go, one comes. */
	EXPECT_EQ_S(gmem_range_map_set(map, WINDOW_START, WINDOW_PAGES, 2,
				  sum_changes, &sum), WINDOW_PAGES);
	EXPECT_EQ(sum.calls, WINDOW_PAGES / BLOCK_PAGES);
	EXPECT_EQ(sum.pages, WINDOW_PAGES);
	memset(w->v + BLOCK_PAGES, 2, WINDOW_PAGES);
	EXPECT_EQ(gmem_range_map_nr_runs(map), TARGET_RUNS - 1023);
	check_window(map, w, runs_outside);

	for (op = 0; op < WINDOW_OPS; op++) {
		npages = rnd_below(2) ? 1 + rnd_below(64) :
					1 + rnd_below(4096);
		start = WINDOW_START + rnd_below(WINDOW_PAGES - npages + 1);
		value = (uint8_t)rnd_below(4);
		expected = 0;
		for (i = start; i < start + npages; i++) {
			expected += w->v[i - MARGIN_START] != value;
			w->v[i - MARGIN_START] = value;
		}
		memset(&sum, 0, sizeof(sum));
		EXPECT_EQ_S(gmem_range_map_set(map, start, npages, value,
					  sum_changes, &sum), expected);
		EXPECT_EQ(sum.pages, expected);
		if (op % 1000 == 0)
			check_window(map, w, runs_outside);
	}
	check_window(map, w, runs_outside);
	EXPECT_VALID(map);

	for (i = 0; i < MARGIN_PAGES; i++)
		ones += w->v[i] != 0;
	free(w);
	return ones;
}

int main(void)
{
	const char *env = getenv("RANGE_MAP_SEED");
	unsigned long long seed = env ? strtoull(env, NULL, 0) : DEFAULT_SEED;
	struct range_map *map;
	uint64_t runs, nonzero, margin_ones;
	size_t bytes, bytes_one_run;
	int i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	rng_state = seed;
	printf("test_range_map_scale: seed %llu (set RANGE_MAP_SEED to override)\n",
	       seed);

	map = gmem_range_map_create(MAP_PAGES, 0);
	EXPECT(map != NULL);
	build(map);
	runs = gmem_range_map_nr_runs(map);
	EXPECT_EQ(runs, TARGET_RUNS);
	EXPECT_VALID(map);
	bytes = gmem_range_map_bytes(map);
	printf("%llu runs over %llu pages: %zu bytes, %.2f bytes per run\n",
	       (unsigned long long)runs, MAP_PAGES, bytes,
	       (double)bytes / (double)runs);
	if (bytes > MAX_BYTES_PER_RUN * runs)
		FAIL("%zu bytes for %llu runs: more than %d bytes per run",
		     bytes, (unsigned long long)runs, MAX_BYTES_PER_RUN);

	check_lookups(map);
	/* A map this size has a direct index; garbage in it (the index is a
	 * cache) must change no answer. */
	EXPECT(gmem_range_map_test_scribble(map, rnd_below(~0ULL)));
	check_lookups(map);

	/* Pages of the model region that are 1 in the pattern: the odd
	 * blocks of the window plus the leading margin block. */
	margin_ones = (WINDOW_PAGES / BLOCK_PAGES / 2 + 1) * BLOCK_PAGES;
	nonzero = pattern_ones() - margin_ones + mixed_window_update(map);
	printf("after the 1 GiB window update: %llu runs, %zu bytes\n",
	       (unsigned long long)gmem_range_map_nr_runs(map),
	       gmem_range_map_bytes(map));

	/*
	 * Shrink in eighths: the nodes go down by ~10,000 (a slab and a
	 * bit) a step, down past the first slab, and every step keeps the
	 * invariants (the chunk layout among them) and the memory budget.
	 */
	for (i = 1; i < 8; i++) {
		int64_t changed = gmem_range_map_set(map, 0, i * (MAP_PAGES / 8),
						     0, NULL, NULL);

		EXPECT(changed > 0);
		nonzero -= (uint64_t)changed;
		EXPECT_VALID(map);
		runs = gmem_range_map_nr_runs(map);
		bytes = gmem_range_map_bytes(map);
		printf("zeroed %d/8: %llu runs, %zu bytes, %.2f bytes per run\n",
		       i, (unsigned long long)runs, bytes,
		       (double)bytes / (double)runs);
		if (bytes > MAX_BYTES_PER_RUN * runs)
			FAIL("%zu bytes for %llu runs: more than %d bytes per "
			     "run", bytes, (unsigned long long)runs,
			     MAX_BYTES_PER_RUN);
	}

	/* Collapse: every non-zero page changes, memory comes back. */
	EXPECT_EQ_S(gmem_range_map_set(map, 0, MAP_PAGES, 0, NULL, NULL), nonzero);
	EXPECT_EQ(gmem_range_map_nr_runs(map), 1);
	EXPECT_VALID(map);
	bytes_one_run = gmem_range_map_bytes(map);
	printf("collapsed to 1 run: %zu bytes\n", bytes_one_run);
	if (bytes_one_run > 1024 || bytes_one_run * 1000 > bytes)
		FAIL("memory did not come back: %zu bytes for one run, %zu before",
		     bytes_one_run, bytes);
	EXPECT_EQ(gmem_range_map_get(map, MAP_PAGES - 1, NULL, NULL), 0);

	gmem_range_map_destroy(map);
	printf("ok\n");
	return 0;
}
