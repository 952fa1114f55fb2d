/* SPDX-License-Identifier: MIT */
/*
 * libgmem: fd-based private guest memory for KVM virtual machines.
 *
 * One object, struct gmem_vm, owns the RAM of one VM: a guest_memfd that
 * backs the private view, a memfd (discard mode) or the same guest_memfd
 * (in-place mode) that backs the shared view, the page-state map that says
 * which 4 KiB page is private and which is shared, the enforcement backend
 * that makes each page reachable only through the view of its state, and
 * the listeners that must see exactly the shared pages.
 *
 * The one verb that changes anything is gmem_convert().
 *
 * Conventions (as in liburing): every function returns 0 or a non-negative
 * count on success and -errno on failure; nothing prints or exits.  Offsets
 * and lengths are bytes; "offset" is a byte offset into the RAM region,
 * which is also the guest-physical address in the private view.
 *
 * Thread safety: every function taking a struct gmem_vm may be called from
 * any thread, except gmem_destroy(), which must be the last call.
 * Callbacks (listeners, subscribers, platform hooks) may be called from any
 * thread that converts, concurrently for disjoint ranges; they must not
 * call back into libgmem for the same VM.
 */
#ifndef GMEM_GMEM_H
#define GMEM_GMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GMEM_PAGE_SHIFT 12
#define GMEM_PAGE_SIZE (1ULL << GMEM_PAGE_SHIFT)

/* The state of a page.  Values are stable: they are stored in the map. */
enum gmem_state {
	GMEM_PRIVATE = 0,
	GMEM_SHARED = 1,
};

/* What happens to content on conversion. */
enum gmem_mode {
	/* Old content is discarded (punched); a converted page reads zeros. */
	GMEM_MODE_DISCARD = 0,
	/* One backing for both views; content is kept. */
	GMEM_MODE_IN_PLACE = 1,
};

/*
 * How the views are registered with KVM.  Chosen by a probe that checks
 * that gating really stops a vCPU (gmem_probe_gating()).
 */
enum gmem_layout {
	GMEM_LAYOUT_AUTO = 0,
	/*
	 * The private view is a KVM_MEM_GUEST_MEMFD memslot whose
	 * userspace_addr is an mmap of the same guest_memfd; KVM faults it
	 * through userspace_addr, so mprotect of that mapping gates it.
	 */
	GMEM_LAYOUT_GMEM_SLOT = 1,
	/*
	 * Both views are plain memslots over mmaps of their backings (for
	 * kernels that serve a guest_memfd slot straight from the file and
	 * ignore userspace_addr).
	 */
	GMEM_LAYOUT_PLAIN_SLOT = 2,
};

/* Which backing a range of offsets belongs to. */
enum gmem_backing_id {
	GMEM_BACKING_GMEM = 0,	/* the guest_memfd (private view) */
	GMEM_BACKING_SHARED = 1,	/* the memfd (shared view, discard mode) */
};

/* Why mappings of a range are being torn down. */
enum gmem_inval_reason {
	GMEM_INVAL_CONVERT = 0,	/* the range's state (attribute) changed */
	GMEM_INVAL_PUNCH = 1,	/* the range's backing was punched out */
	GMEM_INVAL_RELEASE = 2,	/* the backing is being released */
};

/* ---------------------------------------------------------------------- */
/* Host capabilities                                                      */

struct gmem_host_caps {
	int api_version;		/* KVM_GET_API_VERSION */
	uint64_t vm_types;		/* KVM_CAP_VM_TYPES bitmap, 0 if absent */
	bool guest_memfd;		/* KVM_CAP_GUEST_MEMFD */
	uint64_t guest_memfd_flags;	/* KVM_CAP_GUEST_MEMFD_FLAGS */
	uint64_t memory_attributes;	/* KVM_CAP_MEMORY_ATTRIBUTES */
	bool user_memory2;		/* KVM_CAP_USER_MEMORY2 */
	bool memory_fault_info;		/* KVM_CAP_MEMORY_FAULT_INFO */
	uint64_t exit_hypercall;	/* KVM_CAP_EXIT_HYPERCALL bitmap */
	uint32_t nr_memslots;		/* KVM_CAP_NR_MEMSLOTS */
	uint32_t sync_regs;		/* KVM_CAP_SYNC_REGS bitmap */
};

