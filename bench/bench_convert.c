/* SPDX-License-Identifier: MIT */
/*
 * gmem_convert() beside the kernel floor, measured in the same run.
 *
 * Floor: the system calls a conversion cannot avoid, issued directly on an
 * identical setup (a guest_memfd and a memfd mapped and registered as the
 * same two memslots of a KVM VM): mprotect(old view, NONE),
 * mprotect(new view, RW), and in discard mode fallocate(PUNCH_HOLE) of the
 * old backing.  Both sides convert populated memory: every page is written
 * before each timed conversion (not timed), so the punch frees real pages.
 *
 * Prints a markdown table and "BENCH" lines for the plot script.
 */
#include <fcntl.h>
#include <linux/falloc.h>
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

#define RAM ((1ULL << 30) + (64ULL << 20))

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static void touch(uint8_t *p, uint64_t len)
{
	uint64_t off;

	for (off = 0; off < len; off += GMEM_PAGE_SIZE)
		p[off] = 1;
}

/* The raw setup: what libgmem builds, without libgmem. */
struct raw {
	int vm, gfd, sfd;
	uint8_t *priv, *shared;
	bool in_place;
};

static void raw_create(struct raw *r, bool in_place, uint64_t gmem_flags,
		       enum gmem_layout layout)
{
	r->in_place = in_place;
	r->vm = test_create_vm();
	r->gfd = gmem_backing_create_gmem(r->vm, RAM, gmem_flags);
	r->sfd = in_place ? r->gfd : gmem_backing_create_memfd("floor", RAM);
	r->priv = gmem_backing_map(r->gfd, RAM, PROT_READ | PROT_WRITE);
	r->shared = gmem_backing_map(r->sfd, RAM, PROT_NONE);
	if (r->gfd < 0 || r->sfd < 0 || !r->priv || !r->shared ||
	    gmem_set_memslot(r->vm, 0, layout == GMEM_LAYOUT_GMEM_SLOT ?
			     KVM_MEM_GUEST_MEMFD : 0, 0, RAM, r->priv, r->gfd,
			     0) ||
	    gmem_set_memslot(r->vm, 1, 0, 1ULL << 31, RAM, r->shared, -1, 0)) {
		fprintf(stderr, "floor setup failed\n");
		exit(1);
	}
}

static void raw_destroy(struct raw *r)
{
	munmap(r->priv, RAM);
	munmap(r->shared, RAM);
	if (r->sfd != r->gfd)
		close(r->sfd);
	close(r->gfd);
	close(r->vm);
}

static void raw_convert(struct raw *r, uint64_t len, bool to_shared)
{
	uint8_t *from = to_shared ? r->priv : r->shared;
	uint8_t *to = to_shared ? r->shared : r->priv;

	mprotect(from, len, PROT_NONE);
	mprotect(to, len, PROT_READ | PROT_WRITE);
	if (!r->in_place)
		fallocate(to_shared ? r->gfd : r->sfd,
			  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			  (off_t)len);
}

struct size_case {
	const char *name;
	uint64_t len;
	int iters;
};

int main(void)
{
	static const struct size_case sizes[] = {
		{ "4 KiB", 4096, 300 },
		{ "2 MiB", 2ULL << 20, 40 },
		{ "64 MiB", 64ULL << 20, 6 },
		{ "1 GiB", 1ULL << 30, 3 },
	};
	struct gmem_host_caps caps;
	enum gmem_layout layout;
	const char *why;
	uint64_t flags;
	int m;

	test_require_gmem();	/* exits 77 with the reason */
	if (gmem_probe_host(&caps) ||
	    gmem_pick_gmem_flags(&caps, &flags, &why) ||
	    gmem_probe_gating(&layout)) {
		fprintf(stderr, "host probe failed after it passed\n");
		return 1;
	}
	printf("## gmem_convert() against the syscall floor (host side)\n\n");
	printf("| mode | size | direction | gmem_convert us | floor us | "
	       "ratio |\n|---|---|---|---|---|---|\n");
	fflush(stdout);
	for (m = 0; m < 3; m++) {
		/* 0: discard, 1: discard with deferred reclaim, 2: in-place;
		 * the floor of 1 is the synchronous one. */
		enum gmem_mode mode = m == 2 ? GMEM_MODE_IN_PLACE :
					       GMEM_MODE_DISCARD;
		const char *name = m == 0 ? "discard" :
				   m == 1 ? "discard, deferred reclaim" :
					    "in-place";
		struct gmem_config cfg = {
			.ram_size = RAM, .mode = mode,
			.initial_state = GMEM_PRIVATE,
			.deferred_reclaim = m == 1,
			.reclaim_max_pending = 2ULL << 30,
		};
		struct gmem_vm *vm;
		struct raw raw;
		unsigned int s;

		cfg.vm_fd = test_create_vm();
		if (gmem_create(&cfg, &vm)) {
			fprintf(stderr, "gmem_create failed\n");
			return 1;
		}
		raw_create(&raw, m == 2, flags, layout);
		for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			const struct size_case *sc = &sizes[s];
			double g[2][300], f[2][300];
			int i, d;

			for (i = 0; i < sc->iters; i++) {
				double t0;

				touch(gmem_private_view(vm), sc->len);
				/* Deferred: reclaim has caught up (untimed). */
				gmem_reclaim_drain(vm);
				t0 = now_us();
				gmem_convert(vm, 0, sc->len, GMEM_SHARED);
				g[0][i] = now_us() - t0;
				touch(gmem_shared_view(vm), sc->len);
				gmem_reclaim_drain(vm);
				t0 = now_us();
				gmem_convert(vm, 0, sc->len, GMEM_PRIVATE);
				g[1][i] = now_us() - t0;

				touch(raw.priv, sc->len);
				t0 = now_us();
				raw_convert(&raw, sc->len, true);
				f[0][i] = now_us() - t0;
				touch(raw.shared, sc->len);
				t0 = now_us();
				raw_convert(&raw, sc->len, false);
				f[1][i] = now_us() - t0;
			}
			for (d = 0; d < 2; d++) {
				double gm = median(g[d], sc->iters);
				double fm = median(f[d], sc->iters);

				printf("| %s | %s | to %s | %.1f | %.1f | %.2f |\n",
				       name, sc->name,
				       d ? "private" : "shared", gm, fm, gm / fm);
				printf("BENCH convert mode=%s bytes=%llu dir=%s "
				       "us=%.2f floor_us=%.2f\n",
				       m == 1 ? "deferred" : gmem_mode_name(mode),
				       (unsigned long long)sc->len,
				       d ? "private" : "shared", gm, fm);
				fflush(stdout);
			}
		}
		raw_destroy(&raw);
		gmem_destroy(vm);
		close(cfg.vm_fd);
	}
	printf("\nMedians; memory is populated before every conversion. "
	       "Floor: the same mprotect/fallocate calls issued directly on an "
	       "identical guest_memfd + memfd memslot setup (for deferred "
	       "reclaim: the synchronous floor). With deferred reclaim the "
	       "reclaim thread is drained, untimed, before each conversion, "
	       "as when the guest converts less often than reclaim takes; "
	       "otherwise the punch comes back as back-pressure.\n");
	return 0;
}
