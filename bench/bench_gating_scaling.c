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
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* Guard regions: Linux 6.13, on shmem and files since 6.15. */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif

#define MIB (1ULL << 20)
#define PAGE GMEM_PAGE_SIZE
#define RW (PROT_READ | PROT_WRITE)
#define PUNCH (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
#define RAM (64 * MIB)
#define NR_WORKERS 2
#define CHECKER NR_WORKERS	/* the main thread's combiner slot */
#define ROUNDS 1000		/* timed conversions per thread and run */
#define WARMUP 100		/* untimed, before them; even: ends private */
#define REPS 7
#define CHECK_OFF (16 * MIB)	/* the checks' page, no worker's */

/* /proc/self/pagemap (Documentation/admin-guide/mm/pagemap.rst) */
#define PM_PRESENT (1ULL << 63)
#define PM_SWAP (1ULL << 62)
#define PM_GUARD (1ULL << 58)

enum view { PRIV, SHARED };

enum method {
	M_MPROTECT,
	M_GROUP,
	M_GUARD,
	M_UFFD,
	M_UFFD_LAZY,
	M_NONE,
	M_ZAP,
	M_SPIN,
	NR_METHODS
};

static const struct {
	const char *name, *key;
} methods[NR_METHODS] = {
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

/* Why a gate cannot run on this host (NULL: it can); if it failed a check. */
static const char *unavailable[NR_METHODS];
static bool check_failed[NR_METHODS];

/* The first five are gates; the others are references. */
static bool is_gate(enum method m)
{
	return m < M_NONE;
}

static bool is_uffd(enum method m)
{
	return m == M_UFFD || m == M_UFFD_LAZY;
}

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	sched_yield();
#endif
}

/* ---- the gate: one memfd, two views -------------------------------------- */

/* One run of one thread's mprotect() calls, for the combiner. */
struct gc_range {
	uint8_t *addr;
	uint64_t len;
	int prot;
};

/* A thread's revoke and grant, waiting for whichever thread combines. */
struct gc_req {
	struct gc_range r[2];
	atomic_int pending;
};

struct gate {
	enum method m;
	bool punch;
	int fd;			/* private backing at 0, shared at RAM */
	uint8_t *reserve;	/* both views, PROT_NONE pages around each */
	uint8_t *view[2];
	_Atomic uint8_t *state;	/* per page: the view it is in */
	/* uffd: the handler thread and what it saw */
	int uffd, stop;
	pthread_t handler;
	atomic_int refused, lazy_grants;
	atomic_uintptr_t refused_addr;
	atomic_ullong refused_flags;
	/* group commit */
	pthread_mutex_t gc_lock;
	struct gc_req gc[NR_WORKERS + 1];
};

static void __attribute__((format(printf, 2, 3)))
must(int ret, const char *fmt, ...)
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

/*
 * A userfaultfd for minor and missing faults on shmem, or -1 with the
 * reason.  Not UFFD_USER_MODE_ONLY: KVM's accesses (GUP) are the kernel's
 * faults, and a gate must catch them too.
 */
static int uffd_open(const char **why)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_MISSING_SHMEM |
			    UFFD_FEATURE_MINOR_SHMEM,
	};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		/* Without CAP_SYS_PTRACE, /dev/userfaultfd may allow it. */
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW,
				   O_CLOEXEC | O_NONBLOCK);
			close(dev);
		}
		if (fd < 0) {
			*why = "userfaultfd() refused (not root, "
			       "vm.unprivileged_userfaultfd 0, no usable "
			       "/dev/userfaultfd)";
			return -1;
		}
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		*why = "userfaultfd has no minor or missing faults on shmem "
		       "(UFFD_FEATURE_MINOR_SHMEM: Linux 5.14)";
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Register [addr, +len) for minor faults (a page in the memfd without a
 * PTE: a revoked page) and missing ones (a hole: a revoked page whose
 * backing was punched, which minor mode alone would let the kernel fill
 * with a fresh zero page).  Returns the ioctls the range supports.
 */
