/* SPDX-License-Identifier: MIT */
/*
 * Run statistics.  Each vCPU counts into its own struct vcpu_stats without
 * locks or atomics (only its thread writes it); stats_print() sums them
 * after every vCPU thread has been joined.
 */
#ifndef GMVM_STATS_H
#define GMVM_STATS_H

#include <stdint.h>

/* KVM exit reasons are small numbers; anything >= this counts as "other". */
#define STATS_NR_EXIT_REASONS 64

/*
 * Hypercall latency histogram, log2 with 8 linear sub-buckets per power of
 * two (values 0..7 ns get a bucket each): a quantile read from it is the
 * upper bound of its bucket, at most 12.5% above the true value.  Fixed
 * size, no allocation, mergeable by adding.
 */
#define STATS_HIST_SUB 8
#define STATS_HIST_BUCKETS (8 + 61 * STATS_HIST_SUB)

struct vcpu_stats {
	uint64_t runs;				/* KVM_RUN calls */
	uint64_t exits[STATS_NR_EXIT_REASONS];	/* KVM_RUN returned 0 */
	uint64_t exits_intr;			/* returned EINTR (kicked) */
	uint64_t exits_memory_fault;		/* EFAULT + MEMORY_FAULT */
	uint64_t port_exits[8];			/* per registered handler */
	uint64_t hypercalls;			/* MAP_GPA_RANGE calls */
	uint64_t hypercalls_failed;		/* returned != 0 to the guest */
	/* Conversions that changed pages, indexed by target enum gmem_state. */
	uint64_t explicit_conv[2];
	uint64_t explicit_pages[2];
	uint64_t implicit_conv[2];
	uint64_t implicit_pages[2];
	/* MAP_GPA_RANGE conversions refused with -EAGAIN (a pinned page),
	 * and the first busy GPA libgmem named for the latest of them. */
	uint64_t convert_busy;
	uint64_t busy_last_gpa;
	uint64_t busy_last_ns;			/* when: the latest wins */
	/* Wrong-view exits whose page was in the view used by the time gmvm
	 * looked (a conversion raced the access): completed, not converted
	 * or denied. */
	uint64_t implicit_raced;
	uint64_t hc_hist[STATS_HIST_BUCKETS];
};

void stats_hist_record(uint64_t *hist, uint64_t ns);

struct vm;
void stats_print(struct vm *vm);

#endif /* GMVM_STATS_H */
