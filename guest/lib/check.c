/* SPDX-License-Identifier: MIT */
/*
 * Checks shared by the conformance guests; see check.h.
 */
#include "guest.h"

void check_view_bytes(const char *file, int line, bool shared, uint64_t gpa,
		      uint64_t len, uint8_t byte)
{
	const uint8_t *p = shared ? gpa_shared(gpa) : gpa_private(gpa);
	long off = find_mismatch(p, byte, len);

	if (off >= 0)
		guest_fail(file, line,
			   "%s view of [0x%llx, 0x%llx): byte at GPA 0x%llx "
			   "is 0x%02x, expected 0x%02x (%s mode)",
			   shared ? "shared" : "private",
			   (unsigned long long)gpa,
			   (unsigned long long)(gpa + len),
			   (unsigned long long)(gpa + off), p[off], byte,
			   gm_in_place() ? "in-place" : "discard");
}

void check_dma_sum(const char *file, int line, uint64_t gpa, uint64_t len,
		   uint32_t sum)
{
	uint32_t got = 0;
	int st = dma_checksum_range(gpa, len, &got);

	if (st != GM_DMA_OK)
		guest_fail(file, line,
			   "DMA CHECKSUM of [0x%llx, 0x%llx): status %d, "
			   "expected 0 (range should be all shared)",
			   (unsigned long long)gpa,
			   (unsigned long long)(gpa + len), st);
	if (got != sum)
		guest_fail(file, line,
			   "DMA CHECKSUM of [0x%llx, 0x%llx) = 0x%x, "
			   "expected 0x%x (%s mode)",
			   (unsigned long long)gpa,
			   (unsigned long long)(gpa + len), got, sum,
			   gm_in_place() ? "in-place" : "discard");
}

void check_dma_fault(const char *file, int line, uint64_t gpa, uint64_t len)
{
	int st;

	if (len > GM_DMA_MAX_LEN)
		guest_fail(file, line, "check_dma_fault: range too long");
	st = dma_checksum(gpa, (uint32_t)len, NULL);
	if (st != GM_DMA_FAULT)
		guest_fail(file, line,
			   "DMA CHECKSUM of [0x%llx, 0x%llx): status %d, "
			   "expected 1 (some page should be private)",
			   (unsigned long long)gpa,
			   (unsigned long long)(gpa + len), st);
}

void check_each_page_private(const char *file, int line, uint64_t gpa,
			     uint64_t len)
{
	for (uint64_t a = gpa; a < gpa + len; a += PAGE_SIZE) {
		int st = dma_checksum(a, (uint32_t)PAGE_SIZE, NULL);

		if (st != GM_DMA_FAULT)
			guest_fail(file, line,
				   "DMA CHECKSUM of page 0x%llx (in [0x%llx, "
				   "0x%llx)): status %d, expected 1 (private)",
				   (unsigned long long)a,
				   (unsigned long long)gpa,
				   (unsigned long long)(gpa + len), st);
	}
}

/* Mark words and base samples, spread over the page. */
static const uint16_t mark_offs[PAGE_MARK_WORDS] = {
	0x000, 0x5a8, 0xa50, 0xff8,
};
static const uint16_t base_offs[] = { 0x008, 0x800, 0xff0 };

void write_marks(uint64_t gpa, uint64_t len, bool shared, uint8_t mark)
{
	uint64_t v = 0x0101010101010101ULL * mark;

	for (uint64_t a = gpa; a < gpa + len; a += PAGE_SIZE) {
		uint8_t *p = shared ? gpa_shared(a) : gpa_private(a);

		for (unsigned int i = 0; i < PAGE_MARK_WORDS; i++)
			gm_write64(p + mark_offs[i], v);
	}
}

/*
 * The @n words at @offs of the page at @gpa (seen at @p) are bytes @byte
 * each; @what names them in the failure.
 */
static void check_words(const char *file, int line, const uint8_t *p,
			uint64_t gpa, bool shared, const uint16_t *offs,
			unsigned int n, uint8_t byte, const char *what)
{
	for (unsigned int i = 0; i < n; i++) {
		uint64_t got = gm_read64(p + offs[i]);

		if (got != 0x0101010101010101ULL * byte)
			guest_fail(file, line,
				   "%s page 0x%llx: %s at 0x%x is 0x%016llx, "
				   "expected bytes 0x%02x (%s mode)",
				   shared ? "shared" : "private",
				   (unsigned long long)gpa, what, offs[i],
				   (unsigned long long)got, byte,
				   gm_in_place() ? "in-place" : "discard");
	}
}

static void check_samples(const char *file, int line, uint64_t gpa,
			  bool shared, uint8_t base, uint8_t mark)
{
	const uint8_t *p = shared ? gpa_shared(gpa) : gpa_private(gpa);

	check_words(file, line, p, gpa, shared, mark_offs, PAGE_MARK_WORDS,
		    mark, "mark word");
	check_words(file, line, p, gpa, shared, base_offs,
		    ARRAY_SIZE(base_offs), base, "word");
}

void check_pages(const char *file, int line, uint64_t gpa, uint64_t len,
		 bool shared, uint8_t base, uint8_t mark)
{
	if (shared)
		check_dma_sum(file, line, gpa, len,
			      (uint32_t)(len >> PAGE_SHIFT) *
			      page_sum(base, mark));
	else
		check_each_page_private(file, line, gpa, len);
	for (uint64_t a = gpa; a < gpa + len; a += PAGE_SIZE)
		check_samples(file, line, a, shared, base, mark);
}