static uint64_t uffd_register(int uffd, uint8_t *addr, uint64_t len)
{
	struct uffdio_register r = {
		.range = { (uintptr_t)addr, len },
		.mode = UFFDIO_REGISTER_MODE_MISSING |
			UFFDIO_REGISTER_MODE_MINOR,
	};

	return ioctl(uffd, UFFDIO_REGISTER, &r) ? 0 : r.ioctls;
}

static void uffd_wake(int uffd, uint8_t *addr, uint64_t len)
{
	struct uffdio_range r = { (uintptr_t)addr, len };

	must(ioctl(uffd, UFFDIO_WAKE, &r), "UFFDIO_WAKE");
}

/*
 * Map [addr, +len) of a view from its backing: a page of the memfd with
 * UFFDIO_CONTINUE, a hole with UFFDIO_ZEROPAGE (CONTINUE refuses a hole
 * with EFAULT, ZEROPAGE a page with EEXIST, each stopping there); @zero
 * says which to try first.  Both wake the accesses waiting on the range.
 * CONTINUE's EEXIST means the PTE is there already (a fault of its own
 * raced with us): wake its waiters and go on.  0 or -errno.
 */
static int uffd_map(int uffd, uint8_t *addr, uint64_t len, bool zero)
{
	int flips = 0;

	while (len) {
		int64_t done;

		if (zero) {
			struct uffdio_zeropage z = {
				.range = { (uintptr_t)addr, len },
			};

			done = ioctl(uffd, UFFDIO_ZEROPAGE, &z) ? z.zeropage :
								   (int64_t)len;
		} else {
			struct uffdio_continue c = {
				.range = { (uintptr_t)addr, len },
			};

			done = ioctl(uffd, UFFDIO_CONTINUE, &c) ? c.mapped :
								   (int64_t)len;
		}
		if (done > 0) {
			addr += done;
			len -= (uint64_t)done;
			flips = 0;
		} else if ((zero ? done == -EEXIST : done == -EFAULT) &&
			   !flips++) {
			zero = !zero;
		} else if (!zero && done == -EEXIST) {
			uffd_wake(uffd, addr, PAGE);
			addr += PAGE;
			len -= PAGE;
		} else {
			return done ? (int)done : -EIO;
		}
	}
	return 0;
}

/* Map one page of a view, or end the program: a grant cannot fail here. */
static void uffd_grant(const struct gate *g, uint8_t *addr)
{
	/* With the punch, the page's backing was punched when the view was
	 * last revoked: most likely a hole. */
	int err = uffd_map(g->uffd, addr, PAGE, g->punch);

	if (err)
		bench_die("%s: grant: %s", methods[g->m].key, strerror(-err));
}

static enum view view_of(const struct gate *g, uintptr_t a, uint64_t *page)
{
	enum view v = a >= (uintptr_t)g->view[SHARED] &&
		      a < (uintptr_t)g->view[SHARED] + RAM ? SHARED : PRIV;

	*page = (a - (uintptr_t)g->view[v]) / PAGE;
	return v;
}

/*
 * The fault handler: an access to a page in the view of its state is
 * granted (lazily), any other is refused and waits until a conversion
 * grants the page.  libgmem would hold the page's range lock around the
 * check and the grant, so that no conversion revokes in between; the
 * benchmark never converts a page while it is being accessed.  A refusal
 * is where libgmem would report the access (interrupt the vCPU out of
 * KVM_RUN: UFFD_FEATURE_THREAD_ID says which thread faulted).
 */
