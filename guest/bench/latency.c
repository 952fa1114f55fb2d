/* SPDX-License-Identifier: MIT */
/*
 * Guest-visible conversion latency, exit overhead and the bare exit floor
 * (run by bench/bench_guest_latency.c, which parses the "@" lines).
 *
 * For each size (4 KiB, 2 MiB, 64 MiB, 1 GiB, up to max=SIZE): two
 * disjoint ranges A and B take turns; one round on a range is
 *   time MAP_GPA_RANGE(range, to shared)   (doorbell out -> guest resumes)
 *   DMA device FILLs the range             (populates the shared memory)
 *   time MAP_GPA_RANGE(range, to private)
 * so a to-private conversion gives back memory that is really populated,
 * and a range's previous punches (deferred reclaim) have had the other
 * range's round to finish.  The guest never writes the ranges itself: at
 * ~1 us per emulated instruction it could not populate 1 GiB.
 *
 * Then, interleaved, the bare port exit (inb from COM1's LSR) and a
 * MAP_GPA_RANGE that changes nothing (a page already private), with the
 * same instructions around the port access.
 *
 * Arguments: max=BYTES (largest size, default 1 GiB), scale=N (divides
 * the sample counts, for smoke runs), exits=N (exit samples, default 300),
 * idle0..idle3=CYCLES: for the 4 sizes, spin that many TSC cycles after
 * each to-private conversion (default 0), so that a deferred punch can
 * finish before the next conversion starts.
 */
#include "bench.h"

#define MAX_SAMPLES	400

static uint64_t t_shared[MAX_SAMPLES], t_private[MAX_SAMPLES];
static uint64_t t_bare[MAX_SAMPLES], t_noop[MAX_SAMPLES];

struct size_case {
	uint64_t size;
	unsigned int samples;	/* per direction */
};

static const struct size_case sizes[] = {
	{ SZ_4K, 200 },
	{ SZ_2M, 40 },
	{ 64 * SZ_1M, 8 },
	{ SZ_1G, 4 },
};

static void convert_timed(uint64_t gpa, uint64_t size, bool shared,
			  uint64_t *cycles)
{
	long ret;

	*cycles = timed_doorbell(gpa, size >> PAGE_SHIFT,
				 shared ? GM_MAP_SHARED : GM_MAP_PRIVATE, &ret);
	GUEST_ASSERT_MSG(ret == 0, "MAP_GPA_RANGE(0x%llx, %llu pages, %s) = %ld",
			 (unsigned long long)gpa,
			 (unsigned long long)(size >> PAGE_SHIFT),
			 shared ? "shared" : "private", ret);
}

static void spin(uint64_t cycles)
{
	uint64_t end = tsc_now() + cycles;

	while (cycles && tsc_now() < end)
		cpu_relax();
}

static void one_size(const struct size_case *sc, unsigned int scale,
		     uint64_t idle)
{
	uint64_t a = test_area_start();
	uint64_t b = ALIGN_UP(a + sc->size, SZ_2M);
	unsigned int n = MAX(sc->samples / scale, 2u);
	uint64_t area[3] = { sc->size, a, b };
	char tag[48];

	test_area_require(b + sc->size - a);
	/* Both ranges private, whatever ran before. */
	must_to_private(a, b + sc->size - a);
	emit_list("area", area, 3);
	for (unsigned int i = 0; i < n; i++) {
		uint64_t gpa = i & 1 ? b : a;

		convert_timed(gpa, sc->size, true, &t_shared[i]);
		GUEST_ASSERT_EQ(dma_fill_range(gpa, sc->size, (uint8_t)(i + 1)),
				GM_DMA_OK);
		convert_timed(gpa, sc->size, false, &t_private[i]);
		spin(idle);
	}
	snprintf(tag, sizeof(tag), "lat %llx shared",
		 (unsigned long long)sc->size);
	emit_list(tag, t_shared, n);
	snprintf(tag, sizeof(tag), "lat %llx private",
		 (unsigned long long)sc->size);
	emit_list(tag, t_private, n);
}

static void exits(unsigned int n)
{
	uint64_t gpa = test_area_start();
	long ret;

	n = MIN(n, MAX_SAMPLES);
	must_to_private(gpa, PAGE_SIZE);
	for (unsigned int i = 0; i < n; i++) {
		t_bare[i] = timed_bare_exit(gpa, 1);
		t_noop[i] = timed_doorbell(gpa, 1, GM_MAP_PRIVATE, &ret);
		GUEST_ASSERT_EQ(ret, 0);
	}
	emit_list("bare", t_bare, n);
	emit_list("noop", t_noop, n);
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	uint64_t max = arg_u64("max", SZ_1G);
	unsigned int scale = (unsigned int)arg_u64("scale", 1);
	uint64_t info[4] = { gm_ram_size, gm_shared_base, gm_free_start,
			     gm_flags };

	if (cpu)
		return 0;
	emit1("tsc", tsc_now());
	emit_list("info", info, 4);
	GUEST_ASSERT(scale > 0);
	exits((unsigned int)arg_u64("exits", 300));
	for (unsigned int s = 0; s < ARRAY_SIZE(sizes); s++) {
		static const char *const idle[] = {
			"idle0", "idle1", "idle2", "idle3"
		};

		if (sizes[s].size <= max)
			one_size(&sizes[s], scale, arg_u64(idle[s], 0));
	}
	emit1("tsc", tsc_now());
	emit_str("@ done\n");
	return 0;
}
