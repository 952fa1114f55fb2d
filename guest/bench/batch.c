/* SPDX-License-Identifier: MIT */
/*
 * Scattered conversions, one MAP_GPA_RANGE per page against CONVERT_BATCH
 * (guest ABI extension 3), guest-visible (run by bench/bench_guest_batch.c,
 * which parses the "@" lines).
 *
 * For N = 64 and 512: pages area + 2i (i < N), every other page, so that
 * no two are adjacent.  One round:
 *   time N MAP_GPA_RANGE(page, to shared)   (TSC before the first `out`,
 *                                            after the guest resumes from
 *                                            the last)
 *   time N MAP_GPA_RANGE(page, to private)
 *   time CONVERT_BATCH(to shared)           (ceil(N / 253) calls: 512
 *                                            pages need 3)
 *   time CONVERT_BATCH(to private)
 * The lists are written once, before the rounds (one set per direction),
 * so that the timed part is the hypercalls and the loop around them, as
 * for the single calls.  The pages are never written: neither side
 * populates them.  Then the bare port exit, for the floor's exits.
 *
 * Arguments: rounds64=N, rounds512=N (samples per size, default 16 and 6).
 */
#include "bench.h"

#define MAX_N		512
#define MAX_LISTS	((MAX_N + GM_BATCH_MAX_ENTRIES - 1) / GM_BATCH_MAX_ENTRIES)
#define MAX_SAMPLES	64
#define BARE_SAMPLES	200

static uint64_t t_single[2][MAX_SAMPLES], t_batch[2][MAX_SAMPLES];
static uint64_t t_bare[BARE_SAMPLES];
static struct batch lists[2][MAX_LISTS];	/* [to private][k] */
static uint64_t area;

static unsigned int nr_lists(unsigned int n)
{
	return (n + GM_BATCH_MAX_ENTRIES - 1) / GM_BATCH_MAX_ENTRIES;
}

static void build_lists(unsigned int n)
{
	for (unsigned int d = 0; d < 2; d++) {
		for (unsigned int k = 0; k < nr_lists(n); k++)
			batch_reset(&lists[d][k]);
		for (unsigned int i = 0; i < n; i++)
			batch_add(&lists[d][i / GM_BATCH_MAX_ENTRIES],
				  area + 2ULL * i * PAGE_SIZE, 1, d);
	}
}

static uint64_t singles(unsigned int n, bool private)
{
	uint64_t attrs = private ? GM_MAP_PRIVATE : GM_MAP_SHARED;
	uint64_t t0, t1;
	long bad = 0;

	t0 = tsc_now();
	for (unsigned int i = 0; i < n; i++)
		bad |= gm_doorbell(GM_HC_MAP_GPA_RANGE,
				   area + 2ULL * i * PAGE_SIZE, 1, attrs);
	t1 = tsc_now();
	GUEST_ASSERT_EQ(bad, 0);
	return t1 - t0;
}

static uint64_t batched(unsigned int n, bool private)
{
	unsigned int k, nl = nr_lists(n);
	uint64_t t0, t1;
	long bad = 0;

	t0 = tsc_now();
	for (k = 0; k < nl; k++)
		bad |= convert_batch(lists[private][k].list_gpa,
				     lists[private][k].n);
	t1 = tsc_now();
	GUEST_ASSERT_EQ(bad, 0);
	return t1 - t0;
}

static void one_size(unsigned int n, unsigned int rounds)
{
	uint64_t info[2] = { n, nr_lists(n) };
	char tag[48];

	rounds = MIN(MAX(rounds, 2u), (unsigned int)MAX_SAMPLES);
	build_lists(n);
	emit_list("size", info, 2);
	for (unsigned int r = 0; r < rounds; r++) {
		t_single[0][r] = singles(n, false);
		t_single[1][r] = singles(n, true);
		t_batch[0][r] = batched(n, false);
		t_batch[1][r] = batched(n, true);
	}
	for (unsigned int d = 0; d < 2; d++) {
		snprintf(tag, sizeof(tag), "single %x %s", n,
			 d ? "private" : "shared");
		emit_list(tag, t_single[d], rounds);
		snprintf(tag, sizeof(tag), "batch %x %s", n,
			 d ? "private" : "shared");
		emit_list(tag, t_batch[d], rounds);
	}
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	uint64_t info[4] = { gm_ram_size, gm_shared_base, gm_free_start,
			     gm_flags };
	uint64_t l, a[2];

	if (cpu)
		return 0;
	GUEST_ASSERT(gm_has_batch());
	emit1("tsc", tsc_now());
	emit_list("info", info, 4);
	l = test_alloc(2 * MAX_LISTS * PAGE_SIZE, PAGE_SIZE);
	for (unsigned int d = 0; d < 2; d++)
		for (unsigned int k = 0; k < MAX_LISTS; k++)
			batch_init(&lists[d][k],
				   l + (d * MAX_LISTS + k) * PAGE_SIZE);
	area = test_alloc(2 * MAX_N * PAGE_SIZE, SZ_2M);
	must_to_private(area, 2 * MAX_N * PAGE_SIZE);
	a[0] = area;
	a[1] = 2 * PAGE_SIZE;
	emit_list("area", a, 2);
	for (unsigned int i = 0; i < BARE_SAMPLES; i++)
		t_bare[i] = timed_bare_exit(area, 1);
	emit_list("bare", t_bare, BARE_SAMPLES);
	one_size(64, (unsigned int)arg_u64("rounds64", 16));
	one_size(512, (unsigned int)arg_u64("rounds512", 6));
	emit1("tsc", tsc_now());
	emit_str("@ done\n");
	return 0;
}
