/* SPDX-License-Identifier: MIT */
/*
 * libgmem: fd-based private guest memory for KVM virtual machines.
 *
 * One object, struct gmem_vm, owns the memory of one VM: a set of RAM
 * regions, each at its own guest-physical address (GPA) and bound to a
 * private backing (a guest_memfd range) and, in discard mode, a shared
 * backing (a memfd, hugetlbfs or any other shareable file range); the
 * page-state map that says which 4 KiB page is private and which is
 * shared; the enforcement backend that makes each page reachable only as
 * its state allows; and the listeners that must see exactly the shared
 * pages.
 *
 * The verbs that change anything are gmem_convert(), gmem_set_plugged(),
 * gmem_region_add() and gmem_region_remove().
 *
 * Conventions (as in liburing): every function returns 0 or a non-negative
 * count on success and -errno on failure; nothing prints or exits.
 * Addresses are guest-physical (GPA), lengths are bytes.  A request that
 * touches a GPA outside every region (a hole) is refused with -EINVAL and
 * changes nothing.
 *
 * Extensible structs: every struct the caller fills or receives starts
 * with "uint32_t size", which the caller sets to sizeof() the struct as
 * it was compiled (GMEM_INIT() does it).  The library reads or writes only
 * that many bytes: a caller built against an older, smaller struct keeps
 * working; fields it does not have read as zero.  A larger struct than the
 * library knows is accepted if the bytes it does not know are zero, else
 * refused with -E2BIG (as the kernel's copy_struct_from_user()).
 *
 * Thread safety: every function taking a struct gmem_vm may be called from
 * any thread, except gmem_destroy(), which must be the last call.
 * Callbacks (listeners, subscribers, platform hooks, the memslot callback)
 * may be called from any thread that changes memory, concurrently for
 * disjoint ranges, and never with a libgmem mutex held; they must not call
 * back into libgmem for the same VM, except the read-only queries
 * gmem_state_at() and gmem_plugged_at().
 */
#ifndef GMEM_GMEM_H
#define GMEM_GMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; gmem_version() gives the library's. */
#define GMEM_VERSION_MAJOR 2
#define GMEM_VERSION_MINOR 1
#define GMEM_VERSION_PATCH 0
#define GMEM_VERSION_CODE(major, minor, patch)                               \
	(((major) << 16) | ((minor) << 8) | (patch))
#define GMEM_VERSION                                                         \
	GMEM_VERSION_CODE(GMEM_VERSION_MAJOR, GMEM_VERSION_MINOR,            \
			  GMEM_VERSION_PATCH)

/* GMEM_VERSION_CODE() of the library this program runs with. */
unsigned int gmem_version(void);

/* Initialise an extensible struct: GMEM_INIT(struct gmem_config, .x = y). */
#define GMEM_INIT(type, ...) ((type){ .size = sizeof(type), __VA_ARGS__ })

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
 * How private memory is enforced (gmem_pick_backend() says which one a VM
 * can use and why).
 */
enum gmem_backend {
	GMEM_BACKEND_AUTO = 0,
	/*
	 * Two views of every region, a private one at the region's GPA and a
	 * shared alias at gmem_shared_base() + GPA, each a memslot over a
	 * host mapping; a page is gated by mprotect() of the mapping KVM
	 * faults through.  Works wherever KVM faults guest pages through
	 * userspace_addr (gmem_probe_gating() checks that it does).
	 */
	GMEM_BACKEND_EMULATED = 1,
	/*
	 * KVM enforces: KVM_SET_MEMORY_ATTRIBUTES(PRIVATE) on the VM, one
	 * memslot per region (private pages from the guest_memfd, shared ones
	 * from the slot's userspace_addr), no alias (gmem_shared_base() is
	 * 0).  Where the VM type reports KVM_MEMORY_ATTRIBUTE_PRIVATE.
	 */
	GMEM_BACKEND_VM_ATTRIBUTES = 2,
	/*
	 * KVM enforces, in place: the guest_memfd itself converts (shared
	 * pages are faultable through its mmap, private ones are not), one
	 * memslot per region, no alias.  In-place mode only.  Where KVM
	 * reports the guest_memfd conversion capability (an upstream series,
	 * see include/kvm_compat.h).
	 */
	GMEM_BACKEND_GMEM_IN_PLACE = 3,
};

