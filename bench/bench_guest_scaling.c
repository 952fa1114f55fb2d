/* SPDX-License-Identifier: MIT */
/*
 * Scaling: conversions per second with 1 and 2 vCPUs converting disjoint
 * ranges (gmvm runs guest/bench/scale.c), beside the same system calls
 * from 1 and 2 host threads on the kernel floor.  Two vCPUs should come
 * close to twice one: nothing in gmvm or libgmem should serialise
 * conversions of unrelated ranges more than the kernel does.
 *
 * Guest TSC cycles become time at the host's rate (bench/lib/tsc.c).
 * Prints a markdown table and a "BENCH" line.
 */
#include <pthread.h>
#include <stdint.h>

#include "bench.h"

#define MIB		(1ULL << 20)
#define SCALE_ROUNDS	1000
#define SCALE_REPS	3

static struct bench_host host;

/* Conversions per second of gmvm with @nr vCPUs (scale.elf). */
static double scale_gmvm(unsigned int nr)
{
	char vcpus[16], rounds[32];
	const char *opts[] = { "--vcpus", vcpus, NULL, rounds, NULL };
	uint64_t v[3 + 16], lo = UINT64_MAX, hi = 0;
	double rate = 0;
	const char *p;
	struct bench_run r;
	unsigned int i;
	int n;

	snprintf(vcpus, sizeof(vcpus), "%u", nr);
	snprintf(rounds, sizeof(rounds), "rounds=%d", SCALE_ROUNDS);
	if (bench_run_gmvm(&r, "scale.elf", opts))
		goto out;
	if (!(p = bench_find_tag(r.out, "scale")) ||
	    (n = bench_parse_hex(p, v, 3 + 16)) != 3 + 2 * (int)nr ||
	    v[0] != nr) {
		bench_fail("scale.elf: unexpected output:\n%s", r.out);
		goto out;
	}
	for (i = 0; i < nr; i++) {
		bench_tsc_check(&r, v[3 + 2 * i]);
		bench_tsc_check(&r, v[4 + 2 * i]);
		lo = v[3 + 2 * i] < lo ? v[3 + 2 * i] : lo;
		hi = v[4 + 2 * i] > hi ? v[4 + 2 * i] : hi;
	}
	rate = (double)nr * 2 * (double)v[1] /
	       (bench_cycles_us((double)(hi - lo)) / 1e6);
out:
	bench_run_free(&r);
	return rate;
}

struct scale_thread {
	struct floor_vm *floor;
	uint64_t off;
	pthread_barrier_t *bar;
	double t0, t1;
};

static void *scale_worker(void *arg)
{
	struct scale_thread *t = arg;
	int i;

	pthread_barrier_wait(t->bar);
	t->t0 = bench_now_us();
	for (i = 0; i < SCALE_ROUNDS; i++) {
		floor_vm_convert(t->floor, t->off, 4096, true);
		floor_vm_convert(t->floor, t->off, 4096, false);
	}
	t->t1 = bench_now_us();
	return NULL;
}

/* The same conversions as syscalls from @nr host threads. */
static double scale_floor(unsigned int nr)
{
	struct scale_thread t[2];
	pthread_t th[2];
	pthread_barrier_t bar;
	double lo = 1e300, hi = 0;
	struct floor_vm f;
	unsigned int i;

	/* gmvm's default RAM (256 MiB), so shared_base 256 MiB. */
	floor_vm_create(&f, false, 256 * MIB, 256 * MIB, &host);
	floor_vm_run_vcpu(&f);
	pthread_barrier_init(&bar, NULL, nr);
	for (i = 0; i < nr; i++) {
		t[i] = (struct scale_thread){ &f, (2 + 2 * i) * MIB, &bar, 0, 0 };
		pthread_create(&th[i], NULL, scale_worker, &t[i]);
	}
	for (i = 0; i < nr; i++) {
		pthread_join(th[i], NULL);
		lo = t[i].t0 < lo ? t[i].t0 : lo;
		hi = t[i].t1 > hi ? t[i].t1 : hi;
	}
	pthread_barrier_destroy(&bar);
	floor_vm_destroy(&f);
	return nr * 2.0 * SCALE_ROUNDS / ((hi - lo) / 1e6);
}

static void print_scaling(void)
{
	double g[2][SCALE_REPS], f[2][SCALE_REPS], gm[2], fm[2];
	int rep, k;

	bench_progress("scaling");
	for (rep = 0; rep < SCALE_REPS; rep++) {
		for (k = 0; k < 2; k++) {
			g[k][rep] = scale_gmvm(k + 1);
			f[k][rep] = scale_floor(k + 1);
		}
	}
	for (k = 0; k < 2; k++) {
		gm[k] = bench_median(g[k], SCALE_REPS);
		fm[k] = bench_median(f[k], SCALE_REPS);
	}
	printf("## Scaling: 1 against 2 vCPUs converting disjoint ranges\n\n");
	printf("| | 1 vCPU conversions/s | 2 vCPUs conversions/s | 2 / 1 | goal >= 1.6 |\n");
	printf("|---|---|---|---|---|\n");
	if (gm[0] > 0 && gm[1] > 0)
		printf("| gmvm, guest MAP_GPA_RANGE | %.0f | %.0f | %.2f | %s |\n",
		       gm[0], gm[1], gm[1] / gm[0],
		       bench_goal_mark(gm[1] / gm[0] >= 1.6));
	else
		printf("| gmvm, guest MAP_GPA_RANGE | failed | | | |\n");
	printf("| floor: the syscalls from 1 / 2 host threads | %.0f | %.0f | %.2f | |\n",
	       fm[0], fm[1], fm[1] / fm[0]);
	printf("BENCH scale gmvm1=%.0f gmvm2=%.0f floor1=%.0f floor2=%.0f\n",
	       gm[0], gm[1], fm[0], fm[1]);
	printf("\nEach vCPU (thread) converts its own 4 KiB page, 2 MiB apart from the other's, to shared and back %d times, discard mode, memory never written; conversions per second over the span from the first start to the last end (guest TSC), median of %d runs.\n\n",
	       SCALE_ROUNDS, SCALE_REPS);
}

int main(void)
{
	bench_gmvm_setup("scale.elf", &host);	/* exits 77 with the reason */
	print_scaling();
	return bench_gmvm_finish();
}
