/* SPDX-License-Identifier: MIT */
/*
 * What the guest sees, beside floors measured in the same run: gmvm runs
 * the guests of guest/bench/ and this program parses their "@" lines.
 *
 *  1. Conversion latency, doorbell `out` to guest resumed (guest TSC), for
 *     4 KiB .. 1 GiB both ways, discard and in-place.  Floor: the same
 *     mprotect/fallocate calls issued directly on the same memslot setup
 *     (same RAM size, shared_base, offsets and population), plus the bare
 *     port-I/O exit round trip measured by the same guest run.
 *  2. The same with deferred reclaim, against the synchronous floor.
 *  3. Exit overhead: a MAP_GPA_RANGE that changes nothing against the bare
 *     port-I/O exit, same guest instructions around both.
 *  4. Scaling: conversions per second with 1 and 2 vCPUs on disjoint
 *     ranges, beside the same syscalls from 1 and 2 host threads.
 *  5. Start-up: spawn to first guest instruction for 1 GiB and 16 GiB,
 *     beside a bare KVM VM (this program re-run as --bare-vm SIZE: one
 *     anonymous memslot, one real-mode vCPU); peak RSS; libgmem map bytes.
 *
 * Time: guest TSC cycles are converted with the host TSC rate, calibrated
 * here against CLOCK_MONOTONIC_RAW.  That is only right if the guest TSC
 * is the host TSC; every gmvm run is checked for it: each TSC value the
 * guest reports must lie between the host TSC read right before the spawn
 * and right after the exit.  That rules out the per-VM TSC offset KVM
 * normally applies (a guest TSC would then start near 0), and with host
 * TSC values around 10^13 it bounds a rate difference by the tightest
 * bracket's width over its value (printed).
 *
 * Prints markdown tables and "BENCH" lines (run-bench.sh plots them).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <x86intrin.h>

#include "bench_raw.h"

extern char **environ;

#define MIB		(1ULL << 20)
#define GIB		(1ULL << 30)
/* Two disjoint 1 GiB ranges above gmvm's own area. */
#define LAT_RAM		(2 * GIB + 64 * MIB)
#define LAT_SIZES	4
#define MAX_SAMPLES	512
#define SCALE_ROUNDS	1000
#define SCALE_REPS	3
#define START_REPS	5
#define LAT_REPS	2	/* latency runs: best of, per row */

static char gmvm_path[PATH_MAX + 32], guest_dir[PATH_MAX + 32];
static char self_path[PATH_MAX];
static double tsc_per_ns;
static unsigned int tsc_runs, tsc_bad;
static double tsc_rate_bound = 1;	/* min (h1 - h0) / h0 over checks */
static int failures;
static uint64_t raw_flags;
static enum gmem_layout raw_layout;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench_guest: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	failures++;
}

static uint64_t rdtsc_host(void)
{
	_mm_lfence();
	return __rdtsc();
}

static double mono_raw_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Host TSC cycles per ns, over 200 ms of CLOCK_MONOTONIC_RAW. */
static void calibrate_tsc(void)
{
	double n0 = mono_raw_ns(), n1;
	uint64_t c0 = rdtsc_host(), c1;

	do {
		n1 = mono_raw_ns();
	} while (n1 - n0 < 2e8);
	c1 = rdtsc_host();
	tsc_per_ns = (double)(c1 - c0) / (n1 - n0);
}

static double cyc_us(double cycles)
{
	return cycles / tsc_per_ns / 1e3;
}

/* ---- running gmvm ------------------------------------------------------- */

struct run {
	char *out;		/* stdout, NUL-terminated */
	size_t len;
	int status;		/* exit status, or -1 */
	uint64_t h0, h1;	/* host TSC right before spawn, after exit */
	bool poll_rss;		/* sample /proc/PID/status while it runs */
	long hwm_kib;		/* VmHWM: peak RSS of the process's own mm */
	long rss_kib, anon_kib, file_kib, shmem_kib; /* at the largest VmRSS */
};