/*
 * Emulated backend: how the private view is registered with KVM.
 * gmem_probe_gating() finds one under which gating really stops a vCPU.
 */
enum gmem_layout {
	GMEM_LAYOUT_AUTO = 0,	/* gmem_create(): the probe's cached result */
	/*
	 * The private view is a KVM_MEM_GUEST_MEMFD memslot whose
	 * userspace_addr is an mmap of the same guest_memfd; KVM faults it
	 * through userspace_addr, so mprotect of that mapping gates it.
	 */
	GMEM_LAYOUT_GMEM_SLOT = 1,
	/*
	 * Both views are plain memslots over mmaps of their backings (for
	 * kernels that serve a guest_memfd slot straight from the file and
	 * ignore userspace_addr, and for VMs without KVM memslots at all).
	 */
	GMEM_LAYOUT_PLAIN_SLOT = 2,
};

/* Which backing of a region a range belongs to. */
enum gmem_backing_id {
	GMEM_BACKING_PRIVATE = 0,	/* the guest_memfd (private pages) */
	GMEM_BACKING_SHARED = 1,	/* shared pages (discard mode) */
};

/* Why mappings of a range are being torn down. */
enum gmem_inval_reason {
	GMEM_INVAL_CONVERT = 0,	/* the range's state (attribute) changed */
	GMEM_INVAL_PUNCH = 1,	/* the range's backing was punched out */
	GMEM_INVAL_RELEASE = 2,	/* the backing is being released */
};

/* ---------------------------------------------------------------------- */
/* Capabilities of a VM                                                   */

/* guest_memfd flags (KVM_CAP_GUEST_MEMFD_FLAGS), see kvm_compat.h */
#define GMEM_GUEST_MEMFD_MMAP		(1ULL << 0)
#define GMEM_GUEST_MEMFD_INIT_SHARED	(1ULL << 1)
#define GMEM_GUEST_MEMFD_NO_DIRECT_MAP	(1ULL << 2)

struct gmem_vm_caps {
	uint32_t size;
	int api_version;		/* KVM_GET_API_VERSION, 0 if unknown */
	uint64_t vm_types;		/* KVM_CAP_VM_TYPES bitmap, 0 if absent */
	bool guest_memfd;		/* KVM_CAP_GUEST_MEMFD */
	uint64_t guest_memfd_flags;	/* KVM_CAP_GUEST_MEMFD_FLAGS */
	uint64_t memory_attributes;	/* KVM_CAP_MEMORY_ATTRIBUTES */
	bool user_memory2;		/* KVM_CAP_USER_MEMORY2 */
	bool memory_fault_info;		/* KVM_CAP_MEMORY_FAULT_INFO */
	uint64_t exit_hypercall;	/* KVM_CAP_EXIT_HYPERCALL bitmap */
	uint32_t nr_memslots;		/* KVM_CAP_NR_MEMSLOTS */
	uint32_t sync_regs;		/* KVM_CAP_SYNC_REGS bitmap */
	bool gmem_conversion;		/* guest_memfd in-place conversion */
};

/*
 * Read the capabilities of the VM @vm_fd with KVM_CHECK_EXTENSION on the
 * VM itself, so the answers are those of its VM type (SNP, TDX,
 * SW_PROTECTED or default).  Creates nothing.  -EBADF for a bad fd.
 */
int gmem_probe_vm(int vm_fd, struct gmem_vm_caps *caps);

/*
 * The guest_memfd flags libgmem uses for a private backing it creates on
 * a VM with @caps: MMAP (required by the emulated and in-place backends),
 * INIT_SHARED where offered, NO_DIRECT_MAP where offered and the backend
 * never maps private pages (the native VM-attribute backend); or
 * -EOPNOTSUPP with *why naming the missing feature.
 */
