/* SPDX-License-Identifier: MIT */
/*
 * gmvm's guest RAM layouts (vmm/layout.c), table by table:
 *
 *  - ram_layout_compute(): flat and pc for sizes below, at and above the
 *    3 GiB hole start (4 KiB either side of it), 16 GiB, gmvm's largest
 *    (64 GiB), and bad input (0, unaligned, an unknown kind, a size whose
 *    top of RAM would wrap);
 *  - ram_layout_from_ranges(): every malformed set of ranges refused;
 *  - ram_layout_contains() and ram_layout_find() on the pc layout of
 *    5 GiB: ranges inside either region, touching or straddling the hole,
 *    at and past the top, empty and wrapping;
 *  - ram_layout_describe() and ram_layout_name().
 *
 * Needs no KVM.  Links vmm/layout.o (see the Makefile).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "test_util.h"
#include "../vmm/layout.h"

#define K4 0x1000ULL
#define G1 (1ULL << 30)

struct compute_case {
	enum ram_layout_kind kind;
	uint64_t size;
	int ret;
	unsigned int nr;
	struct ram_range r[RAM_MAX_RANGES];
	uint64_t top;
};

static const struct compute_case compute_cases[] = {
	/* flat: one range [0, size), whatever the size */
	{ RAM_LAYOUT_FLAT, 2ULL << 20, 0, 1, { { 0, 2ULL << 20 } }, 2ULL << 20 },
	{ RAM_LAYOUT_FLAT, 3 * G1, 0, 1, { { 0, 3 * G1 } }, 3 * G1 },
	{ RAM_LAYOUT_FLAT, 5 * G1, 0, 1, { { 0, 5 * G1 } }, 5 * G1 },
	{ RAM_LAYOUT_FLAT, 16 * G1, 0, 1, { { 0, 16 * G1 } }, 16 * G1 },
	/* pc below the hole: one range, as flat */
	{ RAM_LAYOUT_PC, K4, 0, 1, { { 0, K4 } }, K4 },
	{ RAM_LAYOUT_PC, 256ULL << 20, 0, 1, { { 0, 256ULL << 20 } },
	  256ULL << 20 },
	{ RAM_LAYOUT_PC, 3 * G1 - K4, 0, 1, { { 0, 3 * G1 - K4 } },
	  3 * G1 - K4 },
	/* at the hole: still one range, ending where the hole starts */
	{ RAM_LAYOUT_PC, 3 * G1, 0, 1, { { 0, 3 * G1 } }, 3 * G1 },
	/* above: the rest goes to 4 GiB and up */
	{ RAM_LAYOUT_PC, 3 * G1 + K4, 0, 2,
	  { { 0, 3 * G1 }, { 4 * G1, K4 } }, 4 * G1 + K4 },
	{ RAM_LAYOUT_PC, 4 * G1, 0, 2, { { 0, 3 * G1 }, { 4 * G1, G1 } },
	  5 * G1 },
	{ RAM_LAYOUT_PC, 5 * G1, 0, 2, { { 0, 3 * G1 }, { 4 * G1, 2 * G1 } },
	  6 * G1 },
	{ RAM_LAYOUT_PC, 16 * G1, 0, 2,
	  { { 0, 3 * G1 }, { 4 * G1, 13 * G1 } }, 17 * G1 },
	{ RAM_LAYOUT_PC, 64 * G1, 0, 2,
	  { { 0, 3 * G1 }, { 4 * G1, 61 * G1 } }, 65 * G1 },
	/* bad input */
	{ RAM_LAYOUT_FLAT, 0, -EINVAL },
	{ RAM_LAYOUT_PC, 0, -EINVAL },
	{ RAM_LAYOUT_FLAT, K4 + 1, -EINVAL },
	{ RAM_LAYOUT_PC, 5 * G1 + 0x800, -EINVAL },
	{ (enum ram_layout_kind)2, 256ULL << 20, -EINVAL },
	{ (enum ram_layout_kind)-1, 256ULL << 20, -EINVAL },
	/* the top of RAM, size + 1 GiB, would not fit in 64 bits */
	{ RAM_LAYOUT_PC, UINT64_MAX & ~(K4 - 1), -ERANGE },
	{ RAM_LAYOUT_PC, UINT64_MAX - G1 + 1, -ERANGE },
	/* the largest size whose top still fits */
	{ RAM_LAYOUT_PC, UINT64_MAX - G1 + 1 - K4, 0, 2,
	  { { 0, 3 * G1 }, { 4 * G1, UINT64_MAX - 4 * G1 + 1 - K4 } },
	  UINT64_MAX - K4 + 1 },
	/* flat wraps nowhere: [0, size) always fits */
	{ RAM_LAYOUT_FLAT, UINT64_MAX & ~(K4 - 1), 0, 1,
	  { { 0, UINT64_MAX & ~(K4 - 1) } }, UINT64_MAX & ~(K4 - 1) },
};

