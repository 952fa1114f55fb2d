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
#include <unistd.h>

#include "bench.h"

#define RAM ((1ULL << 30) + (64ULL << 20))

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
	struct bench_host host;
	int m;

	bench_require_kvm(&host);	/* exits 77 with the reason */
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
		struct gmem_region_config rc;
		struct gmem_config cfg;
		struct floor_vm floor;
		struct gmem_vm *vm;
		unsigned int s;
		int vm_fd;

		/* What the floor reproduces: the emulated backend, the
		 * default shared_base (the power of two >= RAM, 2 GiB). */
		vm_fd = bench_create_vm();
		bench_gmem_config(&cfg, &rc, vm_fd, RAM, mode, GMEM_PRIVATE);
		cfg.backend = GMEM_BACKEND_EMULATED;
		cfg.flags = m == 1 ? GMEM_CONFIG_DEFERRED_RECLAIM : 0;
		cfg.reclaim_max_pending = 2ULL << 30;
		vm = bench_gmem_create(&cfg);
		floor_vm_create(&floor, m == 2, RAM, 1ULL << 31, &host);
		for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			const struct size_case *sc = &sizes[s];
			double g[2][300], f[2][300];
			int i, d;

			for (i = 0; i < sc->iters; i++) {
				double t0;

				bench_touch(gmem_private_view(vm), sc->len);
				/* Deferred: reclaim has caught up (untimed). */
				gmem_reclaim_drain(vm);
				t0 = bench_now_us();
				gmem_convert(vm, 0, sc->len, GMEM_SHARED);
				g[0][i] = bench_now_us() - t0;
				bench_touch(gmem_shared_view(vm), sc->len);
				gmem_reclaim_drain(vm);
				t0 = bench_now_us();
				gmem_convert(vm, 0, sc->len, GMEM_PRIVATE);
				g[1][i] = bench_now_us() - t0;

				bench_touch(floor.priv, sc->len);
				t0 = bench_now_us();
				floor_vm_convert(&floor, 0, sc->len, true);
				f[0][i] = bench_now_us() - t0;
				bench_touch(floor.shared, sc->len);
				t0 = bench_now_us();
				floor_vm_convert(&floor, 0, sc->len, false);
				f[1][i] = bench_now_us() - t0;
			}
			for (d = 0; d < 2; d++) {
				double gm = bench_median(g[d], sc->iters);
				double fm = bench_median(f[d], sc->iters);

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
		floor_vm_destroy(&floor);
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
