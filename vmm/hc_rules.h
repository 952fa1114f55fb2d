/* SPDX-License-Identifier: MIT */
/*
 * The guest ABI's rules for hypercall arguments and results, as pure
 * functions of the values (no VM, no vCPU), so that tests/test_hc_rules.c
 * checks every rule without KVM and hypercall.c only applies them.
 */
#ifndef GMVM_HC_RULES_H
#define GMVM_HC_RULES_H

#include <stdbool.h>
#include <stdint.h>

#include <gmem/gmem.h>
#include <gmvm/abi.h>

/*
 * a0 (GPA) and a1 (pages) as a byte range *@len of RAM [0, @ram_size):
 * aligned, a1 > 0, no wrap.  False: the guest gets -22.
 */
bool hc_range(uint64_t ram_size, uint64_t a0, uint64_t a1, uint64_t *len);

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
 * CONVERT_BATCH's registers (extension 3, step 1 but for the list page's
 * state, which only libgmem can tell): true if valid.
 */
bool hc_batch_regs(uint64_t ram_size, uint64_t a0, uint64_t a1, uint64_t a2);

/*
 * CONVERT_BATCH, step 2: check the @n entries copied out of the list page
 * at @list_gpa, in list order, and turn them into libgmem's entries
 * @out[@n].  Returns -1 if every entry is valid, else the index of the
 * first bad one (@out is then partly written).
 */
int hc_batch_entries(const struct gm_batch_entry *in, unsigned int n,
		     uint64_t ram_size, uint64_t list_gpa,
		     struct gmem_batch_entry *out);

#endif /* GMVM_HC_RULES_H */
