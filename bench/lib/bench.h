/* SPDX-License-Identifier: MIT */
/*
 * The benchmark library: what more than one benchmark needs, so that each
 * bench/bench_*.c holds only its own measurement and tables.
 *
 *   report.c  exit codes and messages: skip (77), fail now (1), count a
 *             failure and go on; the goal column of the tables
 *   stats.c   clocks and medians
 *   host.c    is KVM usable for libgmem here, a VM, libgmem on it
 *   floor.c   the kernel floor of a conversion: libgmem's setup built
 *             without libgmem, converted with the bare system calls
 *   tsc.c     guest TSC cycles to time, and the check that makes it right
 *   run.c     running gmvm (or this program) and capturing its output
 *   parse.c   the "@ TAG hex..." lines the benchmark guests print
 *
 * Benchmarks see libgmem's public header and util/ only (bench_range_map
 * excepted: it measures the internal map).  Like the tests, a benchmark
 * exits 0, 1 (failed) or 77 (skipped, the reason its last line).
 */
#ifndef GMEM_BENCH_H
#define GMEM_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "gmem/gmem.h"
#include "kvm_util.h"

#define BENCH_EXIT_FAIL 1
#define BENCH_EXIT_SKIP 77

/* Values one "@" line may carry, and samples one median may take. */
#define BENCH_MAX_SAMPLES 512

/* ---- report.c ----------------------------------------------------------- */

/*
 * End with @status and the message: BENCH_EXIT_SKIP prints "skipped:
 * REASON" on stdout, where run-bench.sh keeps it; anything else prints the
 * message on stderr.
 */
void bench_exit(int status, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 2, 3)));
#define bench_skip(...) bench_exit(BENCH_EXIT_SKIP, __VA_ARGS__)
#define bench_die(...) bench_exit(BENCH_EXIT_FAIL, __VA_ARGS__)

/*
 * "PROG: message" on stderr: what a long benchmark is doing now or, if
 * @failure, what went wrong (counted; the benchmark goes on).
 */
