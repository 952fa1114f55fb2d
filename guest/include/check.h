/* SPDX-License-Identifier: MIT */
/*
 * Checks shared by the conformance guests.  Each fails the test with the
 * caller's file and line, the range and what was found instead.
 *
 * Two independent witnesses say what state a page is in and what it holds:
 * the guest reading through one view (only ever the view of the state the
 * test believes the page is in, or the read itself would be an implicit
 * conversion), and the DMA device, which sees shared pages only.
 */
#ifndef GUEST_CHECK_H
#define GUEST_CHECK_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Page content the guest can afford to write and check.  Guest code may
 * run at about a microsecond per instruction (the project's machines
 * emulate it), so tests do not fill or scan whole pages from the guest
 * when they can avoid it.  Instead a page "holds (base, mark)": every byte
 * is @base except the PAGE_MARK_WORDS 8-byte mark words at fixed offsets,
 * which hold @mark.  The device fills whole pages (base = mark) cheaply
 * and checks whole pages through CHECKSUM; the guest writes only the mark
 * words and reads the mark words and a few base samples.
 */
#define PAGE_MARK_WORDS	4

static inline uint32_t page_sum(uint8_t base, uint8_t mark)
{
	return (uint32_t)base * (PAGE_SIZE - 8 * PAGE_MARK_WORDS) +
	       (uint32_t)mark * 8 * PAGE_MARK_WORDS;
}

/* Write @mark into the mark words of every page of [gpa, gpa + len). */
void write_marks(uint64_t gpa, uint64_t len, bool shared, uint8_t mark);

/* What a page holding @old reads as after a conversion (ABI section 5). */
static inline uint8_t after_conversion(uint8_t old)
{
	return gm_in_place() ? old : 0;
}

void check_view_bytes(const char *file, int line, bool shared, uint64_t gpa,
		      uint64_t len, uint8_t byte);
void check_dma_sum(const char *file, int line, uint64_t gpa, uint64_t len,
		   uint32_t sum);
void check_dma_fault(const char *file, int line, uint64_t gpa, uint64_t len);
void check_each_page_private(const char *file, int line, uint64_t gpa,
			     uint64_t len);
void check_pages(const char *file, int line, uint64_t gpa, uint64_t len,
		 bool shared, uint8_t base, uint8_t mark);

/* Every byte of [gpa, gpa + len) reads @byte through the private view
 * (a full scan: keep @len small). */
#define EXPECT_PRIVATE_BYTES(gpa, len, byte) \
	check_view_bytes(__FILE__, __LINE__, false, gpa, len, byte)
/* ... through the shared view. */
#define EXPECT_SHARED_BYTES(gpa, len, byte) \
	check_view_bytes(__FILE__, __LINE__, true, gpa, len, byte)
/* The device's CHECKSUM of the range succeeds and equals @sum. */
#define EXPECT_DMA_SUM(gpa, len, sum) \
	check_dma_sum(__FILE__, __LINE__, gpa, len, sum)
/* The device sees every byte of the (all shared) range as @byte. */
#define EXPECT_DMA_BYTES(gpa, len, byte) \
	check_dma_sum(__FILE__, __LINE__, gpa, len, \
		      pattern_checksum(byte, len))
/* The device's CHECKSUM of the range faults: some page is private. */
#define EXPECT_DMA_FAULT(gpa, len) \
	check_dma_fault(__FILE__, __LINE__, gpa, len)
/* Every page of the range faults on its own: all of them are private. */
#define EXPECT_EACH_PAGE_PRIVATE(gpa, len) \
	check_each_page_private(__FILE__, __LINE__, gpa, len)

/*
 * Every page of the range is in the state @shared and holds (base, mark):
 * shared, the device's CHECKSUM of the range succeeds with the sum of such
 * pages; private, each page faults in the device on its own.  Then the
 * guest samples every page through the view of that state.
 */
#define EXPECT_PAGES(gpa, len, shared, base, mark) \
	check_pages(__FILE__, __LINE__, gpa, len, shared, base, mark)

#endif /* GUEST_CHECK_H */
