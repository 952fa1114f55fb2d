/* SPDX-License-Identifier: MIT */
/*
 * The page-state map at scale, beside the design it replaces.
 *
 * Baseline: one bit per 4 KiB page (QEMU's RamBlockAttributes), updated by
 * walking the bitmap page by page with one callback per changed page, as
 * QEMU notifies its listeners.  It exists only in this benchmark.
 *
 * For a 1 TiB guest holding 1, 10^3 and 10^6 runs: bytes, lookup time and
 * the time of a mixed 1 GiB update (a 1 GiB window that holds both states
 * is set to one state and the changed pages reported), against the bitmap;
 * then the point-lookup goal (map within 3x of the bitmap) at 10^3 and 10^6
 * runs.  Prints "BENCH key value" lines for the plot script, then markdown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "range_map.h"	/* lib/'s internal map: the one -Ilib benchmark */

#define TIB_PAGES (1ULL << 28)		/* 1 TiB of 4 KiB pages */
#define GIB_PAGES (1ULL << 18)

/* ---- the baseline ------------------------------------------------------ */

struct bitmap {
	uint64_t *words;
	uint64_t npages;
};

static volatile uint64_t sink;

/* One call per changed page, as a per-page notifier would make. */
static void __attribute__((noinline)) page_changed(uint64_t page, int old)
{
	sink += page ^ (uint64_t)old;
}

static int bitmap_get(const struct bitmap *b, uint64_t page)
{
	return (b->words[page / 64] >> (page % 64)) & 1;
}

static void bitmap_set_range(struct bitmap *b, uint64_t start, uint64_t n,
			     int value)
{
	uint64_t p;

	for (p = start; p < start + n; p++) {
		int old = bitmap_get(b, p);

		if (old == value)
			continue;
		if (value)
			b->words[p / 64] |= 1ULL << (p % 64);
		else
			b->words[p / 64] &= ~(1ULL << (p % 64));
		page_changed(p, old);
	}
}

/* ---- the map ----------------------------------------------------------- */

static int run_changed(void *arg, uint64_t start, uint64_t npages,
		       uint8_t value)
{
	sink += start ^ npages ^ value;
	return 0;
}

/*
 * Lay out @runs runs over 1 TiB: alternating states in equal strides,
 * so that every 1 GiB window mixes both states once runs >= 1024.
 */
static void populate(struct range_map *m, struct bitmap *b, uint64_t runs)
{
	uint64_t stride, i;

	if (runs <= 1)
		return;
	stride = TIB_PAGES / runs;
	for (i = 1; i < runs; i += 2) {
		uint64_t n = i + 1 == runs ? TIB_PAGES - i * stride : stride;

		gmem_range_map_set(m, i * stride, n, 1, NULL, NULL);
		if (b)
			bitmap_set_range(b, i * stride, n, 1);
	}
}

/* The lookup goal: a map lookup within this factor of a bitmap lookup. */
#define LOOKUP_GOAL 3.0

struct row {
	uint64_t runs;
	size_t map_bytes;
	double map_lookup, bm_lookup, map_update, bm_update;
	double map_lookup_dep, bm_lookup_dep;	/* one at a time */
	/* The map's lookups with the generic code (no AVX2), when the
	 * library picked another; 0 if it did not. */
	double generic_lookup, generic_lookup_dep;
};

#define LOOKUPS 1000000
#define LOOKUP_SEED 0x9e3779b97f4a7c15ULL

static inline uint64_t next_page(uint64_t *seed)
{
	*seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
	return (*seed >> 20) % TIB_PAGES;
}

/*
 * ns per lookup of LOOKUPS random pages, the same pages for both.  With
 * @dependent, each page depends on the previous answer (the seed takes
 * the value in), so lookups cannot overlap in the CPU: the latency of one
 * lookup, as an exit that looks up one page pays it, rather than the
 * throughput of many independent ones.  Map and bitmap hold the same
 * states, so they still see the same pages.
 */
static inline __attribute__((always_inline)) double
map_lookups(const struct range_map *m, const bool dependent)
{
	uint64_t seed = LOOKUP_SEED, v;
	double t0 = bench_now_ns();
	int i;

	for (i = 0; i < LOOKUPS; i++) {
		v = gmem_range_map_get(m, next_page(&seed), NULL, NULL);
		sink += v;
		if (dependent)
			seed += v;
	}
	return (bench_now_ns() - t0) / LOOKUPS;
}

