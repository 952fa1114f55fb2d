/* SPDX-License-Identifier: MIT */
//@ run: 0
//@ run: 0 --conversion in-place
//@ run: 0 --init-shared
//@ run: 0 --conversion in-place --init-shared --audit each
//@ run: 0 --dmatest external --audit each
//@ run: 0 --reclaim deferred
/*
 * Guest ABI extension 3: CONVERT_BATCH, against a model of a 512-page
 * area (state and content of every page).
 *
 *  - batches converting both ways at once, scattered single pages and
 *    ranges, entries already in their target state, the largest list
 *    (253 entries); content as section 5 says (discard: a converted page
 *    reads zeros; in-place: kept), pages outside the entries untouched;
 *  - the header: done = a1, failed = 0xffff, status = RAX, busy_gpa 0 on
 *    success; never written when the registers or the list page are bad;
 *  - hostile lists, each -22 and nothing changed: a1 = 0, 254 entries, a2
 *    not 0, the list page unaligned, past RAM, private, unplugged; an
 *    entry unaligned, of 0 pages, past RAM, wrapping, with target 2 or a
 *    reserved byte set, covering the list page (either target);
 *    overlapping entries (both targets, and a later entry starting before
 *    an earlier one), each named as the ABI says;
 *  - busy: a page pinned by the DMA device makes a batch -11, naming the
 *    entry and the pinned page, and nothing changes; after UNPIN the same
 *    list goes through.
 * States are witnessed by the DMA device (which reaches shared pages
 * only), content by its CHECKSUM and by samples through the private view.
 */
#include "guest.h"

#define NPAGES	512
#define AREA	(NPAGES * PAGE_SIZE)

static uint64_t area;
static uint64_t list_gpa;	/* the batch's list page */
static uint64_t priv_page;	/* a private page next to it */
static uint8_t st[NPAGES];	/* 1: shared */
static uint8_t fill[NPAGES];	/* every byte of the page */
static struct batch b;

static uint64_t pg(unsigned int i)
{
	return area + (uint64_t)i * PAGE_SIZE;
}

static void check_page(unsigned int i, const char *what)
{
	uint32_t sum = 0;
	int s = dma_checksum(pg(i), PAGE_SIZE, &sum);

	if (st[i]) {
		GUEST_ASSERT_MSG(s == GM_DMA_OK &&
				 sum == pattern_checksum(fill[i], PAGE_SIZE),
				 "after %s: shared page %u: status %d, sum 0x%x, want 0x%x",
				 what, i, s, sum,
				 pattern_checksum(fill[i], PAGE_SIZE));
		return;
	}
	GUEST_ASSERT_MSG(s == GM_DMA_FAULT,
			 "after %s: private page %u: DMA status %d", what, i, s);
	{
		const volatile uint8_t *p = gpa_private(pg(i));

		GUEST_ASSERT_MSG(p[0] == fill[i] && p[PAGE_SIZE - 1] == fill[i],
				 "after %s: private page %u reads 0x%x/0x%x, want 0x%x",
				 what, i, p[0], p[PAGE_SIZE - 1], fill[i]);
	}
}

static void check_range(unsigned int first, unsigned int n, const char *what)
{
	for (unsigned int i = first; i < first + n; i++)
		check_page(i, what);
}

/* The model's side of a successful entry. */
static void model_convert(unsigned int first, unsigned int n, bool private)
{
	for (unsigned int i = first; i < first + n; i++) {
		if (st[i] == !private)
			continue;
		st[i] = !private;
		if (!gm_in_place())
			fill[i] = 0;
	}
}

/* Every page shared, page i holding i % 251 + 1. */
static void reset_area(void)
{
	must_to_shared(area, AREA);
	for (unsigned int i = 0; i < NPAGES; i++) {
		st[i] = 1;
		fill[i] = (uint8_t)(i % 251 + 1);
		GUEST_ASSERT_EQ(dma_fill(pg(i), PAGE_SIZE, fill[i]), GM_DMA_OK);
	}
}

static void add(unsigned int first, unsigned int n, bool private)
{
	batch_add(&b, pg(first), n, private);
}

