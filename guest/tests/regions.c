/* SPDX-License-Identifier: MIT */
//@ run: 0 --memory 5G --memory-layout pc -- expect=pc
//@ run: 0 --memory 5G --memory-layout pc --conversion in-place -- expect=pc
//@ run: 0 --memory 5G --memory-layout pc --init-shared -- expect=pc
//@ run: 0 --memory 5G --memory-layout pc --dmatest external --audit each -- expect=pc
//@ run: 0 --memory 2G --memory-layout pc -- expect=flat
//@ run: 0 -- expect=flat
//@ run: 0 --memory-layout flat --memory 64M -- expect=flat
//@ run: 126 --memory 5G --memory-layout pc -- expect=pc touch-hole
/*
 * Guest ABI extension 4: the RAM region table, and gmvm on RAM with a hole
 * (`--memory-layout pc`: [0, 3G) and [4G, SIZE + 1G)).
 *
 * expect=flat: the table is there (boot info flag bit 5) and has one entry
 * equal to [0, ram_size), exactly what version 1 says RAM is, whatever
 * --memory (2G with the pc layout has no hole either).
 *
 * expect=pc (size=SIZE, default 5 GiB): the table has [0, 3G) and
 * [4G, SIZE + 1G), ram_size is the top of RAM; then, touching little
 * memory (guest code is emulated here):
 *  - conversions both ways and DMA FILL/CHECKSUM on pages of both
 *    regions, the last page below the hole and the first above it among
 *    them, with the content rules of the conversion mode;
 *  - an implicit conversion of a page above the hole;
 *  - MAP_GPA_RANGE and SET_PLUGGED of ranges in, touching or straddling
 *    the hole (or past the top) get -22 and change nothing: the pages of
 *    RAM in them keep their state, plug state and content;
 *  - DMA FILL, CHECKSUM, PIN and UNPIN of such ranges get STATUS 2 (a bad
 *    request) and change nothing: no byte written, no pin taken.
 * touch-hole: a load from the hole stops the VM as a guest fault (126).
 */
#include "guest.h"

#define G1	(1ULL << 30)
#define HOLE	(3 * G1)
#define HOLE_END (4 * G1)

static void check_raw_table(const struct gm_boot_info *bi)
{
	const struct gm_boot_regions *h = (const void *)((const char *)bi +
						GM_BOOT_REGIONS_OFFSET);
	uint64_t boot = (uint64_t)(uintptr_t)bi;

	GUEST_ASSERT(gm_has_region_table());
	GUEST_ASSERT_EQ(h->nr_regions, gm_region_count());
	GUEST_ASSERT_EQ(h->reserved, 0);
	/* In the boot info's page, below free_start: gmvm's, private. */
	GUEST_ASSERT_GE(h->regions, boot + sizeof(struct gm_boot_info_ext));
	GUEST_ASSERT_LE(h->regions + h->nr_regions * sizeof(struct gm_region),
			ALIGN_DOWN(boot, PAGE_SIZE) + PAGE_SIZE);
	GUEST_ASSERT_LT(h->regions, gm_free_start);
}

static void check_flat(const struct gm_boot_info *bi)
{
	struct gm_region r;

	check_raw_table(bi);
	GUEST_ASSERT_EQ(gm_region_count(), 1);
	r = gm_region(0);
	GUEST_ASSERT_EQ(r.gpa, 0);
	GUEST_ASSERT_EQ(r.size, gm_ram_size);
	GUEST_ASSERT(gm_is_ram(0, gm_ram_size));
	GUEST_ASSERT(gm_is_ram(gm_ram_size - PAGE_SIZE, PAGE_SIZE));
	GUEST_ASSERT(!gm_is_ram(gm_ram_size - PAGE_SIZE, 2 * PAGE_SIZE));
	GUEST_ASSERT(!gm_is_ram(gm_ram_size, 1));
	GUEST_ASSERT_EQ(test_area_end(), gm_ram_size);
	printf("regions: one region [0, 0x%llx), as version 1 says\n",
	       (unsigned long long)gm_ram_size);
}

static void check_pc_table(const struct gm_boot_info *bi, uint64_t size)
{
	struct gm_region r0, r1;

	check_raw_table(bi);
	GUEST_ASSERT_EQ(gm_region_count(), 2);
	r0 = gm_region(0);
	r1 = gm_region(1);
	GUEST_ASSERT_EQ(r0.gpa, 0);
	GUEST_ASSERT_EQ(r0.size, HOLE);
	GUEST_ASSERT_EQ(r1.gpa, HOLE_END);
	GUEST_ASSERT_EQ(r1.size, size - HOLE);
	GUEST_ASSERT_EQ(gm_ram_size, size + G1);	/* the top of RAM */
	if (gm_shared_base) {
		GUEST_ASSERT_EQ(gm_shared_base & (gm_shared_base - 1), 0);
		GUEST_ASSERT_GE(gm_shared_base, gm_ram_size);
	}
	GUEST_ASSERT(gm_is_ram(HOLE - PAGE_SIZE, PAGE_SIZE));
	GUEST_ASSERT(!gm_is_ram(HOLE - PAGE_SIZE, 2 * PAGE_SIZE));
	GUEST_ASSERT(!gm_is_ram(HOLE, PAGE_SIZE));
	GUEST_ASSERT(!gm_is_ram(HOLE_END - 1, 2));
	GUEST_ASSERT(gm_is_ram(HOLE_END, r1.size));
	GUEST_ASSERT(!gm_is_ram(0, gm_ram_size));
	/* The test area stays below the hole. */
	GUEST_ASSERT_EQ(test_area_end(), HOLE);
}

