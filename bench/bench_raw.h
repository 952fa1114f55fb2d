/* SPDX-License-Identifier: MIT */
/*
 * The kernel floor of a conversion: what libgmem builds for a VM, built
 * without libgmem, and the system calls a conversion cannot avoid issued
 * directly on it.  Shared by the benchmarks (static inline: each includes
 * what it uses).
 *
 * Setup: a KVM VM with a guest_memfd (private view, slot 0 at GPA 0) and,
 * in discard mode, a memfd (shared view, slot 1 at shared_base); in
 * in-place mode the shared view maps the guest_memfd itself.  Same flags,
 * layout and protections as gmem_create().
 *
 * Conversion: mprotect(old view, NONE), mprotect(new view, RW) and, in
 * discard mode, fallocate(PUNCH_HOLE) of the old backing over the range.
 */
#ifndef BENCH_RAW_H
#define BENCH_RAW_H

#include <fcntl.h>
#include <linux/falloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "gmem/gmem.h"
#include "internal.h"
#include "kvm_compat.h"
#include "test_util.h"

struct raw {
	int vm, gfd, sfd, vcpu;
	uint8_t *priv, *shared;
	bool in_place;
	uint64_t ram;
};

static inline double bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of @n values (sorts them). */
static inline double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	return v[n / 2];
}

/* Write one byte per page: populates the backing and the mapping. */
static inline void bench_touch(uint8_t *p, uint64_t len)
{
	uint64_t off;

	for (off = 0; off < len; off += GMEM_PAGE_SIZE)
		p[off] = 1;
}

/*
 * The guest_memfd flags and memslot layout libgmem's emulated backend (the
 * two gated views the floor reproduces) would pick here, from a VM of the
 * default type (the benchmarks' VMs).
 */
static inline void raw_probe(uint64_t *gmem_flags, enum gmem_layout *layout)
{
	struct gmem_vm_caps caps = GMEM_INIT(struct gmem_vm_caps);
	const char *why = "";
	int vm = test_create_vm();

	if (gmem_probe_vm(vm, &caps) ||
	    gmem_pick_guest_memfd_flags(&caps, GMEM_BACKEND_EMULATED,
					gmem_flags, &why) ||
	    gmem_probe_gating(layout)) {
		fprintf(stderr, "host probe failed after it passed: %s\n",
			why);
		exit(1);
	}
	close(vm);
}

/* A shared mapping of all of @fd, or NULL. */
static inline uint8_t *raw_map(int fd, uint64_t size, int prot)
{
	void *p;

	if (fd < 0)
		return NULL;
	p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

/*
 * gmem_create() for the emulated backend with the probed layout, all
 * of [0, ram) one region at GPA 0, shared alias at the default shared_base
 * (the smallest power of two >= ram): what the floor reproduces.
 */
static inline int bench_gmem_create(int vm_fd, uint64_t ram,
				    enum gmem_mode mode, uint32_t flags,
				    uint64_t reclaim_max_pending,
				    enum gmem_layout layout,
				    struct gmem_vm **out)
{
	const struct gmem_region_config rc = {
		.size = sizeof(rc),
		.gpa = 0,
		.len = ram,
		.private_fd = -1,
		.shared_fd = -1,
	};
	const struct gmem_config cfg = {
		.size = sizeof(cfg),
		.flags = flags,
		.vm_fd = vm_fd,
		.mode = mode,
		.initial_state = GMEM_PRIVATE,
		.backend = GMEM_BACKEND_EMULATED,
		.layout = layout,
		.regions = &rc,
		.nr_regions = 1,
		.reclaim_max_pending = reclaim_max_pending,
	};

	return gmem_create(&cfg, out);
}

/* All RAM private: private view RW, shared view closed. */
static inline void raw_create(struct raw *r, bool in_place, uint64_t ram,
			      uint64_t shared_base, uint64_t gmem_flags,
			      enum gmem_layout layout)
{
	r->in_place = in_place;
	r->ram = ram;
	r->vcpu = -1;
	r->vm = test_create_vm();
	r->gfd = gmem_backing_create_gmem(r->vm, ram, gmem_flags);
	r->sfd = in_place ? r->gfd : gmem_backing_create_memfd("floor", ram);
	r->priv = raw_map(r->gfd, ram, PROT_READ | PROT_WRITE);
	r->shared = raw_map(r->sfd, ram, PROT_NONE);
	if (r->gfd < 0 || r->sfd < 0 || !r->priv || !r->shared ||
	    gmem_set_memslot(r->vm, 0, layout == GMEM_LAYOUT_GMEM_SLOT ?
			     KVM_MEM_GUEST_MEMFD : 0, 0, ram, r->priv, r->gfd,
			     0) ||
	    gmem_set_memslot(r->vm, 1, 0, shared_base, ram, r->shared, -1,
			     0)) {
		fprintf(stderr, "floor setup failed\n");
		exit(1);
	}
}

/*
 * Make the VM live: create a vCPU and run it once (real mode, one `out` at
 * GPA 0x1000 of the private view).  From then on KVM keeps per-memslot MMU
 * state (on a shadow-paging host such as kvm_pvm, rmaps for every page of
 * every memslot) that each invalidation (mprotect of a view, punch of the
 * guest_memfd) must walk over the converted range, as in any VM that has
 * run a guest.  A VM that never ran skips that work.
 */
static inline void raw_run_vcpu(struct raw *r)
{
	static const uint8_t code[] = { 0xe6, 0xf4, 0xf4 }; /* out; hlt */
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_run *run;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	long size = kvm < 0 ? -1 : ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);

	memcpy(r->priv + 0x1000, code, sizeof(code));
	r->vcpu = ioctl(r->vm, KVM_CREATE_VCPU, 0);
	run = size <= 0 || r->vcpu < 0 ? MAP_FAILED :
	      mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   r->vcpu, 0);
	if (run == MAP_FAILED || ioctl(r->vcpu, KVM_GET_SREGS, &sregs)) {
		fprintf(stderr, "floor vCPU setup failed\n");
		exit(1);
	}
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	memset(&regs, 0, sizeof(regs));
	regs.rip = 0x1000;
	regs.rflags = 0x2;
	if (ioctl(r->vcpu, KVM_SET_SREGS, &sregs) ||
	    ioctl(r->vcpu, KVM_SET_REGS, &regs) ||
	    ioctl(r->vcpu, KVM_RUN, 0) || run->exit_reason != KVM_EXIT_IO) {
		fprintf(stderr, "floor vCPU did not run\n");
		exit(1);
	}
	munmap(run, (size_t)size);
	close(kvm);
}

static inline void raw_destroy(struct raw *r)
{
	if (r->vcpu >= 0)
		close(r->vcpu);
	munmap(r->priv, r->ram);
	munmap(r->shared, r->ram);
	if (r->sfd != r->gfd)
		close(r->sfd);
	close(r->gfd);
	close(r->vm);
}

static inline void raw_convert(struct raw *r, uint64_t off, uint64_t len,
			       bool to_shared)
{
	uint8_t *from = to_shared ? r->priv : r->shared;
	uint8_t *to = to_shared ? r->shared : r->priv;

	mprotect(from + off, len, PROT_NONE);
	mprotect(to + off, len, PROT_READ | PROT_WRITE);
	if (!r->in_place)
		fallocate(to_shared ? r->gfd : r->sfd,
			  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)off, (off_t)len);
}

#endif /* BENCH_RAW_H */