static void test_compute(void)
{
	unsigned int i, k;

	for (i = 0; i < sizeof(compute_cases) / sizeof(compute_cases[0]);
	     i++) {
		const struct compute_case *c = &compute_cases[i];
		struct ram_layout l;
		uint64_t bytes = 0;
		int ret;

		memset(&l, 0xa5, sizeof(l));
		ret = ram_layout_compute(c->kind, c->size, &l);
		if (ret != c->ret)
			TEST_FAIL("case %u (%s, %#llx): returned %d, want %d", i,
				  ram_layout_name(c->kind),
				  (unsigned long long)c->size, ret, c->ret);
		if (ret)
			continue;
		if (l.nr != c->nr)
			TEST_FAIL("case %u: %u ranges, want %u", i, l.nr, c->nr);
		for (k = 0; k < c->nr; k++) {
			if (l.range[k].gpa != c->r[k].gpa ||
			    l.range[k].len != c->r[k].len)
				TEST_FAIL("case %u: range %u is [%#llx, +%#llx), want [%#llx, +%#llx)",
					  i, k,
					  (unsigned long long)l.range[k].gpa,
					  (unsigned long long)l.range[k].len,
					  (unsigned long long)c->r[k].gpa,
					  (unsigned long long)c->r[k].len);
			bytes += c->r[k].len;
		}
		/* RAM bytes are the size asked for; the top is the end. */
		TEST_ASSERT_EQ(l.bytes, c->size);
		TEST_ASSERT_EQ(l.bytes, bytes);
		TEST_ASSERT_EQ(l.top, c->top);
	}
}

struct ranges_case {
	const char *what;
	unsigned int nr;
	struct ram_range r[RAM_MAX_RANGES + 1];
	int ret;
};

static const struct ranges_case ranges_cases[] = {
	{ "one", 1, { { 0, K4 } }, 0 },
	{ "two with a gap", 2, { { 0, K4 }, { 2 * K4, K4 } }, 0 },
	{ "one not at 0", 1, { { 8 * K4, K4 } }, 0 },
	{ "none", 0, { { 0, K4 } }, -EINVAL },
	{ "too many", RAM_MAX_RANGES + 1,
	  { { 0, K4 }, { 2 * K4, K4 }, { 4 * K4, K4 } }, -EINVAL },
	{ "empty", 1, { { 0, 0 } }, -EINVAL },
	{ "gpa unaligned", 1, { { 1, K4 } }, -EINVAL },
	{ "len unaligned", 1, { { 0, K4 + 8 } }, -EINVAL },
	{ "wraps", 1, { { UINT64_MAX - K4 + 1, 2 * K4 } }, -EINVAL },
	{ "out of order", 2, { { 4 * K4, K4 }, { 0, K4 } }, -EINVAL },
	{ "overlapping", 2, { { 0, 2 * K4 }, { K4, K4 } }, -EINVAL },
	{ "touching", 2, { { 0, K4 }, { K4, K4 } }, -EINVAL },
	{ "second empty", 2, { { 0, K4 }, { 2 * K4, 0 } }, -EINVAL },
};

static void test_from_ranges(void)
{
	unsigned int i;

	for (i = 0; i < sizeof(ranges_cases) / sizeof(ranges_cases[0]); i++) {
		const struct ranges_case *c = &ranges_cases[i];
		struct ram_layout l;
		int ret = ram_layout_from_ranges(&l, c->r, c->nr);

		if (ret != c->ret)
			TEST_FAIL("ranges \"%s\": returned %d, want %d", c->what,
				  ret, c->ret);
		if (!ret)
			TEST_ASSERT_EQ(l.top, c->r[c->nr - 1].gpa +
					      c->r[c->nr - 1].len);
	}
}

struct contains_case {
	uint64_t gpa;
	uint64_t len;
	bool ram;
	int in;		/* ram_layout_find(gpa): range index, -1 none */
};

