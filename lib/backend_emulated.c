/* SPDX-License-Identifier: MIT */
/*
 * The emulated enforcement backend: two gated views of guest memory.
 *
 * Each view is one reservation of max_gpa bytes of host address space
 * (anonymous, PROT_NONE, never backed); a region's backing is mapped over
 * it at the region's GPA, so the host address of GPA g in a view is
 * view + g for every region, and holes stay unreachable.
 *  - private view: GPA [gpa, gpa + len) of each region, a memslot over the
 *    private mapping of the region (a KVM_MEM_GUEST_MEMFD slot in the
 *    GMEM_SLOT layout, a plain one in the PLAIN_SLOT layout);
 *  - shared view: GPA shared_base + g, a plain memslot over the mapping of
 *    the region's shared backing (discard mode) or a second mapping of its
 *    guest_memfd (in-place mode, so both views show the same bytes).
 * A page is gated by the protection of the mapping KVM faults through:
 * PROT_READ|PROT_WRITE in the view of its state while plugged, PROT_NONE
 * everywhere else.  The views are never PROT_EXEC on the host: the guest's
 * execute permission comes from its own page tables.
 */
#include <sys/mman.h>

#include "internal.h"
#include "kvm_compat.h"

#define VIEW_RW (PROT_READ | PROT_WRITE)
#define VIEW_NONE (-1)		/* an unplugged page's (or a hole's) view */

static int value_view(uint8_t v)
{
	return (v & (GMEM_V_UNPLUGGED | GMEM_V_HOLE)) ? VIEW_NONE :
						       (int)(v & GMEM_V_STATE);
}

static int protect(struct gmem_vm *vm, int view, uint64_t page,
		   uint64_t npages, int prot)
{
	int err;

	if (view == VIEW_NONE)
		return 0;
	err = gmem_fault_check(vm, GMEM_FAULT_MPROTECT);
	if (err)
		return err;
	if (mprotect(gmem_view(vm, (enum gmem_state)view) +
		     page * GMEM_PAGE_SIZE, npages * GMEM_PAGE_SIZE, prot) < 0)
		return -errno;
	return 0;
}

static int emu_revoke(struct gmem_vm *vm, uint64_t page, uint64_t npages,
		      uint8_t old, uint8_t new_value)
{
	return protect(vm, value_view(old), page, npages, PROT_NONE);
}

static int emu_unrevoke(struct gmem_vm *vm, uint64_t page, uint64_t npages,
			uint8_t old, uint8_t new_value)
{
	return protect(vm, value_view(old), page, npages, VIEW_RW);
}

static int emu_grant(struct gmem_vm *vm, uint64_t page, uint64_t npages,
		     uint8_t old, uint8_t new_value)
{
	return protect(vm, value_view(new_value), page, npages, VIEW_RW);
}

static int emu_ungrant(struct gmem_vm *vm, uint64_t page, uint64_t npages,
		       uint8_t old, uint8_t new_value)
{
	return protect(vm, value_view(new_value), page, npages, PROT_NONE);
}

/* Map @fd over [view + gpa, +len) with @prot, replacing the reservation. */
static int map_fixed(uint8_t *view, const struct gmem_region *r, int fd,
		     uint64_t offset, int prot)
{
	void *p = mmap(view + r->gpa, r->len, prot, MAP_SHARED | MAP_FIXED, fd,
		       (off_t)offset);

	return p == MAP_FAILED ? -errno : 0;
}

/* Put the reservation back over [view + gpa, +len). */
static int reserve_fixed(uint8_t *view, const struct gmem_region *r)
{
	void *p = mmap(view + r->gpa, r->len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
		       -1, 0);

	return p == MAP_FAILED ? -errno : 0;
}

static int emu_map_region(struct gmem_vm *vm, struct gmem_region *r,
			  uint8_t value)
{
	int view = value_view(value);
	int err;

	/* Gate before KVM can see anything: each view opens only as the
	 * initial value says. */
	err = map_fixed(vm->private_view, r, r->private_fd, r->private_offset,
			view == GMEM_PRIVATE ? VIEW_RW : PROT_NONE);
	if (err)
		return err;
	err = map_fixed(vm->shared_view, r, r->shared_fd, r->shared_offset,
			view == GMEM_SHARED ? VIEW_RW : PROT_NONE);
	if (err)
		reserve_fixed(vm->private_view, r);
	return err;
}

static int emu_unmap_region(struct gmem_vm *vm, struct gmem_region *r)
{
	int err = reserve_fixed(vm->shared_view, r);
	int err2 = reserve_fixed(vm->private_view, r);

	return err ? err : err2;
}

static int emu_region_slots(struct gmem_vm *vm, const struct gmem_region *r,
			    struct gmem_slot *slots)
{
	bool gmem_slot = vm->layout == GMEM_LAYOUT_GMEM_SLOT;

	slots[0] = (struct gmem_slot){
		.size = sizeof(struct gmem_slot),
		.gpa = r->gpa,
		.len = r->len,
		.userspace_addr = vm->private_view + r->gpa,
		.guest_memfd = gmem_slot ? r->private_fd : -1,
		.guest_memfd_offset = gmem_slot ? r->private_offset : 0,
		.kvm_flags = gmem_slot ? KVM_MEM_GUEST_MEMFD : 0,
	};
	slots[1] = (struct gmem_slot){
		.size = sizeof(struct gmem_slot),
		.gpa = vm->shared_base + r->gpa,
		.len = r->len,
		.userspace_addr = vm->shared_view + r->gpa,
		.guest_memfd = -1,
	};
	return 2;
}

static uint8_t *emu_host_addr(const struct gmem_vm *vm, enum gmem_state state,
			      uint64_t page)
{
	return gmem_view(vm, state) + page * GMEM_PAGE_SIZE;
}

int gmem_audit_views(struct gmem_vm *vm, char *msg, size_t msg_len);

const struct gmem_backend_ops gmem_backend_emulated = {
	.id = GMEM_BACKEND_EMULATED,
	.map_region = emu_map_region,
	.unmap_region = emu_unmap_region,
	.region_slots = emu_region_slots,
	.revoke = emu_revoke,
	.unrevoke = emu_unrevoke,
	.grant = emu_grant,
	.ungrant = emu_ungrant,
	.audit = gmem_audit_views,
	.host_addr = emu_host_addr,
};
