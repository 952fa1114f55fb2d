/* SPDX-License-Identifier: MIT */
//@ run: 0 -- pages=512
//@ run: 0 --dmatest=external -- pages=512
/*
 * Many DMA mappings at once (tests/test_dmadev.sh runs it with thousands
 * and checks the mapper's counters in --stats=json).
 *
 * A region of 2 * pages pages starts private.  Every other page becomes
 * shared, one MAP_GPA_RANGE each: pages mappings, none touching.  The
 * device sees each of them and faults on the private pages between (a
 * sample).  Then the whole region becomes shared in one call: the mapper
 * maps each gap and merges it with its neighbours, leaving one mapping,
 * which the device reads in full.  Then every other page becomes private
 * again, one call each (cuts), and the whole region private (unmaps).
 * The peak number of live mappings is pages.
 */
#include "guest.h"

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	uint64_t n = arg_u64("pages", 512), len, base, i, step;
	uint32_t sum;

	if (cpu)
		return 0;
	GUEST_ASSERT(n > 0);
	len = 2 * n * PAGE_SIZE;
	test_area_require(len + SZ_2M);
	base = test_alloc(len, SZ_2M);
	must_to_private(base, len);

	for (i = 0; i < n; i++)
		GUEST_ASSERT_EQ(to_shared(base + 2 * i * PAGE_SIZE, 1), 0);
	step = n > 64 ? n / 64 : 1;
	for (i = 0; i < n; i += step) {
		uint64_t gpa = base + 2 * i * PAGE_SIZE;

		GUEST_ASSERT_EQ(dma_fill(gpa, PAGE_SIZE, 0x5a), GM_DMA_OK);
		EXPECT_DMA_BYTES(gpa, PAGE_SIZE, 0x5a);
		EXPECT_DMA_FAULT(gpa, 2 * PAGE_SIZE);
	}
	printf("dma_scale: %llu separate shared pages, each its own DMA mapping\n",
	       (unsigned long long)n);

	must_to_shared(base, len);
	GUEST_ASSERT_EQ(dma_fill_range(base, len, 0x11), GM_DMA_OK);
	GUEST_ASSERT_EQ(dma_checksum_range(base, len, &sum), GM_DMA_OK);
	GUEST_ASSERT_EQ(sum, pattern_checksum(0x11, len));
	puts("dma_scale: all of it shared: one mapping, the device reads it all");

	for (i = 0; i < n; i++)
		GUEST_ASSERT_EQ(to_private(base + (2 * i + 1) * PAGE_SIZE, 1),
				0);
	for (i = 0; i < n; i += step)
		EXPECT_DMA_BYTES(base + 2 * i * PAGE_SIZE, PAGE_SIZE, 0x11);
	must_to_private(base, len);
	EXPECT_DMA_FAULT(base, PAGE_SIZE);
	puts("dma_scale: PASS");
	return 0;
}