static void *uffd_handler(void *arg)
{
	struct gate *g = arg;
	struct pollfd p[2] = {
		{ .fd = g->uffd, .events = POLLIN },
		{ .fd = g->stop, .events = POLLIN },
	};

	for (;;) {
		struct uffd_msg msg;
		uintptr_t a;
		uint64_t page;
		enum view v;

		if (poll(p, 2, -1) < 0) {
			must(errno == EINTR ? 0 : -1, "poll(userfaultfd)");
			continue;
		}
		if (p[1].revents)
			return NULL;
		if (read(g->uffd, &msg, sizeof(msg)) != sizeof(msg)) {
			must(errno == EAGAIN ? 0 : -1, "read(userfaultfd)");
			continue;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			bench_die("userfaultfd: unexpected event %u",
				  msg.event);
		a = (uintptr_t)msg.arg.pagefault.address &
		    ~(uintptr_t)(PAGE - 1);
		v = view_of(g, a, &page);
		if (atomic_load(&g->state[page]) == v) {
			/* Counted first: the grant wakes the access, whose
			 * thread may look at the count at once. */
			atomic_fetch_add(&g->lazy_grants, 1);
			uffd_grant(g, (uint8_t *)a);
		} else {
			atomic_store(&g->refused_addr, a);
			atomic_store(&g->refused_flags,
				     msg.arg.pagefault.flags);
			atomic_fetch_add(&g->refused, 1);
		}
	}
}

static void gate_init(struct gate *g, enum method m, bool punch)
{
	bool vma_gate = m == M_MPROTECT || m == M_GROUP;
	int v;

	memset(g, 0, sizeof(*g));
	g->m = m;
	g->punch = punch;
	g->uffd = g->stop = -1;
	g->fd = bench_memfd("gating", 2 * RAM);
	must(g->fd, "memfd");
	g->state = calloc(RAM / PAGE, sizeof(*g->state));	/* all PRIV */
	if (!g->state)
		bench_die("out of memory");
	/* As libgmem lays them out: a reservation, a PROT_NONE page before
	 * and after each view, so that no VMA of a view merges with another. */
	g->reserve = mmap(NULL, 2 * RAM + 3 * PAGE, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	must(g->reserve == MAP_FAILED ? -1 : 0, "mmap reservation");
	for (v = PRIV; v <= SHARED; v++) {
		void *want = g->reserve + PAGE + (uint64_t)v * (RAM + PAGE);
		int prot = !vma_gate || v == PRIV ? RW : PROT_NONE;

		g->view[v] = mmap(want, RAM, prot, MAP_SHARED | MAP_FIXED,
				  g->fd, (off_t)(v * RAM));
		must(g->view[v] == MAP_FAILED ? -1 : 0, "mmap view");
	}
	if (m == M_GUARD)
		must(madvise(g->view[SHARED], RAM, MADV_GUARD_INSTALL),
		     "MADV_GUARD_INSTALL");
	if (is_uffd(m)) {
		const char *why;

		g->uffd = uffd_open(&why);
		if (g->uffd < 0)
			bench_die("%s", why);
		/* Nothing is mapped yet: both views fault, the shared one
		 * refused, the private one granted on first access. */
		for (v = PRIV; v <= SHARED; v++)
			if (!uffd_register(g->uffd, g->view[v], RAM))
				bench_die("UFFDIO_REGISTER: %s",
					  strerror(errno));
		g->stop = eventfd(0, EFD_CLOEXEC);
		must(g->stop, "eventfd");
		if (pthread_create(&g->handler, NULL, uffd_handler, g))
			bench_die("pthread_create failed");
	}
	pthread_mutex_init(&g->gc_lock, NULL);
}

static void gate_fini(struct gate *g)
{
	if (g->stop >= 0) {
		must((int)write(g->stop, &(uint64_t){ 1 }, sizeof(uint64_t)),
		     "eventfd write");
		pthread_join(g->handler, NULL);
		close(g->stop);
		close(g->uffd);
	}
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
		must(mprotect(r[i].addr, len, r[i].prot), "mprotect");
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
			relax();
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
		must(mprotect(old, PAGE, PROT_NONE), "mprotect");
		must(mprotect(new, PAGE, RW), "mprotect");
		break;
	case M_GROUP:
		group_switch(g, slot, old, new);
		break;
	case M_GUARD:
		must(madvise(old, PAGE, MADV_GUARD_INSTALL),
		     "MADV_GUARD_INSTALL");
		must(madvise(new, PAGE, MADV_GUARD_REMOVE),
		     "MADV_GUARD_REMOVE");
		break;
	case M_UFFD:
	case M_UFFD_LAZY:
		must(madvise(old, PAGE, MADV_DONTNEED), "MADV_DONTNEED");
		if (g->m == M_UFFD) {
			uffd_grant(g, new);
		} else if (atomic_load(&g->refused)) {
			/* Only an access that was refused waits: wake it to
			 * fault again, now to a grant.  libgmem would know
			 * per page. */
			uffd_wake(g->uffd, new, PAGE);
		}
		break;
	case M_ZAP:
		must(madvise(old, PAGE, MADV_DONTNEED), "MADV_DONTNEED");
		break;
	case M_SPIN:
		for (int i = 0; i < 20000; i++)
			__asm__ volatile("" ::: "memory");
		break;
	default:
		break;
	}
}

static void convert(struct gate *g, int slot, uint64_t off, enum view to,
		    bool write)
{
	enum view from = to == PRIV ? SHARED : PRIV;

	/* The state first: from here on the handler refuses the old view. */
	atomic_store(&g->state[off / PAGE], (uint8_t)to);
	gate_switch(g, slot, from, off);
	if (g->punch)
		must(fallocate(g->fd, PUNCH,
			       (off_t)((uint64_t)from * RAM + off), PAGE),
		     "fallocate");
	if (write)
		*(volatile uint8_t *)(g->view[to] + off) = 1;
}

/* ---- the checks: does the gate gate? ------------------------------------- */

/* An access from another thread, as a vCPU's or a device's would be. */
struct probe {
	uint8_t *addr;
	bool gup;		/* through process_vm_readv(), i.e. GUP */
	pthread_t th;
	atomic_int done;
	int sig;		/* the signal the access raised, or 0 */
	void *sig_addr;
	int err;		/* process_vm_readv()'s errno, or 0 */
	uint8_t val;
};

static __thread sigjmp_buf *probe_jmp;
static __thread int probe_fault_sig;
static __thread void *probe_fault_addr;

static void probe_signal(int sig, siginfo_t *si, void *uc)
{
	if (!probe_jmp) {
		/* Not a probe's: let the fault end the process as usual. */
		signal(sig, SIG_DFL);
		return;
	}
	probe_fault_sig = sig;
	probe_fault_addr = si->si_addr;
	siglongjmp(*probe_jmp, 1);
}

static void probe_access(struct probe *p)
{
	if (p->gup) {
		struct iovec local = { &p->val, 1 };
		struct iovec remote = { p->addr, 1 };

		if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != 1)
			p->err = errno ? errno : EIO;
	} else {
		p->val = *(volatile uint8_t *)p->addr;
	}
}