/*
 * Read the host's capabilities from /dev/kvm (a throwaway VM answers the
 * VM-scoped ones).  -ENOENT/-EACCES: no usable /dev/kvm.
 */
int gmem_probe_host(struct gmem_host_caps *caps);

/*
 * The guest_memfd flags libgmem uses on this host (MMAP, and INIT_SHARED
 * where offered), or -EOPNOTSUPP with *why naming the missing feature.
 */
int gmem_pick_gmem_flags(const struct gmem_host_caps *caps, uint64_t *flags,
			 const char **why);

/*
 * Find a layout under which mprotect() of a view really stops a vCPU: a
 * throwaway VM runs a vCPU that loads from a gated page and must exit.
 * The result is cached for the process.  Returns 0 and the layout, or
 * -EOPNOTSUPP when no layout gates.
 */
int gmem_probe_gating(enum gmem_layout *layout);

const char *gmem_layout_name(enum gmem_layout layout);
const char *gmem_state_name(enum gmem_state state);
const char *gmem_mode_name(enum gmem_mode mode);
const char *gmem_inval_reason_name(enum gmem_inval_reason reason);

/* ---------------------------------------------------------------------- */
/* Creating a VM's memory                                                 */

/*
 * Platform hooks, called with guest_memfd offsets (never memslots), exactly
 * once per page transition; a conversion that is rolled back calls the
 * opposite hook for what it had already called.
 */
struct gmem_platform_ops {
	/* [offset, offset+len) is about to be handed to the guest as private.
	 * Failure (-errno) fails the conversion, which is rolled back. */
	int (*prepare)(void *data, uint64_t offset, uint64_t len);
	/* [offset, offset+len) stops being private, before its memory is
	 * freed or handed out shared. */
	void (*invalidate)(void *data, uint64_t offset, uint64_t len);
};

struct gmem_config {
	int vm_fd;		/* KVM VM fd; libgmem registers two memslots */
	uint64_t ram_size;	/* bytes, a non-zero multiple of 4 KiB */
	uint64_t shared_base;	/* GPA of the shared view; 0: the smallest
				   power of two >= ram_size */
	enum gmem_mode mode;
	enum gmem_state initial_state;
	uint32_t first_slot;	/* memslots first_slot and first_slot + 1 */
	enum gmem_layout layout;	/* GMEM_LAYOUT_AUTO: probe */
	const struct gmem_platform_ops *platform;	/* may be NULL */
	void *platform_data;
	/*
	 * Discard mode: punch old backings from a reclaim thread instead of
	 * inside gmem_convert().  A page is still never handed out again in
	 * a view before its old memory there is punched (the conversion that
	 * would hand it out punches first).  reclaim_max_pending bounds the
	 * bytes waiting (0: 1 GiB); past it a conversion punches its own
	 * range synchronously (back-pressure).
	 */
	bool deferred_reclaim;
	uint64_t reclaim_max_pending;
};

struct gmem_vm;

/*
 * Create the backings, map both views, register them with KVM, gate every
 * page to its initial state and call prepare for the initial private pages.
 */
int gmem_create(const struct gmem_config *cfg, struct gmem_vm **out);

/* Unregister memslots, tell subscribers RELEASE, unmap, close. */
void gmem_destroy(struct gmem_vm *vm);

uint64_t gmem_ram_size(const struct gmem_vm *vm);
uint64_t gmem_shared_base(const struct gmem_vm *vm);
enum gmem_mode gmem_get_mode(const struct gmem_vm *vm);
enum gmem_layout gmem_get_layout(const struct gmem_vm *vm);
uint64_t gmem_gmem_flags(const struct gmem_vm *vm);

/*
 * Host addresses of the two views (the mappings KVM faults through).  A
 * page is accessible at most in the view of its state; touching it in the
 * other view raises SIGSEGV.  Prefer gmem_access(), which cannot race with
 * a conversion.
 */
void *gmem_private_view(const struct gmem_vm *vm);
void *gmem_shared_view(const struct gmem_vm *vm);

/* The fds of the backings (the shared one is the guest_memfd in in-place
 * mode).  Owned by libgmem. */
int gmem_backing_fd(const struct gmem_vm *vm, enum gmem_backing_id id);

/* ---------------------------------------------------------------------- */
/* Page state and conversion                                              */

