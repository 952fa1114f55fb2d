/* SPDX-License-Identifier: MIT */
/*
 * Dirty tracking with KVM's dirty log, for the memslots whose guest
 * writes do not go through the host mapping: those bound to a
 * guest_memfd (KVM_MEM_GUEST_MEMFD), where KVM takes pages from the
 * guest_memfd itself and userfaultfd on the view never sees a fault.
 * Plain slots need none: KVM faults their pages in through the view, so
 * track_uffd.c sees those writes (Documentation/virt/kvm/api.rst 4.35:
 * KVM_SET_USER_MEMORY_REGION, 4.37 KVM_GET_DIRTY_LOG, 4.118
 * KVM_CLEAR_DIRTY_LOG, 7.18 KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2).
 *
 * Each such slot is registered again with KVM_MEM_LOG_DIRTY_PAGES added
 * (a flags-only change of a live slot); where KVM refuses it (the kernels
 * we know refuse both logging and changing guest_memfd slots; `gmvm caps`
 * tries it on a scratch VM: mig_kvmlog_probe()) migration is refused,
 * since guest writes to private memory would go unseen.  Collecting is
 * KVM_GET_DIRTY_LOG, then, with manual protection enabled, the same
 * bits cleared with KVM_CLEAR_DIRTY_LOG (without it, GET clears).
 *
 * Written against the UAPI only: this host has no /dev/kvm, and the test
 * (tests/test_migrate_kvm.c) reports itself skipped there.
 *
 * Invariant: every slot in @s has logging on while the struct lives, and
 * manual protection is on iff @manual; mig_kvmlog_stop() registers each
 * slot again with its original flags, then turns manual protection off.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm_compat.h"
#include "track.h"

#define PG GMEM_PAGE_SIZE
/* The most pages one KVM_CLEAR_DIRTY_LOG clears: a multiple of 64 that
 * fits its 32-bit num_pages. */
#define CLEAR_MAX_PAGES (1ULL << 31)

struct mig_kvmlog {
	int vm_fd;
	bool manual;
	struct mig_kvm_slot *s;
	size_t nr;
	uint64_t *bitmap;
	size_t bitmap_words;
};

/*
 * Ask KVM the one question that matters: does it log a guest_memfd-bound
 * slot?  Capabilities cannot say (kvm_main.c's memslot flag check refuses
 * KVM_MEM_LOG_DIRTY_PAGES together with KVM_MEM_GUEST_MEMFD on the
 * kernels we know, whatever KVM_CAP_USER_MEMORY2 claims), so the probe
 * registers such a slot on @vm_fd, a scratch VM with no memslots (gmvm
 * caps makes one), and deletes it again.  Its guest_memfd has the flags
 * libgmem would give the VM's own (what KVM accepts may depend on them).
 */
int mig_kvmlog_probe(int vm_fd, const char **why)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = 2 * PG,
	};
	void *hva;
	int gfd, ret;

	if (vm_fd < 0) {
		*why = "no KVM VM";
		return -ENODEV;
	}
	if (ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY2) <= 0) {
		*why = "no KVM_SET_USER_MEMORY_REGION2";
		return -EOPNOTSUPP;
	}
	gfd = mig_scratch_gmem(vm_fd, 2 * PG);
	if (gfd < 0) {
		*why = "this VM type has no guest_memfd libgmem can use, so no slot needs it";
		return gfd;
	}
	hva = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (hva == MAP_FAILED) {
		close(gfd);
		*why = "cannot try it (no memory)";
		return -ENOMEM;
	}
	/* As mig_kvmlog_start() does it: a live slot, then logging added
	 * by a flags-only change (which kernels refuse for guest_memfd
	 * slots: they can only be deleted). */
	r.flags = KVM_MEM_GUEST_MEMFD;
	r.userspace_addr = (uint64_t)(uintptr_t)hva;
	r.guest_memfd = (uint32_t)gfd;
	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION2, &r) < 0) {
		munmap(hva, 2 * PG);
		close(gfd);
		*why = "cannot try it (no guest_memfd-bound slot on this VM)";
		return -EOPNOTSUPP;
	}
	r.flags |= KVM_MEM_LOG_DIRTY_PAGES;
	ret = ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION2, &r) < 0 ? -errno : 0;
	/* Delete it again, with the flags it has: KVM checks the flags
	 * before it sees that the size is 0, and refuses logging on a
	 * guest_memfd slot even in a delete. */
	r.flags = KVM_MEM_GUEST_MEMFD | (ret ? 0 : KVM_MEM_LOG_DIRTY_PAGES);
	r.memory_size = 0;
	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION2, &r) < 0) {
		*why = "cannot try it (the scratch slot could not be deleted)";
		munmap(hva, 2 * PG);
		close(gfd);
		return -EIO;
	}
	if (!ret) {
		*why = ioctl(vm_fd, KVM_CHECK_EXTENSION,
			     KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) > 0 ?
		       "KVM logs guest_memfd slots, with KVM_CLEAR_DIRTY_LOG" :
		       "KVM logs guest_memfd slots (GET clears)";
	} else {
		*why = "KVM refuses dirty logging on guest_memfd-bound "
		       "memslots";
		ret = -EOPNOTSUPP;
	}
	munmap(hva, 2 * PG);
	close(gfd);
	return ret;
}