static long status_field(const char *buf, const char *key)
{
	const char *p = strstr(buf, key);

	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

/* One sample of /proc/@pid/status (kB values). */
static void sample_rss(pid_t pid, struct run *r)
{
	char path[64], buf[4096];
	ssize_t n;
	long hwm, rss;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	hwm = status_field(buf, "VmHWM:");
	rss = status_field(buf, "VmRSS:");
	if (hwm < 0 || rss < 0)
		return;		/* exiting: no mm any more */
	if (hwm > r->hwm_kib)
		r->hwm_kib = hwm;
	if (rss > r->rss_kib) {
		r->rss_kib = rss;
		r->anon_kib = status_field(buf, "RssAnon:");
		r->file_kib = status_field(buf, "RssFile:");
		r->shmem_kib = status_field(buf, "RssShmem:");
	}
}

static void run_free(struct run *r)
{
	free(r->out);
	r->out = NULL;
}

/*
 * Spawn @argv (stdout captured, stderr inherited) and wait for it; with
 * @poll_rss, sample its memory every millisecond meanwhile.
 */
static int run_cmd(char *const argv[], struct run *r, bool poll_rss)
{
	posix_spawn_file_actions_t fa;
	size_t cap = 1 << 16;
	int p[2], st, err;
	pid_t pid;
	ssize_t n;

	memset(r, 0, sizeof(*r));
	r->status = -1;
	r->poll_rss = poll_rss;
	r->out = malloc(cap);
	if (!r->out || pipe2(p, O_CLOEXEC))
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	r->h0 = rdtsc_host();
	err = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (err) {
		close(p[0]);
		fail("spawn %s: %s", argv[0], strerror(err));
		return -1;
	}
	for (;;) {
		if (cap - r->len < 4096) {
			char *q = realloc(r->out, cap * 2);

			if (!q)
				break;
			r->out = q;
			cap *= 2;
		}
		if (poll_rss) {
			struct pollfd pfd = { .fd = p[0], .events = POLLIN };

			sample_rss(pid, r);
			if (poll(&pfd, 1, 1) == 0)
				continue;
		}
		n = read(p[0], r->out + r->len, cap - r->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		r->len += (size_t)n;
	}
	r->out[r->len] = '\0';
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	r->h1 = rdtsc_host();
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	if (r->status) {
		fail("%s %s ... exited with status %d; its output:\n%s",
		     argv[0], argv[1], r->status, r->out);
		return -1;
	}
	return 0;
}

/* The line "@ TAG ..." after @from: pointer past "@ TAG", or NULL. */
static const char *find_tag(const char *from, const char *tag)
{
	size_t n = strlen(tag);
	const char *p = from;

	while ((p = strstr(p, "@ ")) != NULL) {
		if ((p == from || p[-1] == '\n') && !strncmp(p + 2, tag, n) &&
		    (p[2 + n] == ' ' || p[2 + n] == '\n'))
			return p + 2 + n;
		p += 2;
	}
	return NULL;
}

/* Hex numbers up to the end of the line; returns how many. */
static int parse_hex(const char *p, uint64_t *v, int max)
{
	int n = 0;

	while (n < max) {
		char *end;

		while (*p == ' ')
			p++;
		if (*p == '\n' || !*p)
			break;
		v[n] = strtoull(p, &end, 16);
		if (end == p)
			break;
		n++;
		p = end;
	}
	return n;
}

/* A guest TSC value must lie within the run's host TSC bracket. */
static void tsc_check(const struct run *r, uint64_t guest_tsc)
{
	tsc_runs++;
	if ((double)(r->h1 - r->h0) / (double)r->h0 < tsc_rate_bound)
		tsc_rate_bound = (double)(r->h1 - r->h0) / (double)r->h0;
	if (guest_tsc <= r->h0 || guest_tsc >= r->h1) {
		tsc_bad++;
		fail("guest TSC %#llx outside the host bracket [%#llx, %#llx]: the guest TSC is not the host TSC here, cycle conversions are wrong",
		     (unsigned long long)guest_tsc,
		     (unsigned long long)r->h0, (unsigned long long)r->h1);
	}
}

static double median_cycles(const uint64_t *v, int n)
{
	double d[MAX_SAMPLES];
	int i;

	for (i = 0; i < n; i++)
		d[i] = (double)v[i];
	return bench_median(d, n);
}

static int start_gmvm(struct run *r, const char *guest, const char *const *opts)
{
	char elf[PATH_MAX + 96];
	char *argv[32];
	int n = 0;

	snprintf(elf, sizeof(elf), "%s/%s", guest_dir, guest);
	argv[n++] = gmvm_path;
	argv[n++] = (char *)"run";
	argv[n++] = (char *)"--timeout";
	argv[n++] = (char *)"300";
	for (; *opts && n < 24; opts++)
		argv[n++] = (char *)*opts;
	argv[n++] = elf;
	while (*++opts && n < 31)
		argv[n++] = (char *)*opts;
	argv[n] = NULL;
	return run_cmd(argv, r, false);
}

/* ---- 1-3: latency, deferred reclaim, exit overhead ---------------------- */

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
	bool ok;
};

/* gmvm run of latency.elf with @opts (NULL-terminated, then guest args). */
static void lat_run(struct lat *l, const char *name, const char *const *opts)
{
	uint64_t v[MAX_SAMPLES], first, last;
	const char *p;
	struct run r;
	int s, d, n;

	memset(l, 0, sizeof(*l));
	l->name = name;
	fprintf(stderr, "bench_guest: latency, %s\n", name);
	if (start_gmvm(&r, "latency.elf", opts))
		goto out;
	if (!(p = find_tag(r.out, "tsc")) || parse_hex(p, &first, 1) != 1 ||
	    !(p = find_tag(p, "tsc")) || parse_hex(p, &last, 1) != 1 ||
	    !find_tag(r.out, "done")) {
		fail("latency.elf (%s): incomplete output:\n%s", name, r.out);
		goto out;
	}
	tsc_check(&r, first);
	tsc_check(&r, last);
	if (!(p = find_tag(r.out, "info")) || parse_hex(p, v, 4) != 4)
		goto bad;
	l->ram = v[0];
	l->shared_base = v[1];
	if (!(p = find_tag(r.out, "bare")) ||
	    (n = parse_hex(p, v, MAX_SAMPLES)) < 1)
		goto bad;
	l->bare_us = cyc_us(median_cycles(v, n));
	if (!(p = find_tag(r.out, "noop")) ||
	    (n = parse_hex(p, v, MAX_SAMPLES)) < 1)
		goto bad;
	l->noop_us = cyc_us(median_cycles(v, n));
	for (s = 0; s < LAT_SIZES; s++) {
		char tag[64];

		p = r.out;
		while ((p = find_tag(p, "area")) != NULL) {
			if (parse_hex(p, v, 3) == 3 && v[0] == size_bytes[s])
				break;
		}
		if (!p)
			goto bad;
		l->area[s][0] = v[1];
		l->area[s][1] = v[2];
		for (d = 0; d < 2; d++) {
			snprintf(tag, sizeof(tag), "lat %llx %s",
				 (unsigned long long)size_bytes[s],
				 d ? "private" : "shared");
			if (!(p = find_tag(r.out, tag)) ||
			    (n = parse_hex(p, v, MAX_SAMPLES)) < 1)
				goto bad;
			l->n[s] = n;
			l->us[s][d] = cyc_us(median_cycles(v, n));
		}
	}
	l->ok = true;
	goto out;
bad:
	fail("latency.elf (%s): unexpected output:\n%s", name, r.out);
out:
	run_free(&r);
}

struct floor {
	double us[LAT_SIZES][2];
	bool ok;
};

/*
 * The syscall floor for the rows of @l, which ran in the mode @in_place:
 * same RAM, shared_base, ranges, sample counts and population (the shared
 * view written before each to-private conversion, as the DMA device did).
 */
static void floor_run(struct floor *f, const struct lat *l, bool in_place)
{
	double t[2][MAX_SAMPLES];
	struct raw r;
	int s, i, d;

	memset(f, 0, sizeof(*f));
	if (!l->ok)
		return;
	fprintf(stderr, "bench_guest: syscall floor, %s\n",
		in_place ? "in-place" : "discard");
	raw_create(&r, in_place, l->ram, l->shared_base, raw_flags,
		   raw_layout);
	raw_run_vcpu(&r);
	for (s = 0; s < LAT_SIZES; s++) {
		uint64_t len = size_bytes[s];

		for (i = 0; i < l->n[s]; i++) {
			uint64_t off = l->area[s][i & 1];
			double t0;

			t0 = bench_now_us();
			raw_convert(&r, off, len, true);
			t[0][i] = bench_now_us() - t0;
			bench_touch(r.shared + off, len);
			t0 = bench_now_us();
			raw_convert(&r, off, len, false);
			t[1][i] = bench_now_us() - t0;
		}
		for (d = 0; d < 2; d++)
			f->us[s][d] = bench_median(t[d], l->n[s]);
	}
	raw_destroy(&r);
	f->ok = true;
}

/* Best of several runs: per row, the smallest median. */
static void min_rows(double acc[LAT_SIZES][2], const double x[LAT_SIZES][2])
{
	int s, d;

	for (s = 0; s < LAT_SIZES; s++)
		for (d = 0; d < 2; d++)
			acc[s][d] = fmin(acc[s][d], x[s][d]);
}

static void lat_merge(struct lat *acc, const struct lat *x)
{
	if (!x->ok)
		return;
	if (!acc->ok) {
		*acc = *x;
		return;
	}
	min_rows(acc->us, x->us);
	acc->bare_us = fmin(acc->bare_us, x->bare_us);
	acc->noop_us = fmin(acc->noop_us, x->noop_us);
}

static void floor_merge(struct floor *acc, const struct floor *x)
{
	if (!x->ok)
		return;
	if (!acc->ok) {
		*acc = *x;
		return;
	}
	min_rows(acc->us, x->us);
}

static const char *goal_mark(bool met)
{
	return met ? "met" : "**missed**";
}

static void print_latency(const struct lat *disc, const struct lat *defer,
			  const struct lat *b2b, const struct lat *inpl,
			  const struct floor *fd, const struct floor *fi)
{
	const struct lat *ls[2] = { disc, inpl };
	const struct floor *fs[2] = { fd, fi };
	int m, s, d;

	printf("## Guest-visible conversion latency (doorbell `out` to guest resumed)\n\n");
	printf("| mode | size | direction | gmvm us | floor us (syscalls + bare exit) | ratio | goal <= 1.15 |\n");
	printf("|---|---|---|---|---|---|---|\n");
	for (m = 0; m < 2; m++) {
		const struct lat *l = ls[m];
		const struct floor *f = fs[m];

		if (!l->ok || !f->ok) {
			printf("| %s | | | failed | | | |\n", l->name);
			continue;
		}
		for (s = 0; s < LAT_SIZES; s++) {
			for (d = 0; d < 2; d++) {
				double fl = f->us[s][d] + l->bare_us;
				double ratio = l->us[s][d] / fl;

				printf("| %s | %s | to %s | %.1f | %.1f (%.1f + %.1f) | %.2f | %s |\n",
				       l->name, size_names[s],
				       d ? "private" : "shared", l->us[s][d],
				       fl, f->us[s][d], l->bare_us, ratio,
				       goal_mark(ratio <= 1.15));
				printf("BENCH glat mode=%s bytes=%llu dir=%s us=%.2f floor_us=%.2f syscalls_us=%.2f exit_us=%.2f\n",
				       l->name,
				       (unsigned long long)size_bytes[s],
				       d ? "private" : "shared", l->us[s][d],
				       fl, f->us[s][d], l->bare_us);
			}
		}
	}
	printf("\nMedians (samples per direction: %d, %d, %d, %d by size; best of %d runs, gmvm and floor alike). Each round on a range: to shared (timed), the DMA device fills the range, to private (timed); two disjoint ranges take turns. So to-private conversions give back populated shared memory, while to-shared conversions find private memory the guest never wrote (it cannot afford to at ~1 us per emulated instruction). The floor issues the same mprotect/fallocate calls directly, in the same order, with the same population (writes through the shared view before each to-private), on a VM built like gmvm's (guest_memfd + memfd, same two memslots, RAM size %llu MiB, shared_base and offsets) whose vCPU has run once, so that KVM keeps the per-page MMU state (rmaps) every invalidation walks, as in gmvm's VM; it adds the bare port-I/O exit (same guest run). The floor is measured warm, in a tight loop; gmvm's calls run after guest code has been emulated, with colder caches.\n\n",
	       disc->n[0], disc->n[1], disc->n[2], disc->n[3], LAT_REPS,
	       (unsigned long long)(disc->ram / MIB));

	printf("## Deferred reclaim, guest-visible (`--reclaim deferred`)\n\n");
	printf("| size | direction | synchronous floor us | deferred, spaced us | ratio | goal <= 0.3 for >= 2 MiB | deferred, back to back us | ratio |\n");
	printf("|---|---|---|---|---|---|---|---|\n");
	if (!defer->ok || !b2b->ok || !fd->ok || !disc->ok) {
		printf("| | | failed | | | | | |\n");
	} else {
		for (s = 0; s < LAT_SIZES; s++) {
			for (d = 0; d < 2; d++) {
				double fl = fd->us[s][d] + disc->bare_us;
				double ratio = defer->us[s][d] / fl;

				printf("| %s | to %s | %.1f | %.1f | %.2f | %s | %.1f | %.2f |\n",
				       size_names[s], d ? "private" : "shared",
				       fl, defer->us[s][d], ratio,
				       s ? goal_mark(ratio <= 0.3) : "(no goal at 4 KiB)",
				       b2b->us[s][d], b2b->us[s][d] / fl);
				printf("BENCH glat mode=deferred bytes=%llu dir=%s us=%.2f floor_us=%.2f b2b_us=%.2f\n",
				       (unsigned long long)size_bytes[s],
				       d ? "private" : "shared",
				       defer->us[s][d], fl, b2b->us[s][d]);
			}
		}
	}
	printf("\nSame guest and rounds as above, `--reclaim deferred`; the floor is the synchronous discard floor of the table above. *Spaced*: after each to-private conversion the guest spins for twice the floor's synchronous to-private time of that size (%.0f us, %.0f us, %.1f ms, %.1f ms), as when the guest converts less often than reclaim takes, so the reclaim thread has finished before the next conversion. *Back to back*: no pause; the next range's to-shared conversion then runs while the reclaim thread punches the previous range (contention in the kernel), and a 1 GiB conversion finds 1 GiB already pending, more than gmvm's 1 GiB reclaim limit, and punches synchronously (back-pressure).\n\n",
	       2 * fd->us[0][1], 2 * fd->us[1][1], 2 * fd->us[2][1] / 1e3,
	       2 * fd->us[3][1] / 1e3);

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
			       goal_mark(ratio <= 1.10));
			printf("BENCH exit mode=%s noop_us=%.3f bare_us=%.3f\n",
			       l->name, l->noop_us, l->bare_us);
		}
	}
	printf("\nMedians of %s interleaved pairs per run (best of the runs above), guest-measured (TSC read, registers loaded, one port instruction, TSC read: the same instructions for both but the port access). The no-op asks for a page that is already private.\n\n",
	       "300");
}

