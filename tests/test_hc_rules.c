/* SPDX-License-Identifier: MIT */
/*
 * gmvm's hypercall rules (vmm/hc_rules.c) and its mapping-limit estimate
 * (vmm/map_limit.c), without KVM:
 *  - hc_status(): which libgmem answer is the guest's status and which
 *    stops the VM (-ENOMEM is -12, guest ABI extension 3; -EIO, broken
 *    memory, stays the host's);
 *  - CONVERT_BATCH's count and flags and its entries: every rule of
 *    extension 3, steps 1 and 2, with the first bad entry named, RAM as
 *    the caller says (here with a hole), and the conversion of valid
 *    entries to libgmem's (target 1 is GMEM_PRIVATE);
 *  - map_limit: the host's vm.max_map_count, this process's mappings as
 *    /proc/self/maps lists them, and 200 mappings more cost 100 runs.
 */
#include <sys/mman.h>

#include "test_util.h"
#include "hc_rules.h"
#include "map_limit.h"

#define PG 4096ULL
#define RAM (64ULL << 20)

/*
 * RAM for the entry checks: [0, RAM) but the hole [HOLE, HOLE_END), as a
 * layout with holes has it (gmvm's hc_range() says what RAM is; the
 * rules only ask).  128-bit arithmetic: nothing can wrap here.
 */
#define HOLE		(40ULL << 20)
#define HOLE_END	(44ULL << 20)

static bool test_in_ram(const void *arg, uint64_t gpa, uint64_t pages,
			uint64_t *len)
{
	unsigned __int128 end = (unsigned __int128)gpa +
				(unsigned __int128)pages * PG;

	(*(unsigned int *)arg)++;
	if (gpa % PG || !pages || end > RAM ||
	    (end > HOLE && gpa < HOLE_END))
		return false;
	*len = pages * PG;
	return true;
}

static void test_status(void)
{
	static const struct {
		int64_t ret;
		bool einval_is_guests;
		bool guests;
		int64_t status;
	} t[] = {
		{ 0, false, true, GM_HC_OK },
		{ 7, false, true, GM_HC_OK },
		{ 7, true, true, GM_HC_OK },
		{ -EAGAIN, false, true, GM_HC_EAGAIN },
		{ -ENOMEM, false, true, GM_HC_ENOMEM },
		{ -ENOMEM, true, true, GM_HC_ENOMEM },
		{ -EINVAL, true, true, GM_HC_EINVAL },
		{ -EINVAL, false, false, 0 },
		{ -EIO, false, false, 0 },
		{ -EIO, true, false, 0 },
		{ -E2BIG, true, false, 0 },
		{ -EPERM, false, false, 0 },
		{ -EFAULT, false, false, 0 },
		{ -ENOSPC, false, false, 0 },
	};
	unsigned int i;

	TEST_ASSERT_EQ(GM_HC_ENOMEM, -ENOMEM);
	TEST_ASSERT_EQ(GM_HC_EAGAIN, -EAGAIN);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int64_t st = 12345;
		bool g = hc_status(t[i].ret, t[i].einval_is_guests, &st);

		if (g != t[i].guests)
			TEST_FAIL("hc_status(%lld, %d): %s, expected %s",
				  (long long)t[i].ret, t[i].einval_is_guests,
				  g ? "the guest's" : "the host's",
				  t[i].guests ? "the guest's" : "the host's");
		if (g)
			TEST_ASSERT_EQ(st, t[i].status);
	}
}

static void test_batch_args(void)
{
	TEST_ASSERT(hc_batch_args(1, 0));
	TEST_ASSERT(hc_batch_args(GM_BATCH_MAX_ENTRIES, 0));
	TEST_ASSERT(!hc_batch_args(0, 0));
	TEST_ASSERT(!hc_batch_args(GM_BATCH_MAX_ENTRIES + 1, 0));
	/* The count must not wrap into range when gmvm narrows it. */
	TEST_ASSERT(!hc_batch_args((1ULL << 32) + 1, 0));
	TEST_ASSERT(!hc_batch_args(UINT64_MAX, 0));
	TEST_ASSERT(!hc_batch_args(1, 1));
	TEST_ASSERT(!hc_batch_args(1, 1ULL << 63));
}

