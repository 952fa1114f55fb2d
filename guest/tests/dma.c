/* SPDX-License-Identifier: MIT */
//@ run: 0
//@ run: 0 --conversion in-place
//@ run: 0 --init-shared
//@ run: 126 -- touch-pinned
//@ run: 126 --conversion in-place -- touch-pinned
//@ run: 0 --audit each
//@ run: 0 --dmatest=external
//@ run: 0 --dmatest=external --init-shared --audit each
//@ run: 0 --dmatest=external --reclaim deferred --audit each
//@ run: 126 --dmatest=external -- touch-pinned
/*
 * The DMA test device (ABI section 7):
 *  - FILL and CHECKSUM work on shared pages, at any address and length up
 *    to 16 MiB, and agree byte for byte with what the guest sees;
 *  - on private pages they fault (STATUS 1), and a range with any private
 *    page is not written at all: its shared part keeps its bytes;
 *  - bad requests give STATUS 2 and change nothing: LEN 0, LEN > 16 MiB,
 *    ranges outside RAM (a shared-view address among them), unknown CMD,
 *    UNPIN of a range that is not pinned;
 *  - PIN makes MAP_GPA_RANGE to private of any range containing a pinned
 *    page return -11 and change nothing, until UNPIN (same ADDR and LEN);
 *    PIN of a range with a private page gives STATUS 1 and pins nothing;
 *    with GM_DMA_MAX_PINS pins held, PIN gives STATUS 3 (extension 2)
 *    and pins nothing.
 * With "touch-pinned", the guest touches a pinned shared page through the
 * private view: that implicit conversion must stop the VM (126).
 * The same holds whether the device runs in gmvm or as its own process
 * (--dmatest=external, where the pins live in that process); with --audit
 * each gmvm also checks after every change that the device's mappings
 * (the process's real ones) are exactly the shared runs.
 */
#include "guest.h"

#define S_PAGES	24
#define S_LEN	(S_PAGES * PAGE_SIZE)

static uint64_t S;	/* shared working range */
static uint64_t P;	/* private pages */
static uint64_t BIG;	/* 16 MiB + 4 KiB, for the length limit */
static uint8_t *s_view;
static uint8_t shadow[S_LEN];	/* what S should hold */
static uint32_t shadow_sums[S_PAGES];	/* checksum of each page of it */
static struct rng rng;

/*
 * Guest code can cost a microsecond per instruction, so page sums of the
 * shadow are kept up to date instead of summing all of it for each check.
 */
static void shadow_changed(uint64_t off, uint64_t len, int fill)
{
	if (fill >= 0)
		memset(&shadow[off], fill, len);
	for (uint64_t pg = off / PAGE_SIZE; pg * PAGE_SIZE < off + len; pg++) {
		bool whole = pg * PAGE_SIZE >= off &&
			     (pg + 1) * PAGE_SIZE <= off + len;

		if (whole && fill >= 0)
			shadow_sums[pg] = pattern_checksum((uint8_t)fill,
							   PAGE_SIZE);
		else
			shadow_sums[pg] = checksum(&shadow[pg * PAGE_SIZE],
						   PAGE_SIZE);
	}
}

static uint32_t shadow_sum(void)
{
	uint32_t sum = 0;

	for (unsigned int i = 0; i < S_PAGES; i++)
		sum += shadow_sums[i];
	return sum;
}

/* S holds exactly shadow[]: through the guest's view and the device's. */
static void check_s(const char *what)
{
	uint32_t sum;
	int st;

	if (memcmp(s_view, shadow, S_LEN)) {
		for (uint64_t i = 0; i < S_LEN; i++)
			GUEST_ASSERT_MSG(s_view[i] == shadow[i],
					 "%s: S byte 0x%llx is 0x%02x, "
					 "expected 0x%02x", what,
					 (unsigned long long)i, s_view[i],
					 shadow[i]);
	}
	st = dma_checksum(S, S_LEN, &sum);
	GUEST_ASSERT_MSG(st == GM_DMA_OK && sum == shadow_sum(),
			 "%s: device CHECKSUM of S: status %d, 0x%x vs 0x%x",
			 what, st, sum, shadow_sum());
}