/* ---- 4: scaling --------------------------------------------------------- */

/* Conversions per second of gmvm with @nr vCPUs (scale.elf). */
static double scale_gmvm(unsigned int nr)
{
	char vcpus[16], rounds[32];
	const char *opts[] = { "--vcpus", vcpus, NULL, rounds, NULL };
	uint64_t v[3 + 16], lo = UINT64_MAX, hi = 0;
	double rate = 0;
	const char *p;
	struct run r;
	unsigned int i;
	int n;

	snprintf(vcpus, sizeof(vcpus), "%u", nr);
	snprintf(rounds, sizeof(rounds), "rounds=%d", SCALE_ROUNDS);
	if (start_gmvm(&r, "scale.elf", opts))
		goto out;
	if (!(p = find_tag(r.out, "scale")) ||
	    (n = parse_hex(p, v, 3 + 16)) != 3 + 2 * (int)nr || v[0] != nr) {
		fail("scale.elf: unexpected output:\n%s", r.out);
		goto out;
	}
	for (i = 0; i < nr; i++) {
		tsc_check(&r, v[3 + 2 * i]);
		tsc_check(&r, v[4 + 2 * i]);
		lo = v[3 + 2 * i] < lo ? v[3 + 2 * i] : lo;
		hi = v[4 + 2 * i] > hi ? v[4 + 2 * i] : hi;
	}
	rate = (double)nr * 2 * (double)v[1] / (cyc_us((double)(hi - lo)) / 1e6);
out:
	run_free(&r);
	return rate;
}

