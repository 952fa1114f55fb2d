/* SPDX-License-Identifier: MIT */
//@ concurrency
//@ run: 0 --implicit deny -- touch=none
//@ run: 0 --implicit deny --conversion in-place -- touch=none
//@ run: 126 --implicit deny -- touch=shared-read
//@ run: 126 --implicit deny -- touch=shared-write
//@ run: 126 --implicit deny -- touch=private-read
//@ run: 126 --implicit deny -- touch=private-write
//@ run: 126 --implicit deny --conversion in-place -- touch=shared-write
//@ run: 126 --implicit deny --init-shared -- touch=private-read
//@ run: 126 --implicit deny --vcpus 2 -- touch=shared-read
/*
 * --implicit deny (ABI section 6): a wrong-view access stops the VM with
 * status 126 and the guest never gets past it.
 *
 * Every run first does legal work in deny mode (explicit conversions both
 * ways, right-view accesses, DMA) and checks it; "touch=none" stops there
 * and exits 0, which proves the 126 of the other runs comes from the one
 * wrong-view access at the end:
 *   shared-read / shared-write: a private page through the shared view;
 *   private-read / private-write: a shared page through the private view.
 * With --vcpus 2 the other vCPU spins meanwhile: gmvm must stop it too.
 * Reaching the code after the access exits 1 (fail).
 */
#include "guest.h"

static void legal_work(uint64_t gpa)
{
	must_to_private(gpa, 2 * PAGE_SIZE);
	memset(gpa_private(gpa), 0x11, 2 * PAGE_SIZE);
	EXPECT_EACH_PAGE_PRIVATE(gpa, 2 * PAGE_SIZE);

	must_to_shared(gpa, PAGE_SIZE);
	EXPECT_DMA_BYTES(gpa, PAGE_SIZE, after_conversion(0x11));
	GUEST_ASSERT_EQ(dma_fill(gpa, PAGE_SIZE, 0x22), GM_DMA_OK);
	EXPECT_SHARED_BYTES(gpa, PAGE_SIZE, 0x22);
	gm_write64(gpa_shared(gpa), 0x2222222222222222ULL);
	EXPECT_PRIVATE_BYTES(gpa + PAGE_SIZE, PAGE_SIZE, 0x11);
	gm_write64(gpa_private(gpa + PAGE_SIZE), 0x1111111111111111ULL);
	EXPECT_DMA_BYTES(gpa, PAGE_SIZE, 0x22);
	EXPECT_EACH_PAGE_PRIVATE(gpa + PAGE_SIZE, PAGE_SIZE);
	/* gpa is shared, gpa + 4K private: ready for the wrong touch. */
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	uint64_t gpa, shared_page, private_page, page;
	bool via_shared, write = arg_is("touch", "shared-write") ||
				 arg_is("touch", "private-write");
	void *wrong;

	if (cpu) {
		/* Stay runnable: gmvm has to stop a busy vCPU. */
		for (;;)
			cpu_relax();
	}
	if (!gm_shared_base) {
		/* No wrong view exists; a 126 here would be meaningless. */
		puts("implicit_deny: shared_base is 0, no wrong view to touch");
		return arg_is("touch", "none") ? 0 : 1;
	}
	gpa = test_alloc(SZ_2M, SZ_2M);
	shared_page = gpa;
	private_page = gpa + PAGE_SIZE;
	legal_work(gpa);
	if (arg_is("touch", "none")) {
		puts("implicit_deny: legal work done in deny mode: PASS");
		return 0;
	}

	/* The private page through the shared view, or the other way. */
	via_shared = arg_is("touch", "shared-read") ||
		     arg_is("touch", "shared-write");
	if (!via_shared && !arg_is("touch", "private-read") &&
	    !arg_is("touch", "private-write"))
		GUEST_FAIL("unknown touch= argument in \"%s\"", cmdline());
	page = via_shared ? private_page : shared_page;
	wrong = via_shared ? gpa_shared(page) : gpa_private(page);
	printf("implicit_deny: %s %s page 0x%llx through the %s view; gmvm "
	       "must stop the VM (126)\n", write ? "writing" : "reading",
	       via_shared ? "private" : "shared", (unsigned long long)page,
	       via_shared ? "shared" : "private");
	if (write)
		gm_write64(wrong, 1);
	else
		(void)gm_read64(wrong);
	GUEST_FAIL("the wrong-view access was not denied");
}
