/* SPDX-License-Identifier: MIT */
//@ run: 0
//@ run: 0 --conversion in-place
//@ run: 0 --dmatest=external --audit each
/*
 * The `make run` demo: converts memory between private and shared and
 * says, in plain lines, what it did and what the DMA device saw.  It
 * checks what it prints, so it doubles as a smoke test.
 */
#include "guest.h"

#define PATTERN	0x5a
/* What the guest itself writes and sums: guest instructions can be slow
 * (emulated), the device is not. */
#define GUEST_LEN	SZ_64K

static const char *mode(void)
{
	return gm_in_place() ? "in-place" : "discard";
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	uint64_t gpa, page;
	uint32_t sum = 0;
	int st;
	long r;

	if (cpu)
		return 0;
	printf("demo: %llu MiB of RAM, %u vCPU(s), %s mode; shared view at "
	       "0x%llx%s\n",
	       (unsigned long long)(gm_ram_size >> 20), gm_nr_vcpus, mode(),
	       (unsigned long long)gm_shared_base,
	       gm_shared_base ? "" : " (same addresses, gated by attribute)");
	test_area_require(SZ_2M);
	gpa = test_alloc(SZ_2M, SZ_2M);

	/* Known start: private, holding a guest secret. */
	GUEST_ASSERT_EQ(to_private(gpa, SZ_2M >> PAGE_SHIFT), 0);
	memset(gpa_private(gpa), 0x42, GUEST_LEN);
	st = dma_checksum(gpa, SZ_2M, NULL);
	printf("demo: 2 MiB at 0x%llx is private, its first 64 KiB hold a "
	       "secret (0x42): the device cannot read it (status %d)\n",
	       (unsigned long long)gpa, st);
	GUEST_ASSERT_EQ(st, GM_DMA_FAULT);

	r = to_shared(gpa, SZ_2M >> PAGE_SHIFT);
	printf("demo: converted 2 MiB at 0x%llx to shared (MAP_GPA_RANGE "
	       "returned %ld)\n", (unsigned long long)gpa, r);
	GUEST_ASSERT_EQ(r, 0);
	st = dma_checksum(gpa, GUEST_LEN, &sum);
	printf("demo: the device reads it now: checksum of the first 64 KiB "
	       "0x%x (%s)\n", sum,
	       gm_in_place() ? "the secret, kept in place" :
			       "zeros: the old content was discarded");
	GUEST_ASSERT_EQ(st, GM_DMA_OK);
	GUEST_ASSERT_EQ(sum, pattern_checksum(after_conversion(0x42),
					      GUEST_LEN));

	st = dma_fill(gpa, SZ_2M, PATTERN);
	GUEST_ASSERT_EQ(st, GM_DMA_OK);
	st = dma_checksum(gpa, SZ_2M, &sum);
	printf("demo: device filled the 2 MiB with 0x%x, checksum 0x%x\n",
	       PATTERN, sum);
	GUEST_ASSERT_EQ(st, GM_DMA_OK);
	GUEST_ASSERT_EQ(sum, pattern_checksum(PATTERN, SZ_2M));
	st = dma_checksum(gpa, GUEST_LEN, &sum);
	printf("demo: through the shared view at %p the guest sums the first "
	       "64 KiB to 0x%x; the device says 0x%x\n", gpa_shared(gpa),
	       checksum(gpa_shared(gpa), GUEST_LEN), sum);
	GUEST_ASSERT_EQ(st, GM_DMA_OK);
	GUEST_ASSERT_EQ(sum, checksum(gpa_shared(gpa), GUEST_LEN));

	r = to_private(gpa, SZ_2M >> PAGE_SHIFT);
	GUEST_ASSERT_EQ(r, 0);
	st = dma_fill(gpa, SZ_2M, 0xee);
	printf("demo: converted back to private: device now faults (status "
	       "%d) and wrote nothing\n", st);
	GUEST_ASSERT_EQ(st, GM_DMA_FAULT);
	printf("demo: the private view reads 0x%02x (%s)\n",
	       *(volatile uint8_t *)gpa_private(gpa),
	       gm_in_place() ? "the device's bytes, kept" :
			       "zeros: the shared copy was discarded");
	EXPECT_PAGES(gpa, SZ_2M, false, after_conversion(PATTERN),
		     after_conversion(PATTERN));

	/* Implicit conversion: touch a private page through the shared view. */
	page = gpa + SZ_1M;
	if (gm_shared_base) {
		uint64_t v;

		gm_write64(gpa_private(page), 0x1234);
		v = gm_read64(gpa_shared(page));
		st = dma_checksum(page, PAGE_SIZE, &sum);
		printf("demo: wrote 0x1234 to page 0x%llx privately, then read "
		       "it through the shared view: 0x%llx; that read "
		       "converted the page implicitly, the device sees it "
		       "(status %d)\n",
		       (unsigned long long)page, (unsigned long long)v, st);
		GUEST_ASSERT_EQ(v, gm_in_place() ? 0x1234 : 0);
		GUEST_ASSERT_EQ(st, GM_DMA_OK);
		st = dma_checksum(page + PAGE_SIZE, PAGE_SIZE, NULL);
		printf("demo: its neighbour 0x%llx stayed private (device "
		       "status %d)\n", (unsigned long long)(page + PAGE_SIZE),
		       st);
		GUEST_ASSERT_EQ(st, GM_DMA_FAULT);
	}
	puts("demo: done");
	return 0;
}
