/* SPDX-License-Identifier: MIT */
//@ run: 0
//@ run: 0 --conversion in-place
//@ run: 0 --init-shared
//@ run: 0 --implicit convert --conversion in-place --init-shared
/*
 * Implicit conversion (ABI section 6, --implicit convert, the default):
 * touching a page through the wrong view converts that one 4 KiB page to
 * the state of the view used, with the content rules of explicit
 * conversions, and the access completes on the converted page.
 *
 * For each access width (1, 2, 4, 8 bytes, single `mov`s), read and write,
 * both directions (a private page touched through the shared view, a
 * shared page touched through the private view):
 *  - a read returns what the converted page holds (zero in discard mode,
 *    the old bytes in place), a write lands and nothing else changes
 *    beyond the content rule;
 *  - the device agrees on the page's new state, and the neighbours on
 *    both sides keep their state and bytes;
 *  - an explicit conversion to the state the page is now in is a no-op.
 * Then one page flips state on every access, a hundred times.
 *
 * With shared_base == 0 both views are the same addresses and there is no
 * wrong view to touch: the test says so and passes without checking.
 */
#include "guest.h"

#define OLD	0xa7	/* a page's bytes before the wrong-view access */
#define NBR	0x5e	/* the neighbours' bytes */

static const uint64_t value = 0x8877665544332211ULL;
static uint64_t area, area_pages, next_page;

/* Three fresh pages: neighbour, target, neighbour. */
static uint64_t take_pages(void)
{
	uint64_t gpa;

	GUEST_ASSERT_LE(next_page + 3, area_pages);
	gpa = area + (next_page << PAGE_SHIFT);
	next_page += 3;
	return gpa;
}

static void *view(uint64_t gpa, bool shared)
{
	return shared ? gpa_shared(gpa) : gpa_private(gpa);
}

static uint64_t access(void *p, unsigned int width, bool write)
{
	uint64_t mask = width == 8 ? ~0ULL : (1ULL << (8 * width)) - 1;

	switch (width) {
	case 1:
		if (write)
			gm_write8(p, (uint8_t)value);
		return write ? 0 : gm_read8(p);
	case 2:
		if (write)
			gm_write16(p, (uint16_t)value);
		return write ? 0 : gm_read16(p);
	case 4:
		if (write)
			gm_write32(p, (uint32_t)value);
		return write ? 0 : gm_read32(p);
	default:
		if (write)
			gm_write64(p, value);
		return write ? 0 : gm_read64(p) & mask;
	}
}

/* Bytes of the target page after the access, as the ABI says. */
static uint8_t expected_byte(unsigned int off, unsigned int at,
			     unsigned int width, bool write)
{
	if (write && off >= at && off < at + width)
		return (uint8_t)(value >> (8 * (off - at)));
	return after_conversion(OLD);
}

static void check_target(uint64_t gpa, bool now_shared, unsigned int at,
			 unsigned int width, bool write)
{
	const uint8_t *p = view(gpa, now_shared);
	uint32_t sum = 0, dsum;
	int st;

	/* Device first: reading through the view is only safe once the
	 * page is known to be in that view's state. */
	st = dma_checksum(gpa, PAGE_SIZE, &dsum);
	GUEST_ASSERT_MSG(st == (now_shared ? GM_DMA_OK : GM_DMA_FAULT),
			 "page 0x%llx should be %s after the implicit "
			 "conversion; device status %d",
			 (unsigned long long)gpa,
			 now_shared ? "shared" : "private", st);
	for (unsigned int i = 0; i < PAGE_SIZE; i++) {
		uint8_t want = expected_byte(i, at, width, write);

		GUEST_ASSERT_MSG(p[i] == want,
				 "page 0x%llx offset 0x%x: 0x%02x, expected "
				 "0x%02x (%u-byte %s at 0x%x, %s mode)",
				 (unsigned long long)gpa, i, p[i], want, width,
				 write ? "write" : "read", at,
				 gm_in_place() ? "in-place" : "discard");
		sum += want;
	}
	if (now_shared)
		GUEST_ASSERT_EQ(dsum, sum);
}

static void check_neighbour(uint64_t gpa, bool shared)
{
	if (shared) {
		EXPECT_DMA_BYTES(gpa, PAGE_SIZE, NBR);
		EXPECT_SHARED_BYTES(gpa, PAGE_SIZE, NBR);
	} else {
		EXPECT_EACH_PAGE_PRIVATE(gpa, PAGE_SIZE);
		EXPECT_PRIVATE_BYTES(gpa, PAGE_SIZE, NBR);
	}
}

