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
#include <stddef.h>
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
/* A page outside every region; never changes but by region add/remove. */
#define GMEM_V_HOLE		0x4u

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

/* ---- fault injection (test builds only) ---------------------------------- */

enum gmem_fault_point {
	GMEM_FAULT_MPROTECT,	/* a backend revoke/grant */
	GMEM_FAULT_FALLOCATE,	/* a punch */
	GMEM_FAULT_SLOT,	/* a memslot registration */
	GMEM_FAULT_ALLOC,	/* the DMA mapper's bookkeeping reservation */
	GMEM_FAULT_NR,
};

/* gmem_fault_inject() nth flag: fail the nth call and every later one. */
#define GMEM_FAULT_STICKY (1u << 31)

#ifdef GMEM_TESTING
/*
 * Make the @nth (1-based) call at @point from now on fail with -@err;
 * nth == 0 disarms.  Lets tests force a failure at each step of a change
 * and check that everything was rolled back.  Only in the test build of
 * the library (libgmem-test.a): production code takes no lock for it.
 */
void gmem_fault_inject(struct gmem_vm *vm, enum gmem_fault_point point,
		       unsigned int nth, int err);
/* Returns -errno if an injected fault fires for @point, else 0. */
int gmem_fault_check(struct gmem_vm *vm, enum gmem_fault_point point);
#else
static inline int gmem_fault_check(struct gmem_vm *vm,
				   enum gmem_fault_point point)
{
	(void)vm;
	(void)point;
	return 0;
}
#endif

/* ---- the VM memory object ---------------------------------------------- */

struct gmem_listener {
	const struct gmem_listener_ops *ops;
	struct gmem_listener_ops ops_copy;	/* what ops said, sized */
	void *data;
	/* Internal listeners (the DMA mapper): checked by gmem_audit(). */
	int (*validate)(void *data, char *msg, size_t msg_len);
	struct gmem_listener *next;
};

struct gmem_subscription {
	gmem_invalidate_fn fn;
	void *data;
	struct gmem_subscription *next;
};

/*
 * A RAM region.  Invariants: page aligned; regions never overlap and lie
 * in [0, max_gpa); vm->regions is sorted by gpa; the map holds
 * GMEM_V_HOLE exactly on the pages outside every region.  The array
 * changes only under the whole-space range lock and vm->lock, so a range
 * holder reads it without further locking.
 */
#define GMEM_SLOTS_PER_REGION 2

struct gmem_region {
	uint64_t gpa, len;		/* bytes */
	uint64_t first, npages;		/* pages */
	int private_fd, shared_fd;	/* owned by libgmem (dups or created);
					   in-place: shared_fd == private_fd */
	uint64_t private_offset, shared_offset;
	uint32_t slot_id[GMEM_SLOTS_PER_REGION];
	bool slot_live[GMEM_SLOTS_PER_REGION];
};

struct gmem_backend_ops;

struct gmem_vm {
	int vm_fd;			/* -1: no KVM VM */
	uint64_t max_gpa;
	uint64_t npages;		/* of [0, max_gpa) */
	uint64_t shared_base;
	enum gmem_mode mode;
	enum gmem_state initial_state;
	enum gmem_backend backend_id;
	const struct gmem_backend_ops *backend;
	enum gmem_layout layout;
	uint64_t gmem_flags;

	/* Memslots: the VMM's callback, or KVM slots slot_base + id. */
	int (*set_slot)(void *data, const struct gmem_slot *slot);
	void *slot_data;
	uint32_t slot_base;

	struct gmem_region *regions;	/* sorted by gpa, see above */
	unsigned int nr_regions;
	size_t cap_regions;

	/* Emulated backend: each view is one reservation of max_gpa bytes;
	 * a region's backing is mapped over it at its gpa. */
	uint8_t *private_view;
	uint8_t *shared_view;

	struct gmem_platform_ops platform;	/* copied in, sized */
	bool has_platform;
	void *platform_data;

	struct range_lock rlock;
	struct gmem_listener *listeners;	/* see locking above */
	struct gmem_subscription *subs;

	pthread_mutex_t lock;	/* map and counters */
	struct range_map *map;
	struct gmem_stats stats;	/* counters only; states from map */

	/* Set when a rollback could not restore what it had (the backend
	 * refused to undo): every later change fails with -EIO and the
	 * audit reports it.  Written under vm->lock. */
	bool broken;
	char broken_why[160];