static void *probe_run(void *arg)
{
	struct probe *p = arg;
	sigjmp_buf jb;

	probe_fault_sig = 0;
	probe_fault_addr = NULL;
	if (!sigsetjmp(jb, 1)) {
		probe_jmp = &jb;
		probe_access(p);
	}
	probe_jmp = NULL;
	p->sig = probe_fault_sig;
	p->sig_addr = probe_fault_addr;
	atomic_store(&p->done, 1);
	return NULL;
}

static void probe_start(struct probe *p, uint8_t *addr, bool gup)
{
	memset(p, 0, sizeof(*p));
	p->addr = addr;
	p->gup = gup;
	if (pthread_create(&p->th, NULL, probe_run, p))
		bench_die("pthread_create failed");
}

/* Wait up to 2 s for *@c to reach @n. */
static bool wait_count(atomic_int *c, int n)
{
	struct timespec ms = { 0, 1000000 };
	int i;

	for (i = 0; i < 2000 && atomic_load(c) < n; i++)
		nanosleep(&ms, NULL);
	return atomic_load(c) >= n;
}

static uint64_t pagemap(const uint8_t *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	must(fd, "open /proc/self/pagemap");
	if (pread(fd, &e, sizeof(e),
		  (off_t)((uintptr_t)addr / PAGE * sizeof(e))) != sizeof(e))
		bench_die("read /proc/self/pagemap: %s", strerror(errno));
	close(fd);
	return e;
}

static void __attribute__((format(printf, 2, 3)))
check_fail(const struct gate *g, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bench_fail("%s, punch %s: %s", methods[g->m].key,
		   g->punch ? "yes" : "no", msg);
	check_failed[g->m] = true;
}

/*
 * The revoked page @addr refuses host loads and GUP: at once (a signal,
 * EFAULT), or for uffd by a refused fault that keeps them waiting; those
 * probes are left in @t and @u to finish when the page is granted.
 */
