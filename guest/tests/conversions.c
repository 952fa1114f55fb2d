/* SPDX-License-Identifier: MIT */
//@ run: 0
//@ run: 0 --conversion in-place
//@ run: 0 --init-shared
//@ run: 0 --conversion in-place --init-shared
/*
 * Explicit conversions of sub-ranges of a 4 MiB test area, after KVM's
 * private_mem_conversions_test: the ranges {offset, size} = {0, 4K},
 * {0, 2M}, {4K, 4K}, {4K, 2M}, {2M, 4K}, each in both directions:
 *
 *  A. the area is shared; the range becomes private, then its odd pages
 *     become shared again (holes in a private range), then the whole range
 *     goes back to shared;
 *  B. the area is private; the range becomes shared, its odd pages private
 *     again, then the whole range goes back to private.
 *
 * After every step each page is checked through the view of its state and
 * through the DMA device (which must see shared pages, with their bytes,
 * and fault on private ones), and the rest of the area must be untouched.
 * Content follows ABI section 5: a converted page reads zero (discard) or
 * keeps its bytes (in-place); a page already in the requested state is
 * left alone, whatever the mode.  The device writes and checks whole
 * pages; the guest writes and samples mark words (see check.h).
 */
#include "guest.h"

#define AREA_SIZE	(2 * SZ_2M)

#define INIT_P	0xcc	/* the area's baseline */
#define P1	0x11
#define P2	0x22
#define P3	0x33
#define P4	0x44
#define JUNK	0xee	/* a FILL that must not land */

static uint64_t area;

/* Content after a conversion: after_conversion(), shorter. */
static uint8_t cv(uint8_t old)
{
	return after_conversion(old);
}

static long convert(uint64_t gpa, uint64_t size, bool private)
{
	/* The size hint is only a hint; pass what a real guest would. */
	uint64_t hint = size >= SZ_2M ? GM_MAP_PAGE_SZ_2M : GM_MAP_PAGE_SZ_4K;

	return map_gpa_range(gpa, size >> PAGE_SHIFT,
			     hint | (private ? GM_MAP_PRIVATE : 0));
}

#define CONVERT(gpa, size, private)					\
	do {								\
		long r_ = convert(gpa, size, private);			\
		GUEST_ASSERT_MSG(r_ == 0, "convert [0x%llx, +0x%llx) to %s:"\
				 " %ld", (unsigned long long)(gpa),	\
				 (unsigned long long)(size),		\
				 (private) ? "private" : "shared", r_);	\
	} while (0)

/*
 * Put the whole area in one state with known bytes: shared, every byte
 * INIT_P (device FILL); private, that converted, then INIT_P marks written
 * through the private view.  Returns the base of the area's pages.
 */
static uint8_t reset_area(bool private)
{
	CONVERT(area, AREA_SIZE, false);
	GUEST_ASSERT_EQ(dma_fill(area, AREA_SIZE, INIT_P), GM_DMA_OK);
	EXPECT_DMA_BYTES(area, AREA_SIZE, INIT_P);
	if (!private)
		return INIT_P;
	CONVERT(area, AREA_SIZE, true);
	write_marks(area, AREA_SIZE, false, INIT_P);
	return cv(INIT_P);
}

/* The parts of the area outside [gpa, gpa + size) are as reset_area left
 * them. */
static void check_rest(uint64_t gpa, uint64_t size, bool private,
		       uint8_t base)
{
	uint64_t end = gpa + size, area_end = area + AREA_SIZE;

	if (gpa > area)
		EXPECT_PAGES(area, gpa - area, !private, base, INIT_P);
	if (end < area_end)
		EXPECT_PAGES(end, area_end - end, !private, base, INIT_P);
}

/* A DMA range straddling an edge of [gpa, gpa + size) inside the area
 * faults as a whole: one side of the edge is private. */
static void check_edges_fault(uint64_t gpa, uint64_t size)
{
	if (gpa > area)
		EXPECT_DMA_FAULT(gpa - PAGE_SIZE, 2 * PAGE_SIZE);
	if (gpa + size < area + AREA_SIZE)
		EXPECT_DMA_FAULT(gpa + size - PAGE_SIZE, 2 * PAGE_SIZE);
}

static bool odd_page(uint64_t gpa, uint64_t a)
{
	return ((a - gpa) >> PAGE_SHIFT) & 1;
}

