/* SPDX-License-Identifier: MIT */
/*
 * The control socket's snapshot: the whole VM into one new file
 * (docs/SNAPSHOT.md), written while every vCPU is paused.
 *
 * The caller (control/commands.c) pauses the VM; pausing settles each
 * vCPU (vcpu.c: the last exit completed, nothing in flight), so the
 * state read here is one moment's, at an instruction boundary.  Devices
 * are quiet then too: the DMA device runs commands only inside a vCPU's
 * exit.  snap_save_file() does it in this order: PATH.tmp, then vCPU and
 * device state into memory (gather(), its prepare step), then the file:
 * memory sections (snap_mem_save, which drains deferred punches and
 * fails with -EAGAIN on any change meanwhile), then the machine
 * sections, written to PATH.tmp, synced and renamed, so PATH is the
 * whole snapshot or nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gmvm.h"
#include "devices/devices.h"
#include "snapshot/machine.h"
#include "snapshot/snapshot.h"

/* The run options a restore needs to build this VM again. */
static void save_opts(const struct vm *vm, struct snap_runopts *o)
{
	const struct vm_config *c = vm->cfg;

	o->ram_size = c->ram_size;
	o->layout = c->layout == RAM_LAYOUT_PC;
	o->nr_vcpus = vm->nr_vcpus;
	o->mode = c->mode;
	o->implicit = c->implicit == IMPLICIT_DENY;
	o->flags = (c->init_shared ? SNAP_RUNOPT_INIT_SHARED : 0) |
		   (c->deferred_reclaim ? SNAP_RUNOPT_DEFERRED_RECLAIM : 0) |
		   (c->dmatest == DMATEST_EXTERNAL ? SNAP_RUNOPT_DMA_EXTERNAL :
						     0) |
		   (vm->vmcall ? SNAP_RUNOPT_VMCALL : 0);
}

int vm_machine_gather(struct vm *vm, struct snap_machine *m, char *why,
		      size_t len)
{
	unsigned int i;
	int ret;

	save_opts(vm, &m->opts);
	for (i = 0; i < vm->nr_vcpus; i++) {
		ret = vcpu_state_get(&vm->vcpus[i], &m->vcpu[i], why, len);
		if (ret)
			return ret;
		m->nr_vcpus = i + 1;
	}
	ret = vm_clock_get(vm, &m->clock, why, len);
	if (ret)
		return ret;
	return devices_snap_save(vm, m, why, len);
}

/*
 * The file: PATH.tmp first (a path that cannot be written fails before
 * anything is read), then the state, memory and machine into it, synced
 * and renamed.
 */
struct gather {
	struct vm *vm;
	struct snap_machine *m;
	char *why;
	size_t len;
};

/* Once PATH.tmp exists: a path that cannot be written fails before
 * KVM is asked for anything. */
static int gather(void *data, struct snap_msg *msg)
{
	struct gather *g = data;

	return vm_machine_gather(g->vm, g->m, g->why, g->len);
}

static int write_file(struct vm *vm, const char *path, struct snap_machine *m,
		      uint64_t *bytes, char *why, size_t len)
{
	struct gather g = { .vm = vm, .m = m, .why = why, .len = len };
	struct snap_save_opts so = {
		.initial_state = vm->cfg->init_shared ? GMEM_SHARED :
							GMEM_PRIVATE,
		.no_replace = true,	/* the lstat() check is the early word */
		.prepare = gather,
		.prepare_data = &g,
		.machine = m,
	};
	struct snap_save_stats st = { 0 };
	int ret;

	ret = snap_save_file(vm->gmem, path, &so, &st, why, len);
	/* Failed, yet PATH is there (it was not before): only its
	 * directory's sync failed, after the rename.  -EEXIST: PATH
	 * appeared meanwhile and is someone else's; ours was removed. */
	if (!ret || (ret != -EEXIST && st.file_bytes && !access(path, F_OK)))
		*bytes = st.file_bytes;
	return ret;
}

int vm_snapshot_save(struct vm *vm, const char *path, uint64_t *bytes,
		     char *why, size_t why_len)
{
	struct snap_machine *m;
	struct stat st;
	int ret;

	why[0] = '\0';
	if (path[0] != '/') {
		snprintf(why, why_len, "'%s' is not an absolute path", path);
		return -EINVAL;
	}
	/* Never over something: a snapshot is a new file. */
	if (!lstat(path, &st)) {
		snprintf(why, why_len, "%s already exists", path);
		return -EEXIST;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	ret = write_file(vm, path, m, bytes, why, why_len);
	if (ret && !why[0])
		snprintf(why, why_len, "%s", strerror(-ret));
	snap_machine_free(m);
	free(m);
	return ret;
}