static void check_refused(struct gate *g, uint8_t *addr, struct probe *t,
			  struct probe *u)
{
	struct timespec settle = { 0, 20 * 1000000 };
	int before = atomic_load(&g->refused);

	probe_start(t, addr, false);
	probe_start(u, addr, true);
	if (is_uffd(g->m)) {
		if (!wait_count(&g->refused, before + 2))
			check_fail(g, "no refused fault for a revoked page "
				   "after 2 s");
		else if (atomic_load(&g->refused_addr) != (uintptr_t)addr)
			check_fail(g, "the refused fault was at %#lx, not %p",
				   (unsigned long)atomic_load(&g->refused_addr),
				   (void *)addr);
		else if (!!(atomic_load(&g->refused_flags) &
			    UFFD_PAGEFAULT_FLAG_MINOR) == g->punch)
			check_fail(g, "a %s fault where the backing is %s",
				   g->punch ? "minor" : "missing",
				   g->punch ? "a hole" : "a page");
		nanosleep(&settle, NULL);
		if (atomic_load(&t->done) || atomic_load(&u->done))
			check_fail(g, "an access to a revoked page went "
				   "through (load %d, GUP %d)",
				   atomic_load(&t->done),
				   atomic_load(&u->done));
		return;
	}
	pthread_join(t->th, NULL);
	pthread_join(u->th, NULL);
	if (t->sig != SIGSEGV || t->sig_addr != addr)
		check_fail(g, "a load from a revoked page: signal %d at %p",
			   t->sig, t->sig_addr);
	if (u->err != EFAULT)
		check_fail(g, "GUP of a revoked page: %s",
			   u->err ? strerror(u->err) : "it read");
}

static void check_gate(enum method m, bool punch)
{
	const uint64_t p = CHECK_OFF, q = CHECK_OFF + PAGE;
	struct probe t, u;
	struct gate g;
	uint8_t *priv, *shared, b = 0xb6, want;
	uint64_t e;
	int grants;

	gate_init(&g, m, punch);
	priv = g.view[PRIV];
	shared = g.view[SHARED];
	priv[p] = 0xa5;
	priv[q] = 0x5a;
	/* What the grant must show: the shared backing's own content. */
	must((int)pwrite(g.fd, &b, 1, (off_t)(RAM + p)), "pwrite");
	convert(&g, CHECKER, p, SHARED, false);

	if (shared[p] != 0xb6)
		check_fail(&g, "the granted page reads %#x, its backing 0xb6",
			   shared[p]);
	shared[p] = 0xc7;
	if (pread(g.fd, &b, 1, (off_t)(RAM + p)) != 1 || b != 0xc7)
		check_fail(&g, "a write to the granted page missed the "
			   "backing");
	if (punch && lseek(g.fd, (off_t)p, SEEK_HOLE) != (off_t)p)
		check_fail(&g, "the old backing was not punched");
	if (!is_gate(m))	/* nothing gated: nothing more to check */
		goto out;

	/* The kernel's own record of the gate, what an audit would read. */
	e = pagemap(priv + p);
	if (m == M_GUARD && (!(e & PM_GUARD) || pagemap(shared + p) & PM_GUARD))
		check_fail(&g, "pagemap: guard markers not where the state is");
	if (is_uffd(m) && e & (PM_PRESENT | PM_SWAP))
		check_fail(&g, "pagemap: the revoked page is still mapped");

	check_refused(&g, priv + p, &t, &u);

	/* Zap the neighbour (as reclaim or migration may) and read it back:
	 * its fault must not map the revoked page too (fault-around). */
	must(madvise(priv + q, PAGE, MADV_DONTNEED), "MADV_DONTNEED");
	grants = atomic_load(&g.lazy_grants);
	if (priv[q] != 0x5a)
		check_fail(&g, "the neighbour reads %#x, not 0x5a", priv[q]);
	if (is_uffd(m) && atomic_load(&g.lazy_grants) != grants + 1)
		check_fail(&g, "the neighbour's fault was not granted by the "
			   "handler");
	e = pagemap(priv + p);
	if (m == M_GUARD && !(e & PM_GUARD))
		check_fail(&g, "reading the neighbour removed the guard "
			   "marker");
	/* (A PROT_NONE PTE is still present: nothing to read for mprotect.) */
	if (is_uffd(m) && e & PM_PRESENT)
		check_fail(&g, "reading the neighbour mapped the revoked page");
	if (!is_uffd(m)) {
		struct probe t2, u2;

		check_refused(&g, priv + p, &t2, &u2);
	}

	/* Back to private: a waiting access completes, with the content the
	 * private backing has (none left after the punch). */
	convert(&g, CHECKER, p, PRIV, false);
	want = punch ? 0 : 0xa5;
	if (is_uffd(m)) {
		pthread_join(t.th, NULL);
		pthread_join(u.th, NULL);
		if (t.sig || t.val != want || u.err || u.val != want)
			check_fail(&g, "waiting accesses got %#x (signal %d), "
				   "%#x (%s), not %#x", t.val, t.sig, u.val,
				   u.err ? strerror(u.err) : "read", want);
	}
	if (priv[p] != want)
		check_fail(&g, "the page granted back reads %#x, not %#x",
			   priv[p], want);
	if (punch &&
	    lseek(g.fd, (off_t)(RAM + p), SEEK_HOLE) != (off_t)(RAM + p))
		check_fail(&g, "the shared backing was not punched");
out:
	gate_fini(&g);
}

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

