/* SPDX-License-Identifier: MIT */
/*
 * gmvm's hypercall rules (vmm/hc_rules.c) and its mapping-limit estimate
 * (vmm/map_limit.c), without KVM:
 *  - hc_range() against 128-bit arithmetic for random and edge values;
 *  - hc_status(): which libgmem answer is the guest's status and which
 *    stops the VM (-ENOMEM is -12, guest ABI extension 3; -EIO, broken
 *    memory, stays the host's);
 *  - CONVERT_BATCH's registers and entries: every rule of extension 3,
 *    steps 1 and 2, with the first bad entry named, and the conversion of
 *    valid entries to libgmem's (target 1 is GMEM_PRIVATE);
 *  - map_limit: the host's vm.max_map_count, this process's mappings as
 *    /proc/self/maps lists them, and 200 mappings more cost 100 runs.
 */
#include <sys/mman.h>

#include "test_util.h"
#include "hc_rules.h"
#include "map_limit.h"

#define PG 4096ULL
#define RAM (64ULL << 20)

static bool ref_range(uint64_t ram, uint64_t a0, uint64_t a1)
{
	unsigned __int128 end = (unsigned __int128)a0 + (unsigned __int128)a1 * PG;

	return a0 % PG == 0 && a1 > 0 && end <= ram;
}

static void test_range(void)
{
	static const uint64_t edges[] = {
		0, 1, PG - 1, PG, RAM - PG, RAM, RAM + PG, UINT64_MAX / PG,
		UINT64_MAX / PG + 1, UINT64_MAX & ~(PG - 1), UINT64_MAX,
		1ULL << 52, (1ULL << 52) - 1,
	};
	uint64_t seed = test_seed("SEED", 13), len;
	unsigned int i, j;

	for (i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		for (j = 0; j < sizeof(edges) / sizeof(edges[0]); j++) {
			bool ok = hc_range(RAM, edges[i], edges[j], &len);

			TEST_ASSERT_EQ(ok, ref_range(RAM, edges[i], edges[j]));
			if (ok)
				TEST_ASSERT_EQ(len, edges[j] * PG);
		}
	for (i = 0; i < 200000; i++) {
		uint64_t r = test_rand(&seed), a0, a1;

		/* Mostly plausible values, sometimes anything. */
		a0 = r & 1 ? test_rand(&seed) : (test_rand(&seed) % (RAM / PG + 2)) * PG;
		a1 = r & 2 ? test_rand(&seed) : test_rand(&seed) % (RAM / PG + 2);
		TEST_ASSERT_EQ(hc_range(RAM, a0, a1, &len),
			       ref_range(RAM, a0, a1));
	}
	TEST_ASSERT(hc_range(RAM, RAM - PG, 1, &len) && len == PG);
	TEST_ASSERT(!hc_range(RAM, RAM - PG, 2, &len));
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

static void test_batch_regs(void)
{
	TEST_ASSERT(hc_batch_regs(RAM, 0, 1, 0));
	TEST_ASSERT(hc_batch_regs(RAM, RAM - PG, GM_BATCH_MAX_ENTRIES, 0));
	TEST_ASSERT(!hc_batch_regs(RAM, RAM, 1, 0));
	TEST_ASSERT(!hc_batch_regs(RAM, PG + 8, 1, 0));
	TEST_ASSERT(!hc_batch_regs(RAM, UINT64_MAX & ~(PG - 1), 1, 0));
	TEST_ASSERT(!hc_batch_regs(RAM, 0, 0, 0));
	TEST_ASSERT(!hc_batch_regs(RAM, 0, GM_BATCH_MAX_ENTRIES + 1, 0));
	/* The count must not wrap into range when gmvm narrows it. */
	TEST_ASSERT(!hc_batch_regs(RAM, 0, (1ULL << 32) + 1, 0));
	TEST_ASSERT(!hc_batch_regs(RAM, 0, UINT64_MAX, 0));
	TEST_ASSERT(!hc_batch_regs(RAM, 0, 1, 1));
	TEST_ASSERT(!hc_batch_regs(RAM, 0, 1, 1ULL << 63));
}

/* Entry @bad of an otherwise valid list of @n gets value @e: named? */
static void expect_bad(struct gm_batch_entry *in, unsigned int n,
		       unsigned int bad, struct gm_batch_entry e,
		       uint64_t list, const char *what)
{
	struct gmem_batch_entry out[GM_BATCH_MAX_ENTRIES];
	struct gm_batch_entry saved = in[bad];
	int r;

	in[bad] = e;
	r = hc_batch_entries(in, n, RAM, list, out);
	in[bad] = saved;
	if (r != (int)bad)
		TEST_FAIL("%s: entry %u named %d", what, bad, r);
}

static void test_batch_entries(void)
{
	struct gm_batch_entry in[GM_BATCH_MAX_ENTRIES];
	struct gmem_batch_entry out[GM_BATCH_MAX_ENTRIES];
	const uint64_t list = 512 * PG;	/* the list page */
	struct gm_batch_entry e;
	unsigned int i, n = GM_BATCH_MAX_ENTRIES;

	/* Valid: entry i converts pages [2i, 2i+2) of the area at 1 MiB,
	 * every third to private; none touches the list page. */
	for (i = 0; i < n; i++)
		in[i] = (struct gm_batch_entry){
			.gpa = (1ULL << 20) + 2 * i * PG + (i >= 128 ? 2 * PG : 0),
			.pages = 2,
			.target = i % 3 == 0 ? GM_BATCH_TO_PRIVATE :
					       GM_BATCH_TO_SHARED,
		};
	TEST_ASSERT_EQ(hc_batch_entries(in, n, RAM, list, out), -1);
	for (i = 0; i < n; i++) {
		TEST_ASSERT_EQ(out[i].gpa, in[i].gpa);
		TEST_ASSERT_EQ(out[i].len, 2 * PG);
		TEST_ASSERT_EQ(out[i].to, i % 3 == 0 ? GMEM_PRIVATE : GMEM_SHARED);
		TEST_ASSERT_EQ(out[i].flags, 0);
	}
	/* The entries around the list page may touch it, not cover it. */
	e = (struct gm_batch_entry){ .gpa = list - 4 * PG, .pages = 4 };
	in[127] = e;
	TEST_ASSERT_EQ(hc_batch_entries(in, n, RAM, list, out), -1);
	e = (struct gm_batch_entry){ .gpa = list + PG, .pages = 1 };
	in[127] = e;
	TEST_ASSERT_EQ(hc_batch_entries(in, n, RAM, list, out), -1);

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
	TEST_ASSERT_EQ(hc_batch_entries(in, 2, RAM, list, out), -1);
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
	test_range();
	test_status();
	test_batch_regs();
	test_batch_entries();
	test_map_limit();
	return T_EXIT_PASS;
}
