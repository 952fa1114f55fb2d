/* SPDX-License-Identifier: MIT */
//@ run: 0
//@ run: 0 --conversion in-place
//@ run: 0 --init-shared --reclaim deferred
//@ run: 0 --audit each -- iters=150
//@ run: 0 --conversion in-place --audit each -- iters=150
//@ run: 0 --dmatest external --audit each -- iters=150
//@ run: 0 --dmatest external --init-shared --audit each -- iters=150 seed=7
//@ run: 126 -- touch-unplugged
//@ run: 126 --implicit deny -- touch-unplugged
/*
 * Guest ABI extension 1: SET_PLUGGED, a second source of "not populated"
 * besides private/shared, against a model of a 64-page area (state,
 * plugged, content per page).
 *
 * Random MAP_GPA_RANGE conversions, unplugs, plugs, guest writes and DMA
 * FILLs over the area; after every step a random sample of pages is
 * checked: a plugged page reads its content through the view of its state;
 * the DMA device reaches exactly the shared-and-plugged pages (CHECKSUM
 * gives the content's sum, STATUS 1 otherwise); a page plugged back reads
 * zeros in both modes; a conversion of an unplugged page is allowed and
 * decides its view when it comes back.  With --audit each, gmvm checks
 * after every change that the DMA mappings (an external device's real
 * ones included) equal the shared-and-plugged runs.
 * Also: SET_PLUGGED's argument checks (-22), a PIN refusing an unplug
 * (-11), and "touch-unplugged": reading an unplugged page stops the VM
 * (126) whatever the implicit policy.
 */
#include "guest.h"

#define NPAGES	64
#define AREA	(NPAGES * PAGE_SIZE)

static uint64_t area;
static struct rng rng;

/* A page's content: every byte @fill, except byte 0, which is @b0. */
static uint8_t st[NPAGES], plugged[NPAGES], fill[NPAGES], b0[NPAGES];

static long set_plugged(uint64_t gpa, uint64_t npages, bool plug)
{
	return gm_doorbell(GM_HC_SET_PLUGGED, gpa, npages,
			    plug ? GM_PLUG : 0);
}

static uint64_t pg(unsigned int i)
{
	return area + (uint64_t)i * PAGE_SIZE;
}

static volatile uint8_t *view(unsigned int i)
{
	return st[i] ? gpa_shared(pg(i)) : gpa_private(pg(i));
}

static void check_page(unsigned int i, const char *after)
{
	volatile uint8_t *v;
	uint32_t sum = 0;
	int s;

	s = dma_checksum(pg(i), PAGE_SIZE, &sum);
	if (!plugged[i] || !st[i]) {
		GUEST_ASSERT_MSG(s == GM_DMA_FAULT,
				 "after %s: page %u (%s, %s) DMA status %d",
				 after, i, st[i] ? "shared" : "private",
				 plugged[i] ? "plugged" : "unplugged", s);
	} else {
		GUEST_ASSERT_MSG(s == GM_DMA_OK &&
				 sum == (uint32_t)fill[i] * (PAGE_SIZE - 1) +
					b0[i],
				 "after %s: page %u DMA status %d sum %u", after,
				 i, s, sum);
	}
	if (!plugged[i])
		return;
	v = view(i);
	GUEST_ASSERT_MSG(v[0] == b0[i] && v[PAGE_SIZE - 1] == fill[i],
			 "after %s: page %u (%s) reads %#x/%#x, want %#x/%#x",
			 after, i, st[i] ? "shared" : "private", v[0],
			 v[PAGE_SIZE - 1], b0[i], fill[i]);
}

static void check_sample(const char *after)
{
	for (unsigned int k = 0; k < 6; k++)
		check_page((unsigned int)rng_below(&rng, NPAGES), after);
}

static void step(void)
{
	unsigned int start = (unsigned int)rng_below(&rng, NPAGES);
	unsigned int len = 1 + (unsigned int)rng_below(&rng, 8);
	unsigned int op = (unsigned int)rng_below(&rng, 100), i;
	bool bit = rng_below(&rng, 2);
	long r;

	if (rng_chance(&rng, 10))
		len = NPAGES;
	if (start + len > NPAGES)
		len = NPAGES - start;
	if (op < 35) {
		r = map_gpa_range(pg(start), len,
				  bit ? GM_MAP_SHARED : GM_MAP_PRIVATE);
		GUEST_ASSERT_EQ(r, 0);
		for (i = start; i < start + len; i++) {
			if (st[i] == bit)
				continue;
			st[i] = bit;
			if (!gm_in_place())
				fill[i] = b0[i] = 0;
		}
		check_sample(bit ? "to shared" : "to private");
	} else if (op < 70) {
		r = set_plugged(pg(start), len, bit);
		GUEST_ASSERT_EQ(r, 0);
		for (i = start; i < start + len; i++) {
			if (plugged[i] == bit)
				continue;
			plugged[i] = bit;
			fill[i] = b0[i] = 0;
		}
		check_sample(bit ? "plug" : "unplug");
	} else if (op < 85) {
		/* The guest writes a plugged page through its view. */
		if (!plugged[start])
			return;
		b0[start] = (uint8_t)(1 + rng_below(&rng, 255));
		view(start)[0] = b0[start];
		check_page(start, "a write");
	} else {
		/* The device fills a page: only if shared and plugged. */
		uint8_t p = (uint8_t)(1 + rng_below(&rng, 255));
		int s = dma_fill(pg(start), PAGE_SIZE, p);

		if (plugged[start] && st[start]) {
			GUEST_ASSERT_EQ(s, GM_DMA_OK);
			fill[start] = b0[start] = p;
		} else {
			GUEST_ASSERT_EQ(s, GM_DMA_FAULT);
		}
		check_page(start, "a FILL");
	}
}