int gmem_pick_guest_memfd_flags(const struct gmem_vm_caps *caps,
				enum gmem_backend backend, uint64_t *flags,
				const char **why);

/*
 * The backend a VM with @caps would run in @mode: the native ones where
 * the capabilities offer them, else the emulated one.  *why says why (a
 * static string).  -EOPNOTSUPP if none can run (no guest_memfd).
 */
int gmem_pick_backend(const struct gmem_vm_caps *caps, enum gmem_mode mode,
		      enum gmem_backend *backend, const char **why);

/*
 * Find a layout under which mprotect() of a view really stops a vCPU: a
 * throwaway VM (the only one libgmem ever creates, and only here) runs a
 * vCPU that loads from a gated page and must exit.  The result is cached
 * for the process; a VMM may also cache it across runs and pass it in
 * gmem_config.layout.  Returns 0 and the layout, -ENOENT/-EACCES without
 * a usable /dev/kvm, or -EOPNOTSUPP when no layout gates.
 */
int gmem_probe_gating(enum gmem_layout *layout);

const char *gmem_layout_name(enum gmem_layout layout);
const char *gmem_backend_name(enum gmem_backend backend);
const char *gmem_state_name(enum gmem_state state);
const char *gmem_mode_name(enum gmem_mode mode);
const char *gmem_inval_reason_name(enum gmem_inval_reason reason);

/* ---------------------------------------------------------------------- */
/* Creating a VM's memory                                                 */

/*
 * Platform hooks, called with GPA ranges (never crossing a region), exactly
 * once per page transition; a change that is rolled back calls the
 * opposite hook for what it had already called.
 */
struct gmem_platform_ops {
	uint32_t size;
	/* [gpa, gpa+len) is about to be handed to the guest as private.
	 * Failure (-errno) fails the change, which is rolled back. */
	int (*prepare)(void *data, uint64_t gpa, uint64_t len);
	/* [gpa, gpa+len) stops being private, before its memory is freed or
	 * handed out shared. */
	void (*invalidate)(void *data, uint64_t gpa, uint64_t len);
};

/*
 * A memslot libgmem needs registered (size != 0) or deleted (size == 0).
 * @id is libgmem's name for it, unique among the VM's live slots and
 * stable until deleted; the VMM maps it to a KVM slot number of its own.
 */
struct gmem_slot {
	uint32_t size;			/* of this struct */
	uint32_t id;
	uint64_t gpa;
	uint64_t len;			/* 0: delete slot @id */
	void *userspace_addr;
	int guest_memfd;		/* -1: a plain slot */
	uint64_t guest_memfd_offset;
	uint32_t kvm_flags;		/* KVM_MEM_GUEST_MEMFD or 0 */
};

/*
 * A RAM region.  Backings: the VMM may pass its own fds (libgmem dup()s
 * them; the VMM keeps and closes its own) or -1 to let libgmem create one
 * (a guest_memfd on vm_fd; a memfd).  A private fd must be a guest_memfd
 * of the VM for the GMEM_SLOT layout and the native backends; for the
 * PLAIN_SLOT layout any file that supports mmap() and
 * fallocate(PUNCH_HOLE) serves.  Offsets are page aligned and the file
 * must hold [offset, offset + len).
 */
struct gmem_region_config {
	uint32_t size;
	uint32_t flags;			/* none defined: 0 */
	uint64_t gpa;			/* page aligned */
	uint64_t len;			/* page aligned, non-zero */
	int private_fd;			/* -1: create a guest_memfd */
	uint64_t private_offset;
	int shared_fd;			/* discard mode; -1: create a memfd;
					   in-place mode: must be -1 */
	uint64_t shared_offset;
};

/* gmem_config.flags */
#define GMEM_CONFIG_DEFERRED_RECLAIM (1u << 0)