static void randomise_s(void)
{
	for (uint64_t i = 0; i < S_LEN; i += 8) {
		uint64_t v = rng_next(&rng);

		memcpy(&shadow[i], &v, 8);
	}
	shadow_changed(0, S_LEN, -1);
	memcpy(s_view, shadow, S_LEN);
}

static void shared_pages(void)
{
	static const struct {
		uint64_t off, len;
	} ranges[] = {
		{ 0, 1 }, { 1, 3 }, { 4095, 2 }, { 100, 3 * 4096 + 7 },
		{ 4096, 4096 }, { S_LEN - 1, 1 }, { 0, S_LEN },
	};

	GUEST_ASSERT_EQ(dma_fill(S, S_LEN, 0x5a), GM_DMA_OK);
	shadow_changed(0, S_LEN, 0x5a);
	check_s("FILL of all of S");

	randomise_s();
	check_s("guest-written random bytes");
	for (unsigned int i = 0; i < ARRAY_SIZE(ranges); i++) {
		uint64_t off = ranges[i].off, len = ranges[i].len;
		uint32_t sum;

		GUEST_ASSERT_EQ(dma_checksum(S + off, (uint32_t)len, &sum),
				GM_DMA_OK);
		GUEST_ASSERT_MSG(sum == checksum(&shadow[off], len),
				 "CHECKSUM [S+0x%llx, +0x%llx) = 0x%x, guest "
				 "0x%x", (unsigned long long)off,
				 (unsigned long long)len, sum,
				 checksum(&shadow[off], len));
		GUEST_ASSERT_EQ(dma_fill(S + off, (uint32_t)len,
					 (uint8_t)(0x10 + i)), GM_DMA_OK);
		shadow_changed(off, len, 0x10 + i);
		check_s("FILL of a sub-range");
	}
	puts("dma: FILL and CHECKSUM agree with the guest on shared pages");
}

static void private_pages(void)
{
	GUEST_ASSERT_EQ(dma_fill(P, 4 * PAGE_SIZE, 0xee), GM_DMA_FAULT);
	GUEST_ASSERT_EQ(dma_fill(P + 4095, 1, 0xee), GM_DMA_FAULT);
	GUEST_ASSERT_EQ(dma_fill(P + PAGE_SIZE + 17, 100, 0xee), GM_DMA_FAULT);
	GUEST_ASSERT_EQ(dma_checksum(P, 4 * PAGE_SIZE, NULL), GM_DMA_FAULT);
	GUEST_ASSERT_EQ(dma_checksum(P + 3 * PAGE_SIZE, 1, NULL),
			GM_DMA_FAULT);
	EXPECT_PRIVATE_BYTES(P, 4 * PAGE_SIZE, 0x3c);
	puts("dma: private pages fault and are not written");
}

/* Page @pg of S made private: whole-range commands fault, write nothing. */
static void partly_private(unsigned int pg)
{
	uint64_t gpa = S + pg * PAGE_SIZE;

	must_to_private(gpa, PAGE_SIZE);
	memset(gpa_private(gpa), 0x3d, PAGE_SIZE);

	GUEST_ASSERT_EQ(dma_fill(S, S_LEN, 0xee), GM_DMA_FAULT);
	GUEST_ASSERT_EQ(dma_checksum(S, S_LEN, NULL), GM_DMA_FAULT);
	/* Unaligned, from the shared page before into the private one. */
	if (pg > 0) {
		GUEST_ASSERT_EQ(dma_fill(gpa - 96, 200, 0xee), GM_DMA_FAULT);
		GUEST_ASSERT_EQ(dma_checksum(gpa - 1, 2, NULL), GM_DMA_FAULT);
	}
	if (pg + 1 < S_PAGES)
		GUEST_ASSERT_EQ(dma_fill(gpa + PAGE_SIZE - 8, 16, 0xee),
				GM_DMA_FAULT);

	EXPECT_PRIVATE_BYTES(gpa, PAGE_SIZE, 0x3d);
	for (unsigned int i = 0; i < S_PAGES; i++) {
		uint64_t off = i * PAGE_SIZE;

		if (i == pg)
			continue;
		GUEST_ASSERT_MSG(!memcmp(s_view + off, &shadow[off],
					 PAGE_SIZE),
				 "shared page %u of S changed by a FILL that "
				 "faulted on page %u", i, pg);
		EXPECT_DMA_SUM(S + off, PAGE_SIZE, shadow_sums[i]);
	}

	/* Back to shared for the next case. */
	must_to_shared(gpa, PAGE_SIZE);
	shadow_changed(pg * PAGE_SIZE, PAGE_SIZE, gm_in_place() ? 0x3d : 0);
	check_s("page back to shared");
}

