/* SPDX-License-Identifier: MIT */
/*
 * What the harnesses that build a VM from untrusted input share
 * (fuzz_snapshot: a snapshot file, fuzz_migrate: a migration stream):
 * the create callback their restore calls, which backs whatever layout
 * the input describes with one memfd per region (within limits, never
 * the host's memory) and counts memslots, so that a refusal can be
 * checked to leave none behind; and the check that an accepted input's VM
 * saves to a snapshot that verifies against it.
 */
#ifndef GMVM_FUZZ_RESTORE_H
#define GMVM_FUZZ_RESTORE_H

#include "gmem/gmem.h"
#include "snapshot/snapshot.h"

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

/* Save @vm into a memfd and check it against that new snapshot: a VM the
 * input built must be one a snapshot describes exactly. */
void fuzz_restore_resave(struct gmem_vm *vm, enum gmem_state initial,
			 enum snap_find find);

#endif