static void expect_hdr(long status, unsigned int done, unsigned int failed,
		       uint64_t busy)
{
	const volatile struct gm_batch_header *h = &b.list->hdr;

	GUEST_ASSERT_MSG(h->status == status && h->done == done &&
			 h->failed == failed && h->busy_gpa == busy,
			 "header {done %u, failed 0x%x, status %d, busy 0x%llx}, want {%u, 0x%x, %ld, 0x%llx}",
			 h->done, h->failed, h->status,
			 (unsigned long long)h->busy_gpa, done, failed, status,
			 (unsigned long long)busy);
}

/* Submit the list; it must succeed. */
static void submit_ok(const char *what)
{
	long r = batch_submit(&b);

	GUEST_ASSERT_MSG(r == 0, "%s: CONVERT_BATCH of %u entries = %ld", what,
			 b.n, r);
	expect_hdr(0, b.n, GM_BATCH_NO_ENTRY, 0);
}

static void both_ways(void)
{
	unsigned int i;

	reset_area();
	/* Odd pages of [0, 64) and the range [64, 96) to private. */
	batch_reset(&b);
	for (i = 1; i < 64; i += 2)
		add(i, 1, true);
	add(64, 32, true);
	submit_ok("odd pages and a range to private");
	for (i = 1; i < 64; i += 2)
		model_convert(i, 1, true);
	model_convert(64, 32, true);
	check_range(0, 100, "odd pages and a range to private");
	check_page(NPAGES - 1, "odd pages and a range to private");

	/* One call, both ways: the range back to shared, even pages of
	 * [0, 16) to private, pages 1 and 3 to shared; page 5 already
	 * private and page 100 already shared are left alone. */
	batch_reset(&b);
	add(64, 32, false);
	for (i = 0; i < 16; i += 2)
		add(i, 1, true);
	add(1, 1, false);
	add(3, 1, false);
	add(5, 1, true);
	add(100, 4, false);
	submit_ok("both ways at once");
	model_convert(64, 32, false);
	for (i = 0; i < 16; i += 2)
		model_convert(i, 1, true);
	model_convert(1, 1, false);
	model_convert(3, 1, false);
	check_range(0, 110, "both ways at once");
	/* A shared page the device fills, then back and forth. */
	GUEST_ASSERT_EQ(dma_fill(pg(1), PAGE_SIZE, 0x77), GM_DMA_OK);
	fill[1] = 0x77;
	batch_reset(&b);
	add(1, 1, true);
	submit_ok("a filled page to private");
	model_convert(1, 1, true);
	check_page(1, "a filled page to private");
	puts("batch: both directions in one call");
}

static void largest_list(void)
{
	unsigned int i;

	reset_area();
	batch_reset(&b);
	for (i = 0; i < GM_BATCH_MAX_ENTRIES; i++)
		add(2 * i + 1, 1, true);
	submit_ok("253 entries");
	for (i = 0; i < GM_BATCH_MAX_ENTRIES; i++)
		model_convert(2 * i + 1, 1, true);
	for (i = 0; i < NPAGES; i += 7)
		check_page(i, "253 entries");
	check_range(0, 16, "253 entries");
	/* And back, as one list of 253 again. */
	for (i = 0; i < GM_BATCH_MAX_ENTRIES; i++)
		b.list->entries[i].target = GM_BATCH_TO_SHARED;
	submit_ok("253 entries back");
	for (i = 0; i < GM_BATCH_MAX_ENTRIES; i++)
		model_convert(2 * i + 1, 1, false);
	for (i = 0; i < NPAGES; i += 5)
		check_page(i, "253 entries back");
	puts("batch: 253 entries");
}

/*
 * The valid start of every hostile list: pages 0..3 flip state, so that a
 * call that half-worked would show on them.
 */
static void witness_list(void)
{
	batch_reset(&b);
	for (unsigned int i = 0; i < 4; i++)
		add(i, 1, st[i]);
}

static void check_witnesses(const char *what)
{
	check_range(0, 4, what);
	check_page(NPAGES - 1, what);
}

