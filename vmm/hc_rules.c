/* SPDX-License-Identifier: MIT */
/*
 * The guest ABI's rules for hypercall results and CONVERT_BATCH's
 * arguments (hc_rules.h): docs/GUEST_ABI.md section 5, extension 1 and
 * extension 3, as pure functions.  Every value here comes from the guest.
 */
#include <errno.h>
#include <string.h>

#include "hc_rules.h"

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

bool hc_batch_args(uint64_t a1, uint64_t a2)
{
	return a1 >= 1 && a1 <= GM_BATCH_MAX_ENTRIES && a2 == 0;
}

int hc_batch_entries(const struct gm_batch_entry *in, unsigned int n,
		     hc_ram_fn in_ram, const void *arg, uint64_t list_gpa,
		     struct gmem_batch_entry *out)
{
	static const uint8_t zero[sizeof(in->reserved)];
	unsigned int i;
	uint64_t len;

	for (i = 0; i < n; i++) {
		const struct gm_batch_entry *e = &in[i];

		if (!in_ram(arg, e->gpa, e->pages, &len) ||
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