static uint64_t marker(uint64_t gpa)
{
	return 0x6d61726b00000000ULL ^ gpa;
}

static void expect_dma_sum(uint64_t gpa, uint8_t byte)
{
	uint32_t sum = 0;
	int st = dma_checksum(gpa, PAGE_SIZE, &sum);

	GUEST_ASSERT_MSG(st == GM_DMA_OK &&
			 sum == pattern_checksum(byte, PAGE_SIZE),
			 "page 0x%llx: CHECKSUM status %d sum 0x%x, want 0x%x",
			 (unsigned long long)gpa, st, sum,
			 pattern_checksum(byte, PAGE_SIZE));
}

static void expect_private(uint64_t gpa, uint64_t value)
{
	GUEST_ASSERT_EQ(dma_checksum(gpa, PAGE_SIZE, NULL), GM_DMA_FAULT);
	GUEST_ASSERT_EQ(gm_read64(gpa_private(gpa)), value);
}

/* One page through private -> shared -> DMA -> private. */
static void cycle(uint64_t gpa, uint8_t pattern)
{
	uint64_t m = marker(gpa);

	must_to_private(gpa, PAGE_SIZE);
	gm_write64(gpa_private(gpa), m);
	expect_private(gpa, m);

	must_to_shared(gpa, PAGE_SIZE);
	GUEST_ASSERT_EQ(gm_read64(gpa_shared(gpa)), gm_in_place() ? m : 0);
	GUEST_ASSERT_EQ(dma_fill(gpa, PAGE_SIZE, pattern), GM_DMA_OK);
	expect_dma_sum(gpa, pattern);
	GUEST_ASSERT_EQ(gm_read8(gpa_shared(gpa)), pattern);
	GUEST_ASSERT_EQ(gm_read8((uint8_t *)gpa_shared(gpa) + PAGE_SIZE - 1),
			pattern);

	must_to_private(gpa, PAGE_SIZE);
	expect_private(gpa, gm_in_place() ? pattern * 0x0101010101010101ULL :
					    0);
}

/* A wrong-view write above the hole converts that page (default policy). */
static void implicit_above(uint64_t gpa)
{
	if (!gm_shared_base) {
		puts("regions: shared_base is 0, no wrong view to touch");
		return;
	}
	must_to_private(gpa, PAGE_SIZE);
	gm_write8(gpa_shared(gpa), 0x77);	/* private: converts it */
	GUEST_ASSERT_EQ(gm_read8(gpa_shared(gpa)), 0x77);
	GUEST_ASSERT_EQ(dma_checksum(gpa, 1, NULL), GM_DMA_OK);
	must_to_private(gpa, PAGE_SIZE);
}

static long set_plugged(uint64_t gpa, uint64_t npages, bool plug)
{
	return gm_doorbell(GM_HC_SET_PLUGGED, gpa, npages,
			    plug ? GM_PLUG : 0);
}

/* Ranges that are not RAM, in pages: in, touching, across the hole. */
static const struct {
	uint64_t gpa, pages;
	const char *what;
} bad[] = {
	{ HOLE, 1, "the hole's first page" },
	{ HOLE + G1 / 2, 16, "inside the hole" },
	{ HOLE_END - PAGE_SIZE, 1, "the hole's last page" },
	{ HOLE - PAGE_SIZE, 2, "from below into the hole" },
	{ HOLE_END - PAGE_SIZE, 2, "from the hole into region 1" },
	{ HOLE - PAGE_SIZE, (G1 + 2 * PAGE_SIZE) / PAGE_SIZE,
	  "across the whole hole" },
	{ 0, (4 * G1 + PAGE_SIZE) / PAGE_SIZE, "from 0 across the hole" },
};

static void refused_hypercalls(uint64_t lo, uint64_t hi)
{
	uint64_t top = gm_ram_size;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		GUEST_ASSERT_MSG(to_shared(bad[i].gpa, bad[i].pages) ==
				 GM_HC_EINVAL, "to shared: %s", bad[i].what);
		GUEST_ASSERT_MSG(to_private(bad[i].gpa, bad[i].pages) ==
				 GM_HC_EINVAL, "to private: %s", bad[i].what);
		GUEST_ASSERT_MSG(set_plugged(bad[i].gpa, bad[i].pages,
					     false) == GM_HC_EINVAL,
				 "unplug: %s", bad[i].what);
		GUEST_ASSERT_MSG(set_plugged(bad[i].gpa, bad[i].pages,
					     true) == GM_HC_EINVAL,
				 "plug: %s", bad[i].what);
	}
	GUEST_ASSERT_EQ(to_shared(top - PAGE_SIZE, 2), GM_HC_EINVAL);
	GUEST_ASSERT_EQ(to_shared(top, 1), GM_HC_EINVAL);
	GUEST_ASSERT_EQ(set_plugged(top - PAGE_SIZE, 2, false), GM_HC_EINVAL);
	/* Nothing changed: @lo (private) and @hi (shared) as they were. */
	expect_private(lo, marker(lo));
	expect_dma_sum(hi, 0x33);
	GUEST_ASSERT_EQ(gm_read8(gpa_shared(hi)), 0x33);
}

