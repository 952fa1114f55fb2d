/* SPDX-License-Identifier: MIT */
/*
 * MAP_GPA_RANGE (ABI section 5).  Registers as KVM_HC_MAP_GPA_RANGE:
 * RAX = number, RBX = first GPA (private view), RCX = page count,
 * RDX = attributes; result in RAX.  The transport is vmcall when the boot
 * info says so, else the port doorbell (outb %al, $0xf5); gmvm preserves
 * every register but RAX.  The "memory" clobber matters: a conversion may
 * discard or move page content behind the compiler's back.
 */
#ifndef GUEST_HYPERCALL_H
#define GUEST_HYPERCALL_H

#include <stdint.h>

/* Any hypercall number, for tests of unknown numbers. */
static inline long gm_hypercall(uint64_t nr, uint64_t a0, uint64_t a1,
				uint64_t a2)
{
	long ret;

	if (gm_flags & GM_BOOT_F_VMCALL)
		asm volatile("vmcall"
			     : "=a"(ret)
			     : "a"(nr), "b"(a0), "c"(a1), "d"(a2)
			     : "memory");
	else
		asm volatile("outb %%al, %[port]"
			     : "=a"(ret)
			     : "a"(nr), "b"(a0), "c"(a1), "d"(a2),
			       [port] "i"(GM_PORT_DOORBELL)
			     : "memory");
	return ret;
}

/* 0, or -22 (bad request), -11 (pinned page), -1000 (unknown number). */
static inline long map_gpa_range(uint64_t gpa, uint64_t npages,
				 uint64_t attrs)
{
	return gm_hypercall(GM_HC_MAP_GPA_RANGE, gpa, npages, attrs);
}

static inline long to_private(uint64_t gpa, uint64_t npages)
{
	return map_gpa_range(gpa, npages, GM_MAP_PRIVATE);
}

static inline long to_shared(uint64_t gpa, uint64_t npages)
{
	return map_gpa_range(gpa, npages, GM_MAP_SHARED);
}

/* The same for byte ranges (page aligned), asserting success. */
void must_to_private(uint64_t gpa, uint64_t size);
void must_to_shared(uint64_t gpa, uint64_t size);

#endif /* GUEST_HYPERCALL_H */
