/* SPDX-License-Identifier: MIT */
/*
 * util/kvm_util.h - the tiny-VM helper layer (internal, never installed),
 * in the spirit of the KVM selftests' kvm_util: open KVM, create a VM, give
 * it an anonymous memslot, create a vCPU with its kvm_run mapped, point it
 * at real-mode code and run it.
 *
 * Its users are the throwaway VMs of the project: libgmem's gating probe,
 * gmvm's vmcall probe, the tests' access vCPU and the benchmarks' floors and
 * bare VM.  Header-only (static inline) so that libgmem carries its own
 * copy without exporting it and gmvm never links a libgmem internal.
 *
 * Every function returns 0, a new fd, or -errno and prints nothing: the
 * caller decides whether a failure is an error, a skip or a probe answer.
 * Real mode keeps every user free of page tables; a user that needs
 * paging (gmvm itself) does not use this layer.
 */
#ifndef GMVM_UTIL_KVM_UTIL_H
#define GMVM_UTIL_KVM_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

struct kvmu_vcpu {
	int fd;
	struct kvm_run *run;
	size_t run_size;
};

/* /dev/kvm, close-on-exec: fd or -errno. */
static inline int kvmu_open(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/*
 * A VM of @type (0: the default VM): fd or -errno.  The TSS address is set
 * because Intel without unrestricted guest needs one for real mode; hosts
 * that do not need it accept it, so its result is not checked.
 */
static inline int kvmu_vm_create(int kvm, unsigned long type)
{
	int vm = ioctl(kvm, KVM_CREATE_VM, type);

	if (vm < 0)
		return -errno;
	ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000UL);
	return vm;
}

/* Plain memslot @slot at @gpa backed by @mem (no guest_memfd): 0 or -errno. */
static inline int kvmu_set_slot(int vm, uint32_t slot, uint64_t gpa,
				void *mem, uint64_t size)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)mem,
	};

	return ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) ? -errno : 0;
}

/* vCPU @id of @vm with its kvm_run mapped: 0 or -errno (nothing left open). */
static inline int kvmu_vcpu_create(int kvm, int vm, unsigned int id,
				   struct kvmu_vcpu *v)
{
	int size, err;

	v->fd = ioctl(vm, KVM_CREATE_VCPU, (unsigned long)id);
	if (v->fd < 0)
		return -errno;
	size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size <= 0) {
		err = size < 0 ? -errno : -EIO;
		goto err_fd;
	}
	v->run_size = (size_t)size;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      v->fd, 0);
	if (v->run == MAP_FAILED) {
		err = -errno;
		goto err_fd;
	}
	return 0;
err_fd:
	close(v->fd);
	v->fd = -1;
	return err;
}

static inline void kvmu_vcpu_destroy(struct kvmu_vcpu *v)
{
	if (v->fd < 0)
		return;
	munmap(v->run, v->run_size);
	close(v->fd);
	v->fd = -1;
}

/*
 * Real mode, CPL 0, code at @cs_base, data at @ds_base (both 16-byte
 * aligned and below 1 MiB + 64 KiB), @regs as given but with the reserved
 * RFLAGS bit set: 0 or -errno.
 */
static inline int kvmu_vcpu_real_mode(struct kvmu_vcpu *v, uint64_t cs_base,
				      uint64_t ds_base, struct kvm_regs *regs)
{
	struct kvm_sregs sregs;

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.cs.base = cs_base;
	sregs.cs.selector = (uint16_t)(cs_base >> 4);
	sregs.ds.base = ds_base;
	sregs.ds.selector = (uint16_t)(ds_base >> 4);
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	regs->rflags |= 0x2;
	return ioctl(v->fd, KVM_SET_REGS, regs) < 0 ? -errno : 0;
}

/* One KVM_RUN: 0 or -errno (the exit is in v->run either way). */
static inline int kvmu_vcpu_run(struct kvmu_vcpu *v)
{
	return ioctl(v->fd, KVM_RUN, 0) < 0 ? -errno : 0;
}

static inline int kvmu_vcpu_get_regs(struct kvmu_vcpu *v, struct kvm_regs *regs)
{
	return ioctl(v->fd, KVM_GET_REGS, regs) < 0 ? -errno : 0;
}

#endif
