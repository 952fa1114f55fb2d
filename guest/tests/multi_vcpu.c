/* SPDX-License-Identifier: MIT */
//@ concurrency
//@ run: 0 --vcpus 2
//@ run: 0 --vcpus 4
//@ run: 0 --vcpus 2 --conversion in-place
//@ run: 0 --vcpus 4 --conversion in-place
//@ run: 0 --vcpus 4 --init-shared
/*
 * Conversions from several vCPUs at once, in phases separated by barriers:
 *
 *  1. disjoint: each vCPU converts random sub-ranges of its own area to
 *     random states, writes new bytes (DMA FILL for shared runs, stores
 *     for private ones) and keeps a model of state and content per page;
 *     it checks every page of its area against the model through the
 *     device and the right view, several times;
 *  2. interleaved: page i of a shared area belongs to vCPU i % n; every
 *     vCPU flips its pages one at a time, so neighbouring pages change
 *     state concurrently from different vCPUs; at the end vCPU 0 checks
 *     every page holds its owner's last bytes;
 *  3. overlapping: all vCPUs convert random ranges of the same area to
 *     random states and CHECKSUM random ranges with the device; only the
 *     results' validity is checked (0 for every conversion, STATUS 0 or 1
 *     for the device); afterwards the area converts cleanly both ways.
 */
#include "guest.h"

#define MAX_CPUS	8
#define OWN_PAGES	64
#define OWN_ITERS	32
#define INTER_PAGES	128
#define INTER_ROUNDS	3
#define OVL_PAGES	512
#define OVL_ITERS	300

/* Fixed layout from the test area start, so no vCPU waits for another's
 * allocation. */
#define OWN_OFF(cpu)	((uint64_t)(cpu) * OWN_PAGES * PAGE_SIZE)
#define INTER_OFF	(MAX_CPUS * OWN_PAGES * PAGE_SIZE)
#define OVL_OFF		ALIGN_UP(INTER_OFF + INTER_PAGES * PAGE_SIZE, SZ_2M)
#define TOTAL		(OVL_OFF + OVL_PAGES * PAGE_SIZE)

static uint64_t base;
static unsigned int nr;
static struct gbarrier bar;

struct own_page {
	bool shared;
	uint8_t byte;
};

static struct own_page model[MAX_CPUS][OWN_PAGES];

static void sync_all(void)
{
	gbarrier_wait(&bar, nr);
}

static void own_check(unsigned int cpu, uint64_t area)
{
	for (unsigned int i = 0; i < OWN_PAGES; i++) {
		uint64_t gpa = area + i * PAGE_SIZE;
		const struct own_page *m = &model[cpu][i];

		if (m->shared) {
			EXPECT_DMA_BYTES(gpa, PAGE_SIZE, m->byte);
			EXPECT_SHARED_BYTES(gpa, PAGE_SIZE, m->byte);
		} else {
			EXPECT_DMA_FAULT(gpa, PAGE_SIZE);
			EXPECT_PRIVATE_BYTES(gpa, PAGE_SIZE, m->byte);
		}
	}
}

static void phase_disjoint(unsigned int cpu, struct rng *rng)
{
	uint64_t area = base + OWN_OFF(cpu);

	must_to_private(area, OWN_PAGES * PAGE_SIZE);
	memset(gpa_private(area), 0, OWN_PAGES * PAGE_SIZE);
	for (unsigned int i = 0; i < OWN_PAGES; i++)
		model[cpu][i] = (struct own_page){ false, 0 };

	for (unsigned int it = 0; it < OWN_ITERS; it++) {
		uint64_t first = rng_below(rng, OWN_PAGES);
		uint64_t n = 1 + rng_below(rng, OWN_PAGES - first);
		bool shared = rng_below(rng, 2);
		uint8_t byte = (uint8_t)(cpu << 6 | (it + 1));
		uint64_t gpa = area + first * PAGE_SIZE;
		long r;

		r = map_gpa_range(gpa, n, shared ? 0 : GM_MAP_PRIVATE);
		GUEST_ASSERT_MSG(r == 0, "vCPU %u: [0x%llx, %llu pages) to "
				 "%s: %ld", cpu, (unsigned long long)gpa,
				 (unsigned long long)n,
				 shared ? "shared" : "private", r);
		for (uint64_t i = first; i < first + n; i++) {
			struct own_page *m = &model[cpu][i];

			if (m->shared != shared) {
				m->shared = shared;
				m->byte = after_conversion(m->byte);
			}
		}
		/* New bytes over half of the range: old ones stay checked. */
		n = (n + 1) / 2;
		if (shared)
			GUEST_ASSERT_EQ(dma_fill(gpa, n * PAGE_SIZE, byte),
					GM_DMA_OK);
		else
			memset(gpa_private(gpa), byte, n * PAGE_SIZE);
		for (uint64_t i = first; i < first + n; i++)
			model[cpu][i].byte = byte;

		if (it % 8 == 7)
			own_check(cpu, area);
	}
	own_check(cpu, area);
}

static uint8_t inter_byte(unsigned int owner, unsigned int round, bool shared)
{
	return (uint8_t)(0x80 | owner << 4 | round << 1 | shared);
}