/*
 * The state of the page at @offset, and (optional) the run around it.
 * Returns the state (>= 0) or -EINVAL.
 */
int gmem_state_at(struct gmem_vm *vm, uint64_t offset, uint64_t *run_start,
		  uint64_t *run_len);

/*
 * Call @fn for each run of equal state intersecting [offset, offset+len),
 * clipped to it, in order.  A non-zero return from @fn stops the walk and
 * is returned.  The walk sees a consistent snapshot.
 */
int gmem_for_each_run(struct gmem_vm *vm, uint64_t offset, uint64_t len,
		      int (*fn)(void *arg, uint64_t offset, uint64_t len,
				enum gmem_state state),
		      void *arg);

/*
 * Make every page of [offset, offset+len) @to.  All or nothing: on failure
 * nothing changed (page states, view protections, listeners' mappings,
 * backings).  Pages already in state @to are not touched.  Returns the
 * number of pages whose state changed, or
 *   -EINVAL  offset/len not page aligned, len 0, or outside RAM;
 *   -EAGAIN  a listener refused to let go of a page (in use);
 *   -ENOMEM, or the -errno of a failed mprotect/fallocate/hook.
 * Overlapping calls are serialised; disjoint ones run concurrently.
 */
int64_t gmem_convert(struct gmem_vm *vm, uint64_t offset, uint64_t len,
		     enum gmem_state to);

/*
 * Copy between @buf and guest memory [offset, offset+len) through the view
 * of state @view, holding off conversions of the range meanwhile.
 * -EACCES if any page of the range is not in state @view (nothing copied);
 * -EINVAL for a range outside RAM.
 */
int gmem_access(struct gmem_vm *vm, uint64_t offset, void *buf, uint64_t len,
		bool write, enum gmem_state view);

/* ---------------------------------------------------------------------- */
/* Plugging: a second, independent source of "not populated"             */

/*
 * A page is plugged (every page starts plugged) or unplugged: given back
 * by the guest, as virtio-mem or a balloon would.  An unplugged page is
 * reachable in no view, its memory is punched out of every backing, no
 * listener maps it, and platform hooks treat it as not private (invalidate
 * when a private page is unplugged, prepare when it is plugged back).  Its
 * state is kept and may still be converted; it takes effect again when the
 * page is plugged back, zero-filled (in both modes).
 *
 * Returns the number of pages whose plug state changed, or -EINVAL, -EAGAIN
 * (a listener refused to let go), -ENOMEM or another -errno; all or nothing,
 * like gmem_convert(), with one exception: in discard mode, an unplug of a
 * range holding both shared and private pages punches the shared backing,
 * then the private one, and if that second punch fails the shared pages
 * (which were being given up) read zeros afterwards.
 */
int64_t gmem_set_plugged(struct gmem_vm *vm, uint64_t offset, uint64_t len,
			 bool plugged);

/* 1 plugged, 0 unplugged, or -EINVAL; run as in gmem_state_at(). */
int gmem_plugged_at(struct gmem_vm *vm, uint64_t offset, uint64_t *run_start,
		    uint64_t *run_len);

struct gmem_extent {
	uint64_t offset;
	uint64_t len;
	enum gmem_state state;
	bool plugged;
};

/*
 * Like gmem_for_each_run(), with the plug state: maximal runs of equal
 * state and plug state, clipped to [offset, offset+len).
 */
int gmem_for_each_extent(struct gmem_vm *vm, uint64_t offset, uint64_t len,
			 int (*fn)(void *arg, const struct gmem_extent *e),
			 void *arg);

/* ---------------------------------------------------------------------- */
/* Listeners: users of shared memory (DMA mappers, devices)                */

/*
 * A listener sees the pages a device may reach: those that are shared AND
 * plugged.  Whichever source changes (a conversion, an unplug, a plug), it
 * gets one stream of populate/discard calls, one per run, never per page.
 */

/* gmem_listener_ops.discard flags */
#define GMEM_DISCARD_FORCED (1u << 0)	/* cannot be refused: the undo of a
					   failed populate, unregister,
					   destroy; the return is ignored */

