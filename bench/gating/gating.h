/* SPDX-License-Identifier: MIT */
/*
 * What bench_gating_scaling's parts share: the gate (one memfd, two views
 * of it, and the calls that gate a page between them), the methods it
 * compares, and each part's entry points.
 *
 *   gate.c     the gate, group commit, a conversion
 *   uffd.c     the userfaultfd gate's helpers and its fault handler
 *   check.c    the checks: does the gate gate?
 *   machine.c  the machine: can it run two threads at once; pinning
 *   lock.c     which calls wait for the mmap lock, and its table
 *
 * The program itself (bench/bench_gating_scaling.c) times the gates and
 * prints the tables.  Like bench/lib, these see libgmem's public header
 * and util/ only.
 */
#ifndef GMEM_BENCH_GATING_H
#define GMEM_BENCH_GATING_H

#include <linux/falloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

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

struct gating_method {
	const char *name, *key;
};

/* gate.c: each method's table row and its key in the BENCH lines. */
extern const struct gating_method gating_methods[NR_METHODS];

/* The first five are gates; the others are references. */
static inline bool gating_is_gate(enum method m)
{
	return m < M_NONE;
}

static inline bool gating_is_uffd(enum method m)
{
	return m == M_UFFD || m == M_UFFD_LAZY;
}

static inline void gating_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	sched_yield();
#endif
}

/* ---- the gate: one memfd, two views (gate.c) ----------------------------- */

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

/* Go on if @ret >= 0, else end the program with the message and errno. */
void __attribute__((format(printf, 2, 3)))
gating_must(int ret, const char *fmt, ...);

void gating_gate_init(struct gate *g, enum method m, bool punch);
void gating_gate_fini(struct gate *g);
void gating_convert(struct gate *g, int slot, uint64_t off, enum view to,
		    bool write);

/* ---- uffd.c -------------------------------------------------------------- */

int gating_uffd_open(const char **why);
uint64_t gating_uffd_register(int uffd, uint8_t *addr, uint64_t len);
void gating_uffd_wake(int uffd, uint8_t *addr, uint64_t len);
int gating_uffd_map(int uffd, uint8_t *addr, uint64_t len, bool zero);
void gating_uffd_grant(const struct gate *g, uint8_t *addr);
/* The handler thread: started once g->uffd has the views registered. */
void gating_uffd_start(struct gate *g);
void gating_uffd_stop(struct gate *g);

/* ---- check.c ------------------------------------------------------------- */

/* Catch SIGSEGV and SIGBUS for the probes' accesses. */
void gating_probe_signals(void);
/* Check that @m (with @punch) gates; false if a check failed. */
bool gating_check_gate(enum method m, bool punch);

/* ---- machine.c ----------------------------------------------------------- */

void gating_pin(int slot);
void gating_measure_machine(void);
void gating_print_machine(void);

/* ---- lock.c -------------------------------------------------------------- */

/* @unavailable: why a method cannot run here, per method (NULL: it can). */
void gating_measure_lock(const char *const unavailable[NR_METHODS]);
/* The table and the paragraph under it. */
void gating_print_lock(void);

#endif
