/* SPDX-License-Identifier: MIT */
/*
 * CONVERT_BATCH lists (guest ABI extension 3, hypercall.h).  The list
 * page is shared, so the guest writes it through the shared view with
 * plain stores: no access here is a wrong-view one.
 */
#include "guest.h"

void batch_init(struct batch *b, uint64_t list_gpa)
{
	GUEST_ASSERT(IS_ALIGNED(list_gpa, PAGE_SIZE));
	must_to_shared(list_gpa, PAGE_SIZE);
	b->list_gpa = list_gpa;
	b->list = gpa_shared(list_gpa);
	b->n = 0;
}

void batch_add(struct batch *b, uint64_t gpa, uint64_t npages,
	       bool to_private)
{
	GUEST_ASSERT_MSG(b->n < GM_BATCH_MAX_ENTRIES, "batch list full");
	GUEST_ASSERT(npages <= UINT32_MAX);
	b->list->entries[b->n] = (struct gm_batch_entry){
		.gpa = gpa,
		.pages = (uint32_t)npages,
		.target = to_private ? GM_BATCH_TO_PRIVATE :
				       GM_BATCH_TO_SHARED,
	};
	b->n++;
}

long batch_submit(struct batch *b)
{
	b->list->hdr.status = BATCH_HDR_UNWRITTEN;
	return convert_batch(b->list_gpa, b->n);
}