struct gmem_listener_ops {
	/* [offset, offset+len) became reachable: map it.  -errno fails the
	 * conversion (or plug), which is rolled back. */
	int (*populate)(void *data, uint64_t offset, uint64_t len);
	/*
	 * [offset, offset+len) stops being reachable: unmap it.  Without
	 * GMEM_DISCARD_FORCED it may refuse with -EAGAIN while the range is
	 * in use (the conversion then fails with -EAGAIN and nothing
	 * changes); a refusal must leave the listener's mappings as they
	 * were.
	 */
	int (*discard)(void *data, uint64_t offset, uint64_t len,
		       unsigned int flags);
	/*
	 * Optional, for gmem_audit(): call @fn for each range the listener
	 * has mapped, in any order.
	 */
	int (*report)(void *data,
		      int (*fn)(void *arg, uint64_t offset, uint64_t len),
		      void *arg);
};

struct gmem_listener;

/*
 * Register a listener and replay the current shared runs to it (one
 * populate per run).  If a populate fails, what was replayed is discarded
 * and the error returned.
 */
int gmem_listener_register(struct gmem_vm *vm,
			   const struct gmem_listener_ops *ops, void *data,
			   struct gmem_listener **out);

/* Replay the removal of every shared run (one discard per run), then
 * forget the listener. */
void gmem_listener_unregister(struct gmem_vm *vm, struct gmem_listener *l);

/* ---------------------------------------------------------------------- */
/* DMA mapper: the fewest DMA mappings that cover exactly the reachable    */
/* (shared and plugged) pages                                             */

/*
 * What a DMA backend (an IOMMU driver, a device process) must do.  An IOVA
 * is the guest offset (the private-view GPA the guest programs into its
 * devices).  The mapper never asks for an overlapping map, and only ever
 * names mappings it created (or their pieces).
 */
struct gmem_dma_ops {
	/* Create the mapping [iova, iova+len); it overlaps no live one. */
	int (*map)(void *data, uint64_t iova, uint64_t len);
	/* Remove the live mapping [iova, iova+len), whole.  @flags:
	 * GMEM_DISCARD_FORCED or 0 (then -EAGAIN may refuse: in use). */
	int (*unmap)(void *data, uint64_t iova, uint64_t len,
		     unsigned int flags);
	/*
	 * Optional (partial unmap, as iommufd or an mmap-based device can):
	 * remove [iova, iova+len) from inside the live mapping [m_iova,
	 * m_iova+m_len), leaving the rest mapped, as one or two mappings,
	 * without any moment where the rest is unreachable.  Refusal as for
	 * unmap.
	 */
	int (*cut)(void *data, uint64_t m_iova, uint64_t m_len, uint64_t iova,
		   uint64_t len, unsigned int flags);
	/*
	 * Optional, used only together with cut: make the live mappings that
	 * exactly tile [iova, iova+len) one mapping, without any moment where
	 * part of it is unreachable.
	 */
	int (*merge)(void *data, uint64_t iova, uint64_t len);
	/*
	 * Optional, for audits: call @fn for each mapping as the backend
	 * really holds it (a device process's /proc/PID/maps, say).
	 */
	int (*report)(void *data,
		      int (*fn)(void *arg, uint64_t iova, uint64_t len),
		      void *arg);
};

/*
 * Layouts (see lib/dma_mapper.c for why):
 *  - exact (the backend has cut and merge): one mapping per maximal
 *    reachable run; a conversion cuts or merges, and nothing that stays
 *    reachable is ever unmapped;
 *  - blocks (map and unmap only, VFIO type1 semantics): maximal runs
 *    clipped at naturally aligned blocks of block_size bytes; a change
 *    unmaps and remaps only the mappings of the blocks it touches (pages
 *    of those blocks that stay reachable are briefly unmapped; nothing
 *    outside them ever is), and a refused unmap (a pin) makes any change
 *    that must remap that mapping fail with -EAGAIN.
 * Either way a fully reachable range costs one mapping (per block).
 */
struct gmem_dma_mapper_config {
	const struct gmem_dma_ops *ops;
	void *data;
	uint64_t block_size;	/* blocks layout: a power of two >= 4 KiB;
				   0: 2 MiB */
	bool force_blocks;	/* blocks layout even with cut and merge */
};