/* Entry @bad of an otherwise valid list of @n gets value @e: named? */
static void expect_bad(struct gm_batch_entry *in, unsigned int n,
		       unsigned int bad, struct gm_batch_entry e,
		       uint64_t list, const char *what)
{
	struct gmem_batch_entry out[GM_BATCH_MAX_ENTRIES];
	struct gm_batch_entry saved = in[bad];
	unsigned int asked = 0;
	int r;

	in[bad] = e;
	r = hc_batch_entries(in, n, test_in_ram, &asked, list, out);
	in[bad] = saved;
	if (r != (int)bad)
		TEST_FAIL("%s: entry %u named %d", what, bad, r);
	/* RAM is asked about each entry up to the bad one, no further. */
	if (asked > bad + 1)
		TEST_FAIL("%s: %u entries checked", what, asked);
}

static void test_batch_entries(void)
{
	struct gm_batch_entry in[GM_BATCH_MAX_ENTRIES];
	struct gmem_batch_entry out[GM_BATCH_MAX_ENTRIES];
	const uint64_t list = 512 * PG;	/* the list page */
	struct gm_batch_entry e;
	unsigned int i, n = GM_BATCH_MAX_ENTRIES, asked = 0;

	/* Valid: entry i converts pages [2i, 2i+2) of the area at 1 MiB,
	 * every third to private; none touches the list page. */
	for (i = 0; i < n; i++)
		in[i] = (struct gm_batch_entry){
			.gpa = (1ULL << 20) + 2 * i * PG + (i >= 128 ? 2 * PG : 0),
			.pages = 2,
			.target = i % 3 == 0 ? GM_BATCH_TO_PRIVATE :
					       GM_BATCH_TO_SHARED,
		};
	TEST_ASSERT_EQ(hc_batch_entries(in, n, test_in_ram, &asked, list, out),
		       -1);
	TEST_ASSERT_EQ(asked, n);
	for (i = 0; i < n; i++) {
		TEST_ASSERT_EQ(out[i].gpa, in[i].gpa);
		TEST_ASSERT_EQ(out[i].len, 2 * PG);
		TEST_ASSERT_EQ(out[i].to, i % 3 == 0 ? GMEM_PRIVATE : GMEM_SHARED);
		TEST_ASSERT_EQ(out[i].flags, 0);
	}
	/* The entries around the list page may touch it, not cover it. */
	e = (struct gm_batch_entry){ .gpa = list - 4 * PG, .pages = 4 };
	in[127] = e;
	TEST_ASSERT_EQ(hc_batch_entries(in, n, test_in_ram, &asked, list, out),
		       -1);
	e = (struct gm_batch_entry){ .gpa = list + PG, .pages = 1 };
	in[127] = e;
	TEST_ASSERT_EQ(hc_batch_entries(in, n, test_in_ram, &asked, list, out),
		       -1);

	e = in[5];
	e.gpa += 1;
	expect_bad(in, n, 5, e, list, "unaligned GPA");
	e.gpa = in[5].gpa + PG / 2;
	expect_bad(in, n, 5, e, list, "unaligned GPA");
	e = in[0];
	e.pages = 0;
	expect_bad(in, n, 0, e, list, "no pages");
	e = in[n - 1];
	e.pages = UINT32_MAX;
	expect_bad(in, n, n - 1, e, list, "past RAM");
	e.gpa = RAM;
	e.pages = 1;
	expect_bad(in, n, n - 1, e, list, "at the end of RAM");
	e.gpa = RAM - PG;
	e.pages = 2;
	expect_bad(in, n, n - 1, e, list, "across the end of RAM");
	e.gpa = UINT64_MAX & ~(PG - 1);
	e.pages = 2;
	expect_bad(in, n, 9, e, list, "wrapping");
	e.gpa = HOLE - PG;
	expect_bad(in, n, 9, e, list, "into the hole");
	e.gpa = HOLE_END - PG;
	expect_bad(in, n, 9, e, list, "out of the hole");
	e.gpa = HOLE - PG;
	e.pages = (HOLE_END - HOLE) / PG + 2;
	expect_bad(in, n, 9, e, list, "across the hole");
	/* Right after the hole is RAM again. */
	e.gpa = HOLE_END;
	e.pages = 1;
	in[9] = e;
	TEST_ASSERT_EQ(hc_batch_entries(in, n, test_in_ram, &asked, list, out),
		       -1);
	TEST_ASSERT_EQ(out[9].gpa, HOLE_END);
	e = in[9];
	e.target = 2;
	expect_bad(in, n, 9, e, list, "target 2");
	e.target = 0xff;
	expect_bad(in, n, 9, e, list, "target 255");
	for (i = 0; i < 3; i++) {
		e = in[10];
		e.reserved[i] = 0x80;
		expect_bad(in, n, 10, e, list, "a reserved byte");
	}
	for (i = 0; i < 2; i++) {
		e = (struct gm_batch_entry){ .gpa = list, .pages = 1,
					     .target = (uint8_t)i };
		expect_bad(in, n, 11, e, list, "the list page itself");
		e = (struct gm_batch_entry){ .gpa = list - PG, .pages = 2,
					     .target = (uint8_t)i };
		expect_bad(in, n, 11, e, list, "ending on the list page");
		e = (struct gm_batch_entry){ .gpa = 0, .pages = RAM / PG,
					     .target = (uint8_t)i };
		expect_bad(in, n, 11, e, list, "all RAM, list page included");
	}
	/* Two bad entries: the first in list order is named. */
	in[40].pages = 0;
	e = in[20];
	e.target = 3;
	expect_bad(in, n, 20, e, list, "the first of two");
	in[40].pages = 2;
	/* Overlaps are libgmem's to find: valid here. */
	in[1] = in[0];
	TEST_ASSERT_EQ(hc_batch_entries(in, 2, test_in_ram, &asked, list, out),
		       -1);
}

