/* SPDX-License-Identifier: MIT */
/*
 * Choosing and combining the dirty trackers (track.h says which sees
 * what), and probing what a host offers for `gmvm caps`.
 *
 * The rule: uffd-wp on the host views is always required (only it sees
 * gmvm's own writes and KVM's writes through plain memslots); the KVM
 * dirty log is added for guest_memfd-bound slots, whose guest writes
 * bypass the views.  Anything less is refused with the reason rather
 * than migrating a guest whose writes could be missed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm_compat.h"
#include "track.h"

const char *mig_track_name(unsigned int kinds)
{
	switch (kinds) {
	case MIG_TRACK_UFFD_WP:
		return "uffd-wp";
	case MIG_TRACK_UFFD_WP | MIG_TRACK_KVM_DIRTY_LOG:
		return "uffd-wp+kvm-dirty-log";
	case MIG_TRACK_KVM_DIRTY_LOG:
		return "kvm-dirty-log";
	}
	return "none";
}

int mig_track_start(struct gmem_vm *vm, const struct mig_track_opts *o,
		    struct mig_tracker *t, struct snap_msg *m)
{
	int err;

	memset(t, 0, sizeof(*t));
	err = mig_uffd_start(vm, &t->uffd, m);
	if (err)
		return err == -ENOMEM ? err : -EOPNOTSUPP;
	t->kinds = MIG_TRACK_UFFD_WP;
	if (o && o->vm_fd >= 0 && o->nr_slots) {
		err = mig_kvmlog_start(o, &t->kvm, m);
		if (err) {
			mig_track_stop(t);
			return err;
		}
		if (t->kvm)
			t->kinds |= MIG_TRACK_KVM_DIRTY_LOG;
	}
	return 0;
}

int mig_track_collect(struct mig_tracker *t, struct mig_pages *into,
		      struct snap_msg *m)
{
	int err = mig_uffd_collect(t->uffd, into, m);

	if (!err && t->kvm)
		err = mig_kvmlog_collect(t->kvm, into, m);
	return err;
}

void mig_track_stop(struct mig_tracker *t)
{
	mig_kvmlog_stop(t->kvm);
	mig_uffd_stop(t->uffd);
	memset(t, 0, sizeof(*t));
}

/* Bit 55 of a pagemap entry: soft-dirty (pagemap.rst). */
static int soft_dirty_bit(int pm, const void *p)
{
	uint64_t e;

	if (pread(pm, &e, sizeof(e), (off_t)((uintptr_t)p / 4096 * 8)) !=
	    (ssize_t)sizeof(e))
		return -1;
	return (int)((e >> 55) & 1);
}

/* Clear the soft-dirty bits (clear_refs 4), write, look: a kernel
 * without CONFIG_MEM_SOFT_DIRTY never sets the bit. */
static bool probe_soft_dirty(const char **why)
{
	volatile uint8_t *p;
	int pm, cr, bit = -1;

	*why = "cannot try it (no /proc/self/pagemap or clear_refs)";
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	cr = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pm >= 0 && cr >= 0 && p != MAP_FAILED) {
		p[0] = 1;
		if (write(cr, "4", 1) == 1 && soft_dirty_bit(pm, (void *)p) == 0) {
			p[0] = 2;
			bit = soft_dirty_bit(pm, (void *)p);
		}
	}
	if (bit == 0)
		*why = "the kernel sets no soft-dirty bits "
		       "(CONFIG_MEM_SOFT_DIRTY off)";
	else if (bit == 1)
		*why = "soft-dirty bits work (not used: uffd-wp is required "
		       "and preferred)";
	if (p != MAP_FAILED)
		munmap((void *)p, 4096);
	if (pm >= 0)
		close(pm);
	if (cr >= 0)
		close(cr);
	return bit == 1;
}

int mig_track_probe(int vm_fd, struct mig_track_caps *c)
{
	memset(c, 0, sizeof(*c));
	c->uffd_wp = mig_uffd_probe(&c->uffd_why) == 0;
	c->soft_dirty = probe_soft_dirty(&c->soft_dirty_why);
	c->kvm_dirty_log = vm_fd < 0 ? -1 :
			   mig_kvmlog_probe(vm_fd, &c->kvm_why) == 0;
	if (vm_fd < 0)
		c->kvm_why = "no KVM VM to ask";
	if (c->uffd_wp)
		c->kinds = MIG_TRACK_UFFD_WP |
			   (c->kvm_dirty_log == 1 ? MIG_TRACK_KVM_DIRTY_LOG : 0);
	return c->uffd_wp ? 0 : -EOPNOTSUPP;
}

int mig_scratch_gmem(int vm_fd, uint64_t size)
{
	struct kvm_create_guest_memfd gc = { .size = size };
	struct gmem_vm_caps caps = { .size = sizeof(caps) };
	const char *no;
	uint64_t flags;
	int fd;

	if (gmem_probe_vm(vm_fd, &caps) ||
	    gmem_pick_guest_memfd_flags(&caps, GMEM_BACKEND_EMULATED, &flags,
					&no))
		return -EOPNOTSUPP;
	gc.flags = flags;
	fd = ioctl(vm_fd, KVM_CREATE_GUEST_MEMFD, &gc);
	return fd < 0 ? -EOPNOTSUPP : fd;
}