struct scale_thread {
	struct raw *raw;
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
		raw_convert(t->raw, t->off, 4096, true);
		raw_convert(t->raw, t->off, 4096, false);
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
	struct raw r;
	unsigned int i;

	/* gmvm's default RAM (256 MiB), so shared_base 256 MiB. */
	raw_create(&r, false, 256 * MIB, 256 * MIB, raw_flags, raw_layout);
	raw_run_vcpu(&r);
	pthread_barrier_init(&bar, NULL, nr);
	for (i = 0; i < nr; i++) {
		t[i] = (struct scale_thread){ &r, (2 + 2 * i) * MIB, &bar, 0, 0 };
		pthread_create(&th[i], NULL, scale_worker, &t[i]);
	}
	for (i = 0; i < nr; i++) {
		pthread_join(th[i], NULL);
		lo = t[i].t0 < lo ? t[i].t0 : lo;
		hi = t[i].t1 > hi ? t[i].t1 : hi;
	}
	pthread_barrier_destroy(&bar);
	raw_destroy(&r);
	return nr * 2.0 * SCALE_ROUNDS / ((hi - lo) / 1e6);
}

static void print_scaling(void)
{
	double g[2][SCALE_REPS], f[2][SCALE_REPS], gm[2], fm[2];
	int rep, k;

	fprintf(stderr, "bench_guest: scaling\n");
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
		       goal_mark(gm[1] / gm[0] >= 1.6));
	else
		printf("| gmvm, guest MAP_GPA_RANGE | failed | | | |\n");
	printf("| floor: the syscalls from 1 / 2 host threads | %.0f | %.0f | %.2f | |\n",
	       fm[0], fm[1], fm[1] / fm[0]);
	printf("BENCH scale gmvm1=%.0f gmvm2=%.0f floor1=%.0f floor2=%.0f\n",
	       gm[0], gm[1], fm[0], fm[1]);
	printf("\nEach vCPU (thread) converts its own 4 KiB page, 2 MiB apart from the other's, to shared and back %d times, discard mode, memory never written; conversions per second over the span from the first start to the last end (guest TSC), median of %d runs.\n\n",
	       SCALE_ROUNDS, SCALE_REPS);
}