/* The list as it is, with the registers given: -22, the header written
 * (naming @failed) or not. */
static void expect_refused(uint64_t a0, uint64_t a1, uint64_t a2,
			   bool written, unsigned int failed,
			   const char *what)
{
	long r;

	b.list->hdr.status = BATCH_HDR_UNWRITTEN;
	r = gm_doorbell(GM_HC_CONVERT_BATCH, a0, a1, a2);
	GUEST_ASSERT_MSG(r == GM_HC_EINVAL, "%s: %ld, want -22", what, r);
	if (written)
		expect_hdr(GM_HC_EINVAL, 0, failed, 0);
	else
		GUEST_ASSERT_MSG(b.list->hdr.status == BATCH_HDR_UNWRITTEN,
				 "%s: the header was written", what);
	check_witnesses(what);
}

static void bad_entry(unsigned int k, struct gm_batch_entry e,
		      const char *what)
{
	witness_list();
	while (b.n <= k)
		add(8 + b.n, 1, true);
	b.list->entries[k] = e;
	expect_refused(list_gpa, b.n, 0, true, k, what);
}

static void hostile(void)
{
	volatile uint8_t *pp = gpa_private(priv_page);

	reset_area();
	witness_list();
	/* Registers: nothing read or written. */
	expect_refused(list_gpa, 0, 0, false, 0, "a1 = 0");
	expect_refused(list_gpa, GM_BATCH_MAX_ENTRIES + 1, 0, false, 0,
		       "254 entries");
	expect_refused(list_gpa, (1ULL << 32) + 4, 0, false, 0,
		       "a count wrapping in 32 bits");
	expect_refused(list_gpa, 4, 1, false, 0, "a2 = 1");
	expect_refused(list_gpa, 4, 1ULL << 63, false, 0, "a2 bit 63");
	expect_refused(list_gpa + 16, 4, 0, false, 0, "unaligned list");
	expect_refused(gm_ram_size, 4, 0, false, 0, "list past RAM");
	expect_refused(~0ULL & ~(PAGE_SIZE - 1), 4, 0, false, 0,
		       "list at the top");
	if (gm_shared_base)
		expect_refused(gm_shared_base + list_gpa, 4, 0, false, 0,
			       "a shared-view list address");
	/* A private list page: not read, not written (its bytes stay). */
	pp[0] = 0x3c;
	pp[1] = 0x3d;
	expect_refused(priv_page, 4, 0, false, 0, "a private list page");
	GUEST_ASSERT(pp[0] == 0x3c && pp[1] == 0x3d);
	/* An unplugged one (it was shared: now in no view). */
	GUEST_ASSERT_EQ(gm_doorbell(GM_HC_SET_PLUGGED, priv_page + PAGE_SIZE,
				    1, 0), 0);
	GUEST_ASSERT_EQ(to_shared(priv_page + PAGE_SIZE, 1), 0);
	expect_refused(priv_page + PAGE_SIZE, 4, 0, false, 0,
		       "an unplugged list page");
	GUEST_ASSERT_EQ(gm_doorbell(GM_HC_SET_PLUGGED, priv_page + PAGE_SIZE,
				    1, GM_PLUG), 0);

	/* Entries: -22 naming the first bad one. */
	bad_entry(2, (struct gm_batch_entry){ .gpa = pg(2) + 8, .pages = 1 },
		  "an unaligned entry");
	bad_entry(4, (struct gm_batch_entry){ .gpa = pg(20), .pages = 0 },
		  "an entry of 0 pages");
	bad_entry(4, (struct gm_batch_entry){ .gpa = gm_ram_size - PAGE_SIZE,
					      .pages = 2 },
		  "an entry past RAM");
	bad_entry(5, (struct gm_batch_entry){ .gpa = gm_ram_size, .pages = 1 },
		  "an entry at the end of RAM");
	bad_entry(4, (struct gm_batch_entry){ .gpa = ~0ULL & ~(PAGE_SIZE - 1),
					      .pages = 2 },
		  "a wrapping entry");
	bad_entry(1, (struct gm_batch_entry){ .gpa = pg(1), .pages = 1,
					      .target = 2 },
		  "target 2");
	for (unsigned int i = 0; i < 3; i++) {
		struct gm_batch_entry e = { .gpa = pg(30), .pages = 1 };

		e.reserved[i] = 0x10;
		bad_entry(4, e, "a reserved byte");
	}
	bad_entry(4, (struct gm_batch_entry){ .gpa = list_gpa, .pages = 1,
					      .target = GM_BATCH_TO_SHARED },
		  "the list page itself, to shared");
	bad_entry(4, (struct gm_batch_entry){ .gpa = list_gpa - PAGE_SIZE,
					      .pages = 3,
					      .target = GM_BATCH_TO_PRIVATE },
		  "a range across the list page");
	/* Two bad entries: the first in list order. */
	witness_list();
	add(40, 0, true);
	add(41, 1, true);
	b.list->entries[1].target = 7;
	expect_refused(list_gpa, b.n, 0, true, 1, "two bad entries");

	/* Overlaps, whatever the targets. */
	witness_list();
	add(2, 1, !st[2]);	/* the same page as entry 2, the other way */
	expect_refused(list_gpa, b.n, 0, true, 4, "the same page both ways");
	witness_list();
	add(11, 1, true);
	add(10, 2, false);	/* entry 4 starts inside it: 4 is named */
	expect_refused(list_gpa, b.n, 0, true, 4,
		       "a later entry starting before an earlier one");
	witness_list();
	add(3, 1, st[3]);	/* the same as entry 3: still an overlap */
	expect_refused(list_gpa, b.n, 0, true, 4, "an entry twice");

	/* vmcall cannot carry it (extension 3 is doorbell only). */
	if (gm_flags & GM_BOOT_F_VMCALL) {
		witness_list();
		GUEST_ASSERT_EQ(gm_hypercall(GM_HC_CONVERT_BATCH, list_gpa,
					     b.n, 0), GM_HC_ENOSYS);
		check_witnesses("CONVERT_BATCH by vmcall");
	}
	/* After all that, the witness list itself goes through. */
	witness_list();
	submit_ok("the witness list");
	for (unsigned int i = 0; i < 4; i++)
		model_convert(i, 1, st[i]);
	check_witnesses("the witness list");
	puts("batch: every hostile list refused with -22, nothing changed");
}