	struct reclaim *reclaim;	/* deferred reclaim, or NULL */

#ifdef GMEM_TESTING
	pthread_mutex_t fault_lock;
	unsigned int fault_countdown[GMEM_FAULT_NR];
	int fault_err[GMEM_FAULT_NR];
#endif
};

/*
 * The enforcement backend: everything that makes a page reachable only as
 * its value allows.  The engine calls revoke() for each run whose view
 * closes (step 3) and grant() for each whose view opens (step 5), with the
 * run's old and new map values, and the un- variants to roll them back;
 * an un- call that fails makes the memory broken (gmem_mark_broken()).
 */
struct gmem_backend_ops {
	enum gmem_backend id;
	/* Map region @r (its backings) with every page in @value. */
	int (*map_region)(struct gmem_vm *vm, struct gmem_region *r,
			  uint8_t value);
	/* Back to unreachable (a hole). */
	int (*unmap_region)(struct gmem_vm *vm, struct gmem_region *r);
	/* The memslots of @r: fill @slots, return how many (<= 2). */
	int (*region_slots)(struct gmem_vm *vm, const struct gmem_region *r,
			    struct gmem_slot *slots);
	int (*revoke)(struct gmem_vm *vm, uint64_t page, uint64_t npages,
		      uint8_t old, uint8_t new_value);
	int (*unrevoke)(struct gmem_vm *vm, uint64_t page, uint64_t npages,
			uint8_t old, uint8_t new_value);
	int (*grant)(struct gmem_vm *vm, uint64_t page, uint64_t npages,
		     uint8_t old, uint8_t new_value);
	int (*ungrant)(struct gmem_vm *vm, uint64_t page, uint64_t npages,
		       uint8_t old, uint8_t new_value);
	/* Compare the real enforcement with the map (vm->lock held). */
	int (*audit)(struct gmem_vm *vm, char *msg, size_t msg_len);
	/* Host address of @page's content in the backing of @state, or NULL
	 * when the host cannot reach it. */
	uint8_t *(*host_addr)(const struct gmem_vm *vm, enum gmem_state state,
			      uint64_t page);
};

extern const struct gmem_backend_ops gmem_backend_emulated;
extern const struct gmem_backend_ops gmem_backend_vm_attributes;
extern const struct gmem_backend_ops gmem_backend_gmem_in_place;

int gmem_listener_register_internal(struct gmem_vm *vm,
				    const struct gmem_listener_ops *ops,
				    void *data,
				    int (*validate)(void *data, char *msg,
						    size_t msg_len),
				    struct gmem_listener **out);

/* Mark the memory broken (first reason wins); takes vm->lock. */
void gmem_mark_broken(struct gmem_vm *vm, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- regions (region.c) --------------------------------------------------- */

/* The region holding page @page, or NULL (a hole).  Range holder or
 * vm->lock. */
struct gmem_region *gmem_region_of(const struct gmem_vm *vm, uint64_t page);

/*
 * Walk the map over pages [start, start + npages) like
 * gmem_range_map_for_each(), with runs split at region boundaries and hole
 * runs skipped.  vm->lock held.
 */
int gmem_walk(struct gmem_vm *vm, uint64_t start, uint64_t npages,
	      int (*fn)(void *arg, uint64_t start, uint64_t npages,
			uint8_t value),
	      void *arg);
/* The same, but a hole run fails the walk with @hole_err (if non-zero). */
int gmem_walk_ex(struct gmem_vm *vm, uint64_t start, uint64_t npages,
		 int (*fn)(void *arg, uint64_t start, uint64_t npages,
			   uint8_t value),
		 void *arg, int hole_err);

/*
 * Snapshot the runs of pages [start, start + npages) as gmem_walk() sees
 * them (all values, or only those equal to @only), taking vm->lock for the
 * walk only: callers then call back without it.  The caller frees l->v.
 */
struct gmem_run_list {
	struct {
		uint64_t start, npages;
		uint8_t value;
		bool region_start;	/* its first page starts a region */
	} *v;
	size_t nr, cap;
	int only;			/* -1: every value */
	const struct gmem_vm *vm;	/* set by gmem_snapshot_runs() */
};
int gmem_snapshot_runs(struct gmem_vm *vm, uint64_t start, uint64_t npages,
		       struct gmem_run_list *l);

/* The fd and file offset of page @page's memory in @backing of @r. */
static inline int gmem_region_fd(const struct gmem_region *r,
				 enum gmem_backing_id backing,
				 uint64_t page, uint64_t *file_off)
{
	uint64_t rel = (page - r->first) * GMEM_PAGE_SIZE;

	if (backing == GMEM_BACKING_PRIVATE) {
		*file_off = r->private_offset + rel;
		return r->private_fd;
	}
	*file_off = r->shared_offset + rel;
	return r->shared_fd;
}

/*
 * Punch [gpa, gpa + len) out of @backing, one fallocate per region it
 * touches (holes are skipped).  Range holder of the range.
 */
int gmem_punch_range(struct gmem_vm *vm, enum gmem_backing_id backing,
		     uint64_t gpa, uint64_t len);

/* Register (or, with len 0, delete) a memslot through the VMM or KVM. */
int gmem_slot_apply(struct gmem_vm *vm, const struct gmem_slot *slot);

/*
 * Where member @m of struct @T ends: the smallest size a caller's version
 * of an extensible struct that has @m can have (gmem_copy_in()'s min_size).
 */
#define gmem_offsetofend(T, m) (offsetof(T, m) + sizeof(((T *)0)->m))

/* Copy an extensible struct in (abi.c): 0, -EINVAL (size too small) or
 * -E2BIG. */
int gmem_copy_in(void *dst, size_t dst_size, const void *src,
		 size_t min_size);
/* Copy out: min(caller's size, ours) bytes, keeping the caller's size. */
int gmem_copy_out(void *dst, const void *src, size_t src_size);

/* The emulated backend's host mapping of the view of @state. */
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
		return GMEM_BACKING_PRIVATE;
	return state == GMEM_PRIVATE ? GMEM_BACKING_PRIVATE :
				       GMEM_BACKING_SHARED;
}

