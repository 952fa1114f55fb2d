/* SPDX-License-Identifier: MIT */
/*
 * Scaling past the mmap lock (issue 13, item 5), host side, without KVM.
 *
 * The emulated backend gates a page with the protections of two views of
 * guest memory: a conversion revokes the old view (PROT_NONE), grants the
 * new one (PROT_READ|PROT_WRITE) and, in discard mode, punches the old
 * backing.  Every mprotect() takes the process's mmap_lock for writing and
 * splits or merges a VMA, so two vCPUs converting unrelated ranges queue
 * in the kernel (bench_guest_scaling).  That lock belongs to the host mm,
 * not to KVM, so whether another gate scales can be measured here: two
 * views of one memfd (the private backing at [0, RAM), the shared one at
 * [RAM, 2 RAM)), converted by host threads.  The gates:
 *
 *  mprotect      libgmem's: mprotect(old, NONE), mprotect(new, RW).
 *  group commit  the same calls, but whichever thread holds the combiner
 *                issues those of every conversion in flight (all revokes,
 *                then all grants, adjacent runs merged): batching the
 *                revokes of several vCPUs.
 *  guard         MADV_GUARD_INSTALL on the old view (its PTEs become guard
 *                markers: any access, GUP's included, fails as on
 *                PROT_NONE), MADV_GUARD_REMOVE on the new one; the VMA
 *                never changes.
 *  uffd          userfaultfd minor + missing mode on both views:
 *                MADV_DONTNEED zaps the old view (the page stays in the
 *                memfd; the next access faults to the handler, which
 *                refuses it while the page is in the other state),
 *                UFFDIO_CONTINUE maps the new one (UFFDIO_ZEROPAGE where
 *                its backing is a hole).
 *  uffd lazy     the same without the grant: the first access faults and
 *                the handler maps the page.
 *  no gate       neither revoke nor grant, both views open: the rest of a
 *                conversion, which no gate can make scale better.
 *  zap only      MADV_DONTNEED of the old view, nothing else: the PTE zap
 *                (and TLB flush) any revoke of a mapped page needs, under
 *                no mmap lock; not a gate (any access maps the page back).
 *  CPU loop      no system call at all, timed beside every row: whether
 *                the machine could run two threads at once right then.
 *
 * A conversion: revoke, grant, with "punch" fallocate(PUNCH_HOLE) of the
 * old backing, then, in the first table, one write through the new view
 * (the guest uses what it converted; the write also charges mprotect and
 * guard the fault that uffd's grant takes up front); the second table
 * never writes, as bench_guest_scaling's floor.  Each of 1 or 2 threads
 * converts its own 4 KiB page, 2 MiB from the other's, to shared and
 * back; the figure is the span from the first thread's start to the last
 * one's end; thread i runs on CPU i.  Every run is on a fresh memfd and
 * views; rows and thread counts are interleaved within each repetition,
 * and the figures are medians over the repetitions (the ratio is the
 * median of each repetition's own ratio): these machines are shared and
 * noisy, so a CPU loop timed the same way right beside each row says how
 * much parallelism the machine gave at that moment, and each ratio is
 * also given over that one.
 *
 * More than the mmap lock can slow two threads: revoking a mapped page
 * means a TLB shootdown on every CPU running the process, whatever the
 * gate, and on a virtual machine page-table work on one vCPU may slow
 * while the other runs anything at all.  So a machine table times a CPU
 * loop, a system call and a PTE zap alone and beside a busy thread or
 * process, and a last table sorts out which system calls wait for the
 * mmap lock, and in which mode: each timed alone and while another
 * thread holds the lock, for writing or for reading, for milliseconds at
 * a time.
 *
 * Before any timing each gate is checked to gate: a revoked page faults
 * (SIGSEGV, or for uffd an event the handler refuses while the access
 * waits), so does GUP on it (process_vm_readv(), the path of KVM's
 * hva_to_pfn()), the page tables say so (pagemap), reading the neighbour
 * page does not map it (fault-around), and a granted page reads what its
 * backing holds.  A gate that fails is marked in the table and the
 * program exits 1 after printing it.
 *
 * Exits 77, after the tables of what it could measure, when the host
 * lacks a gate (userfaultfd minor faults on shmem, guard regions on
 * shmem), with the reason.
 *
 * This file times the gates and prints the tables; the gate, the checks,
 * the machine and the lock measurements are bench/gating/'s (gating.h).
 */
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "gating/gating.h"

