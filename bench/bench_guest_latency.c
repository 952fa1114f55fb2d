/* SPDX-License-Identifier: MIT */
/*
 * What the guest sees of a conversion, beside floors measured in the same
 * run: gmvm runs guest/bench/latency.c, which times its own doorbells, and
 * this program parses its "@" lines.  One set of runs gives three tables:
 *
 *  1. Conversion latency, doorbell `out` to guest resumed (guest TSC), for
 *     4 KiB .. 1 GiB both ways, discard and in-place.  Floor: the same
 *     mprotect/fallocate calls issued directly on the same memslot setup
 *     (same RAM size, shared_base, offsets and population), plus the bare
 *     port-I/O exit round trip measured by the same guest run.
 *  2. The same with deferred reclaim, against the synchronous floor.
 *  3. Exit overhead: a MAP_GPA_RANGE that changes nothing against the bare
 *     port-I/O exit, same guest instructions around both.
 *
 * Guest TSC cycles become time at the host's rate (bench/lib/tsc.c, which
 * also checks that the guest TSC is the host's).  Prints markdown tables
 * and "BENCH" lines (run-bench.sh plots them).
 */
#include <math.h>
#include <string.h>

#include "bench.h"

#define MIB		(1ULL << 20)
#define GIB		(1ULL << 30)
/* Two disjoint 1 GiB ranges above gmvm's own area. */
#define LAT_RAM		(2 * GIB + 64 * MIB)
#define LAT_SIZES	4
#define LAT_REPS	2	/* latency runs: best of, per row */

static struct bench_host host;

static const char *const size_names[LAT_SIZES] = {
	"4 KiB", "2 MiB", "64 MiB", "1 GiB"
};
static const uint64_t size_bytes[LAT_SIZES] = {
	4096, 2 * MIB, 64 * MIB, GIB
};

struct lat {
	const char *name;	/* discard, deferred, in-place */
	uint64_t ram, shared_base;
	uint64_t area[LAT_SIZES][2];	/* A and B offsets */
	int n[LAT_SIZES];
	double us[LAT_SIZES][2];	/* medians, [0] to shared */
	double bare_us, noop_us;
	/* The syscall floor of the same rows (discard and in-place runs). */
	double floor_us[LAT_SIZES][2];
	bool ok;
};

/* gmvm run of latency.elf with @opts (NULL-terminated, then guest args). */
static void lat_run(struct lat *l, const char *name, const char *const *opts)
{
	uint64_t v[BENCH_MAX_SAMPLES];
	const char *p;
	struct bench_run r;
	int s, d, n;

	memset(l, 0, sizeof(*l));
	l->name = name;
	bench_progress("latency, %s", name);
	if (bench_run_gmvm(&r, "latency.elf", opts))
		goto out;
	if (!bench_tsc_bracket(&r)) {
		bench_fail("latency.elf (%s): incomplete output:\n%s", name, r.out);
		goto out;
	}
	if (!(p = bench_find_tag(r.out, "info")) || bench_parse_hex(p, v, 4) != 4)
		goto bad;
	l->ram = v[0];
	l->shared_base = v[1];
	if (!bench_tag_median_us(r.out, "bare", &l->bare_us) ||
	    !bench_tag_median_us(r.out, "noop", &l->noop_us))
		goto bad;
	for (s = 0; s < LAT_SIZES; s++) {
		char tag[64];

		if (!bench_find_keyed(r.out, "area", size_bytes[s], v, 3))
			goto bad;
		l->area[s][0] = v[1];
		l->area[s][1] = v[2];
		for (d = 0; d < 2; d++) {
			snprintf(tag, sizeof(tag), "lat %llx %s",
				 (unsigned long long)size_bytes[s],
				 d ? "private" : "shared");
			n = bench_tag_median_us(r.out, tag, &l->us[s][d]);
			if (!n)
				goto bad;
			l->n[s] = n;
		}
	}
	l->ok = true;
	goto out;
bad:
	bench_fail("latency.elf (%s): unexpected output:\n%s", name, r.out);
out:
	bench_run_free(&r);
}

/*
 * The syscall floor for the rows of @l, which ran in the mode @in_place:
 * same RAM, shared_base, ranges, sample counts and population (the shared
 * view written before each to-private conversion, as the DMA device did).
 */
static void floor_run(struct lat *l, bool in_place)
{
	double t[2][BENCH_MAX_SAMPLES];
	struct floor_vm f;
	int s, i, d;

	if (!l->ok)
		return;
	bench_progress("syscall floor, %s", in_place ? "in-place" : "discard");
	floor_vm_create(&f, in_place, l->ram, l->shared_base, &host);
	floor_vm_run_vcpu(&f);
	for (s = 0; s < LAT_SIZES; s++) {
		uint64_t len = size_bytes[s];

		for (i = 0; i < l->n[s]; i++) {
			uint64_t off = l->area[s][i & 1];
			double t0;

			t0 = bench_now_us();
			floor_vm_convert(&f, off, len, true);
			t[0][i] = bench_now_us() - t0;
			bench_touch(f.shared + off, len);
			t0 = bench_now_us();
			floor_vm_convert(&f, off, len, false);
			t[1][i] = bench_now_us() - t0;
		}
		for (d = 0; d < 2; d++)
			l->floor_us[s][d] = bench_median(t[d], l->n[s]);
	}
	floor_vm_destroy(&f);
}

