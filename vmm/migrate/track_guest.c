/* SPDX-License-Identifier: MIT */
/*
 * Does userfaultfd write-protect on the views see what the guest writes?
 * Asked of KVM itself, on a scratch VM, for the memslot layout a VM uses.
 *
 * Why a probe and not a rule: whether KVM's writes reach the host page
 * tables depends on how KVM maps a slot, and that differs between hosts.
 * Upstream x86 KVM takes the pages of a guest_memfd-only slot from the
 * guest_memfd itself (behind the view: no PTE of ours is touched), while
 * the KVM of our machines faults even a guest_memfd-bound slot through
 * userspace_addr (HOST_NOTES.md; libgmem's gating probe picks the
 * GMEM_SLOT layout for exactly that reason).  Where KVM goes through the
 * view, write-protecting a page changes its PTE under the MMU notifier,
 * which zaps KVM's SPTE, and the guest's next write comes back through
 * GUP with FOLL_WRITE into the write fault that async mode resolves:
 * seen.  Where it does not, nothing reaches the view and nothing is seen.
 * So the probe does what a migration depends on, once each way:
 *
 *  1. a guest_memfd with the flags libgmem would use, mapped, bound to a
 *     memslot of the layout (KVM_MEM_GUEST_MEMFD or a plain slot over
 *     the mapping, as libgmem binds them);
 *  2. a real-mode guest writes a page ("mov [0x2000], al; hlt"), so KVM
 *     has it mapped, as a running guest's pages are when tracking starts;
 *  3. the mapping is registered for async write-protect and protected by
 *     a first scan; a second scan must report nothing (the probe's
 *     control: a positive below must come from the guest's write);
 *  4. the guest writes the page again; a scan must report it.
 * For the GMEM_SLOT layout it asks twice: the private view's
 * guest_memfd-bound slot and the shared view's plain slot (over the
 * guest_memfd's mapping in in-place mode).
 *
 * What it proves, and not: the probe's write is a CPL-0 real-mode store,
 * as libgmem's gating probe's load is.  On kvm_pvm CPL-0 code is
 * emulated, and KVM's emulator reaches guest memory through
 * userspace_addr whatever the slot; every gmvm guest runs at CPL 0, so
 * for them the answer is the one that matters.  Code a host executes
 * natively (user mode under kvm_pvm, everything under VMX/SVM) takes
 * KVM's MMU path instead, which this probe exercises only where KVM
 * runs real mode natively; a guest with a user mode (a Linux guest,
 * which these hosts cannot run) would need a long-mode CPL-3 probe
 * before its writes could be trusted to the views.
 *
 * Written against the UAPI (Documentation/virt/kvm/api.rst 4.35 and
 * 4.141, Documentation/admin-guide/mm/pagemap.rst): this host has no
 * /dev/kvm; tests/test_migrate_kvm.c reports itself skipped here.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm_compat.h"
#include "kvm_util.h"
#include "mm_compat.h"
#include "track.h"

#define PG GMEM_PAGE_SIZE
#define GUEST_PAGES 4
#define GUEST_DATA 0x2000	/* the page the guest writes */

/* Real-mode code at GPA 0: "mov [0x2000], al; hlt". */
static const uint8_t guest_code[] = { 0xa2, 0x00, 0x20, 0xf4 };

/* One run with AL = @val: 0 once the guest halted with @val in its page. */
static int guest_write(struct kvmu_vcpu *v, const volatile uint8_t *mem,
		       uint8_t val)
{
	struct kvm_regs regs;
	int err;

	memset(&regs, 0, sizeof(regs));
	regs.rax = val;
	err = kvmu_vcpu_real_mode(v, 0, 0, &regs);
	if (!err)
		err = kvmu_vcpu_run(v);
	if (err)
		return err;
	if (v->run->exit_reason != KVM_EXIT_HLT || mem[GUEST_DATA] != val)
		return -EIO;
	return 0;
}

static int bind(int vm, int gfd, void *mem, bool gmem_slot)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = 0, .guest_phys_addr = 0,
		.memory_size = GUEST_PAGES * PG,
		.userspace_addr = (uint64_t)(uintptr_t)mem,
	};

	if (gmem_slot) {
		r.flags = KVM_MEM_GUEST_MEMFD;
		r.guest_memfd = (uint32_t)gfd;
	}
	return ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r) < 0 ? -errno : 0;
}

/*
 * One slot kind: a guest_memfd-bound slot (@gmem_slot), or a plain slot
 * over the guest_memfd's mapping.  -EOPNOTSUPP where the write is not
 * seen or this host lacks a feature it needs; another -errno where the
 * probe could not run (worth asking again later).
 */