struct gmem_config {
	uint32_t size;
	uint32_t flags;			/* GMEM_CONFIG_* */
	int vm_fd;			/* KVM VM; -1: none (then slot_ops and
					   VMM-owned private fds are required,
					   and only the emulated backend with
					   the PLAIN_SLOT layout runs) */
	enum gmem_mode mode;
	enum gmem_state initial_state;	/* of every page of every region */
	enum gmem_backend backend;	/* AUTO: gmem_pick_backend() */
	enum gmem_layout layout;	/* emulated backend; AUTO: the cached
					   gmem_probe_gating() result, which
					   must have run */
	uint64_t guest_memfd_flags;	/* for guest_memfds libgmem creates;
					   0: gmem_pick_guest_memfd_flags() */
	/*
	 * The guest-physical space regions may use: [0, max_gpa).  0: the
	 * end of the highest initial region.  Leave room for hot-plug.
	 */
	uint64_t max_gpa;
	/* Emulated backend: GPA of the shared alias of GPA 0, >= max_gpa and
	 * page aligned; 0: the smallest power of two >= max_gpa. */
	uint64_t shared_base;
	const struct gmem_region_config *regions;	/* initial regions */
	uint32_t nr_regions;
	/*
	 * Memslots: set_slot() registers or deletes each slot libgmem needs
	 * (the VMM owns slot numbers).  NULL: libgmem registers them on vm_fd
	 * itself as KVM slots slot_base + id.
	 */
	int (*set_slot)(void *data, const struct gmem_slot *slot);
	void *slot_data;
	uint32_t slot_base;
	const struct gmem_platform_ops *platform;	/* may be NULL */
	void *platform_data;
	/*
	 * GMEM_CONFIG_DEFERRED_RECLAIM (discard mode): punch old backings
	 * from a reclaim thread instead of inside gmem_convert().  A page is
	 * still never handed out again before its old memory there is
	 * punched.  reclaim_max_pending bounds the bytes waiting (0: 1 GiB);
	 * past it a conversion punches its own range (back-pressure).
	 */
	uint64_t reclaim_max_pending;
};

/*
 * struct gmem_vm is one VM's guest memory, not a VM: the VMM owns the KVM
 * VM (vm_fd) and its vCPUs, and gmem_create() creates neither.  It holds
 * the regions, their backings and memslots, the page-state map, the
 * enforcement backend and the listeners.  The type keeps its name because
 * the libgmem 2 API stays source compatible: renaming a public type would
 * break every caller, so it can change only with a new major version.
 */
struct gmem_vm;

/*
 * Check the config, create or adopt the backings of the initial regions,
 * map them, hand each memslot to set_slot() (or KVM), gate every page to
 * its initial state and call prepare for the initial private pages.
 * Creates no VM and runs no vCPU.  -EINVAL for a bad config (overlapping
 * regions, a region past max_gpa, a missing slot_ops without vm_fd, ...),
 * -E2BIG for unknown non-zero fields, -EOPNOTSUPP for a backend the VM
 * does not offer.
 */
int gmem_create(const struct gmem_config *cfg, struct gmem_vm **out);

/* Delete every memslot, tell listeners and subscribers RELEASE, unmap,
 * close what libgmem opened. */
void gmem_destroy(struct gmem_vm *vm);

/*
 * Add a region (memory hot-plug): its pages start in the VM's initial
 * state and plugged; listeners are told populate for what is reachable.
 * All or nothing.  -EINVAL if it overlaps a region or leaves [0, max_gpa).
 */
int gmem_region_add(struct gmem_vm *vm, const struct gmem_region_config *rc);

/*
 * Remove the region that starts at @gpa: listeners drop its reachable
 * pages (forced), private ones are invalidated, subscribers hear RELEASE,
 * its memslots are deleted and its backings released.  -ENOENT if no
 * region starts at @gpa.
 */
int gmem_region_remove(struct gmem_vm *vm, uint64_t gpa);