/* ---- 5: start-up -------------------------------------------------------- */

/*
 * --bare-vm SIZE: the floor of starting a VM.  One KVM VM, SIZE bytes of
 * anonymous memory (never touched but one page) as one memslot, one vCPU
 * in real mode at 0x1000 whose first instruction reads the TSC; the port
 * exit that follows carries it out in EDX:EAX.
 */
static int bare_vm(uint64_t size)
{
	static const uint8_t code[] = {
		0x0f, 0x31,		/* rdtsc */
		0xe6, 0xf4,		/* out %al, $0xf4 */
		0xf4,			/* hlt */
	};
	struct kvm_userspace_memory_region region = { 0 };
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_run *run;
	int kvm, vm, vcpu;
	long run_size;
	uint8_t *mem;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return 2;
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return 3;
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return 4;
	memcpy(mem + 0x1000, code, sizeof(code));
	region.memory_size = size;
	region.userspace_addr = (uintptr_t)mem;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region))
		return 5;
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vcpu < 0 || run_size <= 0)
		return 6;
	run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   vcpu, 0);
	if (run == MAP_FAILED || ioctl(vcpu, KVM_GET_SREGS, &sregs))
		return 7;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	memset(&regs, 0, sizeof(regs));
	regs.rip = 0x1000;
	regs.rflags = 0x2;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) ||
	    ioctl(vcpu, KVM_SET_REGS, &regs))
		return 8;
	if (ioctl(vcpu, KVM_RUN, 0) || run->exit_reason != KVM_EXIT_IO ||
	    ioctl(vcpu, KVM_GET_REGS, &regs))
		return 9;
	printf("@ start %llx\n", (unsigned long long)
	       ((regs.rdx & 0xffffffffULL) << 32 | (regs.rax & 0xffffffffULL)));
	fflush(stdout);
	/* Stay ~50 ms, as the gmvm guest does, for the RSS samples. */
	{
		double t0 = mono_raw_ns();

		while (mono_raw_ns() - t0 < 5e7)
			;
	}
	return 0;
}

