/* SPDX-License-Identifier: MIT */
/*
 * What the harnesses that build a VM from untrusted input share
 * (fuzz_snapshot: a snapshot file, fuzz_migrate: a migration stream):
 * the create callback their restore calls, which backs whatever layout
 * the input describes with one memfd per region (within limits, never
 * the host's memory) and counts memslots, so that a refusal can be
 * checked to leave none behind.
 */
#ifndef GMVM_FUZZ_RESTORE_H
#define GMVM_FUZZ_RESTORE_H

#include "gmem/gmem.h"

/* What the harnesses back: enough for any layout, never the host. */
#define FUZZ_RESTORE_MAX_RAM (256ULL << 20)
#define FUZZ_RESTORE_MAX_SPACE (1ULL << 40)
#define FUZZ_RESTORE_MAX_REGIONS 16

/* snap_restore_opts.create / mig_recv_opts.create: -E2BIG past the
 * limits above. */
int fuzz_restore_create(void *data, const struct gmem_config *in,
			struct gmem_vm **out);

/* Memslots of every VM created so: 0 whenever no VM exists. */
long fuzz_restore_live_slots(void);

#endif
