/* SPDX-License-Identifier: MIT */
/*
 * The create callback of the harnesses that restore a VM: see
 * fuzz_restore.h.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_restore.h"
#include "fuzz_vm.h"
#include "snapshot/format.h"

static long live_slots;

static int count_slot(void *data, const struct gmem_slot *slot)
{
	__atomic_add_fetch(&live_slots, slot->len ? 1 : -1, __ATOMIC_RELAXED);
	return 0;
}

long fuzz_restore_live_slots(void)
{
	return __atomic_load_n(&live_slots, __ATOMIC_RELAXED);
}

int fuzz_restore_create(void *data, const struct gmem_config *in,
			struct gmem_vm **out)
{
	struct gmem_region_config rc[FUZZ_RESTORE_MAX_REGIONS];
	struct gmem_config cfg = *in;
	uint64_t ram = 0;
	uint32_t i;
	int err;

	if (in->nr_regions > FUZZ_RESTORE_MAX_REGIONS ||
	    in->max_gpa > FUZZ_RESTORE_MAX_SPACE)
		return -E2BIG;
	for (i = 0; i < in->nr_regions; i++)
		ram += in->regions[i].len;
	if (ram > FUZZ_RESTORE_MAX_RAM)
		return -E2BIG;
	for (i = 0; i < in->nr_regions; i++) {
		rc[i] = in->regions[i];
		rc[i].private_fd = memfd_create("fuzz-restore", MFD_CLOEXEC);
		FUZZ_ASSERT(rc[i].private_fd >= 0 &&
			    ftruncate(rc[i].private_fd, (off_t)rc[i].len) == 0);
	}
	cfg.regions = rc;
	cfg.set_slot = count_slot;
	err = gmem_create(&cfg, out);
	for (i = 0; i < in->nr_regions; i++)
		close(rc[i].private_fd);	/* libgmem holds its own dup */
	return err;
}

void fuzz_restore_resave(struct gmem_vm *vm, enum gmem_state initial,
			 enum snap_find find)
{
	struct snap_save_opts o = { .initial_state = initial, .find = find };
	struct snap_writer w;
	struct snap_reader r;
	struct snap_src src;
	struct snap_msg m;
	char msg[256];
	int fd, err;

	fd = memfd_create("fuzz-resave", MFD_CLOEXEC);
	FUZZ_ASSERT(fd >= 0);
	snap_msg_init(&m, msg, sizeof(msg));
	err = snap_writer_init(&w, fd, NULL, &m);
	if (!err)
		err = snap_mem_save(vm, &w, &o, NULL);
	if (!err && snap_writer_finish(&w) < 0)
		err = w.err;
	snap_writer_free(&w);
	if (err)
		fuzz_fail("saving a restored VM: %s (%s)", msg, strerror(-err));
	FUZZ_ASSERT(!snap_src_fd(&src, fd));
	err = snap_reader_open(&r, &src, msg, sizeof(msg));
	if (!err) {
		err = snap_mem_verify(vm, &r, find);
		snap_reader_close(&r);
	}
	if (err)
		fuzz_fail("a restored VM against its own snapshot: %s (%s)",
			  msg, strerror(-err));
	close(fd);
}