/* One wrong-view access to a page that is @from_shared. */
static void one_case(bool from_shared, unsigned int width, bool write)
{
	uint64_t left = take_pages(), gpa = left + PAGE_SIZE;
	uint64_t right = gpa + PAGE_SIZE;
	unsigned int at = (0x123 & ~(width - 1)) + 8 * width;
	uint64_t got, want = 0;

	if (from_shared) {
		must_to_shared(left, 3 * PAGE_SIZE);
		GUEST_ASSERT_EQ(dma_fill(left, 3 * PAGE_SIZE, NBR), GM_DMA_OK);
		GUEST_ASSERT_EQ(dma_fill(gpa, PAGE_SIZE, OLD), GM_DMA_OK);
	} else {
		must_to_private(left, 3 * PAGE_SIZE);
		memset(gpa_private(left), NBR, 3 * PAGE_SIZE);
		memset(gpa_private(gpa), OLD, PAGE_SIZE);
	}

	/* The access through the wrong view. */
	got = access((uint8_t *)view(gpa, !from_shared) + at, width, write);

	if (!write) {
		for (unsigned int i = 0; i < width; i++)
			want |= (uint64_t)after_conversion(OLD) << (8 * i);
		GUEST_ASSERT_MSG(got == want,
				 "%u-byte read of %s page 0x%llx through the "
				 "%s view returned 0x%llx, expected 0x%llx",
				 width, from_shared ? "shared" : "private",
				 (unsigned long long)gpa,
				 from_shared ? "private" : "shared",
				 (unsigned long long)got,
				 (unsigned long long)want);
	}
	check_target(gpa, !from_shared, at, width, write);
	check_neighbour(left, from_shared);
	check_neighbour(right, from_shared);

	/* Already in that state: an explicit request leaves it alone. */
	if (from_shared)
		must_to_private(gpa, PAGE_SIZE);
	else
		must_to_shared(gpa, PAGE_SIZE);
	check_target(gpa, !from_shared, at, width, write);
}

/* One page, each access through the other view than the last. */
static void ping_pong(void)
{
	uint64_t gpa = take_pages() + PAGE_SIZE;
	uint64_t prev = 0;

	must_to_private(gpa, PAGE_SIZE);
	memset(gpa_private(gpa), 0, PAGE_SIZE);
	for (uint64_t i = 1; i <= 100; i++) {
		bool shared = i & 1;	/* page is in the other state now */
		uint64_t *slot = view(gpa, shared);
		uint64_t old;

		/* A read converts: it sees the old value or zero. */
		old = gm_read64(slot + 1);
		GUEST_ASSERT_EQ(old, gm_in_place() ? prev : 0);
		gm_write64(slot + 1, i);
		GUEST_ASSERT_EQ(gm_read64(slot + 1), i);
		GUEST_ASSERT_EQ(dma_checksum(gpa, PAGE_SIZE, NULL),
				shared ? GM_DMA_OK : GM_DMA_FAULT);
		/* Write-first on the way back half of the time. */
		if (i % 4 == 1) {
			bool back = !shared;

			gm_write64((uint64_t *)view(gpa, back) + 2, ~i);
			GUEST_ASSERT_EQ(gm_read64((uint64_t *)view(gpa, back)
						  + 1),
					gm_in_place() ? i : 0);
			GUEST_ASSERT_EQ(dma_checksum(gpa, PAGE_SIZE, NULL),
					back ? GM_DMA_OK : GM_DMA_FAULT);
			/* Return to the state the loop expects. */
			gm_write64((uint64_t *)view(gpa, shared) + 2, 0);
			prev = gm_read64((uint64_t *)view(gpa, shared) + 1);
			GUEST_ASSERT_EQ(prev, gm_in_place() ? i : 0);
		} else {
			prev = i;
		}
	}
	puts("implicit: one page flipped by 100+ wrong-view accesses");
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	static const unsigned int widths[] = { 1, 2, 4, 8 };

	if (cpu)
		return 0;
	if (!gm_shared_base) {
		puts("implicit: shared_base is 0, both views are one address; "
		     "nothing to test");
		return 0;
	}
	area_pages = 64;
	area = test_alloc(area_pages << PAGE_SHIFT, SZ_2M);
	printf("implicit: pages at 0x%llx, %s mode\n",
	       (unsigned long long)area,
	       gm_in_place() ? "in-place" : "discard");

	for (int from_shared = 0; from_shared < 2; from_shared++) {
		for (int write = 0; write < 2; write++) {
			for (unsigned int w = 0; w < ARRAY_SIZE(widths); w++)
				one_case(from_shared, widths[w], write);
			printf("implicit: %s page %s through the %s view: "
			       "converted, 1/2/4/8 bytes\n",
			       from_shared ? "shared" : "private",
			       write ? "written" : "read",
			       from_shared ? "private" : "shared");
		}
	}
	ping_pong();
	puts("implicit: PASS");
	return 0;
}