void bench_note(bool failure, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define bench_progress(...) bench_note(false, __VA_ARGS__)
#define bench_fail(...) bench_note(true, __VA_ARGS__)
/* Failures counted so far: main() returns 1 if any. */
int bench_failures(void);

/* Exit 1 unless @a == @b (compared as signed 64-bit values, as -errno). */
#define BENCH_ASSERT_EQ(a, b)                                               \
	bench_assert_eq((long long)(a), (long long)(b), #a " == " #b,        \
			__FILE__, __LINE__)
void bench_assert_eq(long long a, long long b, const char *what,
		     const char *file, int line);

/* The goal column: "met" or a bold "missed". */
const char *bench_goal_mark(bool met);

/* ---- stats.c ------------------------------------------------------------ */

double bench_now_us(void);		/* CLOCK_MONOTONIC */
double bench_now_ns(void);
double bench_mono_raw_ns(void);		/* CLOCK_MONOTONIC_RAW */
/* Median of @n values (sorts them). */
double bench_median(double *v, int n);
/* Median of @n <= BENCH_MAX_SAMPLES counts (TSC cycles). */
double bench_median_u64(const uint64_t *v, int n);

/* ---- host.c ------------------------------------------------------------- */

/*
 * What libgmem's emulated backend picks on this host for a VM of the
 * default type: the guest_memfd flags and the gating layout.
 */
struct bench_host {
	uint64_t gmem_flags;
	enum gmem_layout layout;
};

/* Skip (77, with the reason) unless KVM runs libgmem's emulated backend. */
void bench_require_kvm(struct bench_host *host);
/*
 * A KVM VM of the default type where the host runs libgmem, else -1:
 * libgmem then runs without a VM (see bench_create_gmem()).
 */
int bench_create_vm(void);

/* A memfd of @size bytes: fd, or -1 with errno set. */
int bench_memfd(const char *name, uint64_t size);
/*
 * A snap_restore_opts / mig_recv_opts create callback for a VM without
 * KVM: @in's one region gets a memfd named @data as its private backing
 * (where gmvm would give a guest_memfd).  0 or -errno.
 */
int bench_create_memfd_vm(void *data, const struct gmem_config *in,
			  struct gmem_vm **out);

/*
 * One region [0, @ram) at GPA 0, every page @initial, on @vm_fd with the
 * gating layout the host offers; or without a VM (@vm_fd -1): then a
 * memfd stands in for the guest_memfd and the slots go nowhere.  The
 * caller may change *@cfg before bench_gmem_create().
 */
void bench_gmem_config(struct gmem_config *cfg, struct gmem_region_config *rc,
		       int vm_fd, uint64_t ram, enum gmem_mode mode,
		       enum gmem_state initial);
/* gmem_create(@cfg), which must come from bench_gmem_config(); exits 1 if
 * libgmem refuses. */
struct gmem_vm *bench_gmem_create(const struct gmem_config *cfg);

/* ---- floor.c ------------------------------------------------------------ */

/*
 * The kernel floor: a KVM VM with a guest_memfd (private view, slot 0 at
 * GPA 0) and, in discard mode, a memfd (shared view, slot 1 at
 * shared_base); in in-place mode the shared view maps the guest_memfd
 * itself.  Same flags, layout and protections as gmem_create(), all RAM
 * private: private view RW, shared view closed.
 */
struct floor_vm {
	int vm, gfd, sfd;
	struct kvmu_vcpu vcpu;
	uint8_t *priv, *shared;
	bool in_place;
	uint64_t ram;
};

/* Exits 1 if the host refuses what it offered to the probe. */
void floor_vm_create(struct floor_vm *f, bool in_place, uint64_t ram,
		     uint64_t shared_base, const struct bench_host *host);
/* Run a vCPU once, so that KVM keeps per-memslot MMU state (floor.c). */
void floor_vm_run_vcpu(struct floor_vm *f);
void floor_vm_destroy(struct floor_vm *f);
/*
 * mprotect(old view, NONE), mprotect(new view, RW) and, in discard mode,
 * fallocate(PUNCH_HOLE) of the old backing over [off, off + len).
 */
void floor_vm_convert(struct floor_vm *f, uint64_t off, uint64_t len,
		      bool to_shared);

/* Write one byte per page: populates the backing and the mapping. */
void bench_touch(uint8_t *p, uint64_t len);

/* ---- tsc.c -------------------------------------------------------------- */

struct bench_run;

uint64_t bench_rdtsc(void);
/* Host TSC cycles per ns, over 200 ms of CLOCK_MONOTONIC_RAW. */
void bench_tsc_calibrate(void);
double bench_tsc_per_ns(void);
double bench_cycles_us(double cycles);
/* A TSC value a guest of run @r reported: counted, failed if outside. */
void bench_tsc_check(const struct bench_run *r, uint64_t guest_tsc);
/*
 * A benchmark guest's whole output: its first and last "@ tsc" lines
 * (each checked as above) and "@ done".  False if any is missing.
 */
bool bench_tsc_bracket(const struct bench_run *r);
/* The closing paragraph: the rate, and how many checks held. */
void bench_tsc_report(void);

/* ---- run.c -------------------------------------------------------------- */

struct bench_run {
	char *out;		/* stdout, NUL-terminated */
	size_t len;
	int status;		/* exit status, or -1 */
	uint64_t h0, h1;	/* host TSC right before spawn, after exit */
	long hwm_kib;		/* VmHWM: peak RSS of the process's own mm */
	long rss_kib, anon_kib, file_kib, shmem_kib; /* at the largest VmRSS */
};

/*
 * A benchmark of gmvm (this program is $(BUILD)/bench/NAME): skip (77,
 * with the reason) unless $(BUILD)/gmvm, $(BUILD)/guest/bench/@guest and
 * KVM are here; then calibrate the TSC.
 */
void bench_gmvm_setup(const char *guest, struct bench_host *host);
/* The closing TSC paragraph, and main()'s exit status. */
int bench_gmvm_finish(void);
const char *bench_gmvm_path(void);
const char *bench_self_path(void);
/* @buf gets the path of benchmark guest @guest ("latency.elf"). */
void bench_guest_path(char *buf, size_t size, const char *guest);

/*
 * Spawn @argv (stdout captured, stderr inherited) and wait for it; with
 * @poll_rss, sample its memory every millisecond meanwhile.  0, or -1
 * (counted as a failure) if it did not run or exited with a status.
 */
int bench_run_cmd(char *const argv[], struct bench_run *r, bool poll_rss);
/*
 * gmvm run --timeout 300 OPTS... guest/bench/@guest ARGS...: @opts holds
 * gmvm's options, NULL, then the guest's arguments, NULL.
 */
int bench_run_gmvm(struct bench_run *r, const char *guest,
		   const char *const *opts);
void bench_run_free(struct bench_run *r);

/* ---- parse.c ------------------------------------------------------------ */

/* The line "@ TAG ..." after @from: pointer past "@ TAG", or NULL. */
const char *bench_find_tag(const char *from, const char *tag);
/* Hex numbers up to the end of the line; returns how many. */
int bench_parse_hex(const char *p, uint64_t *v, int max);
/*
 * The first "@ TAG" line after @from holds TSC cycle samples: *@us gets
 * their median in us.  Returns how many there were, 0 if none (or no
 * such line).
 */
int bench_tag_median_us(const char *from, const char *tag, double *us);
/*
 * The first "@ TAG" line of @out with @n values whose first is @key (one
 * line per size, say): the values in @v; false if there is none.
 */
bool bench_find_keyed(const char *out, const char *tag, uint64_t key,
		      uint64_t *v, int n);

#endif /* GMEM_BENCH_H */