static inline __attribute__((always_inline)) double
bitmap_lookups(const struct bitmap *b, const bool dependent)
{
	uint64_t seed = LOOKUP_SEED, v;
	double t0 = bench_now_ns();
	int i;

	for (i = 0; i < LOOKUPS; i++) {
		v = (uint64_t)bitmap_get(b, next_page(&seed));
		sink += v;
		if (dependent)
			seed += v;
	}
	return (bench_now_ns() - t0) / LOOKUPS;
}

/*
 * One function per mode, each with the mode a constant: a run-time flag
 * would let the compiler fold "if (dependent) seed += v" into a
 * conditional move, a data dependency in both modes.
 */
static __attribute__((noinline)) double
time_map_lookups(const struct range_map *m, bool dependent)
{
	return dependent ? map_lookups(m, true) : map_lookups(m, false);
}

static __attribute__((noinline)) double
time_bitmap_lookups(const struct bitmap *b, bool dependent)
{
	return dependent ? bitmap_lookups(b, true) : bitmap_lookups(b, false);
}

static double min_d(double a, double b)
{
	return a < b ? a : b;
}

/* The lookup code the library picked for this CPU (range_map.h). */
static const char *picked_isa;

static void bench(uint64_t runs, struct row *row)
{
	struct bitmap b = { .npages = TIB_PAGES };
	struct range_map *m = gmem_range_map_create(TIB_PAGES, 0);
	uint64_t win = TIB_PAGES / 2;
	double t0;
	int rep;

	b.words = calloc(TIB_PAGES / 64, sizeof(uint64_t));
	if (!m || !b.words) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	/* Touch the whole bitmap: a calloc()ed page never written reads
	 * through a page fault the first time, which is not a lookup cost. */
	memset(b.words, 0, TIB_PAGES / 8);
	populate(m, &b, runs);
	if (gmem_range_map_nr_runs(m) != runs) {
		fprintf(stderr, "expected %llu runs, got %llu\n",
			(unsigned long long)runs,
			(unsigned long long)gmem_range_map_nr_runs(m));
		exit(1);
	}
	row->runs = runs;
	row->map_bytes = gmem_range_map_bytes(m);

	/* Interleaved, best of 3 after a warm-up pass of each: both see the
	 * same pages, and noise from the rest of the machine only adds. */
	time_map_lookups(m, false);
	time_bitmap_lookups(&b, false);
	row->map_lookup = row->bm_lookup = 1e30;
	row->map_lookup_dep = row->bm_lookup_dep = 1e30;
	for (rep = 0; rep < 3; rep++) {
		row->map_lookup = min_d(row->map_lookup,
					time_map_lookups(m, false));
		row->bm_lookup = min_d(row->bm_lookup,
				       time_bitmap_lookups(&b, false));
		row->map_lookup_dep = min_d(row->map_lookup_dep,
					    time_map_lookups(m, true));
		row->bm_lookup_dep = min_d(row->bm_lookup_dep,
					   time_bitmap_lookups(&b, true));
	}

	/* The same with the generic lookup code, for the table of
	 * implementations, then back to the library's pick. */
	row->generic_lookup = row->generic_lookup_dep = 0;
	if (strcmp(picked_isa, "generic") &&
	    !gmem_range_map_use_isa("generic")) {
		row->generic_lookup = row->generic_lookup_dep = 1e30;
		for (rep = 0; rep < 3; rep++) {
			row->generic_lookup = min_d(row->generic_lookup,
						    time_map_lookups(m, false));
			row->generic_lookup_dep =
				min_d(row->generic_lookup_dep,
				      time_map_lookups(m, true));
		}
		gmem_range_map_use_isa(picked_isa);
	}

	/* Mixed 1 GiB update: the window holds both states (runs > 1). */
	t0 = bench_now_ns();
	gmem_range_map_set(m, win, GIB_PAGES, 1, run_changed, NULL);
	gmem_range_map_set(m, win, GIB_PAGES, 0, run_changed, NULL);
	row->map_update = (bench_now_ns() - t0) / 2;
	t0 = bench_now_ns();
	bitmap_set_range(&b, win, GIB_PAGES, 1);
	bitmap_set_range(&b, win, GIB_PAGES, 0);
	row->bm_update = (bench_now_ns() - t0) / 2;

	printf("BENCH map runs=%llu bytes=%zu bitmap_bytes=%zu lookup_ns=%.1f "
	       "bitmap_lookup_ns=%.2f update_1g_us=%.1f bitmap_update_1g_us=%.1f "
	       "dep_lookup_ns=%.1f bitmap_dep_lookup_ns=%.1f\n",
	       (unsigned long long)runs, row->map_bytes,
	       (size_t)(TIB_PAGES / 8), row->map_lookup, row->bm_lookup,
	       row->map_update / 1000, row->bm_update / 1000,
	       row->map_lookup_dep, row->bm_lookup_dep);
	gmem_range_map_destroy(m);
	free(b.words);
}

