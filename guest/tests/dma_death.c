/* SPDX-License-Identifier: MIT */
//@ run: 3 --dmatest=external -- iterations=40
//@ run: 3 -- iterations=40
/*
 * The DMA device process dies under a running guest (tests/test_dmadev.sh
 * kills it with SIGKILL; run on its own, nobody does, and the guest gives
 * up after iterations=N rounds with exit status 3).  pad=N prints N more
 * bytes after the ready line, so that gmvm's block-buffered console output
 * reaches the test's file while the guest runs.
 *
 * Layout, printed for the test: two stable shared ranges A (4 pages) and
 * B (2 pages), and a page T that the loop toggles between shared and
 * private; everything else is private.  The ranges are apart, so the
 * device's mappings of the shared backing are exactly A, B and maybe T.
 *
 * Each round: FILL and CHECKSUM on A (the result must be right, or STATUS
 * 1 once the device is gone), T to private and back to shared (each
 * conversion waits for the device's ack), and a CHECKSUM of T (zeros:
 * discard mode).  When a command returns STATUS 1 the device is gone:
 * every later command faults (PIN too), a bad request is still STATUS 2,
 * conversions of A, B and T keep working with the usual content rules, and
 * the console still prints.  Exit 0.
 */
#include "guest.h"

#define EXIT_NOBODY_KILLED	3

static uint64_t A, B, T;

static void print_range(const char *name, uint64_t gpa, uint64_t len)
{
	printf("dma_death: shared %s [0x%llx, 0x%llx)\n", name,
	       (unsigned long long)gpa, (unsigned long long)(gpa + len));
}

/* One round while the device lives; false once it faulted. */
static bool round_alive(uint64_t i)
{
	uint8_t pat = (uint8_t)(0x10 + i % 200);
	uint32_t sum;
	int st;

	st = dma_fill(A, 4 * PAGE_SIZE, pat);
	if (st == GM_DMA_FAULT)
		return false;
	GUEST_ASSERT_EQ(st, GM_DMA_OK);
	st = dma_checksum(A, 4 * PAGE_SIZE, &sum);
	if (st == GM_DMA_FAULT)
		return false;
	GUEST_ASSERT_EQ(st, GM_DMA_OK);
	GUEST_ASSERT_EQ(sum, pattern_checksum(pat, 4 * PAGE_SIZE));
	/* The guest sees what the device wrote. */
	GUEST_ASSERT_EQ(gm_read8((uint8_t *)gpa_shared(A) + 4095), pat);

	GUEST_ASSERT_EQ(to_private(T, 1), 0);
	GUEST_ASSERT_EQ(to_shared(T, 1), 0);
	st = dma_checksum(T, PAGE_SIZE, &sum);
	if (st == GM_DMA_FAULT)
		return false;
	GUEST_ASSERT_EQ(st, GM_DMA_OK);
	GUEST_ASSERT_EQ(sum, 0);
	return true;
}

static void after_death(void)
{
	uint32_t sum;

	/* Every command faults now; nothing is pinned or written. */
	GUEST_ASSERT_EQ(dma_checksum(A, PAGE_SIZE, &sum), GM_DMA_FAULT);
	GUEST_ASSERT_EQ(dma_fill(B, PAGE_SIZE, 0x77), GM_DMA_FAULT);
	GUEST_ASSERT_EQ(dma_pin(B, PAGE_SIZE), GM_DMA_FAULT);
	GUEST_ASSERT_EQ(dma_unpin(B, PAGE_SIZE), GM_DMA_FAULT);
	GUEST_ASSERT_EQ(dma_checksum(A, 0, NULL), GM_DMA_BAD);
	GUEST_ASSERT_EQ(gm_read8(gpa_shared(B)), 0);

	/* Conversions go on, with the usual content rules. */
	gm_write64(gpa_shared(B), 0x1122334455667788ULL);
	GUEST_ASSERT_EQ(to_private(B, 2), 0);
	GUEST_ASSERT_EQ(gm_read64(gpa_private(B)), 0);
	GUEST_ASSERT_EQ(to_shared(B, 2), 0);
	GUEST_ASSERT_EQ(to_private(A, 4), 0);
	GUEST_ASSERT_EQ(to_private(T, 1), 0);
	gm_write64(gpa_private(T), 42);
	GUEST_ASSERT_EQ(gm_read64(gpa_private(T)), 42);
	GUEST_ASSERT_EQ(to_shared(A, 4), 0);
	GUEST_ASSERT_EQ(gm_read64(gpa_shared(A)), 0);
	/* A pin held by the dead device holds nothing any more. */
	GUEST_ASSERT_EQ(to_private(A, 4), 0);
	puts("dma_death: the device is gone: DMA faults, conversions and the console still work");
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	uint64_t n = arg_u64("iterations", 100000), i, base;
	uint64_t pad = arg_u64("pad", 0);

	if (cpu)
		return 0;
	test_area_require(SZ_2M);
	base = test_alloc(SZ_2M, SZ_2M);
	A = base;
	B = base + 8 * PAGE_SIZE;
	T = base + 16 * PAGE_SIZE;
	must_to_shared(A, 4 * PAGE_SIZE);
	must_to_shared(B, 2 * PAGE_SIZE);
	must_to_shared(T, PAGE_SIZE);
	/* A pin the device takes with it when it dies. */
	GUEST_ASSERT_EQ(dma_pin(A + PAGE_SIZE, 100), GM_DMA_OK);
	GUEST_ASSERT_EQ(to_private(A, 4), GM_HC_EAGAIN);

	print_range("A", A, 4 * PAGE_SIZE);
	print_range("B", B, 2 * PAGE_SIZE);
	printf("dma_death: toggling T [0x%llx, 0x%llx)\n",
	       (unsigned long long)T, (unsigned long long)(T + PAGE_SIZE));
	puts("dma_death: ready");
	/* gmvm's console output is block-buffered when it goes to a file:
	 * pad=N pushes the lines above out for a test that waits for them. */
	for (i = 0; i < pad; i += 64)
		puts("dma_death: padding that pushes buffered console output out");

	for (i = 0; i < n; i++) {
		if (!round_alive(i))
			break;
	}
	if (i == n) {
		printf("dma_death: nobody killed the device in %llu rounds\n",
		       (unsigned long long)n);
		GUEST_ASSERT_EQ(dma_unpin(A + PAGE_SIZE, 100), GM_DMA_OK);
		return EXIT_NOBODY_KILLED;
	}
	printf("dma_death: STATUS 1 after %llu rounds\n",
	       (unsigned long long)i);
	after_death();
	return 0;
}