struct start {
	double ms;		/* median spawn to first guest instruction */
	double hwm, anon, file, shmem;	/* medians, KiB */
	long long map_bytes;
	bool ok;
};

static void start_measure(struct start *st, uint64_t size, bool gmvm)
{
	double ms[START_REPS], hwm[START_REPS], anon[START_REPS];
	double file[START_REPS], shmem[START_REPS];
	char mem[32], elf[PATH_MAX + 96];
	int rep;

	memset(st, 0, sizeof(*st));
	st->map_bytes = -1;
	snprintf(elf, sizeof(elf), "%s/startup.elf", guest_dir);
	snprintf(mem, sizeof(mem), gmvm ? "%lluG" : "%llu",
		 (unsigned long long)(gmvm ? size / GIB : size));
	for (rep = 0; rep < START_REPS; rep++) {
		char *gargv[] = { gmvm_path, (char *)"run", (char *)"--memory",
				  mem, (char *)"--stats=json", elf, NULL };
		char *bargv[] = { self_path, (char *)"--bare-vm", mem, NULL };
		uint64_t tsc;
		const char *p;
		struct run r;

		if (run_cmd(gmvm ? gargv : bargv, &r, true))
			return;
		if (!(p = find_tag(r.out, "start")) ||
		    parse_hex(p, &tsc, 1) != 1 || r.hwm_kib <= 0) {
			fail("start-up (%s): no start line or no RSS sample:\n%s",
			     gmvm ? "gmvm" : "bare VM", r.out);
			run_free(&r);
			return;
		}
		tsc_check(&r, tsc);
		ms[rep] = cyc_us((double)(tsc - r.h0)) / 1e3;
		hwm[rep] = (double)r.hwm_kib;
		anon[rep] = (double)r.anon_kib;
		file[rep] = (double)r.file_kib;
		shmem[rep] = (double)r.shmem_kib;
		if (gmvm && (p = strstr(r.out, "\"map_bytes\": ")))
			st->map_bytes = strtoll(p + 13, NULL, 10);
		run_free(&r);
	}
	st->ms = bench_median(ms, START_REPS);
	st->hwm = bench_median(hwm, START_REPS);
	st->anon = bench_median(anon, START_REPS);
	st->file = bench_median(file, START_REPS);
	st->shmem = bench_median(shmem, START_REPS);
	st->ok = true;
}

