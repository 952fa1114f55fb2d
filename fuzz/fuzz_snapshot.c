/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the snapshot reader and memory restore (vmm/snapshot/,
 * docs/SNAPSHOT.md): a snapshot file is untrusted input, like an ELF image.
 *
 * The input is one flags byte and then the file:
 *  - bit 0: reseal first (snap_reseal: the header's length and every
 *    checksum made to agree with the bytes), so that mutations reach the
 *    checks behind the checksums instead of stopping at them; without it
 *    the checksums themselves are fuzzed;
 *  - bit 1: find resident memory with mincore() instead of SEEK_DATA.
 * The file is opened and restored into a new VM with no KVM (libgmem on
 * memfds, as in fuzz/lib/fuzz_vm.c, but one per region of whatever layout
 * the file describes, and memslots counted: fuzz/lib/fuzz_restore.c).  A refusal must be a
 * negative errno with a message and leave no VM (no live memslot).  An accepted file must have
 * been restored exactly: snap_mem_verify() of the VM against the file
 * (maps, content, residency), gmem_audit(), then the VM saved again must
 * verify against its own new snapshot.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_restore.h"
#include "fuzz_vm.h"
#include "snapshot/format.h"
#include "snapshot/snapshot.h"

#define FLAG_RESEAL 1
#define FLAG_MINCORE 2

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

/* The file's initial state (libgmem does not report it), then the VM
 * saved again must verify. */
static void resave(struct gmem_vm *vm, const struct snap_reader *orig,
		   enum snap_find find)
{
	const struct snap_section *config =
		snap_reader_find(orig, SNAP_SEC_CONFIG, 0);
	uint8_t initial[8];

	FUZZ_ASSERT(config && config->len >= 8);
	FUZZ_ASSERT(orig->src.mem);
	memcpy(initial, orig->src.mem + config->off + SNAP_SEC_HEADER_SIZE, 8);
	fuzz_restore_resave(vm, (enum gmem_state)snap_get_le32(initial + 4),
			    find);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gmem_config base = GMEM_INIT(struct gmem_config, .vm_fd = -1);
	struct snap_restore_opts o = { .base = &base, .create = fuzz_restore_create };
	struct gmem_vm *vm = NULL;
	struct snap_reader r;
	struct snap_src src;
	char msg[256] = "", audit[512] = "";
	uint8_t *file, flags;
	int err;

	if (!size)
		return 0;
	flags = data[0];
	file = malloc(size);	/* never empty: size - 1 may be */
	FUZZ_ASSERT(file);
	memcpy(file, data + 1, size - 1);
	if (flags & FLAG_RESEAL)
		snap_reseal(file, size - 1);
	o.find = flags & FLAG_MINCORE ? SNAP_FIND_MINCORE : SNAP_FIND_AUTO;
	snap_src_mem(&src, file, size - 1);
	err = snap_reader_open(&r, &src, msg, sizeof(msg));
	if (!err) {
		err = snap_mem_restore(&r, &o, &vm);
		if (!err) {
			if (snap_mem_verify(vm, &r, o.find))
				fuzz_fail("an accepted snapshot restored "
					  "wrong: %s", msg);
			if (gmem_audit(vm, audit, sizeof(audit)))
				fuzz_fail("audit of a restored VM: %s", audit);
			resave(vm, &r, o.find);
			gmem_destroy(vm);
		}
		snap_reader_close(&r);
	}
	if (err) {
		FUZZ_ASSERT(err < 0 && !vm);
		if (!msg[0])
			fuzz_fail("refused with %s but no message",
				  strerror(-err));
	}
	if (fuzz_restore_live_slots())
		fuzz_fail("%ld memslots left behind (%s)",
			  fuzz_restore_live_slots(),
			  err ? msg : "accepted");
	free(file);
	return 0;
}