struct gmem_region_info {
	uint32_t size;
	uint32_t index;			/* 0 .. gmem_region_count() - 1 */
	uint64_t gpa;
	uint64_t len;
	int private_fd;			/* libgmem's fds (its dups) */
	uint64_t private_offset;
	int shared_fd;			/* in-place mode: the private fd */
	uint64_t shared_offset;
	void *private_addr;		/* host address of the region in the
					   private view (NULL: not mapped) */
	void *shared_addr;		/* ... in the shared view */
};

/* Regions in GPA order. */
int gmem_region_count(struct gmem_vm *vm);
/* The @index-th region (-ENOENT past the last). */
int gmem_region_get(struct gmem_vm *vm, unsigned int index,
		    struct gmem_region_info *info);
/* The region containing @gpa (-ENOENT in a hole). */
int gmem_region_find(struct gmem_vm *vm, uint64_t gpa,
		     struct gmem_region_info *info);

uint64_t gmem_max_gpa(const struct gmem_vm *vm);
/* Bytes of RAM in all regions now. */
uint64_t gmem_ram_size(struct gmem_vm *vm);
/* Emulated backend: the GPA of the shared alias of GPA 0; native: 0. */
uint64_t gmem_shared_base(const struct gmem_vm *vm);
enum gmem_mode gmem_get_mode(const struct gmem_vm *vm);
enum gmem_backend gmem_get_backend(const struct gmem_vm *vm);
enum gmem_layout gmem_get_layout(const struct gmem_vm *vm);
uint64_t gmem_guest_memfd_flags(const struct gmem_vm *vm);

/*
 * Host addresses of the two views: GPA g of every region is at view + g
 * (holes are reserved and never accessible).  A page is accessible at most
 * in the view of its state; touching it in the other view raises SIGSEGV.
 * Native backends: one view, both calls return it.  Prefer gmem_access(),
 * which cannot race with a conversion.
 */
void *gmem_private_view(const struct gmem_vm *vm);
void *gmem_shared_view(const struct gmem_vm *vm);

/* ---------------------------------------------------------------------- */
/* Page state and conversion                                              */

/*
 * The state of the page at @gpa, and (optional) the run of equal value
 * around it, clipped to its region.  Returns the state (>= 0), or -EINVAL
 * in a hole.  May be called from inside a callback.
 */
int gmem_state_at(struct gmem_vm *vm, uint64_t gpa, uint64_t *run_start,
		  uint64_t *run_len);

/*
 * Call @fn for each run of equal state intersecting [gpa, gpa+len),
 * clipped to it and to its region (holes are skipped), in order.  A
 * non-zero return from @fn stops the walk and is returned.  The walk sees
 * a consistent snapshot and runs without any lock held.
 */
int gmem_for_each_run(struct gmem_vm *vm, uint64_t gpa, uint64_t len,
		      int (*fn)(void *arg, uint64_t gpa, uint64_t len,
				enum gmem_state state),
		      void *arg);

/*
 * Make every page of [gpa, gpa+len) @to.  The range may span several
 * regions but no hole.  All or nothing: on failure nothing changed (page
 * states, view protections, listeners' mappings, backings, content).
 * Pages already in state @to are not touched.  Returns the number of
 * pages whose state changed, or
 *   -EINVAL  gpa/len not page aligned, len 0, or touching a hole;
 *   -EAGAIN  a listener refused to let go of a page (in use);
 *   -ENOMEM, or the -errno of a failed backend call, punch or hook
 *            (the emulated backend's mprotect() fails with -ENOMEM where a
 *            split would pass the host's vm.max_map_count: merging
 *            conversions still work);
 *   -EIO     the backend could not restore a view while rolling back: the
 *            memory is marked broken, every later change fails with -EIO
 *            and gmem_audit() says why.
 * Overlapping calls are serialised; disjoint ones run concurrently.
 */
int64_t gmem_convert(struct gmem_vm *vm, uint64_t gpa, uint64_t len,
		     enum gmem_state to);

