/* SPDX-License-Identifier: MIT */
/*
 * `gmvm restore FILE`: a VM from a whole-VM snapshot (docs/SNAPSHOT.md),
 * run on as `gmvm run` would have run it on.
 *
 * Order, and why:
 *  1. restore_open(), before /dev/kvm is opened: the framing and every
 *     checksum (snap_reader_open), every memory section with the DATA
 *     record headers (snap_mem_check), every machine section
 *     (snap_machine_parse), then what only gmvm knows: the run options
 *     give the RAM layout the file's regions and max GPA must be, the
 *     initial state --init-shared gives, sizes within gmvm's limits, pins
 *     inside RAM.  So a truncated, corrupted, foreign or inconsistent
 *     file is one line and status 125 on any host, and nothing is
 *     created.  The run options become the vm_config.
 *  2. restore_host(), once KVM is open: what the guest was told at boot
 *     must hold here (it uses vmcall for hypercalls only if vmcall comes
 *     back to gmvm on this host).
 *  3. restore_memory(), in place of creating memory: snap_mem_restore()
 *     with gmvm's own way of creating a VM (its backend, guest_memfds,
 *     its one shared memfd), so discard mode puts private pages in the
 *     guest_memfd and shared ones in the shared memfd, in-place mode all
 *     in the one backing; page states and plugs as the file says.
 *  4. The devices are set up as at any start: the DMA device's mapper
 *     maps the shared-and-plugged runs of the restored maps when it is
 *     created, so its mappings equal them before the first instruction
 *     (checked here before any vCPU runs, by the audit at exit, and with
 *     --audit each after every change).  restore_devices() then sets
 *     their registers and pins, and the VM's kvmclock.
 *  5. restore_vcpu() after each vCPU is created (CPUID as at a start),
 *     in the order vcpu_state.c gives.  A vCPU that had done hlt stays
 *     parked.
 * The file stays open from 1 to 3; snap_mem_restore() checks it all
 * again and its content's checksums while it copies, so a file changed
 * in between is refused then (125), never half used.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gmvm.h"
#include "devices/devices.h"
#include "snapshot/machine.h"
#include "snapshot/snapshot.h"

_Static_assert(SNAP_MAX_VCPUS == GMVM_MAX_VCPUS, "VCPU sections");

struct restore {
	const char *path;
	int fd;
	struct snap_reader r;
	bool reader_open;
	char msg[512];			/* the reader's message buffer */
	bool create_failed;		/* vm_memory_create() said why */
	struct snap_mem_info info;
	struct snap_machine m;
};

/* One line about the file, and -EBADMSG (or @err). */
static int refuse(const struct restore *rs, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int refuse(const struct restore *rs, int err, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	gmvm_err("restore: %s: %s", rs->path, what);
	return err;
}

/* What gmvm itself requires of the file's memory and run options. */
static int check_for_gmvm(struct restore *rs)
{
	const struct snap_runopts *o = &rs->m.opts;
	struct ram_layout ram;
	unsigned int i;
	int ret;

	if (o->ram_size < GMVM_MIN_RAM || o->ram_size > GMVM_MAX_RAM)
		return refuse(rs, -EBADMSG, "section RUNOPTS: RAM size %#llx is outside gmvm's 2M..64G",
			      (unsigned long long)o->ram_size);
	ret = ram_layout_compute(o->layout ? RAM_LAYOUT_PC : RAM_LAYOUT_FLAT,
				 o->ram_size, &ram);
	if (ret)
		return refuse(rs, -EBADMSG, "section RUNOPTS: RAM size %#llx with the %s layout: %s",
			      (unsigned long long)o->ram_size,
			      o->layout ? "pc" : "flat", strerror(-ret));
	if (rs->info.nr_regions != ram.nr || rs->info.max_gpa != ram.top)
		return refuse(rs, -EBADMSG, "%u region%s up to %#llx, but section RUNOPTS makes %u up to %#llx",
			      rs->info.nr_regions,
			      rs->info.nr_regions == 1 ? "" : "s",
			      (unsigned long long)rs->info.max_gpa, ram.nr,
			      (unsigned long long)ram.top);
	for (i = 0; i < ram.nr; i++)
		if (rs->info.region[i].gpa != ram.range[i].gpa ||
		    rs->info.region[i].len != ram.range[i].len)
			return refuse(rs, -EBADMSG, "region %u [%#llx, +%#llx) is not the RAM range [%#llx, +%#llx) section RUNOPTS makes",
				      i,
				      (unsigned long long)rs->info.region[i].gpa,
				      (unsigned long long)rs->info.region[i].len,
				      (unsigned long long)ram.range[i].gpa,
				      (unsigned long long)ram.range[i].len);
	if (rs->info.initial_state !=
	    (o->flags & SNAP_RUNOPT_INIT_SHARED ? GMEM_SHARED : GMEM_PRIVATE))
		return refuse(rs, -EBADMSG, "section CONFIG's initial state disagrees with section RUNOPTS's --init-shared");
	for (i = 0; i < rs->m.dma.nr_pins; i++)
		if (!ram_layout_contains(&ram, rs->m.dma.pins[i].addr,
					 rs->m.dma.pins[i].len))
			return refuse(rs, -EBADMSG, "section DMADEV: pin %u [%#llx, +%#llx) is not inside RAM",
				      i,
				      (unsigned long long)rs->m.dma.pins[i].addr,
				      (unsigned long long)rs->m.dma.pins[i].len);
	return 0;
}

int restore_open(const char *path, struct vm_config *cfg)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = errno;

	if (fd < 0) {
		gmvm_err("restore: %s: %s", path, strerror(err));
		return -err;
	}
	return restore_open_fd(fd, path, cfg);
}