static void phase_interleaved(unsigned int cpu)
{
	uint64_t area = base + INTER_OFF;

	for (unsigned int round = 0; round < INTER_ROUNDS; round++) {
		for (unsigned int i = cpu; i < INTER_PAGES; i += nr) {
			uint64_t gpa = area + i * PAGE_SIZE;

			must_to_shared(gpa, PAGE_SIZE);
			GUEST_ASSERT_EQ(dma_fill(gpa, PAGE_SIZE,
						 inter_byte(cpu, round, true)),
					GM_DMA_OK);
			EXPECT_SHARED_BYTES(gpa, PAGE_SIZE,
					    inter_byte(cpu, round, true));
		}
		for (unsigned int i = cpu; i < INTER_PAGES; i += nr) {
			uint64_t gpa = area + i * PAGE_SIZE;

			must_to_private(gpa, PAGE_SIZE);
			EXPECT_PRIVATE_BYTES(gpa, PAGE_SIZE,
				after_conversion(inter_byte(cpu, round, true)));
			memset(gpa_private(gpa), inter_byte(cpu, round, false),
			       PAGE_SIZE);
		}
	}
}

static void check_interleaved(void)
{
	uint64_t area = base + INTER_OFF;

	EXPECT_EACH_PAGE_PRIVATE(area, INTER_PAGES * PAGE_SIZE);
	for (unsigned int i = 0; i < INTER_PAGES; i++)
		EXPECT_PRIVATE_BYTES(area + i * PAGE_SIZE, PAGE_SIZE,
				     inter_byte(i % nr, INTER_ROUNDS - 1,
						false));
}

static void phase_overlapping(unsigned int cpu, struct rng *rng)
{
	uint64_t area = base + OVL_OFF;

	for (unsigned int it = 0; it < OVL_ITERS; it++) {
		uint64_t first, n;
		bool shared = rng_below(rng, 2);
		long r;

		switch (rng_below(rng, 4)) {
		case 0:		/* the whole area */
			first = 0;
			n = OVL_PAGES;
			break;
		case 1:		/* one page, from a few hot ones */
			first = rng_below(rng, 4) * 64;
			n = 1;
			break;
		default:
			first = rng_below(rng, OVL_PAGES);
			n = 1 + rng_below(rng, MIN(OVL_PAGES - first, 96));
			break;
		}
		r = map_gpa_range(area + first * PAGE_SIZE, n,
				  shared ? 0 : GM_MAP_PRIVATE);
		GUEST_ASSERT_MSG(r == 0, "vCPU %u: overlapping [page %llu, "
				 "+%llu) to %s: %ld", cpu,
				 (unsigned long long)first,
				 (unsigned long long)n,
				 shared ? "shared" : "private", r);
		if (it % 8 == 0) {
			uint64_t p = rng_below(rng, OVL_PAGES);
			uint64_t len = (1 + rng_below(rng, 16)) * PAGE_SIZE;
			int st;

			len = MIN(len, (OVL_PAGES - p) * PAGE_SIZE);
			st = dma_checksum(area + p * PAGE_SIZE, (uint32_t)len,
					  NULL);
			GUEST_ASSERT_MSG(st == GM_DMA_OK || st == GM_DMA_FAULT,
					 "vCPU %u: CHECKSUM during conversions:"
					 " status %d", cpu, st);
		}
	}
}

static void check_overlapping(void)
{
	uint64_t area = base + OVL_OFF, len = OVL_PAGES * PAGE_SIZE;

	must_to_private(area, len);
	EXPECT_EACH_PAGE_PRIVATE(area, len);
	must_to_shared(area, len);
	/* Nobody wrote to it: in discard mode every byte is zero. */
	if (!gm_in_place())
		EXPECT_DMA_SUM(area, len, 0);
	else
		GUEST_ASSERT_EQ(dma_checksum(area, (uint32_t)len, NULL),
				GM_DMA_OK);
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	struct rng rng;

	nr = bi->nr_vcpus;
	GUEST_ASSERT_LE(nr, MAX_CPUS);
	base = test_area_start();
	rng_seed(&rng, arg_u64("seed", 1) * 1000 + cpu);
	if (cpu == 0) {
		test_area_require(TOTAL);
		printf("multi_vcpu: %u vCPUs, %s mode, areas from 0x%llx\n",
		       nr, gm_in_place() ? "in-place" : "discard",
		       (unsigned long long)base);
		/* The interleaved area starts private, whatever the flags. */
		must_to_private(base + INTER_OFF, INTER_PAGES * PAGE_SIZE);
	}
	sync_all();

	phase_disjoint(cpu, &rng);
	sync_all();
	if (cpu == 0)
		puts("multi_vcpu: disjoint ranges ok");

	phase_interleaved(cpu);
	sync_all();
	if (cpu == 0) {
		check_interleaved();
		puts("multi_vcpu: interleaved pages ok");
	}
	sync_all();

	phase_overlapping(cpu, &rng);
	sync_all();
	if (cpu == 0) {
		check_overlapping();
		puts("multi_vcpu: overlapping ranges ok");
	}
	/* Everyone's checks are done before vCPU 0 may exit. */
	sync_all();
	if (cpu == 0)
		puts("multi_vcpu: PASS");
	return 0;
}
