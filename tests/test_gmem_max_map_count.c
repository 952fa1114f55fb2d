/* SPDX-License-Identifier: MIT */
/*
 * vm.max_map_count against the emulated backend, for real: the backend
 * gates each view with mprotect(), so every run of page state is one
 * mapping in each view, and Linux refuses a process more mappings than
 * /proc/sys/vm/max_map_count.  This test fragments a VM (every other page
 * shared) until libgmem refuses, then checks what gmvm's guest status -12
 * (guest ABI extension 3) promises the guest:
 *  - the refusal is -ENOMEM, from a batch (all of it) and from a single
 *    conversion, and nothing changed: page states, and the real
 *    protections of both views (probed through a SIGSEGV handler);
 *  - the memory is not broken: a conversion of a range adjacent to a
 *    shared run, which merges runs instead of splitting them, still
 *    succeeds at the limit;
 *  - once runs are merged back, gmem_audit() passes, the refused
 *    conversion succeeds, and everything converts back.
 * Run in both modes.  The limit is the host's; the test lowers nothing
 * (that needs root and would affect every process), it sizes the VM from
 * the limit instead: 4 mappings per shared page (two splits per view), so
 * limit / 2 pages of alternation reach it.  It skips where the limit is
 * too high to reach in a few seconds, and on native backends (no limit).
 *
 * And a rollback at the limit: a batch whose first revoke merges mappings
 * and whose second splits them, failing at its first grant, must undo
 * without needing a mapping the change did not have (so in reverse):
 * -ENOMEM, not broken memory.
 *
 * While the process is at the limit, nothing may allocate: a malloc()
 * that needs a new mapping would fail (under ASan: abort).  So at the
 * limit the test converts single pages only (a delta of one run lives
 * inline, libgmem allocates nothing) and checks with gmem_state_at() and
 * the probes; it frees mappings before anything else.  The rollback case
 * runs a batch (which allocates its sorted list) one mapping below the
 * limit, after a batch of the same size made the allocator ready.
 */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"
#include "internal.h"	/* gmem_fault_inject() */

#define PG		GMEM_PAGE_SIZE
/* Past this, fragmenting takes too long for make check. */
#define MAX_LIMIT	(1L << 20)
/* Entries per batch while far from the limit (4 mappings each). */
#define BULK		2048
/* Pages merged back in one conversion: at most 8 delta runs, inline. */
#define MERGE_CHUNK	16

static long read_limit(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	long v = -1;

	if (!f)
		test_skip("cannot read /proc/sys/vm/max_map_count: %s",
			  strerror(errno));
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	if (v <= 0)
		test_skip("/proc/sys/vm/max_map_count holds no number");
	return v;
}

/* Page @pg is @state and reachable exactly in that view. */
static void expect_page(struct gmem_vm *vm, uint64_t pg, int state)
{
	uint8_t *priv = gmem_private_view(vm), *shared = gmem_shared_view(vm);
	uint8_t v;

	TEST_ASSERT_EQ(gmem_state_at(vm, pg * PG, NULL, NULL), state);
	if (test_probe_read(priv + pg * PG, &v) != (state == GMEM_PRIVATE) ||
	    test_probe_read(shared + pg * PG, &v) != (state == GMEM_SHARED))
		TEST_FAIL("page %#llx is %s but its views' protections say otherwise",
			  (unsigned long long)(pg * PG), gmem_state_name(state));
}

/*
 * This process's mappings as vm.max_map_count counts them, without
 * allocating: the lines of /proc/self/maps but the last if it is the
 * vsyscall page (a gate area the kernel lists but does not count).
 */
static long count_maps(void)
{
	static const char gate[] = "[vsyscall]\n";
	static char buf[1 << 16];
	char tail[sizeof(gate) - 1] = "";
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	size_t t = sizeof(tail);
	long n = 0;
	ssize_t r, i;

	TEST_ASSERT(fd >= 0);
	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		for (i = 0; i < r; i++) {
			n += buf[i] == '\n';
			memmove(tail, tail + 1, t - 1);
			tail[t - 1] = buf[i];
		}
	}
	close(fd);
	return n - !memcmp(tail, gate, t);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Enough RAM to alternate past @limit mappings. */
static struct gmem_vm *create_vm(enum gmem_mode mode, long limit,
				 uint64_t *npages)
{
	uint64_t ram = ((uint64_t)limit / 2 + 8 * BULK) * PG;

	ram = (ram + (2ULL << 20) - 1) & ~((2ULL << 20) - 1);
	*npages = ram / PG;
	return test_create_gmem(-1, ram, mode, GMEM_PRIVATE, NULL, NULL);
}

