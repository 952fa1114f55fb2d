/* SPDX-License-Identifier: MIT */
//@ run: 0
//@ run: 0 --conversion in-place
//@ run: 0 --init-shared
//@ run: 0 --memory 64M
//@ run: 0 --memory 1G --conversion in-place
/*
 * Whole-RAM and edge-of-RAM conversions:
 *  - one MAP_GPA_RANGE converts all guest-usable RAM, [free_start,
 *    ram_size), to shared and one converts it back to private; the device
 *    sees all of it after the first and none of it after the second (one
 *    page every 2 MiB checked alone), and a few marked pages follow the
 *    content rules; in place, the checksum of all of RAM survives a round
 *    trip;
 *  - the last page of RAM and the first guest-usable page, alone, in both
 *    directions, with their neighbours unaffected;
 *  - a 2 MiB range ending exactly at ram_size.
 * The image, stack and boot info below free_start stay private throughout
 * (the guest keeps running on them).
 */
#include "guest.h"

#define NR_MARKS	8

static uint64_t marks[NR_MARKS];	/* pages the guest writes and reads */
static unsigned int nr_marks;

static void add_mark(uint64_t gpa)
{
	gpa = ALIGN_DOWN(gpa, PAGE_SIZE);
	for (unsigned int i = 0; i < nr_marks; i++)
		if (marks[i] == gpa)
			return;
	marks[nr_marks++] = gpa;
}

static void marks_write(bool shared, uint8_t mark)
{
	for (unsigned int i = 0; i < nr_marks; i++)
		write_marks(marks[i], PAGE_SIZE, shared, mark);
}

static void marks_check(bool shared, uint8_t base, uint8_t mark)
{
	for (unsigned int i = 0; i < nr_marks; i++)
		EXPECT_PAGES(marks[i], PAGE_SIZE, shared, base, mark);
}

/* Spot checks that every mark page and every 2 MiB boundary is private. */
static void check_private_samples(uint64_t start, uint64_t end)
{
	for (unsigned int i = 0; i < nr_marks; i++)
		EXPECT_EACH_PAGE_PRIVATE(marks[i], PAGE_SIZE);
	for (uint64_t a = ALIGN_UP(start, SZ_2M); a < end; a += SZ_2M)
		EXPECT_EACH_PAGE_PRIVATE(a, PAGE_SIZE);
	EXPECT_EACH_PAGE_PRIVATE(end - PAGE_SIZE, PAGE_SIZE);
	/* And every 16 MiB chunk has a private page. */
	for (uint64_t a = start; a < end; a += GM_DMA_MAX_LEN)
		EXPECT_DMA_FAULT(a, MIN(end - a, GM_DMA_MAX_LEN));
}

static uint32_t whole_sum(uint64_t start, uint64_t end)
{
	uint32_t sum = 0;
	int st = dma_checksum_range(start, end - start, &sum);

	GUEST_ASSERT_MSG(st == GM_DMA_OK, "CHECKSUM of all RAM [0x%llx, "
			 "0x%llx): status %d; some page is not shared",
			 (unsigned long long)start, (unsigned long long)end,
			 st);
	return sum;
}

