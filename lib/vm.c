/* SPDX-License-Identifier: MIT */
/*
 * Creating and destroying a VM's memory: backings, views, memslots.
 *
 * Layout (the emulated enforcement backend):
 *  - private view: GPA [0, ram_size), slot first_slot, backed by the
 *    guest_memfd through the mapping vm->private_view;
 *  - shared view: GPA [shared_base, shared_base + ram_size), slot
 *    first_slot + 1, a plain slot over vm->shared_view, a mapping of the
 *    memfd (discard mode) or a second mapping of the guest_memfd (in-place
 *    mode, so both views show the same bytes).
 * A page is gated by the protection of the mapping KVM faults through:
 * PROT_READ|PROT_WRITE in the view of its state, PROT_NONE in the other.
 * The views are never PROT_EXEC on the host: the guest's execute
 * permission comes from its own page tables, not from the host mapping.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "kvm_compat.h"

#define VIEW_RW (PROT_READ | PROT_WRITE)

int gmem_check_range(const struct gmem_vm *vm, uint64_t offset, uint64_t len)
{
	if (len == 0 || (offset | len) & GMEM_PAGE_MASK)
		return -EINVAL;
	if (offset >= vm->ram_size || len > vm->ram_size - offset)
		return -EINVAL;
	return 0;
}

void gmem_fault_inject(struct gmem_vm *vm, enum gmem_fault_point point,
		       unsigned int nth, int err)
{
	pthread_mutex_lock(&vm->fault_lock);
	vm->fault_countdown[point] = nth;
	vm->fault_err[point] = err;
	pthread_mutex_unlock(&vm->fault_lock);
}

int gmem_fault_check(struct gmem_vm *vm, enum gmem_fault_point point)
{
	int err = 0;

	pthread_mutex_lock(&vm->fault_lock);
	if (vm->fault_countdown[point] && --vm->fault_countdown[point] == 0)
		err = -vm->fault_err[point];
	pthread_mutex_unlock(&vm->fault_lock);
	return err;
}

int gmem_view_protect(struct gmem_vm *vm, enum gmem_state state,
		      uint64_t page, uint64_t npages, int prot)
{
	int err = gmem_fault_check(vm, GMEM_FAULT_MPROTECT);

	if (err)
		return err;
	if (mprotect(gmem_view(vm, state) + page * GMEM_PAGE_SIZE,
		     npages * GMEM_PAGE_SIZE, prot) < 0)
		return -errno;
	return 0;
}

static uint64_t next_pow2(uint64_t v)
{
	uint64_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

static int validate_config(const struct gmem_config *cfg)
{
	if (cfg->vm_fd < 0 || cfg->ram_size == 0 ||
	    cfg->ram_size & GMEM_PAGE_MASK || cfg->ram_size > (1ULL << 46))
		return -EINVAL;
	if (cfg->mode != GMEM_MODE_DISCARD && cfg->mode != GMEM_MODE_IN_PLACE)
		return -EINVAL;
	if (cfg->initial_state != GMEM_PRIVATE &&
	    cfg->initial_state != GMEM_SHARED)
		return -EINVAL;
	if (cfg->layout != GMEM_LAYOUT_AUTO &&
	    cfg->layout != GMEM_LAYOUT_GMEM_SLOT &&
	    cfg->layout != GMEM_LAYOUT_PLAIN_SLOT)
		return -EINVAL;
	/* The shared view must not overlap the private one. */
	if (cfg->shared_base && (cfg->shared_base < cfg->ram_size ||
				 cfg->shared_base & GMEM_PAGE_MASK))
		return -EINVAL;
	return 0;
}

static int register_slots(struct gmem_vm *vm)
{
	uint32_t flags = vm->layout == GMEM_LAYOUT_GMEM_SLOT ?
			 KVM_MEM_GUEST_MEMFD : 0;
	int err;

	err = gmem_set_memslot(vm->vm_fd, vm->first_slot, flags, 0,
			       vm->ram_size, vm->private_view, vm->gmem_fd, 0);
	if (err)
		return err;
	err = gmem_set_memslot(vm->vm_fd, vm->first_slot + 1, 0,
			       vm->shared_base, vm->ram_size, vm->shared_view,
			       -1, 0);
	if (err) {
		gmem_set_memslot(vm->vm_fd, vm->first_slot, flags, 0, 0,
				 vm->private_view, vm->gmem_fd, 0);
		return err;
	}
	vm->slots_registered = true;
	return 0;
}