/* On the pc layout of 5 GiB: [0, 3G) and [4G, 6G). */
static const struct contains_case contains_cases[] = {
	{ 0, K4, true, 0 },
	{ 0, 3 * G1, true, 0 },			/* all of region 0 */
	{ 3 * G1 - K4, K4, true, 0 },		/* its last page */
	{ 3 * G1 - K4, 2 * K4, false, 0 },	/* straddles its end */
	{ 3 * G1 - K4, G1 + 2 * K4, false, 0 },	/* across the hole */
	{ 0, 6 * G1, false, 0 },		/* all of "RAM" */
	{ 3 * G1, K4, false, -1 },		/* the hole's first page */
	{ 4 * G1 - K4, K4, false, -1 },		/* its last */
	{ 4 * G1 - K4, 2 * K4, false, -1 },	/* straddles into region 1 */
	{ 4 * G1, K4, true, 1 },
	{ 4 * G1, 2 * G1, true, 1 },		/* all of region 1 */
	{ 6 * G1 - K4, K4, true, 1 },		/* the last page of RAM */
	{ 6 * G1 - K4, 2 * K4, false, 1 },	/* past the top */
	{ 6 * G1, K4, false, -1 },
	{ 5 * G1 + 123, 7, true, 1 },		/* bytes need no alignment */
	{ K4, 0, false, 0 },			/* empty */
	{ 4 * G1, UINT64_MAX, false, 1 },	/* wraps */
	{ UINT64_MAX, 2, false, -1 },		/* wraps */
	{ UINT64_MAX, 1, false, -1 },
};

static void test_contains(void)
{
	struct ram_layout l;
	const struct ram_range *r;
	unsigned int i;

	TEST_ASSERT_EQ(ram_layout_compute(RAM_LAYOUT_PC, 5 * G1, &l), 0);
	for (i = 0; i < sizeof(contains_cases) / sizeof(contains_cases[0]);
	     i++) {
		const struct contains_case *c = &contains_cases[i];

		if (ram_layout_contains(&l, c->gpa, c->len) != c->ram)
			TEST_FAIL("[%#llx, +%#llx): %s RAM, want %s",
				  (unsigned long long)c->gpa,
				  (unsigned long long)c->len,
				  c->ram ? "not" : "is", c->ram ? "is" : "not");
		r = ram_layout_find(&l, c->gpa);
		if ((r ? (int)(r - l.range) : -1) != c->in)
			TEST_FAIL("find %#llx: range %d, want %d",
				  (unsigned long long)c->gpa,
				  r ? (int)(r - l.range) : -1, c->in);
	}
	/* The flat layout of the same size has no hole. */
	TEST_ASSERT_EQ(ram_layout_compute(RAM_LAYOUT_FLAT, 5 * G1, &l), 0);
	TEST_ASSERT(ram_layout_contains(&l, 3 * G1 - K4, 2 * K4));
	TEST_ASSERT(ram_layout_contains(&l, 0, 5 * G1));
	TEST_ASSERT(!ram_layout_contains(&l, 0, 5 * G1 + 1));
}

static void test_describe(void)
{
	struct ram_layout l;
	char buf[128], tiny[8];

	TEST_ASSERT_EQ(ram_layout_compute(RAM_LAYOUT_PC, 5 * G1, &l), 0);
	ram_layout_describe(&l, buf, sizeof(buf));
	if (strcmp(buf, "[0, 0xc0000000) [0x100000000, 0x180000000)"))
		TEST_FAIL("describe: \"%s\"", buf);
	/* Cut short, never past the buffer. */
	ram_layout_describe(&l, tiny, sizeof(tiny));
	TEST_ASSERT_EQ(strlen(tiny), sizeof(tiny) - 1);
	TEST_ASSERT(!strcmp(ram_layout_name(RAM_LAYOUT_FLAT), "flat"));
	TEST_ASSERT(!strcmp(ram_layout_name(RAM_LAYOUT_PC), "pc"));
	TEST_ASSERT(!strcmp(ram_layout_name((enum ram_layout_kind)7),
			    "unknown"));
}

int main(void)
{
	test_compute();
	test_from_ranges();
	test_contains();
	test_describe();
	printf("layout: %zu compute, %zu ranges, %zu contains cases passed\n",
	       sizeof(compute_cases) / sizeof(compute_cases[0]),
	       sizeof(ranges_cases) / sizeof(ranges_cases[0]),
	       sizeof(contains_cases) / sizeof(contains_cases[0]));
	return T_EXIT_PASS;
}
