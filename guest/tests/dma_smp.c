/* SPDX-License-Identifier: MIT */
//@ concurrency
//@ run: 0 --vcpus 2
//@ run: 0 --vcpus 4 --dmatest=external
//@ run: 0 --vcpus 3 --dmatest=external --audit each -- rounds=3
//@ run: 0 --vcpus 2 --dmatest=external --reclaim deferred
/*
 * DMA while neighbours convert, from several vCPUs at once.
 *
 * Page i of a 64-page area belongs to vCPU i % n, so every page's
 * neighbours belong to other vCPUs, and the DMA mapper's mappings span
 * pages of several vCPUs: a neighbour's conversion cuts or merges the
 * mapping that holds a vCPU's own shared page.  The exact layout promises
 * that a page that stays shared is never unmapped, not even for a moment
 * (cut and merge are atomic in the device), so:
 *  - each vCPU flips its pages between shared and private, round after
 *    round; after each flip to shared it FILLs the page and CHECKSUMs it;
 *  - after every flip it CHECKSUMs each of its pages: a shared one must
 *    succeed with its bytes (never STATUS 1 because of a neighbour), a
 *    private one must fault;
 *  - one page per vCPU stays shared throughout and is checked every time.
 */
#include "guest.h"

#define MAX_CPUS	8
#define AREA_PAGES	64

static uint64_t area;
static struct gbarrier bar;
static volatile int area_ready;

static uint64_t page(unsigned int i)
{
	return area + (uint64_t)i * PAGE_SIZE;
}

static uint8_t pattern(unsigned int cpu, unsigned int i, uint64_t round)
{
	return (uint8_t)(1 + cpu * 31 + i * 7 + round * 13);
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	uint64_t rounds = arg_u64("rounds", 12), r;
	unsigned int n = gm_nr_vcpus, i, j;
	bool shared[AREA_PAGES];
	uint8_t bytes[AREA_PAGES];
	uint32_t sum, want;
	int st;

	GUEST_ASSERT(n >= 1 && n <= MAX_CPUS);
	if (cpu == 0) {
		test_area_require(SZ_2M);
		area = test_alloc(AREA_PAGES * PAGE_SIZE, SZ_2M);
		must_to_shared(area, AREA_PAGES * PAGE_SIZE);
		GUEST_ASSERT_EQ(dma_fill(area, AREA_PAGES * PAGE_SIZE, 0x42),
				GM_DMA_OK);
		store_release(&area_ready, 1);
	}
	while (!load_acquire(&area_ready))
		cpu_relax();
	for (i = cpu; i < AREA_PAGES; i += n) {
		shared[i] = true;
		bytes[i] = 0x42;
	}
	gbarrier_wait(&bar, n);

	for (r = 0; r < rounds; r++) {
		/* The first page of each vCPU stays shared. */
		for (i = cpu + n; i < AREA_PAGES; i += n) {
			if (shared[i]) {
				GUEST_ASSERT_EQ(to_private(page(i), 1), 0);
			} else {
				GUEST_ASSERT_EQ(to_shared(page(i), 1), 0);
				bytes[i] = pattern(cpu, i, r);
				GUEST_ASSERT_EQ(dma_fill(page(i), PAGE_SIZE,
							 bytes[i]), GM_DMA_OK);
			}
			shared[i] = !shared[i];
			for (j = cpu; j < AREA_PAGES; j += n) {
				st = dma_checksum(page(j), PAGE_SIZE, &sum);
				if (!shared[j]) {
					GUEST_ASSERT_MSG(st == GM_DMA_FAULT,
							 "vcpu %u: private page %u: status %d",
							 cpu, j, st);
					continue;
				}
				GUEST_ASSERT_MSG(st == GM_DMA_OK,
						 "vcpu %u round %llu: shared page %u faulted while page %u converted",
						 cpu, (unsigned long long)r, j,
						 i);
				want = pattern_checksum(bytes[j], PAGE_SIZE);
				GUEST_ASSERT_MSG(sum == want,
						 "vcpu %u: page %u sums 0x%x, expected 0x%x",
						 cpu, j, sum, want);
			}
		}
	}
	gbarrier_wait(&bar, n);
	if (cpu)
		return 0;
	printf("dma_smp: %u vCPUs, %llu rounds: shared pages stayed reachable while their neighbours converted\n",
	       n, (unsigned long long)rounds);
	return 0;
}