int restore_open_fd(int fd, const char *name, struct vm_config *cfg)
{
	struct restore *rs;
	struct snap_src src;
	int ret;

	rs = calloc(1, sizeof(*rs));
	if (!rs) {
		gmvm_err("restore: %s: out of memory", name);
		close(fd);
		return -ENOMEM;
	}
	rs->path = name;
	rs->fd = fd;
	ret = snap_src_fd(&src, rs->fd);
	if (ret) {
		refuse(rs, ret, "%s", ret == -EINVAL ? "not a regular file" :
							 strerror(-ret));
		goto err;
	}
	ret = snap_reader_open(&rs->r, &src, rs->msg, sizeof(rs->msg));
	if (ret)
		goto err_msg;
	rs->reader_open = true;
	ret = snap_mem_check(&rs->r, &rs->info);
	if (!ret)
		ret = snap_machine_parse(&rs->r, &rs->m);
	if (ret)
		goto err_msg;
	ret = check_for_gmvm(rs);
	if (ret)
		goto err;
	cfg->ram_size = rs->m.opts.ram_size;
	cfg->layout = rs->m.opts.layout ? RAM_LAYOUT_PC : RAM_LAYOUT_FLAT;
	cfg->nr_vcpus = rs->m.opts.nr_vcpus;
	cfg->mode = rs->m.opts.mode ? GMEM_MODE_IN_PLACE : GMEM_MODE_DISCARD;
	cfg->implicit = rs->m.opts.implicit ? IMPLICIT_DENY : IMPLICIT_CONVERT;
	cfg->init_shared = rs->m.opts.flags & SNAP_RUNOPT_INIT_SHARED;
	cfg->deferred_reclaim = rs->m.opts.flags & SNAP_RUNOPT_DEFERRED_RECLAIM;
	cfg->dmatest = rs->m.opts.flags & SNAP_RUNOPT_DMA_EXTERNAL ?
		       DMATEST_EXTERNAL : DMATEST_INTERNAL;
	cfg->restore = rs;
	/* From here on the reader's messages belong to the restore. */
	rs->msg[0] = '\0';
	return 0;

err_msg:
	refuse(rs, ret, "%s", rs->msg[0] ? rs->msg : strerror(-ret));
err:
	cfg->restore = rs;
	restore_close(cfg);
	return ret;
}

void restore_close(struct vm_config *cfg)
{
	struct restore *rs = cfg->restore;

	if (!rs)
		return;
	if (rs->reader_open)
		snap_reader_close(&rs->r);
	if (rs->fd >= 0)
		close(rs->fd);
	snap_machine_free(&rs->m);
	free(rs);
	cfg->restore = NULL;
}

int restore_host(struct vm *vm)
{
	struct restore *rs = vm->cfg->restore;
	bool vmcall = rs->m.opts.flags & SNAP_RUNOPT_VMCALL;

	if (vmcall && !vm->vmcall)
		return refuse(rs, -ENOTSUP, "the guest makes its hypercalls with vmcall, and on this host vmcall does not come back to gmvm (%s)",
			      vmcall_why(vm->probes.vmcall));
	/* The guest chose at boot: the doorbell, whatever this host offers. */
	vm->vmcall = vmcall;
	return 0;
}

static int create(void *data, const struct gmem_config *cfg,
		  struct gmem_vm **out)
{
	struct vm *vm = data;
	int ret = vm_memory_create(vm, cfg, out);

	vm->cfg->restore->create_failed = ret != 0;
	return ret;
}

int restore_memory(struct vm *vm)
{
	struct restore *rs = vm->cfg->restore;
	struct gmem_config base = {
		.size = sizeof(base),
		.flags = vm->cfg->deferred_reclaim ?
			 GMEM_CONFIG_DEFERRED_RECLAIM : 0,
		.vm_fd = vm->vm_fd,
	};
	struct snap_restore_opts o = {
		.base = &base, .create = create, .create_data = vm,
	};
	struct gmem_vm *g = NULL;
	int ret;

	ret = snap_mem_restore(&rs->r, &o, &g);
	if (ret) {
		/* It destroyed the VM it made: nothing of it is left. */
		vm->gmem = NULL;
		if (!rs->create_failed)
			refuse(rs, ret, "%s", rs->msg[0] ? rs->msg :
							  strerror(-ret));
		return ret;
	}
	vm->gmem = g;
	return vm_check_memory(vm);
}

int restore_devices(struct vm *vm)
{
	struct restore *rs = vm->cfg->restore;
	char why[512] = "";
	int ret;

	ret = devices_snap_restore(vm, &rs->m, why, sizeof(why));
	if (!ret)
		ret = vm_clock_set(vm, &rs->m.clock, why, sizeof(why));
	if (ret) {
		refuse(rs, ret, "%s", why[0] ? why : strerror(-ret));
		return ret;
	}
	/*
	 * Before the first instruction: the DMA mapper's mappings are the
	 * restored shared-and-plugged runs (its own validation; a failure
	 * is a bug, said by the device, 125).
	 */
	return devices_check(vm) ? -EUCLEAN : 0;
}

int restore_vcpu(struct vm *vm, struct vcpu *vcpu)
{
	struct restore *rs = vm->cfg->restore;
	char why[512] = "";
	int ret;

	ret = vcpu_state_set(vcpu, &rs->m.vcpu[vcpu->index], why, sizeof(why));
	if (ret)
		refuse(rs, ret, "%s", why[0] ? why : strerror(-ret));
	return ret;
}