/* Best of several runs: per row, the smallest median. */
static void min_rows(double acc[LAT_SIZES][2], const double x[LAT_SIZES][2])
{
	int s, d;

	for (s = 0; s < LAT_SIZES; s++)
		for (d = 0; d < 2; d++)
			acc[s][d] = fmin(acc[s][d], x[s][d]);
}

/*
 * Keep in @acc the best of the runs so far: per row the smallest median,
 * gmvm's and the floor's alike.  The rest (RAM, ranges, sample counts) is
 * the same in every run.
 */
static void lat_merge(struct lat *acc, const struct lat *x)
{
	if (!x->ok)
		return;
	if (!acc->ok) {
		*acc = *x;
		return;
	}
	min_rows(acc->us, x->us);
	min_rows(acc->floor_us, x->floor_us);
	acc->bare_us = fmin(acc->bare_us, x->bare_us);
	acc->noop_us = fmin(acc->noop_us, x->noop_us);
}

static void print_latency(const struct lat *disc, const struct lat *defer,
			  const struct lat *b2b, const struct lat *inpl)
{
	const struct lat *ls[2] = { disc, inpl };
	int m, s, d;

	printf("## Guest-visible conversion latency (doorbell `out` to guest resumed)\n\n");
	printf("| mode | size | direction | gmvm us | floor us (syscalls + bare exit) | ratio | goal <= 1.15 |\n");
	printf("|---|---|---|---|---|---|---|\n");
	for (m = 0; m < 2; m++) {
		const struct lat *l = ls[m];

		if (!l->ok) {
			printf("| %s | | | failed | | | |\n", l->name);
			continue;
		}
		for (s = 0; s < LAT_SIZES; s++) {
			for (d = 0; d < 2; d++) {
				double fl = l->floor_us[s][d] + l->bare_us;
				double ratio = l->us[s][d] / fl;

				printf("| %s | %s | to %s | %.1f | %.1f (%.1f + %.1f) | %.2f | %s |\n",
				       l->name, size_names[s],
				       d ? "private" : "shared", l->us[s][d],
				       fl, l->floor_us[s][d], l->bare_us, ratio,
				       bench_goal_mark(ratio <= 1.15));
				printf("BENCH glat mode=%s bytes=%llu dir=%s us=%.2f floor_us=%.2f syscalls_us=%.2f exit_us=%.2f\n",
				       l->name,
				       (unsigned long long)size_bytes[s],
				       d ? "private" : "shared", l->us[s][d],
				       fl, l->floor_us[s][d], l->bare_us);
			}
		}
	}
	printf("\nMedians (samples per direction: %d, %d, %d, %d by size; best of %d runs, gmvm and floor alike). Each round on a range: to shared (timed), the DMA device fills the range, to private (timed); two disjoint ranges take turns. So to-private conversions give back populated shared memory, while to-shared conversions find private memory the guest never wrote (it cannot afford to at ~1 us per emulated instruction). The floor issues the same mprotect/fallocate calls directly, in the same order, with the same population (writes through the shared view before each to-private), on a VM built like gmvm's (guest_memfd + memfd, same two memslots, RAM size %llu MiB, shared_base and offsets) whose vCPU has run once, so that KVM keeps the per-page MMU state (rmaps) every invalidation walks, as in gmvm's VM; it adds the bare port-I/O exit (same guest run). The floor is measured warm, in a tight loop; gmvm's calls run after guest code has been emulated, with colder caches.\n\n",
	       disc->n[0], disc->n[1], disc->n[2], disc->n[3], LAT_REPS,
	       (unsigned long long)(disc->ram / MIB));

	printf("## Deferred reclaim, guest-visible (`--reclaim deferred`)\n\n");
	printf("| size | direction | synchronous floor us | deferred, spaced us | ratio | goal <= 0.3 for >= 2 MiB | deferred, back to back us | ratio |\n");
	printf("|---|---|---|---|---|---|---|---|\n");
	if (!defer->ok || !b2b->ok || !disc->ok) {
		printf("| | | failed | | | | | |\n");
	} else {
		for (s = 0; s < LAT_SIZES; s++) {
			for (d = 0; d < 2; d++) {
				double fl = disc->floor_us[s][d] + disc->bare_us;
				double ratio = defer->us[s][d] / fl;

				printf("| %s | to %s | %.1f | %.1f | %.2f | %s | %.1f | %.2f |\n",
				       size_names[s], d ? "private" : "shared",
				       fl, defer->us[s][d], ratio,
				       s ? bench_goal_mark(ratio <= 0.3) : "(no goal at 4 KiB)",
				       b2b->us[s][d], b2b->us[s][d] / fl);
				printf("BENCH glat mode=deferred bytes=%llu dir=%s us=%.2f floor_us=%.2f b2b_us=%.2f\n",
				       (unsigned long long)size_bytes[s],
				       d ? "private" : "shared",
				       defer->us[s][d], fl, b2b->us[s][d]);
			}
		}
	}
	printf("\nSame guest and rounds as above, `--reclaim deferred`; the floor is the synchronous discard floor of the table above. *Spaced*: after each to-private conversion the guest spins for twice the floor's synchronous to-private time of that size (%.0f us, %.0f us, %.1f ms, %.1f ms), as when the guest converts less often than reclaim takes, so the reclaim thread has finished before the next conversion. *Back to back*: no pause; the next range's to-shared conversion then runs while the reclaim thread punches the previous range (contention in the kernel), and a 1 GiB conversion finds 1 GiB already pending, more than gmvm's 1 GiB reclaim limit, and punches synchronously (back-pressure).\n\n",
	       2 * disc->floor_us[0][1], 2 * disc->floor_us[1][1],
	       2 * disc->floor_us[2][1] / 1e3, 2 * disc->floor_us[3][1] / 1e3);

	printf("## Exit overhead: doorbell hypercall against a bare port-I/O exit\n\n");
	printf("| mode | MAP_GPA_RANGE, nothing to change, us | bare exit (inb COM1 LSR) us | ratio | goal <= 1.10 |\n");
	printf("|---|---|---|---|---|\n");
	{
		const struct lat *all[4] = { disc, defer, b2b, inpl };

		for (m = 0; m < 4; m++) {
			const struct lat *l = all[m];
			double ratio = l->noop_us / l->bare_us;

			if (!l->ok) {
				printf("| %s | failed | | | |\n", l->name);
				continue;
			}
			printf("| %s | %.2f | %.2f | %.2f | %s |\n", l->name,
			       l->noop_us, l->bare_us, ratio,
			       bench_goal_mark(ratio <= 1.10));
			printf("BENCH exit mode=%s noop_us=%.3f bare_us=%.3f\n",
			       l->name, l->noop_us, l->bare_us);
		}
	}
	printf("\nMedians of %s interleaved pairs per run (best of the runs above), guest-measured (TSC read, registers loaded, one port instruction, TSC read: the same instructions for both but the port access). The no-op asks for a page that is already private.\n\n",
	       "300");
}