static void bad_requests(void)
{
	static const uint32_t lens[] = {
		0, GM_DMA_MAX_LEN + 1, 0x2000000, 0x80000000u, 0xffffffffu,
	};
	static const uint32_t cmds[] = { 0, 5, 6, 7, 0x81, 0x100, ~0u };
	uint64_t ram = gm_ram_size;
	const struct {
		uint64_t addr;
		uint32_t len;
	} outside[] = {
		{ ram, 1 },
		{ ram - 1, 2 },
		{ ram - PAGE_SIZE, 2 * PAGE_SIZE },
		{ ram + SZ_1G, PAGE_SIZE },
		{ 1ULL << 40, PAGE_SIZE },
		{ ~0ULL - 10, 100 },	/* wraps */
		{ gm_shared_base ? gm_shared_base + S : ram * 2, PAGE_SIZE },
	};

	randomise_s();
	for (unsigned int i = 0; i < ARRAY_SIZE(lens); i++) {
		for (uint32_t cmd = 1; cmd <= 3; cmd++)
			GUEST_ASSERT_MSG(dma_command(S, lens[i], 0xee, cmd,
						     NULL) == GM_DMA_BAD,
					 "CMD %u with LEN 0x%x", cmd, lens[i]);
	}
	for (unsigned int i = 0; i < ARRAY_SIZE(outside); i++) {
		for (uint32_t cmd = 1; cmd <= 3; cmd++)
			GUEST_ASSERT_MSG(dma_command(outside[i].addr,
						     outside[i].len, 0xee, cmd,
						     NULL) == GM_DMA_BAD,
					 "CMD %u on [0x%llx, +0x%x)", cmd,
					 (unsigned long long)outside[i].addr,
					 outside[i].len);
	}
	for (unsigned int i = 0; i < ARRAY_SIZE(cmds); i++)
		GUEST_ASSERT_MSG(dma_command(S, PAGE_SIZE, 0xee, cmds[i],
					     NULL) == GM_DMA_BAD,
				 "unknown CMD 0x%x", cmds[i]);
	GUEST_ASSERT_EQ(dma_unpin(S, PAGE_SIZE), GM_DMA_BAD);
	GUEST_ASSERT_EQ(dma_unpin(P, PAGE_SIZE), GM_DMA_BAD);
	check_s("bad requests");
	/* Nothing got pinned by any of them. */
	must_to_private(S, S_LEN);
	must_to_shared(S, S_LEN);
	if (!gm_in_place())
		shadow_changed(0, S_LEN, 0);
	check_s("round trip after bad requests");

	/* The limit itself is fine. */
	GUEST_ASSERT_EQ(dma_fill(BIG, GM_DMA_MAX_LEN, 0x81), GM_DMA_OK);
	EXPECT_DMA_SUM(BIG, GM_DMA_MAX_LEN, pattern_checksum(0x81, SZ_16M));
	GUEST_ASSERT_EQ(dma_fill(BIG + PAGE_SIZE, GM_DMA_MAX_LEN, 0x82),
			GM_DMA_OK);
	EXPECT_PAGES(BIG, PAGE_SIZE, true, 0x81, 0x81);
	EXPECT_PAGES(BIG + PAGE_SIZE, GM_DMA_MAX_LEN, true, 0x82, 0x82);
	puts("dma: bad requests give STATUS 2 and change nothing");
}

