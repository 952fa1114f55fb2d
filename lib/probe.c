/* SPDX-License-Identifier: MIT */
/*
 * Run-time probes of what the host's KVM offers.
 *
 * Nothing about the host is assumed: capabilities are read with
 * KVM_CHECK_EXTENSION, and the one property no capability reports (does
 * mprotect() of a view's mapping really stop a vCPU?) is tested by running
 * a vCPU in a throwaway VM (util/kvm_util.h, the project's tiny-VM helper).
 */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "kvm_compat.h"
#include "kvm_util.h"

static uint64_t check_ext(int fd, long cap)
{
	int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);

	return r > 0 ? (uint64_t)r : 0;
}

/*
 * A KVM VM fd, not /dev/kvm (whose KVM_CHECK_EXTENSION answers for the
 * host, not for a VM type) nor anything else.
 */
static bool is_kvm_vm(int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = '\0';
	return !strcmp(link, "anon_inode:kvm-vm");
}

int gmem_probe_vm(int vm_fd, struct gmem_vm_caps *out)
{
	struct gmem_vm_caps caps = { .size = sizeof(caps) };
	int r;

	if (vm_fd < 0 || !is_kvm_vm(vm_fd))
		return -EBADF;
	r = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY);
	if (r < 0)
		return errno == ENOTTY ? -EBADF : -errno;
	caps.api_version = KVM_API_VERSION;
	/* Every answer comes from the VM itself: VM-scoped capabilities
	 * (memory attributes, guest_memfd flags) depend on its type. */
	caps.vm_types = check_ext(vm_fd, KVM_CAP_VM_TYPES);
	caps.guest_memfd = check_ext(vm_fd, KVM_CAP_GUEST_MEMFD) != 0;
	caps.guest_memfd_flags = check_ext(vm_fd, KVM_CAP_GUEST_MEMFD_FLAGS);
	caps.memory_attributes = check_ext(vm_fd, KVM_CAP_MEMORY_ATTRIBUTES);
	caps.user_memory2 = check_ext(vm_fd, KVM_CAP_USER_MEMORY2) != 0;
	caps.memory_fault_info = check_ext(vm_fd, KVM_CAP_MEMORY_FAULT_INFO) != 0;
	caps.exit_hypercall = check_ext(vm_fd, KVM_CAP_EXIT_HYPERCALL);
	caps.nr_memslots = (uint32_t)check_ext(vm_fd, KVM_CAP_NR_MEMSLOTS);
	caps.sync_regs = (uint32_t)check_ext(vm_fd, KVM_CAP_SYNC_REGS);
	/* The series' capability answers an attribute mask with PRIVATE;
	 * its number is not final, so anything else is not it. */
	caps.gmem_conversion = (check_ext(vm_fd, KVM_CAP_GMEM_CONVERSION) &
				KVM_MEMORY_ATTRIBUTE_PRIVATE) != 0;
	return gmem_copy_out(out, &caps, sizeof(caps));
}

int gmem_pick_guest_memfd_flags(const struct gmem_vm_caps *caps,
				enum gmem_backend backend, uint64_t *flags,
				const char **why)
{
	*flags = 0;
	if (!caps->guest_memfd) {
		*why = "KVM_CAP_GUEST_MEMFD is missing";
		return -EOPNOTSUPP;
	}
	if (!caps->user_memory2) {
		*why = "KVM_CAP_USER_MEMORY2 is missing";
		return -EOPNOTSUPP;
	}
	if (backend == GMEM_BACKEND_VM_ATTRIBUTES) {
		/* KVM alone touches private pages: nothing maps them, so they
		 * can leave the kernel's direct map where that is offered. */
		if (caps->guest_memfd_flags & GUEST_MEMFD_FLAG_NO_DIRECT_MAP) {
			*flags = GUEST_MEMFD_FLAG_NO_DIRECT_MAP;
			*why = "private pages are never mapped: NO_DIRECT_MAP "
			       "takes them out of the kernel direct map";
		} else {
			*why = "private pages are never mapped";
		}
		return 0;
	}
	/* The emulated backend gates the views with host mappings, and the
	 * in-place one faults shared pages through the guest_memfd's own
	 * mmap: the guest_memfd must be mmap-able. */
	if (!(caps->guest_memfd_flags & GUEST_MEMFD_FLAG_MMAP)) {
		*why = "guest_memfd flag MMAP is not offered "
		       "(KVM_CAP_GUEST_MEMFD_FLAGS)";
		return -EOPNOTSUPP;
	}
	*flags = GUEST_MEMFD_FLAG_MMAP;
	if (backend == GMEM_BACKEND_GMEM_IN_PLACE) {
		*why = "MMAP: shared pages are faulted through the guest_memfd";
		return 0;
	}
	/*
	 * Without a private memory attribute for the VM type, KVM can only
	 * fault guest_memfd pages that are shared as far as it knows; a file
	 * created without INIT_SHARED then fails the guest's first access
	 * (KVM_EXIT_INTERNAL_ERROR).  Which pages are private is the
	 * backend's business, not KVM's.
	 */
	if (caps->guest_memfd_flags & GUEST_MEMFD_FLAG_INIT_SHARED) {
		*flags |= GUEST_MEMFD_FLAG_INIT_SHARED;
		*why = caps->memory_attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE ?
		       "MMAP so views can be gated, INIT_SHARED so that KVM "
		       "faults every page (the views decide what is private)" :
		       "MMAP so views can be gated, INIT_SHARED because this "
		       "VM type has no private memory attribute";
	} else if (!(caps->memory_attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE)) {
		*why = "guest_memfd flag INIT_SHARED is not offered and the VM "
		       "type has no private attribute: the guest could not "
		       "fault guest_memfd pages";
		return -EOPNOTSUPP;
	} else {
		*why = "MMAP so views can be gated";
	}
	return 0;
}