/*
 * Worker @slot on CPU @slot: two threads on two CPUs, as pinned vCPUs
 * are.  Left to the scheduler, a short run's two threads often start on
 * the same CPU while another process keeps the other one busy, and
 * measure that instead.
 */
static void pin(int slot)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;

	if (n < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(slot % n, &set);
	must(sched_setaffinity(0, sizeof(set), &set), "sched_setaffinity");
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	int i;

	pin(w->slot);
	for (i = 0; i < WARMUP; i++)
		convert(w->g, w->slot, w->off, i & 1 ? PRIV : SHARED, w->write);
	pthread_barrier_wait(w->bar);
	w->t0 = bench_now_us();
	for (i = 0; i < ROUNDS; i++)
		convert(w->g, w->slot, w->off, i & 1 ? PRIV : SHARED, w->write);
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

	gate_init(&g, m, punch);
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
	if (is_uffd(m) && atomic_load(&g.refused))
		bench_die("%s: %d accesses refused while timing",
			  methods[m].key, atomic_load(&g.refused));
	gate_fini(&g);
	return (hi - lo) / (nr * ROUNDS);
}

/* ---- the machine --------------------------------------------------------- */

/*
 * Can this machine run two threads at once, and does it for page-table
 * work?  Three loops, each alone, beside a thread of this process that
 * spins and beside another process that spins: nothing shared, no lock,
 * no memory, no system call.  Where the loop that changes PTEs slows
 * beside either, the limit is the machine's (a hypervisor's page-table or
 * TLB handling, vCPUs contending on the host), not any lock of this
 * process, and no gate can scale past it.
 */
enum { L_CPU, L_SYSCALL, L_ZAP, NR_LOOPS };
#define MACHINE_REPS 3

static const char *const loop_names[NR_LOOPS] = {
	[L_CPU] = "a CPU loop",
	[L_SYSCALL] = "getppid()",
	[L_ZAP] = "a write + MADV_DONTNEED of a shmem page",
};

/* Medians: alone, beside a thread, beside a process (enum busy). */
static double machine_us[NR_LOOPS][3];

static atomic_bool spin_stop;

static void *spin_run(void *arg)
{
	pin(1);
	while (!atomic_load_explicit(&spin_stop, memory_order_relaxed))
		relax();
	return NULL;
}

static double loop_us(int l, uint8_t *page)
{
	int n = l == L_ZAP ? 2000 : 100000, i, j;
	double t0 = bench_now_us();

	for (i = 0; i < n; i++) {
		if (l == L_CPU) {
			for (j = 0; j < 300; j++)
				__asm__ volatile("" ::: "memory");
		} else if (l == L_SYSCALL) {
			syscall(SYS_getppid);
		} else {
			*(volatile uint8_t *)page = 1;
			must(madvise(page, PAGE, MADV_DONTNEED),
			     "MADV_DONTNEED");
		}
	}
	return (bench_now_us() - t0) / n;
}

