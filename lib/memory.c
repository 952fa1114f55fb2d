/* SPDX-License-Identifier: MIT */
/*
 * A VM's guest memory (struct gmem_vm, see gmem.h for why it bears that
 * name): creating and destroying it, and what it says about itself (its
 * configuration getters, gmem_ram_size(), gmem_backing_resident()); the
 * test build's fault injection and gmem_mark_broken() too.
 *
 * gmem_create() checks the config, picks the backend (from the VM's own
 * capabilities, never a throwaway VM), reserves the emulated backend's two
 * views over [0, max_gpa), creates the page-state map with every page a
 * hole, and adds the initial regions one by one (region.c), so that a
 * created VM and a VM whose regions were hot-plugged are the same thing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "kvm_compat.h"

int gmem_region_add_locked(struct gmem_vm *vm,
			   const struct gmem_region_config *rc_in);
void gmem_region_release_locked(struct gmem_vm *vm, unsigned int idx,
				bool set_hole);

#ifdef GMEM_TESTING
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
	unsigned int c, n;
	int err = 0;

	pthread_mutex_lock(&vm->fault_lock);
	c = vm->fault_countdown[point];
	n = c & ~GMEM_FAULT_STICKY;
	if (n == 1) {
		err = -vm->fault_err[point];
		/* Sticky: stays at "the next call fails". */
		vm->fault_countdown[point] = c & GMEM_FAULT_STICKY ? c : 0;
	} else if (n) {
		vm->fault_countdown[point] = c - 1;
	}
	pthread_mutex_unlock(&vm->fault_lock);
	return err;
}
#endif

void gmem_mark_broken(struct gmem_vm *vm, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&vm->lock);
	if (!vm->broken) {
		vm->broken = true;
		va_start(ap, fmt);
		vsnprintf(vm->broken_why, sizeof(vm->broken_why), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&vm->lock);
}