int main(void)
{
	static const char *const o_disc[] = {
		"--memory", "2112M", "--conversion", "discard", NULL, NULL };
	static const char *const o_b2b[] = {
		"--memory", "2112M", "--conversion", "discard",
		"--reclaim", "deferred", NULL, NULL };
	static const char *const o_inpl[] = {
		"--memory", "2112M", "--conversion", "in-place", NULL, NULL };
	const char *o_defer[16] = {
		"--memory", "2112M", "--conversion", "discard",
		"--reclaim", "deferred", NULL };
	struct lat disc, defer, b2b, inpl;
	char idle[LAT_SIZES][32];
	int s, rep;

	_Static_assert(LAT_RAM == 2112 * MIB, "--memory 2112M");
	bench_gmvm_setup("latency.elf", &host);	/* exits 77 with the reason */

	memset(&disc, 0, sizeof(disc));
	memset(&defer, 0, sizeof(defer));
	memset(&b2b, 0, sizeof(b2b));
	memset(&inpl, 0, sizeof(inpl));
	for (rep = 0; rep < LAT_REPS; rep++) {
		struct lat l;

		lat_run(&l, "discard", o_disc);
		floor_run(&l, false);
		lat_merge(&disc, &l);
		/* Spaced deferred: pause twice the synchronous punch after
		 * each to-private conversion. */
		for (s = 0; s < LAT_SIZES; s++) {
			double us = disc.ok ? 2 * disc.floor_us[s][1] : 0;

			snprintf(idle[s], sizeof(idle[s]), "idle%d=%llu", s,
				 (unsigned long long)(us * 1e3 *
						      bench_tsc_per_ns()));
			o_defer[7 + s] = idle[s];
		}
		o_defer[7 + LAT_SIZES] = NULL;
		lat_run(&l, "deferred", o_defer);
		lat_merge(&defer, &l);
		lat_run(&l, "deferred, back to back", o_b2b);
		lat_merge(&b2b, &l);
		lat_run(&l, "in-place", o_inpl);
		floor_run(&l, true);
		lat_merge(&inpl, &l);
	}
	print_latency(&disc, &defer, &b2b, &inpl);
	return bench_gmvm_finish();
}