static void busy(void)
{
	uint64_t pinned = pg(203);

	reset_area();
	GUEST_ASSERT_EQ(dma_pin(pinned, PAGE_SIZE), GM_DMA_OK);
	batch_reset(&b);
	add(150, 2, true);
	add(180, 1, false);	/* already shared */
	add(200, 8, true);	/* holds the pinned page */
	add(220, 1, true);
	b.list->hdr.status = BATCH_HDR_UNWRITTEN;
	GUEST_ASSERT_EQ(convert_batch(list_gpa, b.n), GM_HC_EAGAIN);
	expect_hdr(GM_HC_EAGAIN, 0, 2, pinned);
	check_range(148, 76, "a busy batch");
	GUEST_ASSERT_EQ(dma_unpin(pinned, PAGE_SIZE), GM_DMA_OK);
	submit_ok("the busy list after UNPIN");
	model_convert(150, 2, true);
	model_convert(200, 8, true);
	model_convert(220, 1, true);
	check_range(148, 76, "the busy list after UNPIN");
	puts("batch: a pinned page makes it -11, naming entry and page");
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	uint64_t l;

	if (cpu)
		return 0;
	GUEST_ASSERT(gm_has_batch());
	area = test_alloc(AREA, SZ_2M);
	l = test_alloc(4 * PAGE_SIZE, PAGE_SIZE);
	list_gpa = l + PAGE_SIZE;
	priv_page = l + 2 * PAGE_SIZE;
	must_to_private(l, 4 * PAGE_SIZE);
	batch_init(&b, list_gpa);
	for (unsigned int i = 0; i < NPAGES; i++)
		st[i] = gm_init_shared();
	both_ways();
	largest_list();
	hostile();
	busy();
	puts("batch: PASS");
	return 0;
}