static uint64_t next_pow2(uint64_t v)
{
	uint64_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

#define GMEM_MAX_GPA (1ULL << 46)	/* 64 TiB: two views fit in 47 bits */

static uint64_t regions_end(const struct gmem_config *cfg)
{
	uint64_t end = 0;
	uint32_t i;

	for (i = 0; i < cfg->nr_regions; i++) {
		const struct gmem_region_config *rc = &cfg->regions[i];

		/* Each entry's own size decides its layout; gpa and len sit
		 * at the same place in every version. */
		if (rc->size >= gmem_offsetofend(struct gmem_region_config,
						len) &&
		    rc->gpa + rc->len > end && rc->gpa + rc->len >= rc->gpa)
			end = rc->gpa + rc->len;
	}
	return end;
}

static int check_config(const struct gmem_config *cfg)
{
	if (cfg->flags & ~GMEM_CONFIG_DEFERRED_RECLAIM)
		return -EINVAL;
	if (cfg->mode != GMEM_MODE_DISCARD && cfg->mode != GMEM_MODE_IN_PLACE)
		return -EINVAL;
	if (cfg->initial_state != GMEM_PRIVATE &&
	    cfg->initial_state != GMEM_SHARED)
		return -EINVAL;
	if (cfg->backend > GMEM_BACKEND_GMEM_IN_PLACE ||
	    cfg->layout > GMEM_LAYOUT_PLAIN_SLOT)
		return -EINVAL;
	if (cfg->nr_regions && !cfg->regions)
		return -EINVAL;
	if (cfg->max_gpa & GMEM_PAGE_MASK || cfg->max_gpa > GMEM_MAX_GPA)
		return -EINVAL;
	/* Without a VM nobody else could register the slots, and nothing
	 * could create a guest_memfd. */
	if (cfg->vm_fd < 0 && !cfg->set_slot)
		return -EINVAL;
	if (cfg->vm_fd < 0 && cfg->backend != GMEM_BACKEND_AUTO &&
	    cfg->backend != GMEM_BACKEND_EMULATED)
		return -EINVAL;
	return 0;
}

/* Backend and layout, from the VM's own capabilities. */
static int pick_backend(struct gmem_vm *vm, const struct gmem_config *cfg)
{
	struct gmem_vm_caps caps = { .size = sizeof(caps) };
	const char *why;
	int err;

	vm->backend_id = cfg->backend;
	vm->layout = cfg->layout;
	vm->gmem_flags = cfg->guest_memfd_flags;
	if (cfg->vm_fd < 0) {
		/* No KVM: only the two views, as plain mappings. */
		if (vm->layout == GMEM_LAYOUT_GMEM_SLOT)
			return -EINVAL;
		vm->backend_id = GMEM_BACKEND_EMULATED;
		vm->layout = GMEM_LAYOUT_PLAIN_SLOT;
		vm->backend = &gmem_backend_emulated;
		return 0;
	}
	err = gmem_probe_vm(cfg->vm_fd, &caps);
	if (err)
		return err;
	if (vm->backend_id == GMEM_BACKEND_AUTO) {
		err = gmem_pick_backend(&caps, vm->mode, &vm->backend_id, &why);
		if (err)
			return err;
	}
	switch (vm->backend_id) {
	case GMEM_BACKEND_EMULATED:
		vm->backend = &gmem_backend_emulated;
		break;
	case GMEM_BACKEND_VM_ATTRIBUTES:
		/* Discard mode only: shared pages come from their own
		 * backing, which in-place mode does not have. */
		if (!(caps.memory_attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE) ||
		    vm->mode != GMEM_MODE_DISCARD)
			return -EOPNOTSUPP;
		vm->backend = &gmem_backend_vm_attributes;
		break;
	case GMEM_BACKEND_GMEM_IN_PLACE:
		if (!caps.gmem_conversion || vm->mode != GMEM_MODE_IN_PLACE)
			return -EOPNOTSUPP;
		vm->backend = &gmem_backend_gmem_in_place;
		break;
	default:
		return -EINVAL;
	}
	if (!vm->gmem_flags) {
		err = gmem_pick_guest_memfd_flags(&caps, vm->backend_id,
						  &vm->gmem_flags, &why);
		if (err)
			return err;
	}
	/* The layout is the emulated backend's business only. */
	if (vm->backend_id != GMEM_BACKEND_EMULATED)
		vm->layout = GMEM_LAYOUT_AUTO;
	if (vm->backend_id == GMEM_BACKEND_EMULATED &&
	    vm->layout == GMEM_LAYOUT_AUTO) {
		/* The probe result cached in this process, if it ran;
		 * creating memory never runs it. */
		if (!gmem_probe_gating_cached(&vm->layout))
			return -EINVAL;
	}
	return 0;
}

static uint8_t *reserve_view(uint64_t size)
{
	void *p = mmap(NULL, size, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int gmem_create(const struct gmem_config *cfg_in, struct gmem_vm **out)
{
	struct gmem_config cfg;
	struct gmem_vm *vm;
	uint32_t i;
	int err;

	if (!out)
		return -EINVAL;
	/* The fields up to the regions are what every version has. */
	err = gmem_copy_in(&cfg, sizeof(cfg), cfg_in,
			   gmem_offsetofend(struct gmem_config, nr_regions));
	if (err)
		return err;
	err = check_config(&cfg);
	if (err)
		return err;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->vm_fd = cfg.vm_fd;
	vm->mode = cfg.mode;
	vm->initial_state = cfg.initial_state;
	vm->max_gpa = cfg.max_gpa ? cfg.max_gpa : regions_end(&cfg);
	vm->set_slot = cfg.set_slot;
	vm->slot_data = cfg.slot_data;
	vm->slot_base = cfg.slot_base;
	if (cfg.platform) {
		err = gmem_copy_in(&vm->platform, sizeof(vm->platform),
				   cfg.platform, sizeof(uint32_t));
		if (err)
			goto err_free;
		vm->has_platform = true;
	}
	vm->platform_data = cfg.platform_data;
	gmem_range_lock_init(&vm->rlock);
	pthread_mutex_init(&vm->lock, NULL);
#ifdef GMEM_TESTING
	pthread_mutex_init(&vm->fault_lock, NULL);
#endif

	err = -EINVAL;
	if (!vm->max_gpa || vm->max_gpa & GMEM_PAGE_MASK ||
	    vm->max_gpa > GMEM_MAX_GPA)
		goto err_locks;
	vm->npages = vm->max_gpa / GMEM_PAGE_SIZE;
	err = pick_backend(vm, &cfg);
	if (err)
		goto err_locks;
	if (vm->backend_id == GMEM_BACKEND_EMULATED) {
		vm->shared_base = cfg.shared_base ? cfg.shared_base :
				  next_pow2(vm->max_gpa);
		err = -EINVAL;
		if (vm->shared_base < vm->max_gpa ||
		    vm->shared_base & GMEM_PAGE_MASK ||
		    vm->shared_base > (1ULL << 52) - vm->max_gpa)
			goto err_locks;
	}

	err = -ENOMEM;
	vm->map = gmem_range_map_create(vm->npages, GMEM_V_HOLE);
	if (!vm->map)
		goto err_locks;
	vm->private_view = reserve_view(vm->max_gpa);
	if (!vm->private_view)
		goto err_map;
	vm->shared_view = reserve_view(vm->max_gpa);
	if (!vm->shared_view)
		goto err_private_view;

	for (i = 0; i < cfg.nr_regions; i++) {
		err = gmem_region_add_locked(vm, &cfg.regions[i]);
		if (err)
			goto err_regions;
	}
	if (cfg.flags & GMEM_CONFIG_DEFERRED_RECLAIM &&
	    vm->mode == GMEM_MODE_DISCARD) {
		err = gmem_reclaim_start(vm, cfg.reclaim_max_pending);
		if (err)
			goto err_regions;
	}
	*out = vm;
	return 0;

err_regions:
	while (vm->nr_regions)
		gmem_region_release_locked(vm, vm->nr_regions - 1, false);
	free(vm->regions);
	munmap(vm->shared_view, vm->max_gpa);
err_private_view:
	munmap(vm->private_view, vm->max_gpa);
err_map:
	gmem_range_map_destroy(vm->map);
err_locks:
#ifdef GMEM_TESTING
	pthread_mutex_destroy(&vm->fault_lock);
#endif
	pthread_mutex_destroy(&vm->lock);
	gmem_range_lock_destroy(&vm->rlock);
err_free:
	free(vm);
	return err;
}

void gmem_destroy(struct gmem_vm *vm)
{
	struct gmem_subscription *s, *snext;
	struct gmem_listener *l, *lnext;

	if (!vm)
		return;
	gmem_reclaim_stop(vm);
	while (vm->nr_regions)
		gmem_region_release_locked(vm, vm->nr_regions - 1, false);
	for (l = vm->listeners; l; l = lnext) {
		lnext = l->next;
		free(l);
	}
	for (s = vm->subs; s; s = snext) {
		snext = s->next;
		free(s);
	}
	free(vm->regions);
	munmap(vm->shared_view, vm->max_gpa);
	munmap(vm->private_view, vm->max_gpa);
	gmem_range_map_destroy(vm->map);
#ifdef GMEM_TESTING
	pthread_mutex_destroy(&vm->fault_lock);
#endif
	pthread_mutex_destroy(&vm->lock);
	gmem_range_lock_destroy(&vm->rlock);
	free(vm);
}

uint64_t gmem_max_gpa(const struct gmem_vm *vm)
{
	return vm->max_gpa;
}

uint64_t gmem_ram_size(struct gmem_vm *vm)
{
	uint64_t total = 0;
	unsigned int i;

	pthread_mutex_lock(&vm->lock);
	for (i = 0; i < vm->nr_regions; i++)
		total += vm->regions[i].len;
	pthread_mutex_unlock(&vm->lock);
	return total;
}

uint64_t gmem_shared_base(const struct gmem_vm *vm)
{
	return vm->shared_base;
}

enum gmem_mode gmem_get_mode(const struct gmem_vm *vm)
{
	return vm->mode;
}

enum gmem_backend gmem_get_backend(const struct gmem_vm *vm)
{
	return vm->backend_id;
}

enum gmem_layout gmem_get_layout(const struct gmem_vm *vm)
{
	return vm->layout;
}

uint64_t gmem_guest_memfd_flags(const struct gmem_vm *vm)
{
	return vm->gmem_flags;
}

void *gmem_private_view(const struct gmem_vm *vm)
{
	return vm->private_view;
}

void *gmem_shared_view(const struct gmem_vm *vm)
{
	return vm->backend_id == GMEM_BACKEND_EMULATED ? vm->shared_view :
							 vm->private_view;
}

int64_t gmem_backing_resident(struct gmem_vm *vm, enum gmem_backing_id id)
{
	enum gmem_state view;
	int64_t total = 0, n;
	unsigned int i;

	if (id != GMEM_BACKING_PRIVATE && id != GMEM_BACKING_SHARED)
		return -EINVAL;
	view = id == GMEM_BACKING_PRIVATE ? GMEM_PRIVATE : GMEM_SHARED;
	if (vm->mode == GMEM_MODE_IN_PLACE && id == GMEM_BACKING_SHARED)
		view = GMEM_PRIVATE;	/* one backing serves both views */
	pthread_mutex_lock(&vm->lock);
	for (i = 0; i < vm->nr_regions; i++) {
		uint8_t *p = vm->backend->host_addr(vm, view,
						    vm->regions[i].first);

		n = p ? gmem_resident_bytes(p, vm->regions[i].len) : 0;
		if (n < 0) {
			total = n;
			break;
		}
		total += n;
	}
	pthread_mutex_unlock(&vm->lock);
	return total;
}
