/* SPDX-License-Identifier: MIT */
/*
 * The gate of bench_gating_scaling: one memfd, two views of it, and a
 * conversion of a page between them, revoked and granted by each method
 * the benchmark compares (mprotect, group commit, guard regions,
 * userfaultfd, none); group commit's combiner.  The userfaultfd helpers
 * and handler are uffd.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gating.h"

const struct gating_method gating_methods[NR_METHODS] = {
	[M_MPROTECT] = { "mprotect NONE / RW (libgmem today)", "mprotect" },
	[M_GROUP] = { "mprotect, group commit across threads", "group" },
	[M_GUARD] = { "MADV_GUARD_INSTALL / MADV_GUARD_REMOVE", "guard" },
	[M_UFFD] = { "uffd minor: MADV_DONTNEED / UFFDIO_CONTINUE", "uffd" },
	[M_UFFD_LAZY] = { "uffd minor: MADV_DONTNEED, grant on fault",
			  "uffd-lazy" },
	[M_NONE] = { "no gate (what a gate adds to)", "none" },
	[M_ZAP] = { "no gate, MADV_DONTNEED of the old view only", "zap" },
	[M_SPIN] = { "a CPU loop, no system call", "cpu" },
};

/* ---- the gate: one memfd, two views -------------------------------------- */