/* The other CPU's load: nothing, a thread of ours, another process. */
enum busy { BUSY_NONE, BUSY_THREAD, BUSY_PROCESS, NR_BUSY };

struct busy_one {
	enum busy how;
	pthread_t th;
	pid_t child;
};

/* Only the main thread runs when this forks: fork() is safe. */
static void busy_start(struct busy_one *b, enum busy how)
{
	struct timespec settle = { 0, 2000000 };

	b->how = how;
	if (how == BUSY_THREAD) {
		atomic_store(&spin_stop, false);
		if (pthread_create(&b->th, NULL, spin_run, NULL))
			bench_die("pthread_create failed");
	} else if (how == BUSY_PROCESS) {
		b->child = fork();
		must(b->child, "fork");
		if (!b->child) {
			pin(1);
			for (;;)
				relax();
		}
	}
	nanosleep(&settle, NULL);	/* it runs by now */
}

static void busy_stop(struct busy_one *b)
{
	if (b->how == BUSY_THREAD) {
		atomic_store(&spin_stop, true);
		pthread_join(b->th, NULL);
	} else if (b->how == BUSY_PROCESS) {
		kill(b->child, SIGKILL);
		waitpid(b->child, NULL, 0);
	}
}

/* The loop on CPU 0, the busy one on CPU 1. */
static void measure_machine(void)
{
	double v[NR_LOOPS][NR_BUSY][MACHINE_REPS];
	int fd = bench_memfd("gating-machine", PAGE), rep, l, how;
	uint8_t *page;
	cpu_set_t all;

	must(sched_getaffinity(0, sizeof(all), &all), "sched_getaffinity");
	pin(0);
	must(fd, "memfd");
	page = mmap(NULL, PAGE, RW, MAP_SHARED, fd, 0);
	must(page == MAP_FAILED ? -1 : 0, "mmap");
	for (rep = 0; rep < MACHINE_REPS; rep++) {
		for (l = 0; l < NR_LOOPS; l++) {
			for (how = 0; how < NR_BUSY; how++) {
				struct busy_one b;

				busy_start(&b, how);
				v[l][how][rep] = loop_us(l, page);
				busy_stop(&b);
			}
		}
	}
	for (l = 0; l < NR_LOOPS; l++)
		for (how = 0; how < NR_BUSY; how++)
			machine_us[l][how] = bench_median(v[l][how],
							  MACHINE_REPS);
	munmap(page, PAGE);
	close(fd);
	must(sched_setaffinity(0, sizeof(all), &all), "sched_setaffinity");
}

static void print_machine(void)
{
	int l;

	printf("| one thread running | alone us | beside a busy thread of "
	       "this process us (x) | beside a busy other process us (x) "
	       "|\n|---|---|---|---|\n");
	for (l = 0; l < NR_LOOPS; l++) {
		const double *x = machine_us[l];

		printf("| %s | %.2f | %.2f (%.2f) | %.2f (%.2f) |\n",
		       loop_names[l], x[0], x[1], x[1] / x[0], x[2],
		       x[2] / x[0]);
		printf("BENCH gating_machine loop=%d alone_us=%.3f "
		       "beside_thread_us=%.3f beside_process_us=%.3f\n", l,
		       x[0], x[1], x[2]);
	}
	printf("\nThe machine: one thread's loop on CPU 0 alone and while "
	       "CPU 1 spins, in this process or in another one (nothing "
	       "shared), medians of %d. A loop that slows beside another "
	       "process is limited by the machine, not by any lock of this "
	       "process.\n\n", MACHINE_REPS);
}

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
			must(mprotect(h->big, HOLD_BYTES, prot), "mprotect");
			prot = prot == RW ? PROT_READ : RW;
		} else {
			must(madvise(h->big, HOLD_BYTES, MADV_POPULATE_READ),
			     "MADV_POPULATE_READ");
		}
		h->held_us += bench_now_us() - t0;
	}
	/* Leave the range as found, writable, for the other holder. */
	must(mprotect(h->big, HOLD_BYTES, RW), "mprotect");
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
		must(mprotect(a, PAGE, op == OP_PROT_NONE ? PROT_NONE : RW),
		     "mprotect");
		break;
	case OP_GUARD_INSTALL:
	case OP_GUARD_REMOVE:
		must(madvise(a, PAGE, op == OP_GUARD_INSTALL ?
			     MADV_GUARD_INSTALL : MADV_GUARD_REMOVE),
		     "madvise");
		break;
	case OP_DONTNEED_UFFD:
	case OP_DONTNEED:
		must(madvise(a, PAGE, MADV_DONTNEED), "MADV_DONTNEED");
		break;
	case OP_CONTINUE:
	case OP_ZEROPAGE:
		err = uffd_map(g->uffd, a, PAGE, op == OP_ZEROPAGE);
		if (err)
			bench_die("%s: %s", op_names[op], strerror(-err));
		break;
	case OP_PUNCH:
		must(fallocate(g->fd, PUNCH, (off_t)off, PAGE), "fallocate");
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

