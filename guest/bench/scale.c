/* SPDX-License-Identifier: MIT */
/*
 * Conversion throughput with every vCPU converting its own range (run by
 * bench/bench_guest_scaling.c with --vcpus 1 and --vcpus 2).
 *
 * vCPU i owns pages=N pages at test_area_start() + i * 2 MiB (disjoint,
 * never adjacent) and converts them to shared and back rounds=R times.
 * All vCPUs start together after a barrier; each notes its TSC at the
 * start and the end, and vCPU 0 reports
 *   "@ scale NR_VCPUS ROUNDS PAGES START_0 END_0 START_1 END_1 ..."
 * Throughput = NR_VCPUS * 2 * ROUNDS / (max END - min START).
 */
#include "bench.h"

#define MAX_CPUS	8

static struct gbarrier bar;
static uint64_t t_start[MAX_CPUS], t_end[MAX_CPUS];

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	unsigned int nr = bi->nr_vcpus;
	uint64_t rounds = arg_u64("rounds", 500);
	uint64_t pages = arg_u64("pages", 1);
	uint64_t gpa = test_area_start() + cpu * SZ_2M;
	uint64_t out[3 + 2 * MAX_CPUS];

	GUEST_ASSERT_LE(nr, MAX_CPUS);
	GUEST_ASSERT(pages > 0 && pages <= SZ_2M / PAGE_SIZE);
	if (cpu == 0)
		test_area_require(nr * SZ_2M);
	gbarrier_wait(&bar, nr);
	must_to_private(gpa, pages * PAGE_SIZE);
	gbarrier_wait(&bar, nr);

	t_start[cpu] = tsc_now();
	for (uint64_t r = 0; r < rounds; r++) {
		long a = to_shared(gpa, pages);
		long b = to_private(gpa, pages);

		if (unlikely(a || b))
			GUEST_FAIL("vCPU %u: round %llu: to shared %ld, to "
				   "private %ld", cpu, (unsigned long long)r,
				   a, b);
	}
	t_end[cpu] = tsc_now();
	gbarrier_wait(&bar, nr);
	if (cpu)
		return 0;
	out[0] = nr;
	out[1] = rounds;
	out[2] = pages;
	for (unsigned int i = 0; i < nr; i++) {
		out[3 + 2 * i] = t_start[i];
		out[4 + 2 * i] = t_end[i];
	}
	emit_list("scale", out, 3 + 2 * nr);
	return 0;
}