#define EXPECT_PRIVATE_RC(gpa, n, want)					\
	do {								\
		long r_ = to_private(gpa, n);				\
		GUEST_ASSERT_MSG(r_ == (want), "to_private(0x%llx, %llu) " \
				 "= %ld, expected %ld",			\
				 (unsigned long long)(gpa),		\
				 (unsigned long long)(n), r_,		\
				 (long)(want));				\
	} while (0)

/*
 * A full pin table (extension 2): the pin after GM_DMA_MAX_PINS is
 * STATUS 3 and holds nothing, so @y, which only it would have pinned,
 * converts; every pin that fitted still holds @x.  Both pages start
 * private.
 */
static void pin_table_full(uint64_t x, uint64_t y)
{
	unsigned int i;

	must_to_shared(x, PAGE_SIZE);
	must_to_shared(y, PAGE_SIZE);
	for (i = 0; i < GM_DMA_MAX_PINS; i++)
		GUEST_ASSERT_EQ(dma_pin(x, PAGE_SIZE), GM_DMA_OK);
	GUEST_ASSERT_EQ(dma_pin(y, PAGE_SIZE), GM_DMA_NO_RESOURCES);
	GUEST_ASSERT_EQ(dma_unpin(y, PAGE_SIZE), GM_DMA_BAD);
	EXPECT_PRIVATE_RC(y, 1, 0);
	must_to_shared(y, PAGE_SIZE);
	for (i = 0; i < GM_DMA_MAX_PINS; i++) {
		EXPECT_PRIVATE_RC(x, 1, GM_HC_EAGAIN);
		GUEST_ASSERT_EQ(dma_unpin(x, PAGE_SIZE), GM_DMA_OK);
	}
	GUEST_ASSERT_EQ(dma_unpin(x, PAGE_SIZE), GM_DMA_BAD);
	EXPECT_PRIVATE_RC(x, 1, 0);
	must_to_shared(x, PAGE_SIZE);
	puts("dma: a full pin table gives STATUS 3 and pins nothing");
}

