/* SPDX-License-Identifier: MIT */
/*
 * Run statistics.  Each vCPU counts into its own struct vcpu_stats without
 * locks or atomics (only its thread writes it); stats_print() sums them
 * after every vCPU thread has been joined, the control socket's stats
 * while every vCPU is paused.
 */
#ifndef GMVM_STATS_H
#define GMVM_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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
	uint64_t hypercalls;			/* every number */
	uint64_t hypercalls_failed;		/* returned != 0 to the guest */
	/* Conversions that changed pages, indexed by target enum gmem_state. */
	uint64_t explicit_conv[2];
	uint64_t explicit_pages[2];
	uint64_t implicit_conv[2];
	uint64_t implicit_pages[2];
	/* MAP_GPA_RANGE and CONVERT_BATCH calls refused with -EAGAIN (a
	 * pinned page), and the first busy GPA libgmem named for the latest
	 * of them. */
	uint64_t convert_busy;
	uint64_t busy_last_gpa;
	uint64_t busy_last_ns;			/* when: the latest wins */
	/* Hypercalls answered -12 (extension 3): the host would not split
	 * its mappings further (vm.max_map_count); nothing changed. */
	uint64_t hc_nomem;
	/* CONVERT_BATCH (extension 3): calls, and the entries and pages
	 * changed by those that succeeded. */
	uint64_t batch_calls;
	uint64_t batch_entries;
	uint64_t batch_pages;
	/* Wrong-view exits whose page was in the view used by the time gmvm
	 * looked (a conversion raced the access): completed, not converted
	 * or denied. */
	uint64_t implicit_raced;
	uint64_t hc_hist[STATS_HIST_BUCKETS];
};

void stats_hist_record(uint64_t *hist, uint64_t ns);

struct vm;
void stats_print(struct vm *vm);
/* The same, to @f, as text or one JSON object on one line: at exit, or
 * while every vCPU is paused (vm_pause()). */
void stats_write(struct vm *vm, FILE *f, bool json);

/*
 * The --stats output is described by tables of struct stat_field, one
 * entry per value, and each table drives both formats: the text lines
 * (label, then each value between its pre and post text) and the JSON
 * object (each value under its key, objects nested with STAT_OBJ and
 * STAT_END).  A value that only one format shows has no pre (JSON only)
 * or no key (text only).  Devices print their own section the same way
 * (struct device's stats hook).
 */
enum stat_kind {
	STAT_U64,	/* uint64_t: text %llu, JSON %llu */
	STAT_HEX,	/* uint64_t: text %#llx, JSON %llu */
	STAT_MIB,	/* uint64_t bytes: text %.1f MiB, JSON %llu bytes */
	STAT_PAGES_MIB,	/* uint64_t pages: text %.1f MiB */
	STAT_US,	/* uint64_t ns: text %.1f us, JSON %llu ns */
	STAT_I64_MIB,	/* int64_t bytes, < 0 unknown: text %.1f (-1.0),
			   JSON %lld */
	STAT_SECONDS,	/* double: text %.3f, JSON %.6f */
	STAT_STR,	/* const char *: text %s, JSON "%s" */
	STAT_BOOL,	/* bool: text yes/no, JSON true/false */
	STAT_INT,	/* int: %d */
	STAT_LINE,	/* text: end the line, start one with pre */
	STAT_OBJ,	/* JSON: open the object named json */
	STAT_END,	/* JSON: close it */
	STAT_CUSTOM,	/* custom() prints it, in either format */
};

struct stats_out;

struct stat_field {
	enum stat_kind kind;
	const char *pre;	/* text before the value (NULL: JSON only) */
	const char *post;	/* text after it */
	const char *json;	/* JSON key (NULL: text only) */
	size_t off;		/* of the value in the table's source */
	/* If has_when: shown only when the bool at @when is true; else
	 * JSON says null (null_otherwise) or leaves the key out. */
	bool has_when;
	bool null_otherwise;
	size_t when;
	void (*custom)(struct stats_out *out, const void *src);
};

/* Print the values of @src that table @t[@n] describes. */
void stats_emit(struct stats_out *out, const struct stat_field *t, size_t n,
		const void *src);
/* For custom entries: one "name value" of a list ("exits: a 1, b 2"). */
void stats_list_item(struct stats_out *out, const char *text,
		     const char *json, uint64_t v);

#endif /* GMVM_STATS_H */
