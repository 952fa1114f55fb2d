/* SPDX-License-Identifier: MIT */
/*
 * libgmem internals: the VM memory object and the helpers its files share.
 *
 * Locking (outermost first):
 *  1. vm->rlock, the range lock: a conversion, an access, an audit, a
 *     listener (un)registration holds the range it works on for its whole
 *     duration, including the syscalls and callbacks.  Overlapping holders
 *     are serialised in arrival order (FIFO), disjoint ones run together.
 *     Listener and subscriber lists change only under the whole-RAM range,
 *     so a holder of any range reads them without further locking.
 *  2. vm->lock, a mutex held only for short critical sections: the page-
 *     state map and the counters.  Never held across a syscall or a
 *     callback.
 *
 * Because a range holder is the only one converting its range, the map's
 * content inside that range cannot change under it, even though other
 * threads update other parts of the map (under vm->lock) meanwhile.
 */
#ifndef GMEM_INTERNAL_H
#define GMEM_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "gmem/gmem.h"
#include "range_map.h"

#define GMEM_PAGE_MASK (GMEM_PAGE_SIZE - 1)

/*
 * A page's value in the page-state map: bit 0 its state (enum gmem_state),
 * bit 1 set while it is unplugged.  So GMEM_PRIVATE and GMEM_SHARED are
 * also the values of plugged pages.
 */
#define GMEM_V_STATE		0x1u
#define GMEM_V_UNPLUGGED	0x2u

/* ---- range lock -------------------------------------------------------- */

struct range_lock_waiter {
	uint64_t start, end;		/* pages, [start, end) */
	struct range_lock_waiter *next;
};

struct range_lock {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	/* Holders and waiters in arrival order; an entry proceeds when no
	 * earlier entry overlaps it. */
	struct range_lock_waiter *head, **tail;
};

void gmem_range_lock_init(struct range_lock *rl);
void gmem_range_lock_destroy(struct range_lock *rl);
void gmem_range_lock_acquire(struct range_lock *rl, struct range_lock_waiter *w,
			uint64_t start, uint64_t end);
void gmem_range_lock_release(struct range_lock *rl, struct range_lock_waiter *w);

/* ---- fault injection (tests only; not exported from the shared object) - */

enum gmem_fault_point {
	GMEM_FAULT_MPROTECT,
	GMEM_FAULT_FALLOCATE,
	GMEM_FAULT_NR,
};

/*
 * Make the @nth (1-based) call at @point from now on fail with -@err;
 * nth == 0 disarms.  Lets tests force a failure at each step of a
 * conversion and check that everything was rolled back.
 */
void gmem_fault_inject(struct gmem_vm *vm, enum gmem_fault_point point,
		       unsigned int nth, int err);

/* ---- the VM memory object ---------------------------------------------- */

struct gmem_listener {
	const struct gmem_listener_ops *ops;
	void *data;
	struct gmem_listener *next;
};

struct gmem_subscription {
	gmem_invalidate_fn fn;
	void *data;
	struct gmem_subscription *next;
};

struct gmem_vm {
	int vm_fd;
	uint64_t ram_size;
	uint64_t npages;
	uint64_t shared_base;
	enum gmem_mode mode;
	enum gmem_layout layout;
	uint64_t gmem_flags;
	uint32_t first_slot;
	bool slots_registered;

	int gmem_fd;		/* private backing, the guest_memfd */
	int shared_fd;		/* memfd (discard) or gmem_fd (in-place) */
	uint8_t *private_view;	/* mapping of gmem_fd KVM faults through */
	uint8_t *shared_view;	/* mapping of shared_fd */

	const struct gmem_platform_ops *platform;
	void *platform_data;

	struct range_lock rlock;
	struct gmem_listener *listeners;	/* see locking above */
	struct gmem_subscription *subs;

	pthread_mutex_t lock;	/* map and counters */
	struct range_map *map;
	struct gmem_stats stats;	/* counters only; states from map */

	struct reclaim *reclaim;	/* deferred reclaim, or NULL */

	pthread_mutex_t fault_lock;
	unsigned int fault_countdown[GMEM_FAULT_NR];
	int fault_err[GMEM_FAULT_NR];
};

/* Returns -errno if an injected fault fires for @point, else 0. */
int gmem_fault_check(struct gmem_vm *vm, enum gmem_fault_point point);

/* The host mapping of the view of @state. */
static inline uint8_t *gmem_view(const struct gmem_vm *vm,
				 enum gmem_state state)
{
	return state == GMEM_PRIVATE ? vm->private_view : vm->shared_view;
}

/* The backing that holds the content of pages in @state. */
static inline enum gmem_backing_id gmem_backing_of(const struct gmem_vm *vm,
						   enum gmem_state state)
{
	if (vm->mode == GMEM_MODE_IN_PLACE)
		return GMEM_BACKING_GMEM;
	return state == GMEM_PRIVATE ? GMEM_BACKING_GMEM : GMEM_BACKING_SHARED;
}

/* mprotect() [page, page + npages) of the view of @state. */
int gmem_view_protect(struct gmem_vm *vm, enum gmem_state state,
		      uint64_t page, uint64_t npages, int prot);

/* fallocate(PUNCH_HOLE | KEEP_SIZE) on a backing fd. */
int gmem_punch(struct gmem_vm *vm, int fd, uint64_t offset, uint64_t len);

/* Tell every subscriber. */
void gmem_notify_subscribers(struct gmem_vm *vm, enum gmem_inval_reason reason,
			     enum gmem_backing_id backing, uint64_t offset,
			     uint64_t len);

/* Validate a byte range against RAM: 0 or -EINVAL. */
int gmem_check_range(const struct gmem_vm *vm, uint64_t offset, uint64_t len);

/* Backings (backing.c). */
int gmem_backing_create_gmem(int vm_fd, uint64_t size, uint64_t flags);
int gmem_backing_create_memfd(const char *name, uint64_t size);
void *gmem_backing_map(int fd, uint64_t size, int prot);
int64_t gmem_resident_bytes(const void *addr, uint64_t len);
int gmem_resident_pages(const void *addr, uint64_t npages, unsigned char *vec);

/* Deferred reclaim (reclaim.c). */
struct reclaim;
int gmem_reclaim_start(struct gmem_vm *vm, uint64_t max_pending);
void gmem_reclaim_stop(struct gmem_vm *vm);
/* 0: queued; 1: the caller must punch now (back-pressure). */
int gmem_reclaim_queue(struct gmem_vm *vm, enum gmem_backing_id backing,
		       uint64_t offset, uint64_t len, uint64_t discarded);
int gmem_reclaim_flush_range(struct gmem_vm *vm, enum gmem_backing_id backing,
			     uint64_t offset, uint64_t len);
void gmem_reclaim_stats(struct gmem_vm *vm, struct gmem_stats *stats);

/* KVM helpers shared by vm.c and probe.c. */
int gmem_set_memslot(int vm_fd, uint32_t slot, uint32_t flags, uint64_t gpa,
		     uint64_t size, void *uaddr, int gmem_fd,
		     uint64_t gmem_offset);

#endif /* GMEM_INTERNAL_H */