#define ROUNDS 1000		/* timed conversions per thread and run */
#define WARMUP 100		/* untimed, before them; even: ends private */
#define REPS 7

/* Why a gate cannot run on this host (NULL: it can); if it failed a check. */
static const char *unavailable[NR_METHODS];
static bool check_failed[NR_METHODS];

/* ---- timing -------------------------------------------------------------- */

struct worker {
	struct gate *g;
	int slot;
	uint64_t off;
	bool write;
	pthread_barrier_t *bar;
	double t0, t1;
	pthread_t th;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	int i;

	gating_pin(w->slot);
	for (i = 0; i < WARMUP; i++)
		gating_convert(w->g, w->slot, w->off, i & 1 ? PRIV : SHARED,
			       w->write);
	pthread_barrier_wait(w->bar);
	w->t0 = bench_now_us();
	for (i = 0; i < ROUNDS; i++)
		gating_convert(w->g, w->slot, w->off, i & 1 ? PRIV : SHARED,
			       w->write);
	w->t1 = bench_now_us();
	return NULL;
}

/*
 * Microseconds per conversion, all threads together, of @nr threads on a
 * fresh gate, each converting its own page.
 */
static double run_threads(enum method m, bool punch, bool write, int nr)
{
	struct worker w[NR_WORKERS];
	pthread_barrier_t bar;
	double lo = 1e300, hi = 0;
	struct gate g;
	int i;

	gating_gate_init(&g, m, punch);
	pthread_barrier_init(&bar, NULL, (unsigned int)nr);
	for (i = 0; i < nr; i++) {
		w[i] = (struct worker){ .g = &g, .slot = i,
					.off = (2 + 2 * (uint64_t)i) * MIB,
					.write = write, .bar = &bar };
		if (pthread_create(&w[i].th, NULL, worker_run, &w[i]))
			bench_die("pthread_create failed");
	}
	for (i = 0; i < nr; i++) {
		pthread_join(w[i].th, NULL);
		lo = w[i].t0 < lo ? w[i].t0 : lo;
		hi = w[i].t1 > hi ? w[i].t1 : hi;
	}
	pthread_barrier_destroy(&bar);
	if (gating_is_uffd(m) && atomic_load(&g.refused))
		bench_die("%s: %d accesses refused while timing",
			  gating_methods[m].key, atomic_load(&g.refused));
	gating_gate_fini(&g);
	return (hi - lo) / (nr * ROUNDS);
}

/* ---- main ---------------------------------------------------------------- */

/*
 * What is timed: every gate with the page written after each grant (the
 * guest uses it), then never written, so that no revoke finds a PTE to
 * shoot down (bench_guest_scaling's floor converts such memory): the
 * gate's calls and the punch alone.  Lazy uffd grants nothing until an
 * access, so it has no row of the second kind.
 */
static const struct row {
	enum method m;
	bool punch, write;
} rows[] = {
	{ M_MPROTECT, false, true }, { M_MPROTECT, true, true },
	{ M_GROUP, false, true }, { M_GROUP, true, true },
	{ M_GUARD, false, true }, { M_GUARD, true, true },
	{ M_UFFD, false, true }, { M_UFFD, true, true },
	{ M_UFFD_LAZY, false, true }, { M_UFFD_LAZY, true, true },
	{ M_NONE, true, true },
	{ M_ZAP, false, true },
	{ M_MPROTECT, false, false }, { M_MPROTECT, true, false },
	{ M_GROUP, false, false }, { M_GROUP, true, false },
	{ M_GUARD, false, false }, { M_GUARD, true, false },
	{ M_UFFD, false, false }, { M_UFFD, true, false },
	{ M_NONE, true, false },
};
#define NR_ROWS (sizeof(rows) / sizeof(rows[0]))

struct sample {
	double us[2][REPS];	/* 1 thread, 2 threads */
	double ratio[REPS];	/* per repetition: us[0] / us[1] */
	double cpu[REPS];	/* the CPU loop's ratio, right beside */
	double share[REPS];	/* ratio / cpu: of what the machine gave */
};