static int set_slot(int vm_fd, const struct mig_kvm_slot *s, uint32_t flags)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = s->slot, .flags = flags,
		.guest_phys_addr = s->gpa, .memory_size = s->len,
		.userspace_addr = s->hva,
		.guest_memfd_offset = s->guest_memfd_offset,
		.guest_memfd = (uint32_t)s->guest_memfd,
	};

	return ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION2, &r) < 0 ? -errno : 0;
}

void mig_kvmlog_stop(struct mig_kvmlog *k)
{
	size_t i;

	if (!k)
		return;
	for (i = 0; i < k->nr; i++)
		set_slot(k->vm_fd, &k->s[i], k->s[i].flags);
	/* Manual protection changes what KVM_GET_DIRTY_LOG means for every
	 * slot of the VM: turn it off again (args[0] = 0, kvm_main.c) after
	 * the slots stopped logging.  gmvm enables it nowhere else, so off
	 * is how the VM was. */
	if (k->manual) {
		struct kvm_enable_cap off = {
			.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
		};

		(void)ioctl(k->vm_fd, KVM_ENABLE_CAP, &off);
	}
	free(k->s);
	free(k->bitmap);
	free(k);
}

int mig_kvmlog_start(const struct mig_track_opts *o, struct mig_kvmlog **out,
		     struct snap_msg *m)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
		.args = { KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE },
	};
	struct mig_kvmlog *k;
	size_t i, words;
	int err;

	*out = NULL;
	for (i = 0; i < o->nr_slots; i++)
		if (o->slots[i].flags & KVM_MEM_GUEST_MEMFD)
			break;
	if (i == o->nr_slots)
		return 0;	/* plain slots only: uffd-wp sees it all */
	k = calloc(1, sizeof(*k));
	if (!k || !(k->s = calloc(o->nr_slots, sizeof(*k->s)))) {
		free(k);
		return snap_err(m, -ENOMEM, "no memory");
	}
	k->vm_fd = o->vm_fd;
	k->manual = ioctl(o->vm_fd, KVM_CHECK_EXTENSION,
			  KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) > 0 &&
		    ioctl(o->vm_fd, KVM_ENABLE_CAP, &cap) == 0;
	for (i = 0; i < o->nr_slots; i++) {
		const struct mig_kvm_slot *s = &o->slots[i];

		if (!(s->flags & KVM_MEM_GUEST_MEMFD))
			continue;
		err = set_slot(o->vm_fd, s, s->flags | KVM_MEM_LOG_DIRTY_PAGES);
		if (err) {
			mig_kvmlog_stop(k);
			return snap_err(m, -EOPNOTSUPP, "KVM refuses dirty "
					"logging on guest_memfd slot %u (%s): "
					"guest writes to it cannot be tracked",
					s->slot, strerror(-err));
		}
		k->s[k->nr++] = *s;
		words = (size_t)((s->len / PG + 63) / 64);
		if (words > k->bitmap_words)
			k->bitmap_words = words;
	}
	k->bitmap = calloc(k->bitmap_words, 8);
	if (!k->bitmap) {
		mig_kvmlog_stop(k);
		return snap_err(m, -ENOMEM, "no memory");
	}
	*out = k;
	return 0;
}

int mig_kvmlog_collect(struct mig_kvmlog *k, struct mig_pages *into,
		       struct snap_msg *m)
{
	struct kvm_dirty_log log;
	struct kvm_clear_dirty_log clr;
	uint64_t npages, p;
	size_t i;

	for (i = 0; k && i < k->nr; i++) {
		npages = k->s[i].len / PG;
		memset(k->bitmap, 0, k->bitmap_words * 8);
		memset(&log, 0, sizeof(log));
		log.slot = k->s[i].slot;
		log.dirty_bitmap = k->bitmap;
		if (ioctl(k->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
			return snap_err(m, -errno, "KVM_GET_DIRTY_LOG of slot "
					"%u: %s", k->s[i].slot,
					strerror(errno));
		/* num_pages is 32 bits: a larger slot would be cleared in
		 * pieces, each starting at a multiple of 64 pages as KVM
		 * wants, its bitmap from that page's word.  Today's KVM caps
		 * a slot at KVM_MEM_MAX_NR_PAGES (2^31 - 1 pages), so this
		 * runs once; the loop keeps it right if that grows. */
		for (p = 0; k->manual && p < npages; p += CLEAR_MAX_PAGES) {
			memset(&clr, 0, sizeof(clr));
			clr.slot = k->s[i].slot;
			clr.first_page = p;
			clr.num_pages = (uint32_t)(npages - p < CLEAR_MAX_PAGES ?
						   npages - p : CLEAR_MAX_PAGES);
			clr.dirty_bitmap = k->bitmap + p / 64;
			if (ioctl(k->vm_fd, KVM_CLEAR_DIRTY_LOG, &clr) < 0)
				return snap_err(m, -errno, "KVM_CLEAR_DIRTY_LOG "
						"of slot %u: %s", k->s[i].slot,
						strerror(errno));
		}
		for (p = 0; p < npages; p++)
			if (k->bitmap[p / 64] & (1ULL << (p & 63)))
				mig_pages_add(into, k->s[i].gpa + p * PG, PG);
	}
	return 0;
}
