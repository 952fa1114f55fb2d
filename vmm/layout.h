/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM layouts: which guest-physical ranges are RAM.
 *
 * gmvm used to assume RAM was [0, ram_size).  With `--memory-layout pc`
 * it is split around a 1 GiB hole below 4 GiB, as on a PC (where the hole
 * holds PCI MMIO), so every check of a guest-controlled range asks the
 * layout, never a single bound.  The layout is plain data: `gmvm run`
 * computes it from --memory and --memory-layout; the fuzzers build small
 * ones of their own with a hole, so that the same checks are fuzzed.
 */
#ifndef GMVM_LAYOUT_H
#define GMVM_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Ranges a layout may have (pc: below and above the hole). */
#define RAM_MAX_RANGES 2

/* The pc layout's hole: [3 GiB, 4 GiB). */
#define RAM_PC_HOLE_START (3ULL << 30)
#define RAM_PC_HOLE_END (4ULL << 30)

enum ram_layout_kind {
	RAM_LAYOUT_FLAT = 0,	/* [0, SIZE) */
	RAM_LAYOUT_PC = 1,	/* [0, min(SIZE, 3G)) + [4G, SIZE + 1G) */
};

struct ram_range {
	uint64_t gpa;
	uint64_t len;
};

/* Ranges in GPA order, disjoint, page aligned, none empty. */
struct ram_layout {
	unsigned int nr;
	struct ram_range range[RAM_MAX_RANGES];
	uint64_t bytes;		/* RAM: the sum of the lengths */
	uint64_t top;		/* end of the highest range */
};

/*
 * The layout @kind makes of @size bytes of RAM.  0, or -EINVAL (@size 0
 * or not 4 KiB aligned, unknown @kind) or -ERANGE (@size so large that
 * the top of RAM would not fit in 64 bits).
 */
int ram_layout_compute(enum ram_layout_kind kind, uint64_t size,
		       struct ram_layout *out);

/*
 * @l from @nr ranges (1 .. RAM_MAX_RANGES), checked: in GPA order, not
 * touching, page aligned, none empty, no wrap.  0 or -EINVAL.
 */
int ram_layout_from_ranges(struct ram_layout *l, const struct ram_range *r,
			   unsigned int nr);

/* The range holding @gpa, or NULL (a hole, or past the top). */
const struct ram_range *ram_layout_find(const struct ram_layout *l,
					uint64_t gpa);

/*
 * Is [gpa, gpa + len) RAM, all of it inside one range?  False for @len 0
 * and for a range that wraps.  This is what every guest-controlled range
 * is checked with: a range touching a hole is not RAM.
 */
bool ram_layout_contains(const struct ram_layout *l, uint64_t gpa,
			 uint64_t len);

/* "[0, 0xc0000000) [0x100000000, 0x180000000)", for messages. */
void ram_layout_describe(const struct ram_layout *l, char *buf, size_t len);

/* "flat" or "pc" (as --memory-layout spells it). */
const char *ram_layout_name(enum ram_layout_kind kind);

#endif /* GMVM_LAYOUT_H */