static void print_startup(void)
{
	static const uint64_t sizes[2] = { GIB, 16 * GIB };
	struct start g[2], b[2];
	int s;

	fprintf(stderr, "bench_guest: start-up\n");
	for (s = 0; s < 2; s++) {
		start_measure(&b[s], sizes[s], false);
		start_measure(&g[s], sizes[s], true);
	}
	printf("## Start-up: spawn to the first guest instruction, and memory before the guest touches any\n\n");
	printf("| memory | gmvm ms | bare KVM VM ms | ratio | gmvm peak RSS KiB (anon / file / shmem) | bare VM peak RSS KiB | libgmem map bytes | map bytes per GiB |\n");
	printf("|---|---|---|---|---|---|---|---|\n");
	for (s = 0; s < 2; s++) {
		unsigned long long gib = sizes[s] / GIB;

		if (!g[s].ok || !b[s].ok) {
			printf("| %llu GiB | failed | | | | | | |\n", gib);
			continue;
		}
		printf("| %llu GiB | %.1f | %.1f | %.1f | %.0f (%.0f / %.0f / %.0f) | %.0f | %lld | %.1f |\n",
		       gib, g[s].ms, b[s].ms, g[s].ms / b[s].ms, g[s].hwm,
		       g[s].anon, g[s].file, g[s].shmem, b[s].hwm,
		       g[s].map_bytes, (double)g[s].map_bytes / (double)gib);
		printf("BENCH start gib=%llu gmvm_ms=%.2f bare_ms=%.2f gmvm_hwm_kib=%.0f bare_hwm_kib=%.0f map_bytes=%lld\n",
		       gib, g[s].ms, b[s].ms, g[s].hwm, b[s].hwm,
		       g[s].map_bytes);
	}
	if (g[0].ok && g[1].ok && b[0].ok && b[1].ok)
		printf("\nPer GiB of guest RAM, (16 GiB - 1 GiB) / 15: gmvm peak RSS %.1f KiB, bare VM %.1f KiB, libgmem map %.1f bytes.",
		       (g[1].hwm - g[0].hwm) / 15.0,
		       (b[1].hwm - b[0].hwm) / 15.0,
		       (double)(g[1].map_bytes - g[0].map_bytes) / 15.0);
	printf(" Medians of %d runs. Start: the host TSC read right before posix_spawn(); first instruction: the guest's TSC read by the instruction at the ELF entry (guest/bench/startup.S), printed afterwards. The bare VM is this program re-executed (`--bare-vm SIZE`): KVM_CREATE_VM, one anonymous memslot of SIZE, one vCPU in real mode whose first instruction reads the TSC. RSS: VmHWM of the process's own mm (sampled from /proc every millisecond while the guest spins for ~50 ms after its first instruction), which includes the guest memory gmvm itself wrote (image, page tables, boot info, stacks). Kernel-side KVM memslot metadata (e.g. rmaps, once a vCPU runs) is not in RSS.\n\n",
	       START_REPS);
}

/* ---- main ---------------------------------------------------------------- */

