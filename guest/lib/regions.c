/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM regions (guest ABI extension 4): the boot info's region table,
 * copied and checked once, and the questions guests ask of it.
 *
 * A guest that runs on a gmvm without the extension (no GM_BOOT_F_REGIONS)
 * gets what version 1 says: one region, [0, ram_size).  So the helpers
 * answer the same questions whatever gmvm the guest runs on.
 *
 * The table is copied at start-up, as the rest of the boot info is
 * (runtime.c): it is ordinary private memory a guest may overwrite.  Every
 * entry is checked against what the ABI promises (page aligned, not
 * empty, in GPA order with holes between, the last one ending at
 * ram_size), so that a gmvm that breaks the promise fails every guest at
 * once instead of some test going wrong later.
 */
#include "guest.h"

/* More than gmvm ever writes; a larger table fails the start. */
#define MAX_REGIONS 16

static struct gm_region regions[MAX_REGIONS];
static unsigned int nr_regions;

static __noreturn void bad_table(const char *what, unsigned int i)
{
	printf("guest: bad region table (guest ABI extension 4): %s (entry %u)\n",
	       what, i);
	gexit(1);
}

void __guest_regions_init(const struct gm_boot_info *bi)
{
	const struct gm_boot_regions *h;
	const struct gm_region *t;
	unsigned int i;

	if (!(bi->flags & GM_BOOT_F_REGIONS)) {
		regions[0].gpa = 0;
		regions[0].size = bi->ram_size;
		nr_regions = 1;
		return;
	}
	h = (const struct gm_boot_regions *)((const char *)bi +
					     GM_BOOT_REGIONS_OFFSET);
	if (h->nr_regions == 0 || h->nr_regions > MAX_REGIONS)
		bad_table("nr_regions is 0 or more than this runtime takes",
			  h->nr_regions);
	if (h->reserved)
		bad_table("reserved is not 0", 0);
	if (!IS_ALIGNED(h->regions, 8) ||
	    h->regions + h->nr_regions * sizeof(*t) < h->regions)
		bad_table("the table's GPA is unaligned or wraps", 0);
	t = gpa_private(h->regions);
	for (i = 0; i < h->nr_regions; i++) {
		regions[i] = t[i];
		if (!regions[i].size || !IS_ALIGNED(regions[i].gpa, PAGE_SIZE) ||
		    !IS_ALIGNED(regions[i].size, PAGE_SIZE) ||
		    regions[i].gpa + regions[i].size < regions[i].gpa)
			bad_table("empty, unaligned or wrapping", i);
		if (i && regions[i].gpa <= regions[i - 1].gpa +
					   regions[i - 1].size)
			bad_table("not after the previous one, with a hole", i);
	}
	nr_regions = h->nr_regions;
	if (regions[i - 1].gpa + regions[i - 1].size != bi->ram_size)
		bad_table("the last region does not end at ram_size", i - 1);
}

unsigned int gm_region_count(void)
{
	return nr_regions;
}

struct gm_region gm_region(unsigned int i)
{
	GUEST_ASSERT_MSG(i < nr_regions, "region %u of %u", i, nr_regions);
	return regions[i];
}

bool gm_is_ram(uint64_t gpa, uint64_t len)
{
	unsigned int i;

	if (!len || gpa + len < gpa)
		return false;
	for (i = 0; i < nr_regions; i++)
		if (gpa >= regions[i].gpa &&
		    gpa - regions[i].gpa < regions[i].size)
			return len <= regions[i].size - (gpa - regions[i].gpa);
	return false;
}

uint64_t gm_region_end_of(uint64_t gpa)
{
	unsigned int i;

	for (i = 0; i < nr_regions; i++)
		if (gpa >= regions[i].gpa &&
		    gpa - regions[i].gpa < regions[i].size)
			return regions[i].gpa + regions[i].size;
	return gpa;
}