struct gmem_dma_stats {
	uint64_t live;		/* mappings now */
	uint64_t max_live;
	uint64_t maps;		/* backend calls */
	uint64_t unmaps;
	uint64_t cuts;
	uint64_t merges;	/* merge calls (exact) or block remaps that
				   joined mappings (blocks) */
	uint64_t splits;	/* a mapping lost a part and kept the rest */
	uint64_t refused;	/* discards refused (-EAGAIN) */
};

struct gmem_dma_mapper;

/*
 * Register a mapper as a listener of @vm (mapping the reachable runs now).
 * -EINVAL for a bad config.
 */
int gmem_dma_mapper_create(struct gmem_vm *vm,
			   const struct gmem_dma_mapper_config *cfg,
			   struct gmem_dma_mapper **out);

/* Unmap everything (forced) and unregister. */
void gmem_dma_mapper_destroy(struct gmem_vm *vm, struct gmem_dma_mapper *m);

void gmem_dma_mapper_get_stats(struct gmem_dma_mapper *m,
			       struct gmem_dma_stats *st);

/* Call @fn for each live mapping, in IOVA order (a snapshot). */
int gmem_dma_mapper_for_each(struct gmem_dma_mapper *m,
			     int (*fn)(void *arg, uint64_t iova, uint64_t len),
			     void *arg);

/*
 * Check the mapper's invariants: its mappings are exactly the layout of
 * the reachable pages it was told of, and (if the backend reports) the
 * backend holds exactly those mappings.  0 or -EUCLEAN with @msg.
 */
int gmem_dma_mapper_validate(struct gmem_dma_mapper *m, char *msg,
			     size_t msg_len);

/* ---------------------------------------------------------------------- */
/* Invalidation subscribers                                               */

typedef void (*gmem_invalidate_fn)(void *data, enum gmem_inval_reason reason,
				   enum gmem_backing_id backing,
				   uint64_t offset, uint64_t len);

struct gmem_subscription;

int gmem_subscribe(struct gmem_vm *vm, gmem_invalidate_fn fn, void *data,
		   struct gmem_subscription **out);
void gmem_unsubscribe(struct gmem_vm *vm, struct gmem_subscription *sub);

/* ---------------------------------------------------------------------- */
/* Accounting and audit                                                   */

struct gmem_stats {
	uint64_t pages_private;
	uint64_t pages_shared;
	uint64_t nr_runs;
	uint64_t conversions_to_private;	/* calls that changed pages */
	uint64_t conversions_to_shared;
	uint64_t pages_to_private;
	uint64_t pages_to_shared;
	uint64_t bytes_discarded;		/* punched out of a backing */
	uint64_t conversions_failed;
	uint64_t map_bytes;			/* memory of the page-state map */
	uint64_t reclaim_pending_bytes;		/* deferred punches waiting */
	uint64_t pages_unplugged;		/* of pages_private/shared */
	uint64_t plugs;				/* calls that changed pages */
	uint64_t unplugs;
	uint64_t reclaim_sync_punches;		/* deferred punches done by a
						   caller, not the thread:
						   back-pressure, re-grant,
						   drain */
};

void gmem_get_stats(struct gmem_vm *vm, struct gmem_stats *stats);

/*
 * Wait until every deferred punch has been done (no-op without deferred
 * reclaim).  0, or the -errno of a punch that failed.
 */
int gmem_reclaim_drain(struct gmem_vm *vm);

/*
 * Bytes of @id's backing that hold memory now (resident pages, measured
 * with mincore(), which works on guest_memfd where st_blocks does not).
 */
int64_t gmem_backing_allocated(struct gmem_vm *vm, enum gmem_backing_id id);

/*
 * Check every invariant against the real state of the kernel:
 *  - the page-state map is valid (runs cover RAM, no two adjacent runs
 *    share a state);
 *  - each view's mapping is accessible exactly where the page is in that
 *    view's state (read from /proc/self/maps);
 *  - every listener that reports its mappings maps exactly the shared
 *    pages;
 *  - in discard mode, no page is resident in the backing of the state it
 *    is not in.
 * Holds off conversions while it runs.  Returns 0, or -EUCLEAN with the
 * first violation described in @msg (if non-NULL), or another -errno if the
 * check itself failed.
 */
int gmem_audit(struct gmem_vm *vm, char *msg, size_t msg_len);

#ifdef __cplusplus
}
#endif

#endif /* GMEM_GMEM_H */