static void pinning(void)
{
	uint64_t r = S + 4 * PAGE_SIZE;	/* pinned: pages 4 and 5 */
	uint64_t x = S + 10 * PAGE_SIZE, y = S + 20 * PAGE_SIZE;

	randomise_s();
	GUEST_ASSERT_EQ(dma_pin(r, 2 * PAGE_SIZE), GM_DMA_OK);
	EXPECT_PRIVATE_RC(r, 2, GM_HC_EAGAIN);
	EXPECT_PRIVATE_RC(r + PAGE_SIZE, 1, GM_HC_EAGAIN);
	EXPECT_PRIVATE_RC(S, S_PAGES, GM_HC_EAGAIN);
	EXPECT_PRIVATE_RC(S + 5 * PAGE_SIZE, 8, GM_HC_EAGAIN);
	/* All or nothing: every page of S is still shared, bytes intact. */
	check_s("to_private refused by a pin");
	/* A pin does not stop making it shared (it is already). */
	GUEST_ASSERT_EQ(to_shared(r, 2), 0);
	/* Neighbours are free to go. */
	EXPECT_PRIVATE_RC(S, 4, 0);
	EXPECT_PRIVATE_RC(S + 6 * PAGE_SIZE, 2, 0);
	must_to_shared(S, 8 * PAGE_SIZE);
	if (!gm_in_place()) {
		shadow_changed(0, 4 * PAGE_SIZE, 0);
		shadow_changed(6 * PAGE_SIZE, 2 * PAGE_SIZE, 0);
	}
	check_s("neighbours of a pin converted");

	/* UNPIN must name the pinned range exactly. */
	GUEST_ASSERT_EQ(dma_unpin(r, PAGE_SIZE), GM_DMA_BAD);
	GUEST_ASSERT_EQ(dma_unpin(r + PAGE_SIZE, PAGE_SIZE), GM_DMA_BAD);
	EXPECT_PRIVATE_RC(r, 2, GM_HC_EAGAIN);
	GUEST_ASSERT_EQ(dma_unpin(r, 2 * PAGE_SIZE), GM_DMA_OK);
	GUEST_ASSERT_EQ(dma_unpin(r, 2 * PAGE_SIZE), GM_DMA_BAD);
	EXPECT_PRIVATE_RC(r, 2, 0);
	EXPECT_EACH_PAGE_PRIVATE(r, 2 * PAGE_SIZE);
	must_to_shared(r, 2 * PAGE_SIZE);
	if (!gm_in_place())
		shadow_changed(4 * PAGE_SIZE, 2 * PAGE_SIZE, 0);
	check_s("after UNPIN");
	puts("dma: a pinned page refuses to become private until UNPIN");

	/* Two pins at once, released one by one; one unaligned. */
	GUEST_ASSERT_EQ(dma_pin(x, PAGE_SIZE), GM_DMA_OK);
	GUEST_ASSERT_EQ(dma_pin(y + 100, 10), GM_DMA_OK);
	EXPECT_PRIVATE_RC(x, 1, GM_HC_EAGAIN);
	EXPECT_PRIVATE_RC(y, 1, GM_HC_EAGAIN);
	GUEST_ASSERT_EQ(dma_unpin(x, PAGE_SIZE), GM_DMA_OK);
	EXPECT_PRIVATE_RC(x, 1, 0);
	EXPECT_PRIVATE_RC(y, 1, GM_HC_EAGAIN);
	EXPECT_PRIVATE_RC(x, 11, GM_HC_EAGAIN);	/* up to y */
	GUEST_ASSERT_EQ(dma_unpin(y + 100, 10), GM_DMA_OK);
	EXPECT_PRIVATE_RC(y, 1, 0);

	/* PIN of a range with a private page: STATUS 1, nothing pinned. */
	GUEST_ASSERT_EQ(dma_pin(x - PAGE_SIZE, 3 * PAGE_SIZE), GM_DMA_FAULT);
	GUEST_ASSERT_EQ(dma_unpin(x - PAGE_SIZE, 3 * PAGE_SIZE), GM_DMA_BAD);
	EXPECT_PRIVATE_RC(x - PAGE_SIZE, 1, 0);
	EXPECT_PRIVATE_RC(x + PAGE_SIZE, 1, 0);
	GUEST_ASSERT_EQ(dma_pin(P, PAGE_SIZE), GM_DMA_FAULT);
	GUEST_ASSERT_EQ(dma_pin(S, 0), GM_DMA_BAD);
	puts("dma: PIN of a private page faults and pins nothing");
	pin_table_full(x, y);
}

/* Implicit conversion of a pinned page is a guest fault (126). */
static void touch_pinned(void)
{
	uint64_t gpa = S + 3 * PAGE_SIZE;

	GUEST_ASSERT_EQ(dma_pin(gpa, PAGE_SIZE), GM_DMA_OK);
	printf("dma: touching pinned shared page 0x%llx through the private "
	       "view; gmvm must stop the VM (126)\n",
	       (unsigned long long)gpa);
	gm_write64(gpa_private(gpa), 1);
	GUEST_FAIL("implicit conversion of a pinned page went through");
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	if (cpu)
		return 0;
	test_area_require(SZ_2M + S_LEN + 4 * PAGE_SIZE + SZ_16M + PAGE_SIZE);
	rng_seed(&rng, 7);
	S = test_alloc(S_LEN, SZ_2M);
	P = test_alloc(4 * PAGE_SIZE, PAGE_SIZE);
	BIG = test_alloc(SZ_16M + PAGE_SIZE, SZ_2M);
	s_view = gpa_shared(S);

	must_to_shared(S, S_LEN);
	must_to_private(P, 4 * PAGE_SIZE);
	memset(gpa_private(P), 0x3c, 4 * PAGE_SIZE);
	must_to_shared(BIG, SZ_16M + PAGE_SIZE);

	if (arg_present("touch-pinned"))
		touch_pinned();

	shared_pages();
	private_pages();
	randomise_s();
	partly_private(0);
	partly_private(S_PAGES / 2 + 1);
	partly_private(S_PAGES - 1);
	puts("dma: a range with one private page is not written at all");
	bad_requests();
	pinning();
	puts("dma: PASS");
	return 0;
}