/*
 * gmem_convert(), and on -EAGAIN *busy_gpa is the first GPA a listener or
 * DMA backend refused to let go of (as upstream KVM's error_offset): the
 * one it named with gmem_report_busy(), else the start of the range it
 * refused.
 */
int64_t gmem_convert_ex(struct gmem_vm *vm, uint64_t gpa, uint64_t len,
			enum gmem_state to, uint64_t *busy_gpa);

/*
 * Many conversions as ONE all-or-nothing change (as SEV-SNP's GHCB Page
 * State Change request): one range-lock pass over the hull of the
 * entries, one listener/DMA round, one mprotect per merged run and one
 * punch per entry (per region) where content rules allow.  Entries may
 * come in any order and convert either way; they must not overlap (an
 * overlap is -EINVAL whatever the targets, so the result never depends on
 * the order).  @flags of every entry must be 0.  Returns the pages whose
 * state changed, or -errno as gmem_convert(), -E2BIG for more than
 * GMEM_BATCH_MAX entries; *failed_entry (if non-NULL) is then the index of
 * the entry that failed (a bad entry; of two overlapping ones, the first
 * that starts inside the entry before it, sorted by GPA and equal GPAs by
 * index; one touching a hole; the one holding the busy page), or -1 when
 * no entry is to blame, and on
 * -EAGAIN *busy_gpa the first refusing GPA.  All or nothing, with
 * gmem_set_plugged()'s exception: in discard mode, a punch that fails
 * after another punch of the same batch succeeded leaves the pages of the
 * first one (which the batch was giving up) zero-filled.
 */
#define GMEM_BATCH_MAX 4096

struct gmem_batch_entry {
	uint64_t gpa;
	uint64_t len;
	uint32_t to;		/* enum gmem_state */
	uint32_t flags;		/* must be 0 */
};

int64_t gmem_convert_batch(struct gmem_vm *vm,
			   const struct gmem_batch_entry *entries,
			   unsigned int n, int *failed_entry,
			   uint64_t *busy_gpa);

/*
 * Called by a listener's discard (or a DMA backend's unmap/cut) just
 * before it refuses with -EAGAIN, from the thread that called it: @gpa is
 * the first page it cannot let go of.
 */
void gmem_report_busy(uint64_t gpa);

/*
 * Copy between @buf and guest memory [gpa, gpa+len) through the view of
 * state @view, holding off conversions of the range meanwhile.  -EACCES if
 * any page of the range is not in state @view or is unplugged (nothing
 * copied); -EINVAL for a range touching a hole.  Native backends have no
 * host-accessible private view: -EPERM for @view GMEM_PRIVATE there.
 */
