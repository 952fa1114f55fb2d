/* SPDX-License-Identifier: MIT */
/*
 * The guest ABI's rules for hypercall arguments and results (hc_rules.h):
 * docs/GUEST_ABI.md section 5, extension 1 and extension 3, as pure
 * functions.  Every value here comes from the guest, so every check
 * guards against overflow before it computes anything.
 */
#include <errno.h>
#include <string.h>

#include "hc_rules.h"

#define PAGE 4096ULL

bool hc_range(uint64_t ram_size, uint64_t a0, uint64_t a1, uint64_t *len)
{
	if (a0 % PAGE || a1 == 0 || a1 > UINT64_MAX / PAGE)
		return false;
	*len = a1 * PAGE;
	return a0 + *len >= a0 && a0 + *len <= ram_size;
}

bool hc_status(int64_t ret, bool einval_is_guests, int64_t *status)
{
	if (ret >= 0)
		*status = GM_HC_OK;
	else if (ret == -EAGAIN)
		*status = GM_HC_EAGAIN;
	else if (ret == -ENOMEM)
		*status = GM_HC_ENOMEM;
	else if (ret == -EINVAL && einval_is_guests)
		*status = GM_HC_EINVAL;
	else
		return false;
	return true;
}

bool hc_batch_regs(uint64_t ram_size, uint64_t a0, uint64_t a1, uint64_t a2)
{
	uint64_t len;

	return hc_range(ram_size, a0, 1, &len) && a1 >= 1 &&
	       a1 <= GM_BATCH_MAX_ENTRIES && a2 == 0;
}

int hc_batch_entries(const struct gm_batch_entry *in, unsigned int n,
		     uint64_t ram_size, uint64_t list_gpa,
		     struct gmem_batch_entry *out)
{
	static const uint8_t zero[sizeof(in->reserved)];
	unsigned int i;
	uint64_t len;

	for (i = 0; i < n; i++) {
		const struct gm_batch_entry *e = &in[i];

		if (!hc_range(ram_size, e->gpa, e->pages, &len) ||
		    e->target > GM_BATCH_TO_PRIVATE ||
		    memcmp(e->reserved, zero, sizeof(zero)))
			return (int)i;
		/* The list page stays shared: gmvm writes the answer there. */
		if (list_gpa >= e->gpa && list_gpa - e->gpa < len)
			return (int)i;
		out[i] = (struct gmem_batch_entry){
			.gpa = e->gpa,
			.len = len,
			.to = e->target == GM_BATCH_TO_PRIVATE ? GMEM_PRIVATE :
								 GMEM_SHARED,
		};
	}
	return -1;
}