static struct sample samples[NR_ROWS];

static void probe_gates(void)
{
	const char *why = NULL;
	int fd = bench_memfd("gating-probe", 4 * PAGE), uffd;
	uint8_t *p;

	gating_must(fd, "memfd");
	p = mmap(NULL, 4 * PAGE, RW, MAP_SHARED, fd, 0);
	gating_must(p == MAP_FAILED ? -1 : 0, "mmap");
	if (madvise(p, PAGE, MADV_GUARD_INSTALL))
		unavailable[M_GUARD] = "no guard regions on shmem "
				       "(MADV_GUARD_INSTALL: Linux 6.13, "
				       "on shmem 6.15)";
	uffd = gating_uffd_open(&why);
	if (uffd >= 0) {
		uint64_t need = 1ULL << _UFFDIO_CONTINUE |
				1ULL << _UFFDIO_ZEROPAGE;

		if ((gating_uffd_register(uffd, p, 4 * PAGE) & need) != need)
			why = "userfaultfd cannot register shmem for minor "
			      "and missing faults with CONTINUE and ZEROPAGE";
		close(uffd);
	}
	if (why)
		unavailable[M_UFFD] = unavailable[M_UFFD_LAZY] = why;
	munmap(p, 4 * PAGE);
	close(fd);
}

static void measure(void)
{
	unsigned int r;
	int rep, first, i;

	for (rep = 0; rep < REPS; rep++) {
		bench_progress("repetition %d of %d", rep + 1, REPS);
		/* Alternate which thread count goes first, so that drift in
		 * the machine's load favours neither. */
		first = rep & 1;
		for (r = 0; r < NR_ROWS; r++) {
			const struct row *w = &rows[r];
			struct sample *s = &samples[r];

			if (unavailable[w->m])
				continue;
			double cpu[2];

			for (i = 0; i < 2; i++) {
				int k = i ? !first : first;

				s->us[k][rep] = run_threads(w->m, w->punch,
							    w->write, k + 1);
				cpu[k] = run_threads(M_SPIN, false, false,
						     k + 1);
			}
			s->ratio[rep] = s->us[0][rep] / s->us[1][rep];
			s->cpu[rep] = cpu[0] / cpu[1];
			s->share[rep] = s->ratio[rep] / s->cpu[rep];
		}
	}
}

struct medians {
	double us1, us2, ratio, cpu, share;
};

static struct medians md[NR_ROWS];

/* The row of @m with @punch and @write, or NULL. */
static const struct medians *find(enum method m, bool punch, bool write)
{
	unsigned int r;

	for (r = 0; r < NR_ROWS; r++)
		if (rows[r].m == m && rows[r].punch == punch &&
		    rows[r].write == write && !unavailable[m])
			return &md[r];
	return NULL;
}

static void print_rows(bool write)
{
	unsigned int r;

	printf("| gate | punch | 1 thread us/conversion | 2 threads "
	       "us/conversion (aggregate) | 2 / 1 | goal >= 1.6 | 1 thread, "
	       "cost / mprotect's | gate checked | a CPU loop's 2 / 1 "
	       "beside | 2 / 1 over the CPU loop's |\n"
	       "|---|---|---|---|---|---|---|---|---|---|\n");
	for (r = 0; r < NR_ROWS; r++) {
		const struct row *w = &rows[r];
		const struct medians *x = &md[r], *base;
		bool gate = gating_is_gate(w->m);

		if (w->write != write)
			continue;
		printf("| %s | %s | ", gating_methods[w->m].name,
		       w->punch ? "yes" : "no");
		if (unavailable[w->m]) {
			printf("not measured: %s | | | | | | | |\n",
			       unavailable[w->m]);
			continue;
		}
		base = find(M_MPROTECT, w->punch, w->write);
		printf("%.2f | %.2f | %.2f | %s | ", x->us1, x->us2, x->ratio,
		       gate ? bench_goal_mark(x->ratio >= 1.6) : "(reference)");
		if (gate)
			printf("%.2f", x->us1 / base->us1);
		printf(" | %s | %.2f | %.2f |\n", !gate ? "(no gate)" :
		       check_failed[w->m] ? "**FAILED**" : "yes", x->cpu,
		       x->share);
		printf("BENCH gating gate=%s punch=%s write=%s us1=%.3f "
		       "us2=%.3f ratio=%.3f cpu_ratio=%.3f share=%.3f\n",
		       gating_methods[w->m].key, w->punch ? "yes" : "no",
		       w->write ? "yes" : "no", x->us1, x->us2, x->ratio,
		       x->cpu, x->share);
	}
}