static void bad_args(void)
{
	GUEST_ASSERT_EQ(set_plugged(area + 1, 1, false), GM_HC_EINVAL);
	GUEST_ASSERT_EQ(set_plugged(area, 0, false), GM_HC_EINVAL);
	GUEST_ASSERT_EQ(set_plugged(gm_ram_size, 1, false), GM_HC_EINVAL);
	GUEST_ASSERT_EQ(set_plugged(gm_ram_size - PAGE_SIZE, 2, true),
			GM_HC_EINVAL);
	GUEST_ASSERT_EQ(set_plugged(area, ~0ULL, false), GM_HC_EINVAL);
	GUEST_ASSERT_EQ(gm_doorbell(GM_HC_SET_PLUGGED, area, 1, 2),
			GM_HC_EINVAL);
	GUEST_ASSERT_EQ(gm_doorbell(GM_HC_SET_PLUGGED, area, 1,
				     1ULL << 63), GM_HC_EINVAL);
	/* A shared-view address is not a private-view GPA. */
	if (gm_shared_base)
		GUEST_ASSERT_EQ(set_plugged(gm_shared_base + area, 1, false),
				GM_HC_EINVAL);
}

/* A pinned page cannot be unplugged; its neighbours can. */
static void pin_refuses_unplug(void)
{
	GUEST_ASSERT_EQ(set_plugged(area, NPAGES, true), 0);
	GUEST_ASSERT_EQ(to_shared(area, NPAGES), 0);
	for (unsigned int i = 0; i < NPAGES; i++) {
		/* Plugged back: zeros; converted: zeros unless in place. */
		if (!plugged[i] || (!st[i] && !gm_in_place()))
			fill[i] = b0[i] = 0;
		plugged[i] = 1;
		st[i] = 1;
	}
	GUEST_ASSERT_EQ(dma_pin(pg(5), PAGE_SIZE), GM_DMA_OK);
	GUEST_ASSERT_EQ(set_plugged(pg(4), 3, false), GM_HC_EAGAIN);
	check_page(4, "a refused unplug");
	check_page(5, "a refused unplug");
	GUEST_ASSERT_EQ(set_plugged(pg(6), 1, false), 0);
	plugged[6] = 0;
	fill[6] = b0[6] = 0;
	check_page(5, "unplugging a neighbour");
	check_page(6, "unplugging a neighbour");
	GUEST_ASSERT_EQ(dma_unpin(pg(5), PAGE_SIZE), GM_DMA_OK);
	GUEST_ASSERT_EQ(set_plugged(pg(4), 3, false), 0);
	for (unsigned int i = 4; i < 7; i++) {
		plugged[i] = 0;
		fill[i] = b0[i] = 0;
		check_page(i, "unplug after unpin");
	}
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	uint64_t iters = arg_u64("iters", 400);

	GUEST_ASSERT(gm_flags & GM_BOOT_F_PLUG);
	area = test_alloc(AREA, PAGE_SIZE);
	rng_seed(&rng, arg_u64("seed", 0x706c7567));
	for (unsigned int i = 0; i < NPAGES; i++) {
		st[i] = gm_init_shared();
		plugged[i] = 1;
	}
	if (arg_present("touch-unplugged")) {
		GUEST_ASSERT_EQ(set_plugged(area, 1, false), 0);
		printf("plug: reading an unplugged page; gmvm must stop us\n");
		(void)*(volatile uint8_t *)gpa_private(area);
		GUEST_FAIL("read an unplugged page");
	}
	bad_args();
	for (uint64_t n = 0; n < iters; n++)
		step();
	pin_refuses_unplug();
	for (unsigned int i = 0; i < NPAGES; i++)
		check_page(i, "the end");
	printf("plug: %llu random steps over %u pages ok\n",
	       (unsigned long long)iters, NPAGES);
	return 0;
}
