/* SPDX-License-Identifier: MIT */
/*
 * Dirty tracking for live migration: which guest pages were written since
 * the last look, by anyone that writes through this process's host views
 * or through KVM.  docs/MIGRATION.md says why each mechanism is sound.
 *
 *  - uffd-wp (track_uffd.c): userfaultfd write-protect in async mode on
 *    both host views of every region, read and re-armed in one
 *    PAGEMAP_SCAN call.  It sees gmvm's own writes and KVM's writes
 *    through memslots backed by the views (KVM faults pages in with GUP
 *    through the host mapping, after the MMU notifier that re-arming
 *    triggers zapped its sPTEs).  Required: nothing else sees gmvm's own
 *    writes.  Whether this host's KVM faults a slot in through the view
 *    at all is asked of KVM by mig_uffd_probe_guest() (track_guest.c).
 *  - KVM dirty log (track_kvm.c): KVM_MEM_LOG_DIRTY_PAGES on the
 *    guest_memfd-bound memslots, whose guest writes bypass the host
 *    mapping; KVM_CLEAR_DIRTY_LOG where KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2
 *    is offered.  Needs a VM fd and the VMM's memslots.
 *  - soft-dirty is probed and reported, not used (it cannot be scoped
 *    to the views, and uffd-wp is required anyway).
 * Writes by other processes (the DMA device process maps the shared
 * backing itself) are seen by none of these: send.c counts the pages a
 * device has mapped as dirty in every round instead.
 *
 * Not thread safe: one migration owns its tracker.
 */
#ifndef GMVM_MIGRATE_TRACK_H
#define GMVM_MIGRATE_TRACK_H

#include <stdbool.h>
#include <stdint.h>

#include "../snapshot/format.h"
#include "gmem/gmem.h"
#include "pages.h"

/* A memslot as the VMM registered it with KVM. */
struct mig_kvm_slot {
	uint32_t slot;			/* the VMM's KVM slot number */
	uint32_t flags;			/* KVM_MEM_GUEST_MEMFD or 0 */
	uint64_t gpa, len;
	uint64_t hva;
	int guest_memfd;		/* -1: a plain slot */
	uint64_t guest_memfd_offset;
};

struct mig_track_opts {
	int vm_fd;			/* -1: no KVM */
	const struct mig_kvm_slot *slots;
	size_t nr_slots;
};

/* Mechanisms (bits of mig_tracker.kinds). */
#define MIG_TRACK_UFFD_WP (1u << 0)
#define MIG_TRACK_KVM_DIRTY_LOG (1u << 1)

struct mig_uffd;
struct mig_kvmlog;

struct mig_tracker {
	unsigned int kinds;
	struct mig_uffd *uffd;
	struct mig_kvmlog *kvm;
};

/*
 * Start tracking every region of @vm (regions must not change until
 * mig_track_stop()).  -EOPNOTSUPP with the reason where no sound
 * mechanism covers every way the guest writes.
 */
int mig_track_start(struct gmem_vm *vm, const struct mig_track_opts *o,
		    struct mig_tracker *t, struct snap_msg *m);
/* Add the pages written since the start or the last call to @into, and
 * forget them (get and clear). */
int mig_track_collect(struct mig_tracker *t, struct mig_pages *into,
		      struct snap_msg *m);
/* Remove every protection and registration; the VM is as before. */
void mig_track_stop(struct mig_tracker *t);
/* "uffd-wp", "uffd-wp+kvm-dirty-log": what a tracker uses. */
const char *mig_track_name(unsigned int kinds);

/* What this host offers, for `gmvm caps`; each why a static string. */
struct mig_track_caps {
	bool uffd_wp;
	const char *uffd_why;
	bool soft_dirty;
	const char *soft_dirty_why;
	int kvm_dirty_log;		/* 1, 0, or -1: no VM to ask */
	const char *kvm_why;
	unsigned int kinds;		/* what mig_track_start() would use */
};

int mig_track_probe(int vm_fd, struct mig_track_caps *c);
/*
 * For the probes on a scratch VM (track_kvm.c, track_guest.c): a
 * guest_memfd of @size on @vm_fd with the flags libgmem would give a
 * VM's own (what KVM does with a slot may depend on them).  Its fd, or
 * -EOPNOTSUPP where this VM type has none libgmem can use.
 */
int mig_scratch_gmem(int vm_fd, uint64_t size);

/* ---- the mechanisms (track_uffd.c, track_kvm.c) ---------------------------- */

int mig_uffd_probe(const char **why);
/*
 * Does uffd-wp on a view see the guest's writes through memslots of
 * @layout (track_guest.c)?  A real-mode guest on a scratch VM of @kvm_fd
 * writes a page of a guest_memfd mapped as libgmem maps it, through each
 * kind of memslot @layout uses, the page is write-protected, the guest
 * writes it again, and PAGEMAP_SCAN must report it.  0; -EOPNOTSUPP
 * where it is not seen or the host lacks what it needs (an answer);
 * another -errno where the probe could not run (ask again later).  @why
 * says which, as a static string.
 */
int mig_uffd_probe_guest(int kvm_fd, enum gmem_layout layout,
			 const char **why);
/* The pieces of uffd-wp tracking, for track_guest.c: a userfaultfd with
 * async write-protect (fd or -EOPNOTSUPP with @why), registering a range,
 * one get-and-clear scan (@fn per written run; NULL: protect only), and
 * an @fn that sets the bool at @arg. */
int mig_uffd_open(const char **why);
int mig_uffd_register(int fd, uint64_t addr, uint64_t len);
struct page_region;
int mig_uffd_scan(int pagemap, struct page_region *vec, size_t vec_len,
		  uint64_t addr, uint64_t len,
		  void (*fn)(void *arg, uint64_t a, uint64_t z), void *arg);
void mig_uffd_note(void *arg, uint64_t a, uint64_t z);
int mig_uffd_start(struct gmem_vm *vm, struct mig_uffd **out,
		   struct snap_msg *m);
int mig_uffd_collect(struct mig_uffd *u, struct mig_pages *into,
		     struct snap_msg *m);
void mig_uffd_stop(struct mig_uffd *u);

int mig_kvmlog_probe(int vm_fd, const char **why);
/* Dirty logging on the slots of @o that need it (guest_memfd-bound);
 * *out NULL when none does. */
int mig_kvmlog_start(const struct mig_track_opts *o, struct mig_kvmlog **out,
		     struct snap_msg *m);
int mig_kvmlog_collect(struct mig_kvmlog *k, struct mig_pages *into,
		       struct snap_msg *m);
void mig_kvmlog_stop(struct mig_kvmlog *k);

#endif