/*
 * Far from the limit: odd pages from page 1 to shared in batches of BULK
 * isolated pages (page 0 stays private, so every shared page splits both
 * views), until a batch reaches the limit.  That batch must change
 * nothing.  Returns the first page it would have converted.
 */
static uint64_t fragment_bulk(struct gmem_vm *vm, uint64_t npages)
{
	static struct gmem_batch_entry e[BULK];
	uint64_t pg = 1;
	int64_t ret;
	int failed;
	unsigned int i;

	for (;;) {
		TEST_ASSERT(pg + 2 * BULK < npages);
		for (i = 0; i < BULK; i++)
			e[i] = (struct gmem_batch_entry){
				.gpa = (pg + 2 * i) * PG, .len = PG,
				.to = GMEM_SHARED };
		ret = gmem_convert_batch(vm, e, BULK, &failed, NULL);
		if (ret < 0)
			break;
		TEST_ASSERT_EQ(ret, BULK);
		pg += 2 * BULK;
	}
	TEST_ASSERT_EQ(ret, -ENOMEM);
	TEST_ASSERT_EQ(failed, -1);
	for (i = 0; i < BULK; i++)
		TEST_ASSERT_EQ(gmem_state_at(vm, (pg + 2 * i) * PG, NULL, NULL),
			       GMEM_PRIVATE);
	return pg;
}

/* Everything back to private, in chunks that merge (no allocation). */
static void merge_all(struct gmem_vm *vm, uint64_t npages)
{
	uint64_t p, start, run;

	for (p = 0; p < npages; p += MERGE_CHUNK)
		TEST_ASSERT(gmem_convert(vm, p * PG,
					 (npages - p < MERGE_CHUNK ?
					  npages - p : MERGE_CHUNK) * PG,
					 GMEM_PRIVATE) >= 0);
	test_audit(vm);
	TEST_ASSERT_EQ(gmem_state_at(vm, 0, &start, &run), GMEM_PRIVATE);
	TEST_ASSERT_EQ(run, npages * PG);
}

static void fragment(enum gmem_mode mode, long limit)
{
	struct gmem_vm *vm;
	uint64_t npages, pg, fail_pg, p;
	double t0 = now_s();
	int64_t ret;

	vm = create_vm(mode, limit, &npages);
	pg = fragment_bulk(vm, npages);
	/* Closer: one page at a time until a single conversion is refused. */
	for (;;) {
		TEST_ASSERT(pg + 2 < npages);
		ret = gmem_convert(vm, pg * PG, PG, GMEM_SHARED);
		if (ret < 0)
			break;
		TEST_ASSERT_EQ(ret, 1);
		pg += 2;
	}
	fail_pg = pg;
	TEST_ASSERT_EQ(ret, -ENOMEM);
	/* Nothing changed around the refused page, protections included. */
	expect_page(vm, fail_pg, GMEM_PRIVATE);
	expect_page(vm, fail_pg - 1, GMEM_PRIVATE);
	expect_page(vm, fail_pg - 2, GMEM_SHARED);
	expect_page(vm, fail_pg + 1, GMEM_PRIVATE);
	/* Not broken: a conversion that extends the shared run before it
	 * merges mappings and succeeds at the limit. */
	TEST_ASSERT_EQ(gmem_convert(vm, (fail_pg - 1) * PG, PG, GMEM_SHARED), 1);
	expect_page(vm, fail_pg - 1, GMEM_SHARED);
	expect_page(vm, fail_pg, GMEM_PRIVATE);
	fprintf(stderr, "%s: -ENOMEM at %llu runs (vm.max_map_count %ld) after %.2f s\n",
		gmem_mode_name(mode), (unsigned long long)fail_pg, limit,
		now_s() - t0);

	/* Merge runs back before anything allocates. */
	for (p = 0; p + MERGE_CHUNK <= fail_pg && p < 64 * MERGE_CHUNK;
	     p += MERGE_CHUNK)
		TEST_ASSERT(gmem_convert(vm, p * PG, MERGE_CHUNK * PG,
					 GMEM_PRIVATE) >= 0);
	test_audit(vm);
	/* The refused conversion now fits. */
	TEST_ASSERT_EQ(gmem_convert(vm, fail_pg * PG, PG, GMEM_SHARED), 1);
	expect_page(vm, fail_pg, GMEM_SHARED);
	merge_all(vm, npages);
	gmem_destroy(vm);
}