/* A: shared area, the range goes private, odd pages back to shared. */
static void shared_to_private(uint64_t gpa, uint64_t size)
{
	uint8_t base = reset_area(false);
	uint64_t a;

	GUEST_ASSERT_EQ(dma_fill(gpa, (uint32_t)size, P1), GM_DMA_OK);

	CONVERT(gpa, size, true);
	/* Device first: it must not see the range, nor write into it. */
	EXPECT_DMA_FAULT(gpa, size);
	GUEST_ASSERT_EQ(dma_fill(gpa, (uint32_t)size, JUNK), GM_DMA_FAULT);
	EXPECT_PAGES(gpa, size, false, cv(P1), cv(P1));
	check_rest(gpa, size, false, base);
	check_edges_fault(gpa, size);

	write_marks(gpa, size, false, P2);
	EXPECT_PAGES(gpa, size, false, cv(P1), P2);

	/* Holes in the private range. */
	for (a = gpa; a < gpa + size; a += PAGE_SIZE) {
		if (!odd_page(gpa, a))
			continue;
		CONVERT(a, PAGE_SIZE, false);
		EXPECT_PAGES(a, PAGE_SIZE, true, cv(cv(P1)), cv(P2));
		GUEST_ASSERT_EQ(dma_fill(a, PAGE_SIZE, P3), GM_DMA_OK);
	}
	/* The whole range, page by page. */
	for (a = gpa; a < gpa + size; a += PAGE_SIZE) {
		if (odd_page(gpa, a))
			EXPECT_PAGES(a, PAGE_SIZE, true, P3, P3);
		else
			EXPECT_PAGES(a, PAGE_SIZE, false, cv(P1), P2);
	}
	check_rest(gpa, size, false, base);

	/* Back to shared: the odd pages were shared already and keep P3. */
	CONVERT(gpa, size, false);
	for (a = gpa; a < gpa + size; a += PAGE_SIZE) {
		if (odd_page(gpa, a))
			EXPECT_PAGES(a, PAGE_SIZE, true, P3, P3);
		else
			EXPECT_PAGES(a, PAGE_SIZE, true, cv(cv(P1)), cv(P2));
	}
	GUEST_ASSERT_EQ(dma_fill(gpa, (uint32_t)size, P4), GM_DMA_OK);
	EXPECT_PAGES(gpa, size, true, P4, P4);
	check_rest(gpa, size, false, base);
}

/* B: private area, the range goes shared, odd pages back to private. */
static void private_to_shared(uint64_t gpa, uint64_t size)
{
	uint8_t base = reset_area(true);
	uint64_t a;

	write_marks(gpa, size, false, P1);

	CONVERT(gpa, size, false);
	EXPECT_PAGES(gpa, size, true, cv(base), cv(P1));
	check_rest(gpa, size, true, base);
	check_edges_fault(gpa, size);

	GUEST_ASSERT_EQ(dma_fill(gpa, (uint32_t)size, P2), GM_DMA_OK);
	EXPECT_PAGES(gpa, size, true, P2, P2);

	/* Holes in the shared range. */
	for (a = gpa; a < gpa + size; a += PAGE_SIZE) {
		if (!odd_page(gpa, a))
			continue;
		CONVERT(a, PAGE_SIZE, true);
		EXPECT_PAGES(a, PAGE_SIZE, false, cv(P2), cv(P2));
		write_marks(a, PAGE_SIZE, false, P3);
	}
	for (a = gpa; a < gpa + size; a += PAGE_SIZE) {
		if (odd_page(gpa, a))
			EXPECT_PAGES(a, PAGE_SIZE, false, cv(P2), P3);
		else
			EXPECT_PAGES(a, PAGE_SIZE, true, P2, P2);
	}
	check_rest(gpa, size, true, base);

	/* Back to private: the odd pages were private already, keep P3. */
	CONVERT(gpa, size, true);
	for (a = gpa; a < gpa + size; a += PAGE_SIZE) {
		if (odd_page(gpa, a))
			EXPECT_PAGES(a, PAGE_SIZE, false, cv(P2), P3);
		else
			EXPECT_PAGES(a, PAGE_SIZE, false, cv(P2), cv(P2));
	}
	write_marks(gpa, size, false, P4);
	EXPECT_PAGES(gpa, size, false, cv(P2), P4);
	check_rest(gpa, size, true, base);
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	static const struct {
		uint64_t offset;
		uint64_t size;
	} stages[] = {
		{ 0, SZ_4K },
		{ 0, SZ_2M },
		{ SZ_4K, SZ_4K },
		{ SZ_4K, SZ_2M },
		{ SZ_2M, SZ_4K },
	};

	if (cpu)
		return 0;
	test_area_require(AREA_SIZE);
	area = test_alloc(AREA_SIZE, SZ_2M);
	printf("conversions: area [0x%llx, 0x%llx), %s mode%s\n",
	       (unsigned long long)area,
	       (unsigned long long)(area + AREA_SIZE),
	       gm_in_place() ? "in-place" : "discard",
	       gm_init_shared() ? ", started shared" : "");

	for (unsigned int i = 0; i < ARRAY_SIZE(stages); i++) {
		uint64_t gpa = area + stages[i].offset;
		uint64_t size = stages[i].size;

		shared_to_private(gpa, size);
		private_to_shared(gpa, size);
		printf("conversions: {0x%llx, 0x%llx} ok both ways\n",
		       (unsigned long long)stages[i].offset,
		       (unsigned long long)size);
	}
	puts("conversions: PASS");
	return 0;
}