static void whole_ram(void)
{
	uint64_t start = gm_free_start, end = gm_ram_size;
	uint64_t npages = (end - start) >> PAGE_SHIFT;
	uint32_t sum, old_marks = 0, fill_sum;
	long r;

	add_mark(start);
	add_mark(test_area_start());
	add_mark(start + (end - start) / 2);
	add_mark(end - SZ_2M);
	add_mark(end - PAGE_SIZE);

	/* A known starting point whatever --init-shared said. */
	r = to_private(start, npages);
	GUEST_ASSERT_EQ(r, 0);

	r = to_shared(start, npages);
	GUEST_ASSERT_MSG(r == 0, "all RAM [0x%llx, 0x%llx) to shared: %ld",
			 (unsigned long long)start, (unsigned long long)end, r);
	printf("convert_all: [0x%llx, 0x%llx), %llu pages, shared by one "
	       "call\n", (unsigned long long)start, (unsigned long long)end,
	       (unsigned long long)npages);
	/*
	 * One CHECKSUM pass over everything succeeds only if every page is
	 * shared.  Discard mode: all of it reads zero.  In place, the ABI
	 * does not say what never-written RAM holds: take the sum as found
	 * and require it to survive a round trip.
	 */
	sum = whole_sum(start, end);
	if (!gm_in_place())
		GUEST_ASSERT_EQ(sum, 0);
	for (unsigned int i = 0; i < nr_marks; i++) {
		uint32_t s;

		GUEST_ASSERT_EQ(dma_checksum(marks[i], PAGE_SIZE, &s),
				GM_DMA_OK);
		old_marks += s;
		GUEST_ASSERT_EQ(dma_fill(marks[i], PAGE_SIZE, 0x40),
				GM_DMA_OK);
	}
	marks_write(true, 0x41);
	marks_check(true, 0x40, 0x41);
	fill_sum = nr_marks * page_sum(0x40, 0x41);
	sum = sum - old_marks + fill_sum;
	GUEST_ASSERT_EQ(whole_sum(start, end), sum);

	r = to_private(start, npages);
	GUEST_ASSERT_MSG(r == 0, "all RAM [0x%llx, 0x%llx) to private: %ld",
			 (unsigned long long)start, (unsigned long long)end, r);
	puts("convert_all: all of it private again, by one call");
	check_private_samples(start, end);
	GUEST_ASSERT_EQ(dma_fill(start, PAGE_SIZE, 0xee), GM_DMA_FAULT);
	marks_check(false, after_conversion(0x40), after_conversion(0x41));
	marks_write(false, 0x42);

	/* Once more, with the other size hints: hints do not matter. */
	r = map_gpa_range(start, npages, GM_MAP_SHARED | GM_MAP_PAGE_SZ_2M);
	GUEST_ASSERT_EQ(r, 0);
	if (gm_in_place())
		GUEST_ASSERT_EQ(whole_sum(start, end),
				sum - fill_sum +
				nr_marks * page_sum(0x40, 0x42));
	else
		GUEST_ASSERT_EQ(whole_sum(start, end), 0);
	marks_check(true, after_conversion(0x40), after_conversion(0x42));
	r = map_gpa_range(start, npages, GM_MAP_PRIVATE | GM_MAP_PAGE_SZ_1G);
	GUEST_ASSERT_EQ(r, 0);
	check_private_samples(start, end);
	puts("convert_all: and both ways again with 2M and 1G size hints");
}

/* One page alone at @gpa, both directions, while its neighbours (if in
 * guest-usable RAM) stay in the state of the rest. */