static void unregister_slots(struct gmem_vm *vm)
{
	uint32_t flags = vm->layout == GMEM_LAYOUT_GMEM_SLOT ?
			 KVM_MEM_GUEST_MEMFD : 0;

	if (!vm->slots_registered)
		return;
	gmem_set_memslot(vm->vm_fd, vm->first_slot + 1, 0, vm->shared_base,
			 0, vm->shared_view, -1, 0);
	gmem_set_memslot(vm->vm_fd, vm->first_slot, flags, 0, 0,
			 vm->private_view, vm->gmem_fd, 0);
	vm->slots_registered = false;
}

int gmem_create(const struct gmem_config *cfg, struct gmem_vm **out)
{
	struct gmem_host_caps caps;
	struct gmem_vm *vm;
	const char *why;
	int err;

	err = validate_config(cfg);
	if (err)
		return err;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->vm_fd = cfg->vm_fd;
	vm->ram_size = cfg->ram_size;
	vm->npages = cfg->ram_size / GMEM_PAGE_SIZE;
	vm->shared_base = cfg->shared_base ? cfg->shared_base :
			  next_pow2(cfg->ram_size);
	vm->mode = cfg->mode;
	vm->first_slot = cfg->first_slot;
	vm->platform = cfg->platform;
	vm->platform_data = cfg->platform_data;
	vm->gmem_fd = -1;
	vm->shared_fd = -1;
	gmem_range_lock_init(&vm->rlock);
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->fault_lock, NULL);

	err = gmem_probe_host(&caps);
	if (err)
		goto err_vm;
	err = gmem_pick_gmem_flags(&caps, &vm->gmem_flags, &why);
	if (err)
		goto err_vm;
	vm->layout = cfg->layout;
	if (vm->layout == GMEM_LAYOUT_AUTO) {
		err = gmem_probe_gating(&vm->layout);
		if (err)
			goto err_vm;
	}

	vm->map = gmem_range_map_create(vm->npages, (uint8_t)cfg->initial_state);
	if (!vm->map) {
		err = -ENOMEM;
		goto err_vm;
	}
	err = gmem_backing_create_gmem(vm->vm_fd, vm->ram_size,
				       vm->gmem_flags);
	if (err < 0)
		goto err_map;
	vm->gmem_fd = err;
	if (vm->mode == GMEM_MODE_DISCARD) {
		err = gmem_backing_create_memfd("gmem-shared", vm->ram_size);
		if (err < 0)
			goto err_gmem;
		vm->shared_fd = err;
	} else {
		vm->shared_fd = vm->gmem_fd;
	}

	/* Gate before KVM can see anything: each view starts closed. */
	vm->private_view = gmem_backing_map(vm->gmem_fd, vm->ram_size,
					    cfg->initial_state == GMEM_PRIVATE ?
					    VIEW_RW : PROT_NONE);
	if (!vm->private_view) {
		err = -errno;
		goto err_shared;
	}
	vm->shared_view = gmem_backing_map(vm->shared_fd, vm->ram_size,
					   cfg->initial_state == GMEM_SHARED ?
					   VIEW_RW : PROT_NONE);
	if (!vm->shared_view) {
		err = -errno;
		goto err_private_view;
	}

	if (cfg->initial_state == GMEM_PRIVATE && vm->platform &&
	    vm->platform->prepare) {
		err = vm->platform->prepare(vm->platform_data, 0, vm->ram_size);
		if (err)
			goto err_shared_view;
	}
	if (cfg->deferred_reclaim && vm->mode == GMEM_MODE_DISCARD) {
		err = gmem_reclaim_start(vm, cfg->reclaim_max_pending);
		if (err)
			goto err_prepared;
	}
	err = register_slots(vm);
	if (err)
		goto err_reclaim;
	*out = vm;
	return 0;

err_reclaim:
	gmem_reclaim_stop(vm);
err_prepared:
	if (cfg->initial_state == GMEM_PRIVATE && vm->platform &&
	    vm->platform->invalidate)
		vm->platform->invalidate(vm->platform_data, 0, vm->ram_size);
