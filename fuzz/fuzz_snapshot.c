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
 * The same bytes also go to the parsers of the machine sections (VCPU,
 * CLOCK, DMADEV, RUNOPTS: snapshot/machine.h), as `gmvm restore` runs
 * them before it opens KVM: a refusal must be a negative errno with a
 * message; an accepted machine, written again, must give every machine
 * section's payload byte for byte (one encoding per state, nothing
 * dropped or invented).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_restore.h"
#include "fuzz_vm.h"
#include "snapshot/format.h"
#include "snapshot/machine.h"
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

/* Where a parsed machine is written back: bytes in memory. */
struct sink {
	uint8_t *p;
	size_t len;
};

static int sink_write(void *data, int fd, const void *buf, size_t len,
		      uint64_t off)
{
	struct sink *k = data;

	if (off + len > k->len) {
		k->p = realloc(k->p, (size_t)off + len);
		FUZZ_ASSERT(k->p);
		memset(k->p + k->len, 0, (size_t)off + len - k->len);
		k->len = (size_t)off + len;
	}
	memcpy(k->p + off, buf, len);
	return 0;
}

/* Each section written in @k: the same payload as its twin in @r. */
static void same_sections(struct snap_reader *r, const struct sink *k)
{
	unsigned int seen[0x31] = { 0 };
	size_t off = SNAP_HEADER_SIZE;
	const struct snap_section *s;
	uint8_t *p = NULL;
	uint32_t type;
	uint64_t len;

	for (;;) {
		FUZZ_ASSERT(off + SNAP_SEC_HEADER_SIZE <= k->len);
		type = snap_get_le32(k->p + off);
		len = snap_get_le64(k->p + off + 8);
		if (type == SNAP_SEC_END)
			break;
		FUZZ_ASSERT(type < sizeof(seen) / sizeof(seen[0]));
		s = snap_reader_find(r, type, seen[type]++);
		if (!s || s->len != len)
			fuzz_fail("section %#x: written back with %llu bytes",
				  type, (unsigned long long)len);
		FUZZ_ASSERT(!snap_payload_load(r, s, UINT64_MAX, &p));
		if (memcmp(p, k->p + off + SNAP_SEC_HEADER_SIZE, (size_t)len))
			fuzz_fail("section %#x: written back differently",
				  type);
		free(p);
		off += SNAP_SEC_HEADER_SIZE + (size_t)len;
	}
}

/* The machine sections, as `gmvm restore` checks them before KVM. */
static void machine(const uint8_t *file, size_t len)
{
	static struct snap_machine m;	/* 60 KiB: not on the stack */
	struct sink k = { NULL, 0 };
	struct snap_io io = { .write_at = sink_write, .data = &k };
	struct snap_reader r;
	struct snap_writer w;
	struct snap_src src;
	struct snap_msg sm;
	char msg[256] = "", wmsg[256] = "";
	int err;

	snap_src_mem(&src, file, len);
	err = snap_reader_open(&r, &src, msg, sizeof(msg));
	if (err)
		return;
	err = snap_machine_parse(&r, &m);
	if (err) {
		if (err >= 0 || !msg[0])
			fuzz_fail("machine refused with %d but no message",
				  err);
	} else {
		snap_msg_init(&sm, wmsg, sizeof(wmsg));
		FUZZ_ASSERT(!snap_writer_init(&w, -1, &io, &sm));
		snap_machine_write(&w, &m);
		if (snap_writer_finish(&w) < 0)
			fuzz_fail("writing a parsed machine: %s", wmsg);
		snap_writer_free(&w);
		same_sections(&r, &k);
		free(k.p);
	}
	snap_machine_free(&m);
	snap_reader_close(&r);
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
	machine(file, size - 1);
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
