/* SPDX-License-Identifier: MIT */
/*
 * Dirty tracking with userfaultfd write-protect in async mode
 * (UFFD_FEATURE_WP_ASYNC, Linux 6.7) and PAGEMAP_SCAN on the host views
 * of every region (docs/MIGRATION.md cites the kernel's documentation).
 *
 * How: both views of each region are registered in UFFDIO_REGISTER_MODE_WP
 * and their present pages write-protected by a first scan.  A write to a protected page (by any thread of
 * this process, by the kernel on its behalf, or by KVM faulting the page
 * in through the mapping with GUP) is resolved by the kernel itself in
 * async mode: it clears the page's uffd-wp bit, nobody waits, no event is
 * queued.  PAGEMAP_SCAN with PM_SCAN_WP_MATCHING then reports the pages
 * whose bit is clear (PAGE_IS_WRITTEN) and sets it again in the same
 * walk, so a write racing with the scan is either reported now or left
 * for the next scan, never lost.  UFFD_FEATURE_WP_UNPOPULATED makes pages
 * not yet populated count as protected, so the first write to a hole is
 * seen too; a page populated by a read or a write reads as written (a
 * false positive costs one page of stream, a false negative a corrupt
 * guest).
 *
 * Invariant: while a struct mig_uffd lives, every byte of every region in
 * both views is registered with it; mig_uffd_stop() unregisters them all,
 * which also drops the protection (the kernel clears uffd-wp bits of an
 * unregistered range), so the VM is as it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mm_compat.h"
#include "track.h"

#define PG GMEM_PAGE_SIZE
#define SCAN_VEC 4096
#define FEATURES (UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED)

struct uffd_range {
	uint64_t addr, len, gpa;
};

struct mig_uffd {
	int uffd, pagemap;
	struct uffd_range *r;
	size_t nr;
	struct page_region *vec;
};

/* A userfaultfd with async write-protect: the syscall, else the device
 * (where the syscall is restricted by vm.unprivileged_userfaultfd). */
int mig_uffd_open(const char **why)
{
	struct uffdio_api api = { .api = UFFD_API, .features = FEATURES };
	int fd, dev;

	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dev < 0) {
			*why = "no userfaultfd (syscall refused, no "
			       "/dev/userfaultfd)";
			return -EOPNOTSUPP;
		}
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dev);
		if (fd < 0) {
			*why = "/dev/userfaultfd refused a new userfaultfd";
			return -EOPNOTSUPP;
		}
	}
	if (ioctl(fd, UFFDIO_API, &api) < 0 ||
	    (api.features & FEATURES) != FEATURES) {
		close(fd);
		*why = "userfaultfd without async write-protect "
		       "(UFFD_FEATURE_WP_ASYNC, Linux 6.7)";
		return -EOPNOTSUPP;
	}
	return fd;
}

/*
 * Register [addr, addr + len) for write-protect tracking.  Nothing is
 * protected yet: the first scan protects the present pages, and a page
 * that is not present reads as written once something populates it, so
 * no page table is built for holes (a 16 GiB guest costs nothing).
 */