int gmem_pick_backend(const struct gmem_vm_caps *caps, enum gmem_mode mode,
		      enum gmem_backend *backend, const char **why)
{
	if (!caps->guest_memfd) {
		*why = "KVM_CAP_GUEST_MEMFD is missing";
		return -EOPNOTSUPP;
	}
	if (mode == GMEM_MODE_IN_PLACE && caps->gmem_conversion &&
	    (caps->guest_memfd_flags & GUEST_MEMFD_FLAG_MMAP)) {
		*backend = GMEM_BACKEND_GMEM_IN_PLACE;
		*why = "KVM converts guest_memfd pages in place "
		       "(guest_memfd conversion capability)";
		return 0;
	}
	if (mode == GMEM_MODE_DISCARD &&
	    (caps->memory_attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE)) {
		*backend = GMEM_BACKEND_VM_ATTRIBUTES;
		*why = "the VM type has KVM_MEMORY_ATTRIBUTE_PRIVATE";
		return 0;
	}
	*backend = GMEM_BACKEND_EMULATED;
	if (mode == GMEM_MODE_IN_PLACE)
		*why = "no guest_memfd conversion capability: two gated views "
		       "of one guest_memfd";
	else
		*why = "the VM type has no private memory attribute: two "
		       "gated views";
	return 0;
}

/* ---- gating probe -------------------------------------------------------- */

#define PROBE_PAGES 4
#define PROBE_DATA_GPA 0x2000
#define PROBE_MAGIC 0x5a

/*
 * Real-mode code at GPA 0: "mov al, [0x2000]; hlt".  Real mode keeps the
 * probe free of page tables; what is probed is the memslot, not the mode.
 */
static const uint8_t probe_code[] = { 0xa0, 0x00, 0x20, 0xf4 };

enum probe_result {
	PROBE_READ_DATA,	/* the load completed with the page's data */
	PROBE_EXITED,		/* the load exited to userspace: gated */
	PROBE_BROKEN,		/* the slot does not work at all */
};

static int probe_run(struct kvmu_vcpu *vcpu, enum probe_result *res)
{
	struct kvm_regs regs;
	int err;

	memset(&regs, 0, sizeof(regs));
	regs.rip = 0;
	err = kvmu_vcpu_real_mode(vcpu, 0, 0, &regs);
	if (err)
		return err;

	err = kvmu_vcpu_run(vcpu);
	if (err == -EFAULT &&
	    vcpu->run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
		*res = PROBE_EXITED;
		return 0;
	}
	if (err)
		return err;
	switch (vcpu->run->exit_reason) {
	case KVM_EXIT_HLT:
		err = kvmu_vcpu_get_regs(vcpu, &regs);
		if (err)
			return err;
		*res = (regs.rax & 0xff) == PROBE_MAGIC ? PROBE_READ_DATA :
							  PROBE_BROKEN;
		return 0;
	case KVM_EXIT_MMIO:
		*res = vcpu->run->mmio.phys_addr == PROBE_DATA_GPA ?
		       PROBE_EXITED : PROBE_BROKEN;
		return 0;
	default:
		*res = PROBE_BROKEN;
		return 0;
	}
}