static void refused_dma(uint64_t lo_shared, uint64_t hi)
{
	static const uint32_t cmds[] = {
		GM_DMA_CMD_FILL, GM_DMA_CMD_CHECKSUM, GM_DMA_CMD_PIN,
		GM_DMA_CMD_UNPIN,
	};
	const struct {
		uint64_t addr;
		uint32_t len;
	} r[] = {
		{ HOLE - PAGE_SIZE, 2 * PAGE_SIZE },	/* straddles */
		{ HOLE - 1, 2 },
		{ HOLE, PAGE_SIZE },			/* inside */
		{ HOLE + PAGE_SIZE, GM_DMA_MAX_LEN },
		{ HOLE_END - 1, 2 },			/* straddles */
		{ HOLE_END - PAGE_SIZE, 2 * PAGE_SIZE },
		{ gm_ram_size - PAGE_SIZE, 2 * PAGE_SIZE },	/* past top */
	};
	unsigned int i, k;

	for (i = 0; i < ARRAY_SIZE(r); i++)
		for (k = 0; k < ARRAY_SIZE(cmds); k++)
			GUEST_ASSERT_MSG(dma_command(r[i].addr, r[i].len, 0x22,
						     cmds[k], NULL) ==
					 GM_DMA_BAD,
					 "DMA cmd %u [0x%llx, +0x%x)", cmds[k],
					 (unsigned long long)r[i].addr,
					 r[i].len);
	/* No byte written... */
	expect_dma_sum(lo_shared, 0x11);
	expect_dma_sum(hi, 0x33);
	/* ...and no pin taken: both convert. */
	must_to_private(lo_shared, PAGE_SIZE);
	must_to_private(hi, PAGE_SIZE);
}

static void check_pc(const struct gm_boot_info *bi, uint64_t size)
{
	uint64_t a = test_alloc(PAGE_SIZE, PAGE_SIZE);
	uint64_t below = HOLE - PAGE_SIZE, above = HOLE_END;
	uint64_t deep = HOLE_END + (size - HOLE) / 2;

	check_pc_table(bi, size);
	cycle(a, 0xa1);
	cycle(below, 0xb2);
	cycle(above, 0xc3);
	cycle(deep, 0xd4);
	/* A 2 MiB range inside region 1, both ways. */
	GUEST_ASSERT_EQ(to_shared(deep, SZ_2M / PAGE_SIZE), 0);
	GUEST_ASSERT_EQ(to_private(deep, SZ_2M / PAGE_SIZE), 0);
	/* SET_PLUGGED in region 1: the page comes back as zeros. */
	gm_write64(gpa_private(deep), marker(deep));
	GUEST_ASSERT_EQ(set_plugged(deep, 1, false), 0);
	GUEST_ASSERT_EQ(set_plugged(deep, 1, true), 0);
	expect_private(deep, 0);
	implicit_above(deep + PAGE_SIZE);
	puts("regions: conversions, plugging and DMA work on both sides of the hole");

	/* below: private with its marker; above: shared, 0x33. */
	gm_write64(gpa_private(below), marker(below));
	must_to_shared(above, PAGE_SIZE);
	GUEST_ASSERT_EQ(dma_fill(above, PAGE_SIZE, 0x33), GM_DMA_OK);
	refused_hypercalls(below, above);
	puts("regions: MAP_GPA_RANGE and SET_PLUGGED touching the hole get -22 and change nothing");

	must_to_shared(below, PAGE_SIZE);
	GUEST_ASSERT_EQ(dma_fill(below, PAGE_SIZE, 0x11), GM_DMA_OK);
	refused_dma(below, above);
	puts("regions: DMA touching the hole gets STATUS 2 and changes nothing");
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	uint64_t size = arg_u64("size", 5 * G1);

	if (cpu)
		return 0;
	GUEST_ASSERT_MSG(arg_is("expect", "flat") || arg_is("expect", "pc"),
			 "usage: expect=flat|pc [size=BYTES] [touch-hole]");
	if (arg_is("expect", "flat")) {
		check_flat(bi);
		return 0;
	}
	if (arg_present("touch-hole")) {
		check_pc_table(bi, size);
		puts("regions: reading the hole");
		(void)gm_read64(gpa_private(HOLE + SZ_2M));
		GUEST_FAIL("a load from the hole at 0x%llx completed",
			   (unsigned long long)(HOLE + SZ_2M));
	}
	check_pc(bi, size);
	return 0;
}
