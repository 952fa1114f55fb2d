/* SPDX-License-Identifier: MIT */
/*
 * Which calls wait for the mmap lock, and in which mode: each call of a
 * gate's conversion timed alone and while another thread holds the lock
 * for writing or for reading, and the table that sorts them.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gating.h"

/* ---- which calls wait for the mmap lock ---------------------------------- */

/*
 * A thread that holds the mmap lock nearly all the time, for milliseconds
 * at a time: for writing, mprotect() of a large populated range (it
 * rewrites every PTE under the lock); for reading, MADV_POPULATE_READ of
 * the same range (it walks every PTE under the lock; where it must fault,
 * it would drop the lock, so the range is populated).  A call that needs
 * the lock in a mode the holder excludes then takes milliseconds, one
 * that does not microseconds: unlike two threads converting, this tells
 * the lock apart from everything else that slows two threads.
 */
#define HOLD_BYTES (512 * MIB)
#define LOCK_ALONE 200		/* iterations alone */
#define LOCK_HELD 16		/* and while the lock is held */

enum hold { HOLD_WRITE, HOLD_READ, NR_HOLDS };

struct holder {
	enum hold mode;
	uint8_t *big;
	atomic_bool stop;
	atomic_int holds;
	double held_us;		/* all holds together */
	pthread_t th;
};

static void *holder_run(void *arg)
{
	struct holder *h = arg;
	int prot = PROT_READ;

	while (!atomic_load(&h->stop)) {
		double t0 = bench_now_us();

		atomic_fetch_add(&h->holds, 1);
		if (h->mode == HOLD_WRITE) {
			gating_must(mprotect(h->big, HOLD_BYTES, prot),
				    "mprotect");
			prot = prot == RW ? PROT_READ : RW;
		} else {
			gating_must(madvise(h->big, HOLD_BYTES,
					    MADV_POPULATE_READ),
				    "MADV_POPULATE_READ");
		}
		h->held_us += bench_now_us() - t0;
	}
	/* Leave the range as found, writable, for the other holder. */
	gating_must(mprotect(h->big, HOLD_BYTES, RW), "mprotect");
	return NULL;
}

enum op {
	OP_PROT_NONE,
	OP_PROT_RW,
	OP_GUARD_INSTALL,
	OP_GUARD_REMOVE,
	OP_DONTNEED_UFFD,
	OP_CONTINUE,
	OP_ZEROPAGE,
	OP_DONTNEED,
	OP_PUNCH,
	OP_FAULT,
	NR_OPS
};

static const char *const op_names[NR_OPS] = {
	[OP_PROT_NONE] = "mprotect(PROT_NONE)",
	[OP_PROT_RW] = "mprotect(PROT_READ \\| PROT_WRITE)",
	[OP_GUARD_INSTALL] = "madvise(MADV_GUARD_INSTALL)",
	[OP_GUARD_REMOVE] = "madvise(MADV_GUARD_REMOVE)",
	[OP_DONTNEED_UFFD] = "madvise(MADV_DONTNEED), uffd-registered view",
	[OP_CONTINUE] = "ioctl(UFFDIO_CONTINUE)",
	[OP_ZEROPAGE] = "ioctl(UFFDIO_ZEROPAGE)",
	[OP_DONTNEED] = "madvise(MADV_DONTNEED), plain view",
	[OP_PUNCH] = "fallocate(PUNCH_HOLE)",
	[OP_FAULT] = "write fault on a shmem page",
};

/* The calls of one gate, in the order a conversion issues them. */
static const struct lock_seq {
	enum method m;
	bool punch;
	int n;
	enum op ops[3];
} lock_seqs[] = {
	{ M_MPROTECT, false, 2, { OP_PROT_NONE, OP_PROT_RW } },
	{ M_GUARD, false, 2, { OP_GUARD_INSTALL, OP_GUARD_REMOVE } },
	{ M_UFFD, false, 2, { OP_DONTNEED_UFFD, OP_CONTINUE } },
	{ M_UFFD, true, 3, { OP_DONTNEED_UFFD, OP_PUNCH, OP_ZEROPAGE } },
	{ M_ZAP, true, 3, { OP_DONTNEED, OP_PUNCH, OP_FAULT } },
};

static void do_op(struct gate *g, enum op op, uint64_t off)
{
	uint8_t *a = g->view[PRIV] + off;
	int err;

	switch (op) {
	case OP_PROT_NONE:
	case OP_PROT_RW:
		gating_must(mprotect(a, PAGE,
				     op == OP_PROT_NONE ? PROT_NONE : RW),
			    "mprotect");
		break;
	case OP_GUARD_INSTALL:
	case OP_GUARD_REMOVE:
		gating_must(madvise(a, PAGE, op == OP_GUARD_INSTALL ?
				    MADV_GUARD_INSTALL : MADV_GUARD_REMOVE),
			    "madvise");
		break;
	case OP_DONTNEED_UFFD:
	case OP_DONTNEED:
		gating_must(madvise(a, PAGE, MADV_DONTNEED), "MADV_DONTNEED");
		break;
	case OP_CONTINUE:
	case OP_ZEROPAGE:
		err = gating_uffd_map(g->uffd, a, PAGE, op == OP_ZEROPAGE);
		if (err)
			bench_die("%s: %s", op_names[op], strerror(-err));
		break;
	case OP_PUNCH:
		gating_must(fallocate(g->fd, PUNCH, (off_t)off, PAGE),
			    "fallocate");
		break;
	default:
		*(volatile uint8_t *)a = 1;
		break;
	}
}

/* Median latency of each call: alone, beside a writer, beside a reader. */
static double lock_us[NR_OPS][1 + NR_HOLDS];
static double lock_held_us[NR_HOLDS];	/* a hold, on average */
static bool lock_measured[NR_OPS];

