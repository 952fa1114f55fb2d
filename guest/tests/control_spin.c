/* SPDX-License-Identifier: MIT */
/*
 * A guest that runs until it is stopped from outside, for the control
 * socket's session test (tests/test_gmvm_ctl.sh): vCPU 0 prints "ready",
 * then every vCPU converts a page of its own to shared and back, again and
 * again, checking each result, so that gmvm's counters (hypercalls,
 * conversions, KVM_RUN calls) keep moving while it runs and stand still
 * while it is paused.  It never exits by itself (no //@ run line: the
 * runner would only watch it time out); a failed conversion exits 1.
 */
#include "guest.h"

#define MAX_CPUS 64

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	static uint64_t base;
	uint64_t page;

	if (cpu == 0)
		store_release(&base, test_alloc((uint64_t)MAX_CPUS * PAGE_SIZE,
						PAGE_SIZE));
	while (!load_acquire(&base))
		cpu_relax();
	page = base + (uint64_t)cpu * PAGE_SIZE;
	if (cpu == 0)
		puts("ready");
	for (;;) {
		GUEST_ASSERT_EQ(to_shared(page, 1), 0);
		GUEST_ASSERT_EQ(to_private(page, 1), 0);
	}
	return 0;
}
