/* SPDX-License-Identifier: MIT */
/*
 * Reading guest memory and its state through libgmem:
 *  - gmem_access(): the right view works (also across pages and at
 *    unaligned offsets), the wrong view or a mixed range is -EACCES with
 *    the buffer untouched, a range outside RAM or a bad view -EINVAL;
 *  - gmem_state_at() with run bounds; gmem_for_each_run() clipping and
 *    early stop.
 */
#include <unistd.h>

#include "test_util.h"

#define PG GMEM_PAGE_SIZE
#define MiB (1ULL << 20)

/* ---- gmem_access and gmem_state_at ------------------------------------------ */

static int stop_at_second(void *arg, uint64_t off, uint64_t len,
			  enum gmem_state st)
{
	int *n = arg;

	(void)off;
	(void)len;
	(void)st;
	return ++*n == 2 ? 42 : 0;
}

static void test_access(enum gmem_mode mode)
{
	const uint64_t ram = MiB;
	static uint8_t buf[8 * PG], check[8 * PG];
	uint64_t rs, rl, i;
	struct test_runs r;
	struct gmem_vm *vm;
	int vm_fd = test_create_vm(), n;

	vm = test_create_gmem(vm_fd, ram, mode, GMEM_PRIVATE, NULL, NULL);
	/* Pages [10, 20) shared, the rest private. */
	TEST_ASSERT_EQ(gmem_convert(vm, 10 * PG, 10 * PG, GMEM_SHARED), 10);

	/* The right view, across several pages and at odd offsets. */
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 1);
	TEST_ASSERT_EQ(gmem_access(vm, 2 * PG + 123, buf, 5 * PG + 7, true,
				   GMEM_PRIVATE), 0);
	memset(check, 0, sizeof(check));
	TEST_ASSERT_EQ(gmem_access(vm, 2 * PG + 123, check, 5 * PG + 7, false,
				   GMEM_PRIVATE), 0);
	TEST_ASSERT(!memcmp(buf, check, 5 * PG + 7));
	/* Through the view's host mapping too. */
	TEST_ASSERT(!memcmp((uint8_t *)gmem_private_view(vm) + 2 * PG + 123,
			    buf, 5 * PG + 7));
	TEST_ASSERT_EQ(gmem_access(vm, 12 * PG + 4000, buf, 3 * PG, true,
				   GMEM_SHARED), 0);
	memset(check, 0, sizeof(check));
	TEST_ASSERT_EQ(gmem_access(vm, 12 * PG + 4000, check, 3 * PG, false,
				   GMEM_SHARED), 0);
	TEST_ASSERT(!memcmp(buf, check, 3 * PG));
	TEST_ASSERT_EQ(gmem_access(vm, 0, check, 1, false, GMEM_PRIVATE), 0);
	TEST_ASSERT_EQ(gmem_access(vm, ram - 1, check, 1, false, GMEM_PRIVATE),
		       0);
	TEST_ASSERT_EQ(gmem_access(vm, 0, check, 8 * PG, false, GMEM_PRIVATE),
		       0);

	/* The wrong view, or a range mixing both states: -EACCES, and the
	 * buffer is untouched (reads) and memory too (writes). */
	memset(check, 0xee, sizeof(check));
	TEST_ASSERT_EQ(gmem_access(vm, 2 * PG, check, PG, false, GMEM_SHARED),
		       -EACCES);
	TEST_ASSERT_EQ(gmem_access(vm, 12 * PG, check, 16, false,
				   GMEM_PRIVATE), -EACCES);
	TEST_ASSERT_EQ(gmem_access(vm, 9 * PG, check, 2 * PG, false,
				   GMEM_PRIVATE), -EACCES);
	TEST_ASSERT_EQ(gmem_access(vm, 9 * PG, check, 2 * PG, false,
				   GMEM_SHARED), -EACCES);
	TEST_ASSERT_EQ(gmem_access(vm, 20 * PG - 1, check, 2, false,
				   GMEM_SHARED), -EACCES);
	for (i = 0; i < sizeof(check); i++)
		TEST_ASSERT_EQ(check[i], 0xee);
	TEST_ASSERT_EQ(gmem_access(vm, 2 * PG + 123, check, 16, true,
				   GMEM_SHARED), -EACCES);
	TEST_ASSERT_EQ(gmem_access(vm, 19 * PG, check, 2 * PG, true,
				   GMEM_SHARED), -EACCES);
	memset(check, 0, sizeof(check));
	TEST_ASSERT_EQ(gmem_access(vm, 2 * PG + 123, check, 16, false,
				   GMEM_PRIVATE), 0);
	TEST_ASSERT(!memcmp(check, buf, 16));
	TEST_ASSERT_EQ(gmem_access(vm, 19 * PG, check, PG, false, GMEM_SHARED),
		       0);
	for (i = 0; i < PG; i++)
		TEST_ASSERT_EQ(check[i], 0);

	/* Outside RAM, empty, or a bad view: -EINVAL. */
	TEST_ASSERT_EQ(gmem_access(vm, ram, check, 1, false, GMEM_PRIVATE),
		       -EINVAL);
	TEST_ASSERT_EQ(gmem_access(vm, ram - 1, check, 2, false, GMEM_PRIVATE),
		       -EINVAL);
	TEST_ASSERT_EQ(gmem_access(vm, 0, check, ram + 1, false, GMEM_PRIVATE),
		       -EINVAL);
	TEST_ASSERT_EQ(gmem_access(vm, ~0ULL, check, 2, false, GMEM_PRIVATE),
		       -EINVAL);
	TEST_ASSERT_EQ(gmem_access(vm, PG, check, ~0ULL, false, GMEM_PRIVATE),
		       -EINVAL);
	TEST_ASSERT_EQ(gmem_access(vm, 0, check, 0, false, GMEM_PRIVATE),
		       -EINVAL);
	TEST_ASSERT_EQ(gmem_access(vm, 0, check, 1, false,
				   (enum gmem_state)2), -EINVAL);

	/* gmem_state_at: state and the maximal run around the offset. */
	TEST_ASSERT_EQ(gmem_state_at(vm, 0, &rs, &rl), GMEM_PRIVATE);
	TEST_ASSERT_EQ(rs, 0);
	TEST_ASSERT_EQ(rl, 10 * PG);
	TEST_ASSERT_EQ(gmem_state_at(vm, 15 * PG + 17, &rs, &rl), GMEM_SHARED);
	TEST_ASSERT_EQ(rs, 10 * PG);
	TEST_ASSERT_EQ(rl, 10 * PG);
	TEST_ASSERT_EQ(gmem_state_at(vm, 20 * PG - 1, &rs, &rl), GMEM_SHARED);
	TEST_ASSERT_EQ(gmem_state_at(vm, 20 * PG, &rs, &rl), GMEM_PRIVATE);
	TEST_ASSERT_EQ(rs, 20 * PG);
	TEST_ASSERT_EQ(rl, ram - 20 * PG);
	TEST_ASSERT_EQ(gmem_state_at(vm, ram - 1, NULL, NULL), GMEM_PRIVATE);
	TEST_ASSERT_EQ(gmem_state_at(vm, ram, &rs, &rl), -EINVAL);
	TEST_ASSERT_EQ(gmem_state_at(vm, ~0ULL, NULL, NULL), -EINVAL);

	/* gmem_for_each_run: clipped to the range, stops on non-zero. */
	test_get_runs(vm, 5 * PG, 10 * PG, &r);
	TEST_ASSERT_EQ(r.nr, 2);
	TEST_ASSERT_EQ(r.gpa[0], 5 * PG);
	TEST_ASSERT_EQ(r.len[0], 5 * PG);
	TEST_ASSERT_EQ(r.state[0], GMEM_PRIVATE);
	TEST_ASSERT_EQ(r.gpa[1], 10 * PG);
	TEST_ASSERT_EQ(r.len[1], 5 * PG);
	TEST_ASSERT_EQ(r.state[1], GMEM_SHARED);
	n = 0;
	TEST_ASSERT_EQ(gmem_for_each_run(vm, 0, ram, stop_at_second, &n), 42);
	TEST_ASSERT_EQ(n, 2);
	TEST_ASSERT_EQ(gmem_for_each_run(vm, 0, 0, stop_at_second, &n), -EINVAL);
	TEST_ASSERT_EQ(gmem_for_each_run(vm, 0, ram + PG, stop_at_second, &n),
		       -EINVAL);
	TEST_ASSERT_EQ(gmem_for_each_run(vm, 1, PG, stop_at_second, &n), -EINVAL);
	test_audit(vm);
	gmem_destroy(vm);
	close(vm_fd);
}

int main(void)
{
	test_require_gmem();
	test_each_mode(test_access);
	printf("ok\n");
	return T_EXIT_PASS;
}
