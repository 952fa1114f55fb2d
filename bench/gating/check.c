/* SPDX-License-Identifier: MIT */
/*
 * The checks run before any timing: does each gate gate?  A revoked page
 * refuses a load from another thread and GUP (process_vm_readv()), also
 * after its neighbour faulted back in, pagemap agrees, and a granted page
 * shows its backing's content.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "gating.h"

#define CHECK_OFF (16 * MIB)	/* the checks' page, no worker's */

/* /proc/self/pagemap (Documentation/admin-guide/mm/pagemap.rst) */
#define PM_PRESENT (1ULL << 63)
#define PM_SWAP (1ULL << 62)
#define PM_GUARD (1ULL << 58)

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

void gating_probe_signals(void)
{
	struct sigaction sa = { .sa_sigaction = probe_signal,
				.sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
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

	gating_must(fd, "open /proc/self/pagemap");
	if (pread(fd, &e, sizeof(e),
		  (off_t)((uintptr_t)addr / PAGE * sizeof(e))) != sizeof(e))
		bench_die("read /proc/self/pagemap: %s", strerror(errno));
	close(fd);
	return e;
}

/* Whether a check of the gate being checked failed. */
static bool failed;

static void __attribute__((format(printf, 2, 3)))
check_fail(const struct gate *g, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bench_fail("%s, punch %s: %s", gating_methods[g->m].key,
		   g->punch ? "yes" : "no", msg);
	failed = true;
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
	if (gating_is_uffd(g->m)) {
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

bool gating_check_gate(enum method m, bool punch)
{
	const uint64_t p = CHECK_OFF, q = CHECK_OFF + PAGE;
	struct probe t, u;
	struct gate g;
	uint8_t *priv, *shared, b = 0xb6, want;
	uint64_t e;
	int grants;

	failed = false;
	gating_gate_init(&g, m, punch);
	priv = g.view[PRIV];
	shared = g.view[SHARED];
	priv[p] = 0xa5;
	priv[q] = 0x5a;
	/* What the grant must show: the shared backing's own content. */
	gating_must((int)pwrite(g.fd, &b, 1, (off_t)(RAM + p)), "pwrite");
	gating_convert(&g, CHECKER, p, SHARED, false);

	if (shared[p] != 0xb6)
		check_fail(&g, "the granted page reads %#x, its backing 0xb6",
			   shared[p]);
	shared[p] = 0xc7;
	if (pread(g.fd, &b, 1, (off_t)(RAM + p)) != 1 || b != 0xc7)
		check_fail(&g, "a write to the granted page missed the "
			   "backing");
	if (punch && lseek(g.fd, (off_t)p, SEEK_HOLE) != (off_t)p)
		check_fail(&g, "the old backing was not punched");
	/* nothing gated: nothing more to check */
	if (!gating_is_gate(m))
		goto out;

	/* The kernel's own record of the gate, what an audit would read. */
	e = pagemap(priv + p);
	if (m == M_GUARD && (!(e & PM_GUARD) || pagemap(shared + p) & PM_GUARD))
		check_fail(&g, "pagemap: guard markers not where the state is");
	if (gating_is_uffd(m) && e & (PM_PRESENT | PM_SWAP))
		check_fail(&g, "pagemap: the revoked page is still mapped");

	check_refused(&g, priv + p, &t, &u);

	/* Zap the neighbour (as reclaim or migration may) and read it back:
	 * its fault must not map the revoked page too (fault-around). */
	gating_must(madvise(priv + q, PAGE, MADV_DONTNEED), "MADV_DONTNEED");
	grants = atomic_load(&g.lazy_grants);
	if (priv[q] != 0x5a)
		check_fail(&g, "the neighbour reads %#x, not 0x5a", priv[q]);
	if (gating_is_uffd(m) && atomic_load(&g.lazy_grants) != grants + 1)
		check_fail(&g, "the neighbour's fault was not granted by the "
			   "handler");
	e = pagemap(priv + p);
	if (m == M_GUARD && !(e & PM_GUARD))
		check_fail(&g, "reading the neighbour removed the guard "
			   "marker");
	/* (A PROT_NONE PTE is still present: nothing to read for mprotect.) */
	if (gating_is_uffd(m) && e & PM_PRESENT)
		check_fail(&g, "reading the neighbour mapped the revoked page");
	if (!gating_is_uffd(m)) {
		struct probe t2, u2;

		check_refused(&g, priv + p, &t2, &u2);
	}

	/* Back to private: a waiting access completes, with the content the
	 * private backing has (none left after the punch). */
	gating_convert(&g, CHECKER, p, PRIV, false);
	want = punch ? 0 : 0xa5;
	if (gating_is_uffd(m)) {
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
	gating_gate_fini(&g);
	return !failed;
}