static int probe_slot(int kvm_fd, bool gmem_slot, const char **why)
{
	const uint64_t size = GUEST_PAGES * PG;
	struct kvmu_vcpu vcpu = { .fd = -1 };
	struct page_region vec[GUEST_PAGES];
	uint8_t *mem = MAP_FAILED;
	int vm, gfd = -1, uffd = -1, pm = -1, err;
	bool seen = false;

	vm = kvmu_vm_create(kvm_fd, 0);
	if (vm < 0) {
		*why = "cannot try it (no scratch KVM VM)";
		return vm;
	}
	err = -EOPNOTSUPP;
	*why = "cannot try it (this VM type has no guest_memfd libgmem maps)";
	gfd = mig_scratch_gmem(vm, size);
	if (gfd < 0)
		goto out;
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, gfd, 0);
	if (mem == MAP_FAILED) {
		err = -errno;
		*why = "cannot try it (cannot map the guest_memfd)";
		goto out;
	}
	memcpy(mem, guest_code, sizeof(guest_code));
	*why = "cannot try it (KVM refused the memslot)";
	if (bind(vm, gfd, mem, gmem_slot))
		goto out;
	*why = "cannot try it (no vCPU)";
	err = kvmu_vcpu_create(kvm_fd, vm, 0, &vcpu);
	if (err)
		goto out;
	*why = "cannot try it (the probe guest did not write its page)";
	err = guest_write(&vcpu, mem, 0x11);
	if (err)
		goto out;
	err = -EOPNOTSUPP;

	uffd = mig_uffd_open(why);
	if (uffd < 0) {
		err = uffd;
		goto out;
	}
	*why = "userfaultfd write-protect refused on a guest_memfd mapping";
	if (mig_uffd_register(uffd, (uintptr_t)mem, size))
		goto out;
	*why = "PAGEMAP_SCAN (Linux 6.7) refused on a guest_memfd mapping";
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0 ||
	    mig_uffd_scan(pm, vec, GUEST_PAGES, (uintptr_t)mem, size, NULL,
			  NULL) ||
	    mig_uffd_scan(pm, vec, GUEST_PAGES, (uintptr_t)mem, size,
			  mig_uffd_note, &seen))
		goto out;
	if (seen) {
		*why = "PAGEMAP_SCAN reports a page of a guest_memfd mapping "
		       "written that nobody wrote, so it proves nothing";
		goto out;
	}
	*why = "cannot try it (the probe guest did not write its page)";
	err = guest_write(&vcpu, mem, 0x22);
	if (err)
		goto out;
	err = -EOPNOTSUPP;
	*why = "PAGEMAP_SCAN (Linux 6.7) refused on a guest_memfd mapping";
	if (mig_uffd_scan(pm, vec, GUEST_PAGES, (uintptr_t)mem + GUEST_DATA,
			  PG, mig_uffd_note, &seen))
		goto out;
	if (!seen) {
		*why = gmem_slot ?
		       "a guest's write through a guest_memfd-bound memslot "
		       "does not reach the view (KVM writes the guest_memfd "
		       "behind it), and gmvm does not hand its memslots to "
		       "KVM's dirty log" :
		       "a guest's write through a plain memslot does not "
		       "reach userfaultfd write-protect on the view";
		goto out;
	}
	*why = gmem_slot ?
	       "a guest's write through a guest_memfd-bound memslot reaches "
	       "the view (KVM faults it in through userspace_addr)" :
	       "a guest's write through a plain memslot reaches the view";
	err = 0;
out:
	kvmu_vcpu_destroy(&vcpu);
	if (pm >= 0)
		close(pm);
	if (uffd >= 0)
		close(uffd);	/* unregisters, dropping the protection */
	if (mem != MAP_FAILED)
		munmap(mem, size);
	if (gfd >= 0)
		close(gfd);
	close(vm);
	return err;
}

int mig_uffd_probe_guest(int kvm_fd, enum gmem_layout layout,
			 const char **why)
{
	int ret;

	switch (layout) {
	case GMEM_LAYOUT_GMEM_SLOT:
		/* The private view's slots, then the shared view's: plain
		 * slots, over the guest_memfd's mapping in in-place mode. */
		ret = probe_slot(kvm_fd, true, why);
		if (!ret) {
			const char *gmem_why = *why;

			ret = probe_slot(kvm_fd, false, why);
			if (!ret)
				*why = gmem_why;
		}
		return ret;
	case GMEM_LAYOUT_PLAIN_SLOT:
		return probe_slot(kvm_fd, false, why);
	default:
		*why = "no such memslot layout";
		return -EINVAL;
	}
}
