/* SPDX-License-Identifier: MIT */
/*
 * The guest ABI's rules for hypercall results and for CONVERT_BATCH's
 * arguments, as pure functions of the values (no VM, no vCPU), so that
 * tests/test_hc_rules.c checks every rule without KVM and hypercall.c
 * only applies them.  What RAM is stays hypercall.c's to say (its
 * hc_range()): the rules take it as a function.
 */
#ifndef GMVM_HC_RULES_H
#define GMVM_HC_RULES_H

#include <stdbool.h>
#include <stdint.h>

#include <gmem/gmem.h>
#include <gmvm/abi.h>

/*
 * Is [@gpa, @gpa + @pages * 4 KiB) RAM, @gpa aligned and @pages > 0?  If
 * so, *@len gets its bytes.  @arg is the caller's (gmvm's VM).
 */
typedef bool (*hc_ram_fn)(const void *arg, uint64_t gpa, uint64_t pages,
			  uint64_t *len);

/*
 * What the guest gets in RAX for libgmem's answer @ret to a change it
 * asked for: true and *@status, or false when the failure is the host's
 * (gmvm stops the VM with 125).  -EAGAIN (a pinned page) is -11; -ENOMEM
 * is -12 (extension 3: libgmem changed nothing, typically the host's
 * mapping limit; older gmvm stopped with 125); -EINVAL is -22 only if
 * @einval_is_guests (CONVERT_BATCH: overlapping entries, which only
 * libgmem checks); -EIO (broken memory) and anything else is the host's.
 */
bool hc_status(int64_t ret, bool einval_is_guests, int64_t *status);

/*
 * CONVERT_BATCH's a1 (entries) and a2 (flags), extension 3 step 1; the
 * list page itself is checked as one page of RAM.  True if valid.
 */
bool hc_batch_args(uint64_t a1, uint64_t a2);

/*
 * CONVERT_BATCH, step 2: check the @n entries copied out of the list page
 * at @list_gpa, in list order, each range by @in_ram(@arg, ...), and turn
 * them into libgmem's entries @out[@n].  Returns -1 if every entry is
 * valid, else the index of the first bad one (@out is then partly
 * written).
 */
int hc_batch_entries(const struct gm_batch_entry *in, unsigned int n,
		     hc_ram_fn in_ram, const void *arg, uint64_t list_gpa,
		     struct gmem_batch_entry *out);

#endif /* GMVM_HC_RULES_H */