/*
 * The lookup tables, from 10^3 runs up: independent lookups, judged
 * against the goal; or (@dependent) one at a time, for information.
 */
static void print_lookups(const struct row *rows, unsigned int n,
			  bool dependent)
{
	unsigned int i;

	if (dependent)
		printf("\n**Point lookup latency, one at a time** (each page "
		       "depends on the previous answer, as for an exit that "
		       "looks up one page; for information, the goal is the "
		       "row above)\n\n| runs | map ns | bitmap ns | ratio |\n"
		       "|---|---|---|---|\n");
	else
		printf("\n**Point lookup, random pages (goal: map <= %.0fx "
		       "bitmap)**\n\n| runs | map ns | bitmap ns | ratio | "
		       "goal <= %.0fx |\n|---|---|---|---|---|\n",
		       LOOKUP_GOAL, LOOKUP_GOAL);
	for (i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		double map = dependent ? r->map_lookup_dep : r->map_lookup;
		double bm = dependent ? r->bm_lookup_dep : r->bm_lookup;

		if (r->runs < 1000)
			continue;
		printf("| %llu | %.1f | %.1f | %.1f |", (unsigned long long)r->runs,
		       map, bm, map / bm);
		if (!dependent)
			printf(" %s |", map / bm <= LOOKUP_GOAL ? "met" :
								  "**missed**");
		printf("\n");
	}
}

/* The map's lookups by implementation: the library's pick against the
 * generic code, for information. */
static void print_isas(const struct row *rows, unsigned int n)
{
	unsigned int i;

	printf("\n**Point lookup by implementation** (map ns; the library "
	       "uses %s on this CPU; for information)\n\n| runs | "
	       "generic random | %s random | generic one at a time | "
	       "%s one at a time |\n|---|---|---|---|---|\n", picked_isa,
	       picked_isa, picked_isa);
	for (i = 0; i < n; i++) {
		const struct row *r = &rows[i];

		if (r->runs < 1000 || r->generic_lookup == 0)
			continue;
		printf("| %llu | %.1f | %.1f | %.1f | %.1f |\n",
		       (unsigned long long)r->runs, r->generic_lookup,
		       r->map_lookup, r->generic_lookup_dep,
		       r->map_lookup_dep);
	}
}

int main(void)
{
	static const uint64_t runs[] = { 1, 1000, 1000000 };
	struct row rows[sizeof(runs) / sizeof(runs[0])];
	size_t bm_bytes = TIB_PAGES / 8;
	unsigned int i;

	picked_isa = gmem_range_map_isa();
	for (i = 0; i < sizeof(runs) / sizeof(runs[0]); i++)
		bench(runs[i], &rows[i]);

	printf("\n## Page-state map, 1 TiB guest (2^28 pages)\n\n");
	printf("| runs | map bytes | bitmap bytes | map/bitmap memory | "
	       "map lookup ns | bitmap lookup ns | map 1 GiB update us | "
	       "bitmap 1 GiB update us | speed-up |\n");
	printf("|---|---|---|---|---|---|---|---|---|\n");
	for (i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		const struct row *r = &rows[i];

		printf("| %llu | %zu (%.1f B/run) | %zu | %.4f | %.1f | %.1f | "
		       "%.0f | %.1f | %.0fx |\n",
		       (unsigned long long)r->runs, r->map_bytes,
		       (double)r->map_bytes / (double)r->runs, bm_bytes,
		       (double)r->map_bytes / (double)bm_bytes, r->map_lookup,
		       r->bm_lookup, r->map_update / 1000,
		       r->bm_update / 1000, r->bm_update / r->map_update);
	}

	print_lookups(rows, sizeof(runs) / sizeof(runs[0]), false);
	print_lookups(rows, sizeof(runs) / sizeof(runs[0]), true);
	if (strcmp(picked_isa, "generic"))
		print_isas(rows, sizeof(runs) / sizeof(runs[0]));

	printf("\nMap lookups use the library's %s code (picked at load "
	       "time by the CPU's features).\n", picked_isa);
	printf("\nBaseline: a bit per page walked page by page with a call per "
	       "changed page (QEMU's RamBlockAttributes design).\n"
	       "Lookups: %d random pages, the same for map and bitmap, best of "
	       "3 interleaved passes after a warm-up pass (the bitmap fully "
	       "written first).\n"
	       "The update sets a 1 GiB window to shared then back to private; "
	       "with 1 run the window is uniform, so only the bitmap's walk "
	       "is measured against the map's O(log n).\n", LOOKUPS);
	return 0;
}