/* Lines of /proc/self/maps but the vsyscall gate's. */
static long maps_lines(void)
{
	char buf[4096];
	long n = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	TEST_ASSERT(f);
	while (fgets(buf, sizeof(buf), f))
		n += strchr(buf, '\n') && !strstr(buf, "[vsyscall]");
	fclose(f);
	return n;
}

static void test_map_limit(void)
{
	struct map_limit a, b;
	long lines, limit = -1;
	uint8_t *p;
	FILE *f;
	int i;

	TEST_ASSERT_EQ(map_limit_runs(65530, 30), 32750);
	TEST_ASSERT_EQ(map_limit_runs(65530, 31), 32749);
	TEST_ASSERT_EQ(map_limit_runs(100, 100), 0);
	TEST_ASSERT_EQ(map_limit_runs(100, 300), 0);

	f = fopen("/proc/sys/vm/max_map_count", "r");
	if (!f)
		test_skip("no /proc/sys/vm/max_map_count: %s", strerror(errno));
	TEST_ASSERT(fscanf(f, "%ld", &limit) == 1);
	fclose(f);

	/* Reading maps may itself map a buffer: allow a little slack. */
	lines = maps_lines();
	TEST_ASSERT_EQ(map_limit_read(&a), 0);
	TEST_ASSERT_EQ(a.max_map_count, limit);
	if (a.mappings < lines - 1 || a.mappings > lines + 1)
		TEST_FAIL("%ld mappings, /proc/self/maps has %ld lines",
			  a.mappings, lines);
	TEST_ASSERT_EQ(a.runs, map_limit_runs(a.max_map_count, a.mappings));

	/* 200 mappings more: every other page of a reservation opened. */
	p = mmap(NULL, 401 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(p != MAP_FAILED);
	for (i = 0; i < 100; i++)
		TEST_ASSERT(!mprotect(p + (2 * i + 1) * PG, PG, PROT_READ));
	TEST_ASSERT_EQ(map_limit_read(&b), 0);
	if (b.mappings - a.mappings < 199 || b.mappings - a.mappings > 203)
		TEST_FAIL("200 mappings more, but %ld -> %ld", a.mappings,
			  b.mappings);
	if (a.runs - b.runs < 99 || a.runs - b.runs > 102)
		TEST_FAIL("200 mappings more, but %ld -> %ld runs", a.runs,
			  b.runs);
	munmap(p, 401 * PG);
}

int main(void)
{
	test_status();
	test_batch_args();
	test_batch_entries();
	test_map_limit();
	return T_EXIT_PASS;
}
