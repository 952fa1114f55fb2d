/* SPDX-License-Identifier: MIT */
/*
 * The native enforcement backends: KVM itself keeps private pages from the
 * host and from shared accesses, so libgmem only tells KVM each page's
 * state.  One memslot per region at its GPA, no shared alias
 * (gmem_shared_base() is 0).  Neither runs on our development hosts (no VM
 * type with a private attribute, no conversion capability): both are
 * selected only by gmem_pick_backend() from the VM's own capabilities, and
 * their tests report skipped there (tests/test_gmem_native.c).
 *
 * VM attributes (discard mode, SEV-SNP / TDX / SW_PROTECTED VMs):
 *   the slot is KVM_MEM_GUEST_MEMFD with userspace_addr = the mapping of
 *   the region's shared backing; KVM_SET_MEMORY_ATTRIBUTES(PRIVATE) on the
 *   VM fd makes KVM take a page from the guest_memfd, attributes 0 from
 *   userspace_addr.  A shared page's host mapping is gated with mprotect
 *   as in the emulated backend, so the host never touches a page while it
 *   is private and a revoked shared page faults (KVM_EXIT_MEMORY_FAULT)
 *   instead of being read stale.  Private pages are never mapped.
 * guest_memfd in place (in-place mode): the slot is KVM_MEM_GUEST_MEMFD
 *   with userspace_addr = the guest_memfd's own mmap; the conversion ioctl
 *   on the guest_memfd (KVM_SET_MEMORY_ATTRIBUTES2) converts, refusing
 *   with EAGAIN and the first referenced offset while a page is pinned;
 *   the kernel makes private pages unfaultable through the mmap.
 *
 * Both: an unplugged page is punched; KVM would fault it in again, zeroed,
 * if the guest touched it (documented: native backends cannot stop that;
 * gmvm treats such an access as the guest's fault before it happens, by
 * the memory-fault exit of the revoked attribute).
 */
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "internal.h"
#include "kvm_compat.h"

#define VIEW_RW (PROT_READ | PROT_WRITE)

static bool is_private(uint8_t v)
{
	return (v & GMEM_V_STATE) == GMEM_PRIVATE;
}

static int set_vm_attributes(struct gmem_vm *vm, uint64_t page,
			     uint64_t npages, bool private_attr)
{
	struct kvm_memory_attributes a = {
		.address = page * GMEM_PAGE_SIZE,
		.size = npages * GMEM_PAGE_SIZE,
		.attributes = private_attr ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};
	int err = gmem_fault_check(vm, GMEM_FAULT_MPROTECT);

	if (err)
		return err;
	if (ioctl(vm->vm_fd, KVM_SET_MEMORY_ATTRIBUTES, &a) < 0)
		return -errno;
	return 0;
}

static int shared_protect(struct gmem_vm *vm, uint64_t page, uint64_t npages,
			  int prot)
{
	if (mprotect(vm->private_view + page * GMEM_PAGE_SIZE,
		     npages * GMEM_PAGE_SIZE, prot) < 0)
		return -errno;
	return 0;
}

/*
 * Revoke: the attribute takes the new state at once (KVM zaps its
 * mappings of the range), and a shared page's host mapping closes.
 * Grant: a page becoming shared and plugged opens its host mapping.
 */
static int attr_revoke(struct gmem_vm *vm, uint64_t page, uint64_t npages,
		       uint8_t old, uint8_t new_value)
{
	int err;

	if (!(old & GMEM_V_UNPLUGGED) && !is_private(old)) {
		err = shared_protect(vm, page, npages, PROT_NONE);
		if (err)
			return err;
	}
	if (is_private(old) != is_private(new_value)) {
		err = set_vm_attributes(vm, page, npages, is_private(new_value));
		if (err && !(old & GMEM_V_UNPLUGGED) && !is_private(old))
			shared_protect(vm, page, npages, VIEW_RW);
		return err;
	}
	return 0;
}

static int attr_unrevoke(struct gmem_vm *vm, uint64_t page, uint64_t npages,
			 uint8_t old, uint8_t new_value)
{
	int err = 0;

	if (is_private(old) != is_private(new_value))
		err = set_vm_attributes(vm, page, npages, is_private(old));
	if (!err && !(old & GMEM_V_UNPLUGGED) && !is_private(old))
		err = shared_protect(vm, page, npages, VIEW_RW);
	return err;
}

static int attr_grant(struct gmem_vm *vm, uint64_t page, uint64_t npages,
		      uint8_t old, uint8_t new_value)
{
	if (new_value == GMEM_SHARED)
		return shared_protect(vm, page, npages, VIEW_RW);
	return 0;
}

static int attr_ungrant(struct gmem_vm *vm, uint64_t page, uint64_t npages,
			uint8_t old, uint8_t new_value)
{
	if (new_value == GMEM_SHARED)
		return shared_protect(vm, page, npages, PROT_NONE);
	return 0;
}

static int map_at(struct gmem_vm *vm, const struct gmem_region *r, int fd,
		  uint64_t off, int prot)
{
	void *p = mmap(vm->private_view + r->gpa, r->len, prot,
		       MAP_SHARED | MAP_FIXED, fd, (off_t)off);

	return p == MAP_FAILED ? -errno : 0;
}

static int unmap_at(struct gmem_vm *vm, const struct gmem_region *r)
{
	void *p = mmap(vm->private_view + r->gpa, r->len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
		       -1, 0);

	return p == MAP_FAILED ? -errno : 0;
}