int gmem_access(struct gmem_vm *vm, uint64_t gpa, void *buf, uint64_t len,
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
int64_t gmem_set_plugged(struct gmem_vm *vm, uint64_t gpa, uint64_t len,
			 bool plugged);

/* 1 plugged, 0 unplugged, or -EINVAL; run as in gmem_state_at(). */
int gmem_plugged_at(struct gmem_vm *vm, uint64_t gpa, uint64_t *run_start,
		    uint64_t *run_len);

struct gmem_extent {
	uint64_t gpa;
	uint64_t len;
	enum gmem_state state;
	bool plugged;
};

/*
 * Like gmem_for_each_run(), with the plug state: maximal runs of equal
 * state and plug state, clipped to [gpa, gpa+len) and to their region.
 */
int gmem_for_each_extent(struct gmem_vm *vm, uint64_t gpa, uint64_t len,
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
	uint32_t size;
	/* [gpa, gpa+len) (never crossing a region) became reachable: map
	 * it.  -errno fails the change, which is rolled back. */
	int (*populate)(void *data, uint64_t gpa, uint64_t len);
	/*
	 * [gpa, gpa+len) stops being reachable: unmap it.  Without
	 * GMEM_DISCARD_FORCED it may refuse with -EAGAIN while the range is
	 * in use (the change then fails with -EAGAIN and nothing changes;
	 * gmem_report_busy() names the page); a refusal must leave the
	 * listener's mappings as they were.
	 */
	int (*discard)(void *data, uint64_t gpa, uint64_t len,
		       unsigned int flags);
	/*
	 * Optional, for gmem_audit(): call @fn for each range the listener
	 * has mapped, in any order.
	 */
	int (*report)(void *data,
		      int (*fn)(void *arg, uint64_t gpa, uint64_t len),
		      void *arg);
};

struct gmem_listener;

/*
 * Register a listener and replay the current reachable runs to it (one
 * populate per run, per region).  If a populate fails, what was replayed
 * is discarded and the error returned.  @ops is read now and must stay
 * valid until unregistered.
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
 * is the GPA the guest programs into its devices.  The mapper never asks
 * for an overlapping map, never for one mapping across two regions, and
 * only ever names mappings it created (or their pieces).
 */
struct gmem_dma_ops {
	uint32_t size;
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
	uint32_t size;
	const struct gmem_dma_ops *ops;
	void *data;
	uint64_t block_size;	/* blocks layout: a power of two >= 4 KiB;
				   0: 2 MiB */
	bool force_blocks;	/* blocks layout even with cut and merge */
};

struct gmem_dma_stats {
	uint32_t size;
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

/* Fills st->size bytes.  -EINVAL if st->size is 0. */
int gmem_dma_mapper_get_stats(struct gmem_dma_mapper *m,
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

/* @gpa, @len: the GPA range (never crossing a region) whose memory in
 * @backing is invalidated. */
typedef void (*gmem_invalidate_fn)(void *data, enum gmem_inval_reason reason,
				   enum gmem_backing_id backing,
				   uint64_t gpa, uint64_t len);

struct gmem_subscription;

int gmem_subscribe(struct gmem_vm *vm, gmem_invalidate_fn fn, void *data,
		   struct gmem_subscription **out);
void gmem_unsubscribe(struct gmem_vm *vm, struct gmem_subscription *sub);

/* ---------------------------------------------------------------------- */
/* Accounting and audit                                                   */

struct gmem_stats {
	uint32_t size;
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
	uint64_t nr_regions;
	uint64_t regions_added;			/* after creation */
	uint64_t regions_removed;
	uint64_t conversions_busy;		/* failed with -EAGAIN */
};

/* Fills stats->size bytes.  -EINVAL if stats->size is 0. */
int gmem_get_stats(struct gmem_vm *vm, struct gmem_stats *stats);

/*
 * Wait until every deferred punch has been done (no-op without deferred
 * reclaim).  0, or the -errno of a punch that failed.
 */
int gmem_reclaim_drain(struct gmem_vm *vm);

/*
 * Bytes of the regions' @id backings that hold memory now (resident
 * pages, measured with mincore(), which works on guest_memfd where
 * st_blocks does not).
 */
int64_t gmem_backing_resident(struct gmem_vm *vm, enum gmem_backing_id id);

/*
 * Check every invariant against the real state of the kernel:
 *  - the page-state map is valid (runs cover [0, max_gpa), no two
 *    adjacent runs share a value, holes exactly outside the regions);
 *  - the backend enforces each page's state (emulated: each view's
 *    mapping is accessible exactly where the page is in that view's state
 *    and plugged, holes never, read from /proc/self/maps);
 *  - every listener that reports its mappings maps exactly the reachable
 *    pages;
 *  - in discard mode, no page is resident in the backing of the state it
 *    is not in (pages whose punch is still queued for the reclaim thread
 *    are the only exception, and they must be in neither view);
 *  - the memory was not marked broken by a failed rollback.
 * Holds off conversions while it runs.  Returns 0, or -EUCLEAN with the
 * first violation described in @msg (if non-NULL), or another -errno if the
 * check itself failed.
 */
int gmem_audit(struct gmem_vm *vm, char *msg, size_t msg_len);

#ifdef __cplusplus
}
#endif

#endif /* GMEM_GMEM_H */