/* 1: layout gates, 0: it does not, -errno: the probe itself failed. */
static int probe_layout(int kvm, enum gmem_layout layout, uint64_t flags)
{
	const uint64_t size = PROBE_PAGES * GMEM_PAGE_SIZE;
	struct kvmu_vcpu vcpu;
	enum probe_result res;
	int vm, gfd, err;
	uint8_t *mem;

	vm = kvmu_vm_create(kvm, 0);	/* sets the TSS real mode needs */
	if (vm < 0)
		return vm;
	gfd = gmem_backing_create_gmem(vm, size, flags);
	if (gfd < 0) {
		err = gfd;
		goto err_vm;
	}
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, gfd, 0);
	if (mem == MAP_FAILED) {
		err = -errno;
		goto err_gfd;
	}
	memcpy(mem, probe_code, sizeof(probe_code));
	mem[PROBE_DATA_GPA] = PROBE_MAGIC;
	err = gmem_set_memslot(vm, 0,
			       layout == GMEM_LAYOUT_GMEM_SLOT ?
			       KVM_MEM_GUEST_MEMFD : 0,
			       0, size, mem, gfd, 0);
	if (err) {
		/* This layout cannot even be registered here. */
		err = err == -EINVAL ? 0 : err;
		goto err_mem;
	}
	err = kvmu_vcpu_create(kvm, vm, 0, &vcpu);
	if (err)
		goto err_mem;

	/* Ungated, the load must see the data (the slot works at all)... */
	err = probe_run(&vcpu, &res);
	if (err)
		goto err_vcpu;
	if (res != PROBE_READ_DATA) {
		err = 0;
		goto err_vcpu;
	}
	/* ...and gated, the same load must exit instead. */
	if (mprotect(mem + PROBE_DATA_GPA, GMEM_PAGE_SIZE, PROT_NONE) < 0) {
		err = -errno;
		goto err_vcpu;
	}
	err = probe_run(&vcpu, &res);
	if (!err)
		err = res == PROBE_EXITED;

err_vcpu:
	kvmu_vcpu_destroy(&vcpu);
err_mem:
	munmap(mem, size);
err_gfd:
	close(gfd);
err_vm:
	close(vm);
	return err;
}

static pthread_mutex_t gating_lock = PTHREAD_MUTEX_INITIALIZER;
static bool gating_probed;
static int gating_result;
static enum gmem_layout gating_layout;

static int probe_gating_uncached(enum gmem_layout *layout)
{
	static const enum gmem_layout order[] = {
		GMEM_LAYOUT_GMEM_SLOT, GMEM_LAYOUT_PLAIN_SLOT,
	};
	struct gmem_vm_caps caps = { .size = sizeof(caps) };
	const char *why;
	uint64_t flags;
	unsigned int i;
	int kvm, vm, err;

	kvm = kvmu_open();
	if (kvm < 0)
		return kvm;
	/* The flags a default VM would use, asked of a default VM. */
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		err = -errno;
		close(kvm);
		return err;
	}
	err = gmem_probe_vm(vm, &caps);
	close(vm);
	if (!err)
		err = gmem_pick_guest_memfd_flags(&caps, GMEM_BACKEND_EMULATED,
						  &flags, &why);
	if (err) {
		close(kvm);
		return err;
	}
	err = -EOPNOTSUPP;
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		int r = probe_layout(kvm, order[i], flags);

		if (r < 0) {
			err = r;
			break;
		}
		if (r == 1) {
			*layout = order[i];
			err = 0;
			break;
		}
	}
	close(kvm);
	return err;
}

int gmem_probe_gating(enum gmem_layout *layout)
{
	pthread_mutex_lock(&gating_lock);
	if (!gating_probed) {
		gating_result = probe_gating_uncached(&gating_layout);
		gating_probed = true;
	}
	*layout = gating_layout;
	pthread_mutex_unlock(&gating_lock);
	return gating_result;
}

bool gmem_probe_gating_cached(enum gmem_layout *layout)
{
	bool ok;

	pthread_mutex_lock(&gating_lock);
	ok = gating_probed && gating_result == 0;
	if (ok)
		*layout = gating_layout;
	pthread_mutex_unlock(&gating_lock);
	return ok;
}
