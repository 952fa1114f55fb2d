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
#include <stdio.h>
#include <stdlib.h>

#include "bench_raw.h"

#define RAM ((1ULL << 30) + (64ULL << 20))

#define now_us bench_now_us
#define median bench_median
#define touch bench_touch

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
	enum gmem_layout layout;
	uint64_t flags;
	int m;

	test_require_gmem();	/* exits 77 with the reason */
	raw_probe(&flags, &layout);
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
		struct gmem_vm *vm;
		struct raw raw;
		unsigned int s;
		int vm_fd;

		vm_fd = test_create_vm();
		if (bench_gmem_create(vm_fd, RAM, mode,
				      m == 1 ? GMEM_CONFIG_DEFERRED_RECLAIM : 0,
				      2ULL << 30, layout, &vm)) {
			fprintf(stderr, "gmem_create failed\n");
			return 1;
		}
		raw_create(&raw, m == 2, RAM, 1ULL << 31, flags, layout);
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
				raw_convert(&raw, 0, sc->len, true);
				f[0][i] = now_us() - t0;
				touch(raw.shared, sc->len);
				t0 = now_us();
				raw_convert(&raw, 0, sc->len, false);
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
		close(vm_fd);
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