static int find_paths(const char *argv0)
{
	char dir[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", self_path,
			     sizeof(self_path) - 1);

	if (n <= 0)
		return -1;
	self_path[n] = '\0';
	/* $(BUILD)/bench/bench_guest -> $(BUILD) */
	snprintf(dir, sizeof(dir), "%s", self_path);
	if (!(slash = strrchr(dir, '/')))
		return -1;
	*slash = '\0';
	if (!(slash = strrchr(dir, '/')))
		return -1;
	*slash = '\0';
	snprintf(gmvm_path, sizeof(gmvm_path), "%s/gmvm", dir);
	snprintf(guest_dir, sizeof(guest_dir), "%s/guest/bench", dir);
	(void)argv0;
	return 0;
}

int main(int argc, char **argv)
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
	struct floor fd, fi;
	char elf[PATH_MAX + 96];
	bool want_latency = false, want_scaling = false, want_startup = false;
	int s, rep;

	if (argc == 3 && !strcmp(argv[1], "--bare-vm"))
		return bare_vm(strtoull(argv[2], NULL, 0));
	_Static_assert(LAT_RAM == 2112 * MIB, "--memory 2112M");

	test_require_gmem();	/* exits 77 with the reason */
	if (find_paths(argv[0]))
		test_skip("cannot find this program's path");
	snprintf(elf, sizeof(elf), "%s/latency.elf", guest_dir);
	if (access(gmvm_path, X_OK) || access(elf, R_OK))
		test_skip("%s or %s missing: build with make bench", gmvm_path,
			  elf);
	raw_probe(&raw_flags, &raw_layout);
	calibrate_tsc();

	/* Arguments (for development): the sections to run, all if none. */
	for (s = 1; s < argc; s++) {
		if (!strcmp(argv[s], "latency"))
			want_latency = true;
		else if (!strcmp(argv[s], "scaling"))
			want_scaling = true;
		else if (!strcmp(argv[s], "startup"))
			want_startup = true;
		else
			test_skip("usage: %s [latency] [scaling] [startup]",
				  argv[0]);
	}
	if (argc == 1)
		want_latency = want_scaling = want_startup = true;
	if (!want_latency)
		goto scaling;

	memset(&disc, 0, sizeof(disc));
	memset(&defer, 0, sizeof(defer));
	memset(&b2b, 0, sizeof(b2b));
	memset(&inpl, 0, sizeof(inpl));
	memset(&fd, 0, sizeof(fd));
	memset(&fi, 0, sizeof(fi));
	for (rep = 0; rep < LAT_REPS; rep++) {
		struct lat l;
		struct floor f;

		lat_run(&l, "discard", o_disc);
		floor_run(&f, &l, false);
		lat_merge(&disc, &l);
		floor_merge(&fd, &f);
		/* Spaced deferred: pause twice the synchronous punch after
		 * each to-private conversion. */
		for (s = 0; s < LAT_SIZES; s++) {
			double us = fd.ok ? 2 * fd.us[s][1] : 0;

			snprintf(idle[s], sizeof(idle[s]), "idle%d=%llu", s,
				 (unsigned long long)(us * 1e3 * tsc_per_ns));
			o_defer[7 + s] = idle[s];
		}
		o_defer[7 + LAT_SIZES] = NULL;
		lat_run(&l, "deferred", o_defer);
		lat_merge(&defer, &l);
		lat_run(&l, "deferred, back to back", o_b2b);
		lat_merge(&b2b, &l);
		lat_run(&l, "in-place", o_inpl);
		floor_run(&f, &l, true);
		lat_merge(&inpl, &l);
		floor_merge(&fi, &f);
	}
	print_latency(&disc, &defer, &b2b, &inpl, &fd, &fi);
	fflush(stdout);
scaling:
	if (want_scaling)
		print_scaling();
	fflush(stdout);
	if (want_startup)
		print_startup();

	printf("Guest TSC cycles are converted at the host TSC rate, %.2f MHz (calibrated against CLOCK_MONOTONIC_RAW over 200 ms). The guest TSC is the host TSC here: in %u of %u checks a TSC value reported by a guest lay between the host TSC read right before gmvm was spawned and right after it exited",
	       tsc_per_ns * 1e3, tsc_runs - tsc_bad, tsc_runs);
	if (tsc_bad || !tsc_runs)
		printf(" (**not all: cycle figures are not trustworthy**).\n\n");
	else
		printf("; so the guest TSC has no offset (KVM's usual per-VM offset would make it start near 0), and its rate is the host's within %.0e (the tightest bracket's width over its value).\n\n",
		       tsc_rate_bound);
	return failures ? 1 : 0;
}