static void measure_lock(void)
{
	struct holder h[NR_HOLDS] = { { .mode = HOLD_WRITE },
				      { .mode = HOLD_READ } };
	uint8_t *big = mmap(NULL, HOLD_BYTES, RW, MAP_PRIVATE |
			    MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	unsigned int s;
	int k, i;

	must(big == MAP_FAILED ? -1 : 0, "mmap");
	h[HOLD_WRITE].big = h[HOLD_READ].big = big;
	for (s = 0; s < sizeof(lock_seqs) / sizeof(lock_seqs[0]); s++) {
		const struct lock_seq *q = &lock_seqs[s];
		double lat[1 + NR_HOLDS][3][LOCK_ALONE];
		struct gate g;

		if (unavailable[q->m])
			continue;
		gate_init(&g, q->m, q->punch);
		g.view[PRIV][2 * MIB] = 1;	/* a page in the memfd */
		seq_times(&g, q, LOCK_ALONE, false, lat[0]);
		for (i = 0; i < NR_HOLDS; i++)
			seq_held(&g, q, &h[i], lat[1 + i]);
		gate_fini(&g);
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

	must(fd, "memfd");
	p = mmap(NULL, 4 * PAGE, RW, MAP_SHARED, fd, 0);
	must(p == MAP_FAILED ? -1 : 0, "mmap");
	if (madvise(p, PAGE, MADV_GUARD_INSTALL))
		unavailable[M_GUARD] = "no guard regions on shmem "
				       "(MADV_GUARD_INSTALL: Linux 6.13, "
				       "on shmem 6.15)";
	uffd = uffd_open(&why);
	if (uffd >= 0) {
		uint64_t need = 1ULL << _UFFDIO_CONTINUE |
				1ULL << _UFFDIO_ZEROPAGE;

		if ((uffd_register(uffd, p, 4 * PAGE) & need) != need)
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
		bool gate = is_gate(w->m);

		if (w->write != write)
			continue;
		printf("| %s | %s | ", methods[w->m].name,
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
		       methods[w->m].key, w->punch ? "yes" : "no",
		       w->write ? "yes" : "no", x->us1, x->us2, x->ratio,
		       x->cpu, x->share);
	}
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

static void print_lock(void)
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
	print_machine();
	print_lock();
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

int main(void)
{
	struct sigaction sa = { .sa_sigaction = probe_signal,
				.sa_flags = SA_SIGINFO };
	char reasons[512] = "";
	struct utsname u;
	int m, k;

	uname(&u);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	probe_gates();
	measure_machine();
	for (m = 0; m < NR_METHODS; m++)
		for (k = 0; k < 2 && !unavailable[m] && m != M_SPIN &&
			    m != M_ZAP; k++)
			check_gate(m, k);
	measure_lock();
	measure();
	print_tables(&u);
	fflush(stdout);
	if (bench_failures())
		return BENCH_EXIT_FAIL;
	for (m = 0; m < NR_METHODS; m++)
		if (unavailable[m] && !strstr(reasons, unavailable[m]))
			snprintf(reasons + strlen(reasons),
				 sizeof(reasons) - strlen(reasons), "%s%s: %s",
				 *reasons ? "; " : "", methods[m].key,
				 unavailable[m]);
	if (*reasons)
		bench_skip("%s", reasons);
	return 0;
}
