/* SPDX-License-Identifier: MIT */
/*
 * MAP_GPA_RANGE (ABI section 5), and CONVERT_BATCH (extension 3).
 * Registers as KVM_HC_MAP_GPA_RANGE:
 * RAX = number, RBX = first GPA (private view), RCX = page count,
 * RDX = attributes; result in RAX.  The transport is vmcall when the boot
 * info says so, else the port doorbell (outb %al, $0xf5); gmvm preserves
 * every register but RAX.  The "memory" clobber matters: a conversion may
 * discard or move page content behind the compiler's back.
 */
#ifndef GUEST_HYPERCALL_H
#define GUEST_HYPERCALL_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Any hypercall number through the doorbell, whatever the boot info says:
 * the only transport of SET_PLUGGED and CONVERT_BATCH (extensions 1, 3).
 */
static inline long gm_doorbell(uint64_t nr, uint64_t a0, uint64_t a1,
			       uint64_t a2)
{
	long ret;

	asm volatile("outb %%al, %[port]"
		     : "=a"(ret)
		     : "a"(nr), "b"(a0), "c"(a1), "d"(a2),
		       [port] "i"(GM_PORT_DOORBELL)
		     : "memory");
	return ret;
}

/* Any hypercall number, for tests of unknown numbers. */
static inline long gm_hypercall(uint64_t nr, uint64_t a0, uint64_t a1,
				uint64_t a2)
{
	long ret;

	if (!(gm_flags & GM_BOOT_F_VMCALL))
		return gm_doorbell(nr, a0, a1, a2);
	asm volatile("vmcall"
		     : "=a"(ret)
		     : "a"(nr), "b"(a0), "c"(a1), "d"(a2)
		     : "memory");
	return ret;
}

/* 0, or -22 (bad request), -11 (pinned page), -12 (the host's mapping
 * limit: extension 3), -1000 (unknown number). */
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

/*
 * CONVERT_BATCH (extension 3, boot info flag bit 4): a list of ranges in
 * a page the guest made shared, converted in one all-or-nothing call.
 * The list is written through the shared view; gmvm answers in RAX and in
 * the list's header (list->hdr).
 */
static inline bool gm_has_batch(void)
{
	return gm_flags & GM_BOOT_F_BATCH;
}

/* Raw: 0, -22, -11, -12, or -1000 (a gmvm without extension 3). */
static inline long convert_batch(uint64_t list_gpa, uint64_t n)
{
	return gm_doorbell(GM_HC_CONVERT_BATCH, list_gpa, n, 0);
}

struct batch {
	uint64_t list_gpa;		/* private-view GPA of the list page */
	struct gm_batch_list *list;	/* the list, in the shared view */
	unsigned int n;			/* entries added */
};

/*
 * Use page @list_gpa as a batch's list: converts it to shared (asserting
 * success) and starts with no entries.
 */
void batch_init(struct batch *b, uint64_t list_gpa);
/* Append an entry (the test fails if the list is full). */
void batch_add(struct batch *b, uint64_t gpa, uint64_t npages,
	       bool to_private);
/*
 * Fill the header with a value gmvm never writes (so that the caller can
 * tell whether it was written) and issue CONVERT_BATCH for the entries
 * added; returns RAX.  The entries stay: submit again, or batch_reset().
 */
long batch_submit(struct batch *b);

static inline void batch_reset(struct batch *b)
{
	b->n = 0;
}

/* status, as gmvm never writes it: the header was not written. */
#define BATCH_HDR_UNWRITTEN 1

#endif /* GUEST_HYPERCALL_H */