/*
 * Time each call of @s, @iters times; with @gap, a millisecond's pause
 * before each: calls back to back would keep taking the lock each time
 * the holder lets go, before the holder wakes to take it again.
 */
static void seq_times(struct gate *g, const struct lock_seq *s, int iters,
		      bool gap, double lat[][LOCK_ALONE])
{
	struct timespec ms = { 0, 1000000 };
	int i, k;

	for (i = 0; i < iters; i++) {
		for (k = 0; k < s->n; k++) {
			double t0;

			if (gap)
				nanosleep(&ms, NULL);
			t0 = bench_now_us();
			do_op(g, s->ops[k], 2 * MIB);
			lat[k][i] = bench_now_us() - t0;
		}
	}
}

/* Beside a holder of @mode: the holder's region is the caller's. */
static void seq_held(struct gate *g, const struct lock_seq *q,
		     struct holder *h, double lat[][LOCK_ALONE])
{
	struct timespec ms = { 0, 1000000 };
	int before = atomic_load(&h->holds);

	atomic_store(&h->stop, false);
	if (pthread_create(&h->th, NULL, holder_run, h))
		bench_die("pthread_create failed");
	while (atomic_load(&h->holds) == before)
		nanosleep(&ms, NULL);
	nanosleep(&ms, NULL);	/* inside its call by now */
	seq_times(g, q, LOCK_HELD, true, lat);
	atomic_store(&h->stop, true);
	pthread_join(h->th, NULL);
}

void gating_measure_lock(const char *const unavailable[NR_METHODS])
{
	struct holder h[NR_HOLDS] = { { .mode = HOLD_WRITE },
				      { .mode = HOLD_READ } };
	uint8_t *big = mmap(NULL, HOLD_BYTES, RW, MAP_PRIVATE |
			    MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	unsigned int s;
	int k, i;

	gating_must(big == MAP_FAILED ? -1 : 0, "mmap");
	h[HOLD_WRITE].big = h[HOLD_READ].big = big;
	for (s = 0; s < sizeof(lock_seqs) / sizeof(lock_seqs[0]); s++) {
		const struct lock_seq *q = &lock_seqs[s];
		double lat[1 + NR_HOLDS][3][LOCK_ALONE];
		struct gate g;

		if (unavailable[q->m])
			continue;
		gating_gate_init(&g, q->m, q->punch);
		g.view[PRIV][2 * MIB] = 1;	/* a page in the memfd */
		seq_times(&g, q, LOCK_ALONE, false, lat[0]);
		for (i = 0; i < NR_HOLDS; i++)
			seq_held(&g, q, &h[i], lat[1 + i]);
		gating_gate_fini(&g);
		for (k = 0; k < q->n; k++) {
			enum op op = q->ops[k];

			if (lock_measured[op])
				continue;
			lock_measured[op] = true;
			lock_us[op][0] = bench_median(lat[0][k], LOCK_ALONE);
			for (i = 0; i < NR_HOLDS; i++)
				lock_us[op][1 + i] =
					bench_median(lat[1 + i][k], LOCK_HELD);
		}
	}
	for (i = 0; i < NR_HOLDS; i++)
		lock_held_us[i] = h[i].held_us / atomic_load(&h[i].holds);
	munmap(big, HOLD_BYTES);
}

/*
 * A call waited for the holder if it took over a twentieth of the
 * holder's mean hold, and ten times its time alone: a waiting call
 * waits for the rest of a hold (or several: the holder may take the lock
 * again first), one that does not is slowed, beside a thread rewriting
 * PTEs, by tens of microseconds at most.
 */
static bool waited(double alone, double beside, enum hold mode)
{
	return beside > lock_held_us[mode] / 20 && beside > 10 * alone;
}

void gating_print_lock(void)
{
	static const char *const modes[] = { "none (VMA lock or none)",
					     "read", "write" };
	int op;

	printf("| call | median us alone | beside a writer | beside a "
	       "reader | takes the mmap lock for |\n|---|---|---|---|---|\n");
	for (op = 0; op < NR_OPS; op++) {
		const double *x = lock_us[op];
		bool w = waited(x[0], x[1 + HOLD_WRITE], HOLD_WRITE);
		bool r = waited(x[0], x[1 + HOLD_READ], HOLD_READ);

		if (!lock_measured[op])
			continue;
		/* Readers exclude only writers. */
		printf("| %s | %.1f | %.1f | %.1f | %s |\n", op_names[op],
		       x[0], x[1 + HOLD_WRITE], x[1 + HOLD_READ],
		       modes[r ? 2 : w ? 1 : 0]);
		printf("BENCH gating_lock op=%d alone_us=%.2f "
		       "beside_writer_us=%.2f beside_reader_us=%.2f\n", op,
		       x[0], x[1 + HOLD_WRITE], x[1 + HOLD_READ]);
	}
	printf("\nEach call timed alone and while another thread holds the "
	       "mmap lock nearly all the time, on a populated %llu MiB of its "
	       "own: a writer (mprotect() back and forth, %.1f ms a hold on "
	       "average) or a reader (MADV_POPULATE_READ, %.1f ms). A call "
	       "that waits beside a reader takes the lock for writing; one "
	       "that waits only beside a writer, for reading (waits: a median "
	       "over a twentieth of a hold and ten times the call "
	       "alone). Medians of %d calls alone, %d beside each holder, a "
	       "millisecond apart.\n\n", (unsigned long long)(HOLD_BYTES / MIB),
	       lock_held_us[HOLD_WRITE] / 1000,
	       lock_held_us[HOLD_READ] / 1000, LOCK_ALONE, LOCK_HELD);
}