void __attribute__((format(printf, 2, 3)))
gating_must(int ret, const char *fmt, ...)
{
	char what[160];
	va_list ap;
	int err = errno;

	if (ret >= 0)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	bench_die("%s: %s", what, strerror(err));
}
void gating_gate_init(struct gate *g, enum method m, bool punch)
{
	bool vma_gate = m == M_MPROTECT || m == M_GROUP;
	int v;

	memset(g, 0, sizeof(*g));
	g->m = m;
	g->punch = punch;
	g->uffd = g->stop = -1;
	g->fd = bench_memfd("gating", 2 * RAM);
	gating_must(g->fd, "memfd");
	g->state = calloc(RAM / PAGE, sizeof(*g->state));	/* all PRIV */
	if (!g->state)
		bench_die("out of memory");
	/* As libgmem lays them out: a reservation, a PROT_NONE page before
	 * and after each view, so that no VMA of a view merges with another. */
	g->reserve = mmap(NULL, 2 * RAM + 3 * PAGE, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	gating_must(g->reserve == MAP_FAILED ? -1 : 0, "mmap reservation");
	for (v = PRIV; v <= SHARED; v++) {
		void *want = g->reserve + PAGE + (uint64_t)v * (RAM + PAGE);
		int prot = !vma_gate || v == PRIV ? RW : PROT_NONE;

		g->view[v] = mmap(want, RAM, prot, MAP_SHARED | MAP_FIXED,
				  g->fd, (off_t)(v * RAM));
		gating_must(g->view[v] == MAP_FAILED ? -1 : 0, "mmap view");
	}
	if (m == M_GUARD)
		gating_must(madvise(g->view[SHARED], RAM, MADV_GUARD_INSTALL),
			    "MADV_GUARD_INSTALL");
	if (gating_is_uffd(m)) {
		const char *why;

		g->uffd = gating_uffd_open(&why);
		if (g->uffd < 0)
			bench_die("%s", why);
		/* Nothing is mapped yet: both views fault, the shared one
		 * refused, the private one granted on first access. */
		for (v = PRIV; v <= SHARED; v++)
			if (!gating_uffd_register(g->uffd, g->view[v], RAM))
				bench_die("UFFDIO_REGISTER: %s",
					  strerror(errno));
		gating_uffd_start(g);
	}
	pthread_mutex_init(&g->gc_lock, NULL);
}

void gating_gate_fini(struct gate *g)
{
	if (g->stop >= 0)
		gating_uffd_stop(g);
	pthread_mutex_destroy(&g->gc_lock);
	munmap(g->reserve, 2 * RAM + 3 * PAGE);
	close(g->fd);
	free(g->state);
}

/* ---- group commit -------------------------------------------------------- */

static int cmp_range(const void *a, const void *b)
{
	const struct gc_range *x = a, *y = b;
	uintptr_t xa = (uintptr_t)x->addr, ya = (uintptr_t)y->addr;

	/* Revokes before grants: no page may be open in both views, not
	 * even between two calls of one batch.  Then by address, so that
	 * adjacent runs meet. */
	if ((x->prot == PROT_NONE) != (y->prot == PROT_NONE))
		return x->prot == PROT_NONE ? -1 : 1;
	return xa < ya ? -1 : xa > ya;
}

/* Issue every pending request, merged: the caller holds gc_lock. */
static void gc_commit(struct gate *g)
{
	struct gc_range r[2 * (NR_WORKERS + 1)];
	struct gc_req *taken[NR_WORKERS + 1];
	int n = 0, t = 0, i, j;

	for (i = 0; i <= NR_WORKERS; i++) {
		struct gc_req *q = &g->gc[i];

		if (!atomic_load_explicit(&q->pending, memory_order_acquire))
			continue;
		taken[t++] = q;
		r[n++] = q->r[0];
		r[n++] = q->r[1];
	}
	qsort(r, (size_t)n, sizeof(r[0]), cmp_range);
	for (i = 0; i < n; i = j) {
		uint64_t len = r[i].len;

		for (j = i + 1; j < n && r[j].prot == r[i].prot &&
		     (uintptr_t)r[j].addr == (uintptr_t)r[i].addr + len; j++)
			len += r[j].len;
		gating_must(mprotect(r[i].addr, len, r[i].prot), "mprotect");
	}
	for (i = 0; i < t; i++)
		atomic_store_explicit(&taken[i]->pending, 0,
				      memory_order_release);
}

/*
 * Post this conversion's two calls and wait until some thread has issued
 * them: the one that gets the lock issues everything pending.
 */
static void group_switch(struct gate *g, int slot, uint8_t *old, uint8_t *new)
{
	struct gc_req *q = &g->gc[slot];

	q->r[0] = (struct gc_range){ old, PAGE, PROT_NONE };
	q->r[1] = (struct gc_range){ new, PAGE, RW };
	atomic_store_explicit(&q->pending, 1, memory_order_release);
	while (atomic_load_explicit(&q->pending, memory_order_acquire)) {
		if (pthread_mutex_trylock(&g->gc_lock)) {
			gating_relax();
			continue;
		}
		gc_commit(g);
		pthread_mutex_unlock(&g->gc_lock);
	}
}

/* ---- a conversion -------------------------------------------------------- */

/* Close the page at @off in view @from and open it in the other one. */
static void gate_switch(struct gate *g, int slot, enum view from, uint64_t off)
{
	uint8_t *old = g->view[from] + off;
	uint8_t *new = g->view[from == PRIV ? SHARED : PRIV] + off;

	switch (g->m) {
	case M_MPROTECT:
		gating_must(mprotect(old, PAGE, PROT_NONE), "mprotect");
		gating_must(mprotect(new, PAGE, RW), "mprotect");
		break;
	case M_GROUP:
		group_switch(g, slot, old, new);
		break;
	case M_GUARD:
		gating_must(madvise(old, PAGE, MADV_GUARD_INSTALL),
			    "MADV_GUARD_INSTALL");
		gating_must(madvise(new, PAGE, MADV_GUARD_REMOVE),
			    "MADV_GUARD_REMOVE");
		break;
	case M_UFFD:
	case M_UFFD_LAZY:
		gating_must(madvise(old, PAGE, MADV_DONTNEED), "MADV_DONTNEED");
		if (g->m == M_UFFD) {
			gating_uffd_grant(g, new);
		} else if (atomic_load(&g->refused)) {
			/* Only an access that was refused waits: wake it to
			 * fault again, now to a grant.  libgmem would know
			 * per page. */
			gating_uffd_wake(g->uffd, new, PAGE);
		}
		break;
	case M_ZAP:
		gating_must(madvise(old, PAGE, MADV_DONTNEED), "MADV_DONTNEED");
		break;
	case M_SPIN:
		for (int i = 0; i < 20000; i++)
			__asm__ volatile("" ::: "memory");
		break;
	default:
		break;
	}
}

void gating_convert(struct gate *g, int slot, uint64_t off, enum view to,
		    bool write)
{
	enum view from = to == PRIV ? SHARED : PRIV;

	/* The state first: from here on the handler refuses the old view. */
	atomic_store(&g->state[off / PAGE], (uint8_t)to);
	gate_switch(g, slot, from, off);
	if (g->punch)
		gating_must(fallocate(g->fd, PUNCH,
				      (off_t)((uint64_t)from * RAM + off),
				      PAGE),
			    "fallocate");
	if (write)
		*(volatile uint8_t *)(g->view[to] + off) = 1;
}