/*
 * Bring the process to exactly @limit - 1 mappings (one below: ASan's
 * allocator can still replace part of a reservation there, and the
 * batch below allocates; at @limit it could not).  Isolated pages to
 * shared from page @pg on cost 4 mappings each, isolated pages from @far
 * on unplugged 2 each (one view), and unplugging page @one, the last of
 * the region inside a private run, 1 (the mapping after the view's is
 * another one: nothing to merge with).
 */
static void fill_to_limit(struct gmem_vm *vm, long limit, uint64_t pg,
			  uint64_t far, uint64_t one)
{
	long want = limit - 1, c = count_maps();

	while (c + 4 <= want) {
		TEST_ASSERT_EQ(gmem_convert(vm, pg * PG, PG, GMEM_SHARED), 1);
		pg += 2;
		c += 4;
		if (c + 4 > want)
			c = count_maps();	/* whatever else mapped */
	}
	while ((c = count_maps()) + 2 <= want) {
		TEST_ASSERT_EQ(gmem_set_plugged(vm, far * PG, PG, false), 1);
		far += 2;
	}
	if (c < want)
		TEST_ASSERT_EQ(gmem_set_plugged(vm, one * PG, PG, false), 1);
	TEST_ASSERT_EQ(count_maps(), want);
}

static void rollback_at_limit(enum gmem_mode mode, long limit)
{
	struct gmem_vm *vm;
	struct gmem_batch_entry e[2];
	uint64_t npages, pg, x, y;
	int failed;

	vm = create_vm(mode, limit, &npages);
	pg = fragment_bulk(vm, npages);
	/* x: private between two shared pages, its revoke merges (-2);
	 * y: inside the private run after the fragments, its revoke splits
	 * (+2).  In list (and GPA) order x comes first: undone first, it
	 * would need two mappings y took. */
	x = 2;
	y = npages - 8;
	e[0] = (struct gmem_batch_entry){ .gpa = x * PG, .len = PG,
					  .to = GMEM_PRIVATE };
	e[1] = (struct gmem_batch_entry){ .gpa = y * PG, .len = PG,
					  .to = GMEM_PRIVATE };
	/* A batch that changes nothing, so that the allocator has memory
	 * for the next one's list before mappings run out. */
	TEST_ASSERT_EQ(gmem_convert_batch(vm, e, 2, &failed, NULL), 0);
	fill_to_limit(vm, limit, pg, npages - 200, npages - 1);
	e[0].to = e[1].to = GMEM_SHARED;
	/* The first grant fails: the revokes of x and y are undone. */
	gmem_fault_inject(vm, GMEM_FAULT_MPROTECT, 3, ENOMEM);
	TEST_ASSERT_EQ(gmem_convert_batch(vm, e, 2, &failed, NULL), -ENOMEM);
	gmem_fault_inject(vm, GMEM_FAULT_MPROTECT, 0, 0);
	expect_page(vm, x, GMEM_PRIVATE);
	expect_page(vm, y, GMEM_PRIVATE);
	expect_page(vm, x - 1, GMEM_SHARED);
	expect_page(vm, y - 1, GMEM_PRIVATE);
	/* Not broken: plugging and merging back work, the audit passes. */
	TEST_ASSERT(gmem_set_plugged(vm, 0, npages * PG, true) >= 0);
	merge_all(vm, npages);
	fprintf(stderr, "%s: a rollback at %ld of %ld mappings undid cleanly\n",
		gmem_mode_name(mode), limit - 1, limit);
	gmem_destroy(vm);
}

int main(void)
{
	long limit;

	test_require_gmem();
	if (test_backend() != GMEM_BACKEND_EMULATED)
		test_skip("%s: no mapping per run, no vm.max_map_count limit",
			  gmem_backend_name(test_backend()));
	limit = read_limit();
	if (limit > MAX_LIMIT)
		test_skip("vm.max_map_count is %ld: more than %ld mappings take too long to fragment here",
			  limit, MAX_LIMIT);
	fragment(GMEM_MODE_DISCARD, limit);
	fragment(GMEM_MODE_IN_PLACE, limit);
	rollback_at_limit(GMEM_MODE_DISCARD, limit);
	rollback_at_limit(GMEM_MODE_IN_PLACE, limit);
	return T_EXIT_PASS;
}