/* Tell every subscriber. */
void gmem_notify_subscribers(struct gmem_vm *vm, enum gmem_inval_reason reason,
			     enum gmem_backing_id backing, uint64_t gpa,
			     uint64_t len);

/* Page aligned, non-empty, inside [0, max_gpa): 0 or -EINVAL.  Holes are
 * found by the map walk (GMEM_V_HOLE). */
int gmem_check_range(const struct gmem_vm *vm, uint64_t gpa, uint64_t len);

/* Backings (backing.c). */
int gmem_backing_create_gmem(int vm_fd, uint64_t size, uint64_t flags);
int gmem_backing_create_memfd(const char *name, uint64_t size);
/* fallocate(PUNCH_HOLE | KEEP_SIZE), with the test build's fault point. */
int gmem_punch(struct gmem_vm *vm, int fd, uint64_t offset, uint64_t len);
int64_t gmem_resident_bytes(const void *addr, uint64_t len);
int gmem_resident_pages(const void *addr, uint64_t npages, unsigned char *vec);

/* Deferred reclaim (reclaim.c); ranges are GPAs. */
struct reclaim;
int gmem_reclaim_start(struct gmem_vm *vm, uint64_t max_pending);
void gmem_reclaim_stop(struct gmem_vm *vm);
/* 0: queued; 1: the caller must punch now (back-pressure). */
int gmem_reclaim_queue(struct gmem_vm *vm, enum gmem_backing_id backing,
		       uint64_t gpa, uint64_t len, uint64_t discarded);
int gmem_reclaim_flush_range(struct gmem_vm *vm, enum gmem_backing_id backing,
			     uint64_t gpa, uint64_t len);
/* The audit: hold the queue still (see reclaim.c), and ask whether a
 * punch of [gpa, gpa+len) in @backing is queued. */
void gmem_reclaim_lock(struct gmem_vm *vm);
void gmem_reclaim_unlock(struct gmem_vm *vm);
bool gmem_reclaim_pending_locked(struct gmem_vm *vm,
				 enum gmem_backing_id backing, uint64_t gpa,
				 uint64_t len);
void gmem_reclaim_stats(struct gmem_vm *vm, struct gmem_stats *stats);

/* The layout gmem_probe_gating() found in this process, if it ran. */
bool gmem_probe_gating_cached(enum gmem_layout *layout);

/* The emulated backend's audit of both views against the map (audit.c). */
int gmem_audit_views(struct gmem_vm *vm, char *msg, size_t msg_len);

/* KVM helpers shared by region.c and probe.c. */
int gmem_set_memslot(int vm_fd, uint32_t slot, uint32_t flags, uint64_t gpa,
		     uint64_t size, void *uaddr, int gmem_fd,
		     uint64_t gmem_offset);

#endif /* GMEM_INTERNAL_H */