static int attr_map_region(struct gmem_vm *vm, struct gmem_region *r,
			   uint8_t value)
{
	int err;

	err = map_at(vm, r, r->shared_fd, r->shared_offset,
		     value == GMEM_SHARED ? VIEW_RW : PROT_NONE);
	if (err)
		return err;
	if (value == GMEM_PRIVATE) {
		err = set_vm_attributes(vm, r->first, r->npages, true);
		if (err)
			unmap_at(vm, r);
	}
	return err;
}

static int attr_unmap_region(struct gmem_vm *vm, struct gmem_region *r)
{
	/* Attributes of a GPA without a slot are harmless; clear them so a
	 * region added there later starts from KVM's default. */
	set_vm_attributes(vm, r->first, r->npages, false);
	return unmap_at(vm, r);
}

static int native_region_slots(struct gmem_vm *vm, const struct gmem_region *r,
			       struct gmem_slot *slots)
{
	slots[0] = (struct gmem_slot){
		.size = sizeof(struct gmem_slot),
		.gpa = r->gpa,
		.len = r->len,
		.userspace_addr = vm->private_view + r->gpa,
		.guest_memfd = r->private_fd,
		.guest_memfd_offset = r->private_offset,
		.kvm_flags = KVM_MEM_GUEST_MEMFD,
	};
	return 1;
}

/* KVM offers no way to read attributes back: the audit cannot look at
 * reality here and says so by checking only what the host can see. */
static int native_audit(struct gmem_vm *vm, char *msg, size_t msg_len)
{
	return 0;
}

static uint8_t *attr_host_addr(const struct gmem_vm *vm, enum gmem_state state,
			       uint64_t page)
{
	if (state == GMEM_PRIVATE)
		return NULL;	/* private pages are never mapped */
	return vm->private_view + page * GMEM_PAGE_SIZE;
}

const struct gmem_backend_ops gmem_backend_vm_attributes = {
	.id = GMEM_BACKEND_VM_ATTRIBUTES,
	.map_region = attr_map_region,
	.unmap_region = attr_unmap_region,
	.region_slots = native_region_slots,
	.revoke = attr_revoke,
	.unrevoke = attr_unrevoke,
	.grant = attr_grant,
	.ungrant = attr_ungrant,
	.audit = native_audit,
	.host_addr = attr_host_addr,
};

/* ---- guest_memfd in place --------------------------------------------- */

/* @r: the region of @page (a region being added is not in the array). */
static int gmem_set_attributes(struct gmem_vm *vm,
			       const struct gmem_region *r, uint64_t page,
			       uint64_t npages, bool private_attr)
{
	struct kvm_memory_attributes2 a;
	uint64_t off;
	int fd, err;

	err = gmem_fault_check(vm, GMEM_FAULT_MPROTECT);
	if (err)
		return err;
	if (!r)
		return -EINVAL;
	fd = gmem_region_fd(r, GMEM_BACKING_PRIVATE, page, &off);
	memset(&a, 0, sizeof(a));
	a.offset = off;
	a.size = npages * GMEM_PAGE_SIZE;
	a.attributes = private_attr ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
	if (ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, &a) == 0)
		return 0;
	err = -errno;
	/* A referenced page refuses: name it as a listener would. */
	if (err == -EAGAIN && a.error_offset >= off)
		gmem_report_busy((page * GMEM_PAGE_SIZE) +
				 (a.error_offset - off));
	return err;
}

/* A conversion (not a plug change) sets the file's attribute to @to. */
static int inplace_convert(struct gmem_vm *vm, uint64_t page, uint64_t npages,
			   uint8_t old, uint8_t new_value, uint8_t to)
{
	if (is_private(old) == is_private(new_value))
		return 0;
	return gmem_set_attributes(vm, gmem_region_of(vm, page), page, npages,
				   is_private(to));
}

static int inplace_revoke(struct gmem_vm *vm, uint64_t page, uint64_t npages,
			  uint8_t old, uint8_t new_value)
{
	return inplace_convert(vm, page, npages, old, new_value, new_value);
}

static int inplace_unrevoke(struct gmem_vm *vm, uint64_t page, uint64_t npages,
			    uint8_t old, uint8_t new_value)
{
	return inplace_convert(vm, page, npages, old, new_value, old);
}

static int inplace_nop(struct gmem_vm *vm, uint64_t page, uint64_t npages,
		       uint8_t old, uint8_t new_value)
{
	return 0;
}

static int inplace_map_region(struct gmem_vm *vm, struct gmem_region *r,
			      uint8_t value)
{
	int err = map_at(vm, r, r->private_fd, r->private_offset, VIEW_RW);

	if (err)
		return err;
	err = gmem_set_attributes(vm, r, r->first, r->npages,
				  value == GMEM_PRIVATE);
	if (err)
		unmap_at(vm, r);
	return err;
}

static int inplace_unmap_region(struct gmem_vm *vm, struct gmem_region *r)
{
	return unmap_at(vm, r);
}

static uint8_t *inplace_host_addr(const struct gmem_vm *vm,
				  enum gmem_state state, uint64_t page)
{
	if (state == GMEM_PRIVATE)
		return NULL;	/* the kernel refuses to fault them */
	return vm->private_view + page * GMEM_PAGE_SIZE;
}

const struct gmem_backend_ops gmem_backend_gmem_in_place = {
	.id = GMEM_BACKEND_GMEM_IN_PLACE,
	.map_region = inplace_map_region,
	.unmap_region = inplace_unmap_region,
	.region_slots = native_region_slots,
	.revoke = inplace_revoke,
	.unrevoke = inplace_unrevoke,
	.grant = inplace_nop,
	.ungrant = inplace_nop,
	.audit = native_audit,
	.host_addr = inplace_host_addr,
};
