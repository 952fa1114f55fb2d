/* SPDX-License-Identifier: MIT */
//@ run: 0 --memory 1G --stats
//@ run: 0 --memory 1G --conversion in-place
//@ needs: [ "$(cat /proc/sys/vm/max_map_count)" -le 500000 ] # vm.max_map_count above 500000, more mappings than 1 GiB of alternating pages makes
/*
 * Guest ABI extension 3, status -12: a guest cannot kill its VM by
 * fragmenting its memory.  Every other page of the test area goes shared,
 * 253 pages per CONVERT_BATCH, until the host's mapping limit
 * (vm.max_map_count: each run of page state costs gmvm a mapping per
 * view) makes gmvm answer -12.  Then:
 *  - the refused list changed nothing (its pages are still private, as
 *    the DMA device sees) and its header says -12 with no entry to blame;
 *  - single MAP_GPA_RANGE calls go on until one gets -12 too, and the VM
 *    still runs;
 *  - a conversion adjacent to a shared run (it merges runs) succeeds;
 *  - once the guest merges runs back (16 pages to private at a time),
 *    the refused page and the refused list go through.
 * 1 GiB of RAM reaches a limit of up to about 500000 mappings; on a host
 * whose limit is higher the runner skips it (the "needs" line), and run
 * by hand it fails saying so (it never passes without having seen -12).
 */
#include "guest.h"

#define MERGE_CHUNK	16

static struct batch b;

/* The page at @gpa is private: the device cannot reach it. */
static void expect_private(uint64_t gpa, const char *what)
{
	GUEST_ASSERT_MSG(dma_checksum(gpa, PAGE_SIZE, NULL) == GM_DMA_FAULT,
			 "%s: page 0x%llx is not private", what,
			 (unsigned long long)gpa);
}

static void expect_shared(uint64_t gpa, const char *what)
{
	GUEST_ASSERT_MSG(dma_checksum(gpa, PAGE_SIZE, NULL) == GM_DMA_OK,
			 "%s: page 0x%llx is not shared", what,
			 (unsigned long long)gpa);
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	uint64_t list, area, end = gm_ram_size, gpa, fail, a;
	const struct gm_batch_header *h;
	unsigned long calls = 0;
	unsigned int i;
	long r;

	if (cpu)
		return 0;
	GUEST_ASSERT(gm_has_batch());
	list = test_alloc(PAGE_SIZE, PAGE_SIZE);
	batch_init(&b, list);
	h = &b.list->hdr;
	/* The rest of RAM is ours; page 0 of it stays private. */
	area = test_alloc(SZ_2M, SZ_2M);
	must_to_private(area, end - area);
	gpa = area + PAGE_SIZE;

	for (;;) {
		GUEST_ASSERT_MSG(gpa + 2 * GM_BATCH_MAX_ENTRIES * PAGE_SIZE < end,
				 "no -12 after %llu runs: this host's vm.max_map_count allows more than this RAM can fragment; run with a larger --memory",
				 (unsigned long long)((gpa - area) / PAGE_SIZE));
		batch_reset(&b);
		for (i = 0; i < GM_BATCH_MAX_ENTRIES; i++)
			batch_add(&b, gpa + 2ULL * i * PAGE_SIZE, 1, false);
		r = batch_submit(&b);
		calls++;
		if (r)
			break;
		gpa += 2ULL * GM_BATCH_MAX_ENTRIES * PAGE_SIZE;
	}
	GUEST_ASSERT_EQ(r, GM_HC_ENOMEM);
	GUEST_ASSERT(h->status == GM_HC_ENOMEM && h->done == 0 &&
		     h->failed == GM_BATCH_NO_ENTRY && h->busy_gpa == 0);
	expect_private(gpa, "the refused list");
	expect_private(gpa + 2ULL * (GM_BATCH_MAX_ENTRIES - 1) * PAGE_SIZE,
		       "the refused list");
	printf("map_limit: CONVERT_BATCH -12 after %lu calls, %llu runs\n",
	       calls, (unsigned long long)((gpa - area) / PAGE_SIZE));

	/* Single pages until MAP_GPA_RANGE is refused too. */
	while ((r = to_shared(gpa, 1)) == 0)
		gpa += 2 * PAGE_SIZE;
	GUEST_ASSERT_EQ(r, GM_HC_ENOMEM);
	fail = gpa;
	expect_private(fail, "the refused page");
	expect_shared(fail - 2 * PAGE_SIZE, "the page before it");
	/* Adjacent to the shared run before it: merges, succeeds. */
	GUEST_ASSERT_EQ(to_shared(fail - PAGE_SIZE, 1), 0);
	expect_shared(fail - PAGE_SIZE, "the adjacent page");
	printf("map_limit: MAP_GPA_RANGE -12 at 0x%llx; an adjacent conversion succeeded\n",
	       (unsigned long long)fail);

	/* Merge runs back; then what was refused goes through. */
	for (a = area; a < area + 64 * MERGE_CHUNK * PAGE_SIZE;
	     a += MERGE_CHUNK * PAGE_SIZE)
		must_to_private(a, MERGE_CHUNK * PAGE_SIZE);
	GUEST_ASSERT_EQ(to_shared(fail, 1), 0);
	expect_shared(fail, "the refused page, again");
	r = batch_submit(&b);
	GUEST_ASSERT_EQ(r, 0);
	expect_shared(b.list->entries[0].gpa, "the refused list, again");
	/* Everything back to private, in chunks that merge. */
	for (; a < end; a += MERGE_CHUNK * PAGE_SIZE)
		must_to_private(a, MIN(MERGE_CHUNK * PAGE_SIZE, end - a));
	expect_private(fail, "the end");
	puts("map_limit: PASS");
	return 0;
}