static void single_page(uint64_t gpa, const char *what)
{
	uint64_t left = gpa - PAGE_SIZE, right = gpa + PAGE_SIZE;
	bool has_left = gpa > gm_free_start, has_right = right < gm_ram_size;

	/* Private surroundings, page to shared and back. */
	GUEST_ASSERT_EQ(to_private(gm_free_start,
				   (gm_ram_size - gm_free_start) >> PAGE_SHIFT),
			0);
	memset(gpa_private(gpa), 0x5a, PAGE_SIZE);
	if (has_left)
		memset(gpa_private(left), 0xa1, PAGE_SIZE);
	if (has_right)
		memset(gpa_private(right), 0xa2, PAGE_SIZE);

	GUEST_ASSERT_EQ(to_shared(gpa, 1), 0);
	EXPECT_DMA_BYTES(gpa, PAGE_SIZE, after_conversion(0x5a));
	EXPECT_SHARED_BYTES(gpa, PAGE_SIZE, after_conversion(0x5a));
	GUEST_ASSERT_EQ(dma_fill(gpa, PAGE_SIZE, 0x3c), GM_DMA_OK);
	EXPECT_SHARED_BYTES(gpa, PAGE_SIZE, 0x3c);
	if (has_left) {
		EXPECT_DMA_FAULT(left, 2 * PAGE_SIZE);
		EXPECT_EACH_PAGE_PRIVATE(left, PAGE_SIZE);
		EXPECT_PRIVATE_BYTES(left, PAGE_SIZE, 0xa1);
	}
	if (has_right) {
		EXPECT_DMA_FAULT(gpa, 2 * PAGE_SIZE);
		EXPECT_EACH_PAGE_PRIVATE(right, PAGE_SIZE);
		EXPECT_PRIVATE_BYTES(right, PAGE_SIZE, 0xa2);
	}
	GUEST_ASSERT_EQ(to_private(gpa, 1), 0);
	EXPECT_EACH_PAGE_PRIVATE(gpa, PAGE_SIZE);
	EXPECT_PRIVATE_BYTES(gpa, PAGE_SIZE, after_conversion(0x3c));

	/* Shared surroundings, page to private and back. */
	GUEST_ASSERT_EQ(to_shared(gm_free_start,
				  (gm_ram_size - gm_free_start) >> PAGE_SHIFT),
			0);
	GUEST_ASSERT_EQ(dma_fill(gpa, PAGE_SIZE, 0x5b), GM_DMA_OK);
	if (has_left)
		GUEST_ASSERT_EQ(dma_fill(left, PAGE_SIZE, 0xb1), GM_DMA_OK);
	if (has_right)
		GUEST_ASSERT_EQ(dma_fill(right, PAGE_SIZE, 0xb2), GM_DMA_OK);

	GUEST_ASSERT_EQ(to_private(gpa, 1), 0);
	EXPECT_DMA_FAULT(gpa, PAGE_SIZE);
	EXPECT_PRIVATE_BYTES(gpa, PAGE_SIZE, after_conversion(0x5b));
	if (has_left) {
		EXPECT_DMA_BYTES(left, PAGE_SIZE, 0xb1);
		EXPECT_DMA_FAULT(left, 2 * PAGE_SIZE);
	}
	if (has_right) {
		EXPECT_DMA_BYTES(right, PAGE_SIZE, 0xb2);
		EXPECT_DMA_FAULT(gpa, 2 * PAGE_SIZE);
	}
	memset(gpa_private(gpa), 0x6c, PAGE_SIZE);
	GUEST_ASSERT_EQ(to_shared(gpa, 1), 0);
	EXPECT_DMA_BYTES(gpa, PAGE_SIZE, after_conversion(0x6c));
	if (has_left)
		EXPECT_DMA_BYTES(left, PAGE_SIZE, 0xb1);
	if (has_right)
		EXPECT_DMA_BYTES(right, PAGE_SIZE, 0xb2);
	printf("convert_all: %s page 0x%llx converted alone, both ways\n",
	       what, (unsigned long long)gpa);
}

/* 2 MiB ending exactly at the end of RAM. */
static void tail_2m(void)
{
	uint64_t gpa = gm_ram_size - SZ_2M;

	if (gpa < gm_free_start)
		return;
	GUEST_ASSERT_EQ(map_gpa_range(gpa, SZ_2M >> PAGE_SHIFT,
				      GM_MAP_SHARED | GM_MAP_PAGE_SZ_2M), 0);
	GUEST_ASSERT_EQ(dma_fill(gpa, SZ_2M, 0x76), GM_DMA_OK);
	GUEST_ASSERT_EQ(map_gpa_range(gpa, SZ_2M >> PAGE_SHIFT,
				      GM_MAP_PRIVATE | GM_MAP_PAGE_SZ_2M), 0);
	EXPECT_PAGES(gpa, SZ_2M, false, after_conversion(0x76),
		     after_conversion(0x76));
	write_marks(gpa, SZ_2M, false, 0x77);
	GUEST_ASSERT_EQ(map_gpa_range(gpa, SZ_2M >> PAGE_SHIFT,
				      GM_MAP_SHARED | GM_MAP_PAGE_SZ_2M), 0);
	EXPECT_PAGES(gpa, SZ_2M, true, after_conversion(0x76),
		     after_conversion(0x77));
	puts("convert_all: the last 2 MiB of RAM converted both ways");
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	if (cpu)
		return 0;
	printf("convert_all: RAM 0x%llx, free from 0x%llx, %s mode\n",
	       (unsigned long long)gm_ram_size,
	       (unsigned long long)gm_free_start,
	       gm_in_place() ? "in-place" : "discard");
	GUEST_ASSERT_LT(gm_free_start + 2 * PAGE_SIZE, gm_ram_size);

	whole_ram();
	single_page(gm_ram_size - PAGE_SIZE, "last");
	single_page(gm_free_start, "first guest-usable");
	single_page(test_area_start() + SZ_1M, "a middle");
	tail_2m();
	puts("convert_all: PASS");
	return 0;
}