static void print_tables(const struct utsname *u)
{
	unsigned int r;

	for (r = 0; r < NR_ROWS; r++) {
		struct sample *s = &samples[r];

		if (unavailable[rows[r].m])
			continue;
		md[r] = (struct medians){
			.us1 = bench_median(s->us[0], REPS),
			.us2 = bench_median(s->us[1], REPS),
			.ratio = bench_median(s->ratio, REPS),
			.cpu = bench_median(s->cpu, REPS),
			.share = bench_median(s->share, REPS),
		};
	}
	printf("## Scaling past the mmap lock (host side, no KVM)\n\n");
	printf("Other gates than mprotect, 1 against 2 threads converting "
	       "disjoint pages.\n\n");
	printf("Each conversion is followed by a write through the new view "
	       "(the guest uses the page):\n\n");
	print_rows(true);
	printf("\nMemory never written (as bench_guest_scaling's floor): no "
	       "revoke finds a PTE to shoot down except uffd's, whose grant "
	       "maps the page; the no-punch rows are the gate's system calls "
	       "alone:\n\n");
	print_rows(false);
	printf("\nEach of 1 or 2 threads converts its own 4 KiB page (2 MiB "
	       "apart) between two views of one memfd %d times after %d "
	       "untimed: revoke the old view, grant the new one, with "
	       "\"punch\" fallocate(PUNCH_HOLE) of the old backing. "
	       "us/conversion: the span from the first start to the last end "
	       "over all conversions; 2 / 1: the throughput of 2 threads over "
	       "1, the median of each repetition's own ratio; thread i on CPU "
	       "i; medians of %d repetitions, rows and thread counts "
	       "interleaved, every run on a fresh memfd. A CPU loop's 2 / 1 "
	       "beside: the same measurement of a loop of about a conversion's "
	       "length, no system call, run right after the row's own in each "
	       "repetition; below 2 the machine itself did not run two threads "
	       "at once all the time (other work on it). Over the CPU loop's: "
	       "each repetition's 2 / 1 divided by the CPU loop's beside it, "
	       "the share of the parallelism the machine gave that the row "
	       "used (1: all of it). Gate checked: before timing, a revoked "
	       "page refuses a load from another thread and GUP "
	       "(process_vm_readv, the path of KVM's hva_to_pfn), also after "
	       "its neighbour was faulted back in, the page tables say so "
	       "(pagemap: guard marker, or no PTE), and a granted page shows "
	       "its backing's content. Linux %s.\n\n",
	       ROUNDS, WARMUP, REPS, u->release);
	gating_print_machine();
	gating_print_lock();
}

int main(void)
{
	char reasons[512] = "";
	struct utsname u;
	int m, k;

	uname(&u);
	gating_probe_signals();
	probe_gates();
	gating_measure_machine();
	for (m = 0; m < NR_METHODS; m++)
		for (k = 0; k < 2 && !unavailable[m] && m != M_SPIN &&
			    m != M_ZAP; k++)
			if (!gating_check_gate(m, k))
				check_failed[m] = true;
	gating_measure_lock(unavailable);
	measure();
	print_tables(&u);
	fflush(stdout);
	if (bench_failures())
		return BENCH_EXIT_FAIL;
	for (m = 0; m < NR_METHODS; m++)
		if (unavailable[m] && !strstr(reasons, unavailable[m]))
			snprintf(reasons + strlen(reasons),
				 sizeof(reasons) - strlen(reasons), "%s%s: %s",
				 *reasons ? "; " : "", gating_methods[m].key,
				 unavailable[m]);
	if (*reasons)
		bench_skip("%s", reasons);
	return 0;
}