err_shared_view:
	munmap(vm->shared_view, vm->ram_size);
err_private_view:
	munmap(vm->private_view, vm->ram_size);
err_shared:
	if (vm->shared_fd != vm->gmem_fd)
		close(vm->shared_fd);
err_gmem:
	close(vm->gmem_fd);
err_map:
	gmem_range_map_destroy(vm->map);
err_vm:
	pthread_mutex_destroy(&vm->fault_lock);
	pthread_mutex_destroy(&vm->lock);
	gmem_range_lock_destroy(&vm->rlock);
	free(vm);
	return err;
}

static int release_run(void *arg, uint64_t start, uint64_t npages,
		       uint8_t value)
{
	struct gmem_vm *vm = arg;
	uint64_t off = start * GMEM_PAGE_SIZE, len = npages * GMEM_PAGE_SIZE;
	struct gmem_listener *l;

	if (value == GMEM_SHARED) {
		for (l = vm->listeners; l; l = l->next)
			l->ops->discard(l->data, off, len,
					GMEM_DISCARD_FORCED);
	} else if (value == GMEM_PRIVATE && vm->platform &&
		   vm->platform->invalidate) {
		/* Unplugged pages were invalidated when unplugged. */
		vm->platform->invalidate(vm->platform_data, off, len);
	}
	return 0;
}

void gmem_destroy(struct gmem_vm *vm)
{
	struct gmem_subscription *s, *snext;
	struct gmem_listener *l, *lnext;

	if (!vm)
		return;
	/* The guest can no longer reach anything once the slots are gone. */
	unregister_slots(vm);
	gmem_reclaim_stop(vm);
	gmem_range_map_for_each(vm->map, 0, vm->npages, release_run, vm);
	gmem_notify_subscribers(vm, GMEM_INVAL_RELEASE, GMEM_BACKING_GMEM, 0,
				vm->ram_size);
	if (vm->mode == GMEM_MODE_DISCARD)
		gmem_notify_subscribers(vm, GMEM_INVAL_RELEASE,
					GMEM_BACKING_SHARED, 0, vm->ram_size);
	for (l = vm->listeners; l; l = lnext) {
		lnext = l->next;
		free(l);
	}
	for (s = vm->subs; s; s = snext) {
		snext = s->next;
		free(s);
	}
	munmap(vm->shared_view, vm->ram_size);
	munmap(vm->private_view, vm->ram_size);
	if (vm->shared_fd != vm->gmem_fd)
		close(vm->shared_fd);
	close(vm->gmem_fd);
	gmem_range_map_destroy(vm->map);
	pthread_mutex_destroy(&vm->fault_lock);
	pthread_mutex_destroy(&vm->lock);
	gmem_range_lock_destroy(&vm->rlock);
	free(vm);
}

uint64_t gmem_ram_size(const struct gmem_vm *vm)
{
	return vm->ram_size;
}

uint64_t gmem_shared_base(const struct gmem_vm *vm)
{
	return vm->shared_base;
}

enum gmem_mode gmem_get_mode(const struct gmem_vm *vm)
{
	return vm->mode;
}

enum gmem_layout gmem_get_layout(const struct gmem_vm *vm)
{
	return vm->layout;
}

uint64_t gmem_gmem_flags(const struct gmem_vm *vm)
{
	return vm->gmem_flags;
}

void *gmem_private_view(const struct gmem_vm *vm)
{
	return vm->private_view;
}

void *gmem_shared_view(const struct gmem_vm *vm)
{
	return vm->shared_view;
}

int gmem_backing_fd(const struct gmem_vm *vm, enum gmem_backing_id id)
{
	switch (id) {
	case GMEM_BACKING_GMEM:
		return vm->gmem_fd;
	case GMEM_BACKING_SHARED:
		return vm->shared_fd;
	}
	return -EINVAL;
}

int64_t gmem_backing_allocated(struct gmem_vm *vm, enum gmem_backing_id id)
{
	if (id == GMEM_BACKING_GMEM)
		return gmem_resident_bytes(vm->private_view, vm->ram_size);
	if (id == GMEM_BACKING_SHARED)
		return gmem_resident_bytes(vm->shared_view, vm->ram_size);
	return -EINVAL;
}