int mig_uffd_register(int fd, uint64_t addr, uint64_t len)
{
	struct uffdio_register reg = {
		.range = { .start = addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	return ioctl(fd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

/* Get and clear the written pages of [addr, addr + len): @fn per run. */
int mig_uffd_scan(int pagemap, struct page_region *vec, size_t vec_len,
		  uint64_t addr, uint64_t len,
		  void (*fn)(void *arg, uint64_t a, uint64_t z), void *arg)
{
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = addr, .end = addr + len,
		.vec = (uint64_t)(uintptr_t)vec, .vec_len = vec_len,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	long n, i;

	for (;;) {
		n = ioctl(pagemap, PAGEMAP_SCAN, &a);
		if (n < 0)
			return -errno;
		for (i = 0; fn && i < n; i++)
			fn(arg, vec[i].start, vec[i].end);
		/* Full vector: the walk stopped at walk_end. */
		if (a.walk_end >= a.end)
			return 0;
		/* A walk that made no progress would loop for ever, and one
		 * that left the range breaks the kernel's own promise:
		 * either way the written pages are not known. */
		if (a.walk_end <= a.start || a.walk_end > a.end)
			return -EIO;
		a.start = a.walk_end;
	}
}

void mig_uffd_note(void *arg, uint64_t a, uint64_t z)
{
	*(bool *)arg = true;
}

int mig_uffd_probe(const char **why)
{
	bool seen = false;
	struct page_region vec[16];
	int fd, mfd, pm = -1, err;
	uint8_t *p = MAP_FAILED;

	fd = mig_uffd_open(why);
	if (fd < 0)
		return fd;
	err = -EOPNOTSUPP;
	*why = "cannot map a memfd to try it on";
	mfd = memfd_create("gmvm-uffd-probe", MFD_CLOEXEC);
	if (mfd >= 0 && ftruncate(mfd, PG) == 0)
		p = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (p == MAP_FAILED)
		goto out;
	*why = "userfaultfd write-protect refused on a memfd mapping";
	if (mig_uffd_register(fd, (uintptr_t)p, PG))
		goto out;
	*why = "no PAGEMAP_SCAN (Linux 6.7) on /proc/self/pagemap";
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	p[0] = 1;	/* present, then protected by the first scan */
	if (pm < 0 ||
	    mig_uffd_scan(pm, vec, 16, (uintptr_t)p, PG, NULL, NULL))
		goto out;
	p[0] = 2;	/* written after protection: must be reported */
	seen = false;
	if (mig_uffd_scan(pm, vec, 16, (uintptr_t)p, PG, mig_uffd_note,
			  &seen) || !seen) {
		*why = "PAGEMAP_SCAN did not report a written page";
		goto out;
	}
	*why = "userfaultfd async write-protect and PAGEMAP_SCAN";
	err = 0;
out:
	if (p != MAP_FAILED)
		munmap(p, PG);
	if (mfd >= 0)
		close(mfd);
	if (pm >= 0)
		close(pm);
	close(fd);
	return err;
}

static int add_range(struct mig_uffd *u, void *addr, uint64_t len,
		     uint64_t gpa, struct snap_msg *m)
{
	int err;

	if (!addr)
		return 0;
	err = mig_uffd_register(u->uffd, (uintptr_t)addr, len);
	if (err)
		return snap_err(m, err, "userfaultfd write-protect of GPA "
				"%#llx+%#llx: %s", (unsigned long long)gpa,
				(unsigned long long)len, strerror(-err));
	u->r[u->nr++] = (struct uffd_range){ (uintptr_t)addr, len, gpa };
	/* Protect what is present; what was written before is sent anyway
	 * (the first round sends every resident page). */
	err = mig_uffd_scan(u->pagemap, u->vec, SCAN_VEC, (uintptr_t)addr,
			    len, NULL, NULL);
	if (err)
		return snap_err(m, err, "PAGEMAP_SCAN of GPA %#llx: %s",
				(unsigned long long)gpa, strerror(-err));
	return 0;
}

int mig_uffd_start(struct gmem_vm *vm, struct mig_uffd **out,
		   struct snap_msg *m)
{
	struct gmem_region_info ri = { .size = sizeof(ri) };
	int nr = gmem_region_count(vm), i, err;
	struct mig_uffd *u;
	const char *why = NULL;

	if (nr < 0)
		return snap_err(m, nr, "counting regions: %s", strerror(-nr));
	u = calloc(1, sizeof(*u));
	if (!u)
		return snap_err(m, -ENOMEM, "no memory");
	u->pagemap = -1;
	u->uffd = mig_uffd_open(&why);
	u->r = calloc(2 * (size_t)nr + 1, sizeof(*u->r));
	u->vec = calloc(SCAN_VEC, sizeof(*u->vec));
	if (u->uffd < 0) {
		err = snap_err(m, u->uffd, "dirty tracking: %s", why);
		goto fail;
	}
	err = -ENOMEM;
	if (!u->r || !u->vec)
		goto fail;
	u->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (u->pagemap < 0) {
		err = snap_err(m, -errno, "/proc/self/pagemap: %s",
			       strerror(errno));
		goto fail;
	}
	for (i = 0; i < nr; i++) {
		err = gmem_region_get(vm, (unsigned int)i, &ri);
		if (!err)
			err = add_range(u, ri.private_addr, ri.len, ri.gpa, m);
		if (!err && ri.shared_addr != ri.private_addr)
			err = add_range(u, ri.shared_addr, ri.len, ri.gpa, m);
		if (err)
			goto fail;
	}
	*out = u;
	return 0;
fail:
	mig_uffd_stop(u);
	return snap_err(m, err, "dirty tracking: %s", strerror(-err));
}

struct to_gpa {
	struct mig_pages *into;
	const struct uffd_range *r;
};

static void add_written(void *arg, uint64_t a, uint64_t z)
{
	struct to_gpa *t = arg;

	mig_pages_add(t->into, t->r->gpa + (a - t->r->addr), z - a);
}

int mig_uffd_collect(struct mig_uffd *u, struct mig_pages *into,
		     struct snap_msg *m)
{
	struct to_gpa t = { .into = into };
	size_t i;
	int err;

	for (i = 0; i < u->nr; i++) {
		t.r = &u->r[i];
		err = mig_uffd_scan(u->pagemap, u->vec, SCAN_VEC, t.r->addr,
				    t.r->len, add_written, &t);
		if (err)
			return snap_err(m, err, "PAGEMAP_SCAN of GPA %#llx: %s",
					(unsigned long long)t.r->gpa,
					strerror(-err));
	}
	return 0;
}

void mig_uffd_stop(struct mig_uffd *u)
{
	struct uffdio_range r;
	size_t i;

	if (!u)
		return;
	for (i = 0; i < u->nr; i++) {
		r.start = u->r[i].addr;
		r.len = u->r[i].len;
		ioctl(u->uffd, UFFDIO_UNREGISTER, &r);
	}
	if (u->uffd >= 0)
		close(u->uffd);
	if (u->pagemap >= 0)
		close(u->pagemap);
	free(u->r);
	free(u->vec);
	free(u);
}
