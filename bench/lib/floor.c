/* SPDX-License-Identifier: MIT */
/*
 * The kernel floor of a conversion: what libgmem builds for a VM, built
 * without libgmem, and the system calls a conversion cannot avoid issued
 * directly on it.  Every conversion benchmark prints its figure beside
 * this one, measured in the same run on the same layout, so that the
 * ratio is libgmem's own cost.
 *
 * Built from the KVM UAPI (kvm_compat.h, util/kvm_util.h), not from
 * libgmem's internals: a floor that shared libgmem's code would share its
 * mistakes.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "kvm_compat.h"

void bench_touch(uint8_t *p, uint64_t len)
{
	uint64_t off;

	for (off = 0; off < len; off += GMEM_PAGE_SIZE)
		p[off] = 1;
}

/* A guest_memfd of @vm with @flags, as libgmem creates one: fd or -1. */
static int create_guest_memfd(int vm, uint64_t size, uint64_t flags)
{
	struct kvm_create_guest_memfd args = {
		.size = size,
		.flags = flags,
	};

	return vm < 0 ? -1 : ioctl(vm, KVM_CREATE_GUEST_MEMFD, &args);
}

/* A shared mapping of all of @fd, or NULL. */
static uint8_t *map_fd(int fd, uint64_t size, int prot)
{
	void *p;

	if (fd < 0)
		return NULL;
	p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

/*
 * Slot 0, the private view at GPA 0: under the GMEM_SLOT layout a
 * guest_memfd slot (KVM maps private pages from the guest_memfd), under
 * PLAIN_SLOT a plain one over the view's mapping.  0 or -errno.
 */
static int set_private_slot(const struct floor_vm *f, enum gmem_layout layout)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = 0,
		.flags = KVM_MEM_GUEST_MEMFD,
		.memory_size = f->ram,
		.userspace_addr = (uintptr_t)f->priv,
		.guest_memfd = (uint32_t)f->gfd,
	};

	if (layout != GMEM_LAYOUT_GMEM_SLOT)
		return kvmu_set_slot(f->vm, 0, 0, f->priv, f->ram);
	return ioctl(f->vm, KVM_SET_USER_MEMORY_REGION2, &r) ? -errno : 0;
}

void floor_vm_create(struct floor_vm *f, bool in_place, uint64_t ram,
		     uint64_t shared_base, const struct bench_host *host)
{
	f->in_place = in_place;
	f->ram = ram;
	f->vcpu.fd = -1;
	f->vm = bench_create_vm();
	f->gfd = create_guest_memfd(f->vm, ram, host->gmem_flags);
	f->sfd = in_place ? f->gfd : bench_memfd("floor", ram);
	f->priv = map_fd(f->gfd, ram, PROT_READ | PROT_WRITE);
	f->shared = map_fd(f->sfd, ram, PROT_NONE);
	if (f->gfd < 0 || f->sfd < 0 || !f->priv || !f->shared ||
	    set_private_slot(f, host->layout) ||
	    kvmu_set_slot(f->vm, 1, shared_base, f->shared, ram))
		bench_die("floor setup failed");
}

/*
 * Make the VM live: create a vCPU and run it once (real mode, one `out` at
 * GPA 0x1000 of the private view).  From then on KVM keeps per-memslot MMU
 * state (on a shadow-paging host such as kvm_pvm, rmaps for every page of
 * every memslot) that each invalidation (mprotect of a view, punch of the
 * guest_memfd) must walk over the converted range, as in any VM that has
 * run a guest.  A VM that never ran skips that work.  The vCPU stays until
 * floor_vm_destroy(), so does that state.
 */
void floor_vm_run_vcpu(struct floor_vm *f)
{
	static const uint8_t code[] = { 0xe6, 0xf4, 0xf4 }; /* out; hlt */
	struct kvm_regs regs = { .rip = 0x1000 };
	int kvm = kvmu_open();

	memcpy(f->priv + 0x1000, code, sizeof(code));
	if (kvm < 0 || kvmu_vcpu_create(kvm, f->vm, 0, &f->vcpu) ||
	    kvmu_vcpu_real_mode(&f->vcpu, 0, 0, &regs))
		bench_die("floor vCPU setup failed");
	if (kvmu_vcpu_run(&f->vcpu) ||
	    f->vcpu.run->exit_reason != KVM_EXIT_IO)
		bench_die("floor vCPU did not run");
	close(kvm);
}

void floor_vm_destroy(struct floor_vm *f)
{
	kvmu_vcpu_destroy(&f->vcpu);
	munmap(f->priv, f->ram);
	munmap(f->shared, f->ram);
	if (f->sfd != f->gfd)
		close(f->sfd);
	close(f->gfd);
	close(f->vm);
}

void floor_vm_convert(struct floor_vm *f, uint64_t off, uint64_t len,
		      bool to_shared)
{
	uint8_t *from = to_shared ? f->priv : f->shared;
	uint8_t *to = to_shared ? f->shared : f->priv;

	/* A failed call would make the floor cheaper than it is. */
	if (mprotect(from + off, len, PROT_NONE) ||
	    mprotect(to + off, len, PROT_READ | PROT_WRITE))
		bench_die("floor: mprotect: %s", strerror(errno));
	if (!f->in_place &&
	    fallocate(to_shared ? f->gfd : f->sfd,
		      FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len))
		bench_die("floor: fallocate: %s", strerror(errno));
}
