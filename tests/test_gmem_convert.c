/* SPDX-License-Identifier: MIT */
/*
 * gmem_convert() and what it leaves behind:
 *  - it rejects unaligned offsets and lengths, empty ranges, ranges beyond
 *    RAM, offset + len overflows and bad states with -EINVAL, changing
 *    nothing; converting what is already converted returns 0; bad
 *    listener and subscriber registrations are -EINVAL;
 *  - memory is given back in discard mode (1 MiB converted away leaves the
 *    backing it left, both ways), and not in place (content kept);
 *  - the counters after a known sequence;
 *  - the audit with a listener registered that maps nothing (also after a
 *    conversion there and back).
 */
#include <unistd.h>

#include "test_util.h"

#define PG GMEM_PAGE_SIZE
#define MiB (1ULL << 20)

/* ---- the audit with a listener that maps nothing ------------------------------ */

/*
 * Every page private and a listener registered that reports its (empty)
 * set of mappings: the audit must pass.  Under UBSan this is where
 * audit_listener() (lib/audit.c) was caught passing a NULL array to
 * qsort() when the listener reported no range.
 */
static void test_audit_idle_listener(enum gmem_mode mode)
{
	struct recorder rec;
	struct gmem_listener *l;
	struct gmem_vm *vm;
	int vm_fd = test_create_vm();

	printf("audit with a listener that maps nothing (%s)\n",
	       gmem_mode_name(mode));
	fflush(stdout);
	recorder_init(&rec, MiB);
	vm = test_create_gmem(vm_fd, MiB, mode, GMEM_PRIVATE, NULL, NULL);
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops, &rec,
					      &l), 0);
	TEST_ASSERT_EQ(rec.nr, 0);
	test_audit(vm);
	/* And again once it had something and gave it back. */
	TEST_ASSERT_EQ(gmem_convert(vm, 0, PG, GMEM_SHARED), 1);
	test_audit(vm);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, PG, GMEM_PRIVATE), 1);
	test_audit(vm);
	gmem_listener_unregister(vm, l);
	gmem_destroy(vm);
	recorder_free(&rec);
	close(vm_fd);
}

/* ---- gmem_convert ---------------------------------------------------------- */

static void test_convert_edges(enum gmem_mode mode)
{
	const uint64_t ram = 2 * MiB;
	struct recorder rec;
	struct gmem_listener *l;
	struct gmem_subscription *sub;
	struct gmem_stats s0 = { .size = sizeof(s0) }, s1 = { .size = sizeof(s1) };
	struct test_runs r0, r1;
	struct gmem_vm *vm;
	int vm_fd = test_create_vm();
	static const struct {
		uint64_t off, len;
		int to;
		const char *what;
	} bad[] = {
		{ 0x800, PG, GMEM_SHARED, "unaligned offset" },
		{ PG + 1, PG, GMEM_SHARED, "offset off by one" },
		{ PG, PG + 0x10, GMEM_SHARED, "unaligned len" },
		{ PG, 1, GMEM_SHARED, "len 1" },
		{ PG, 0, GMEM_SHARED, "len 0" },
		{ 0, 0, GMEM_PRIVATE, "len 0 at 0" },
		{ 2 * MiB, PG, GMEM_SHARED, "offset == RAM" },
		{ 2 * MiB - PG, 2 * PG, GMEM_SHARED, "one page past RAM" },
		{ 0, 2 * MiB + PG, GMEM_SHARED, "len > RAM" },
		{ 64 * MiB, PG, GMEM_SHARED, "far beyond RAM" },
		{ ~0ULL - PG + 1, PG, GMEM_SHARED, "offset near UINT64_MAX" },
		{ ~0ULL - PG + 1, 2 * PG, GMEM_SHARED,
		  "offset + len wraps to PG" },
		{ PG, ~0ULL - PG + 1, GMEM_SHARED, "offset + len wraps to 0" },
		{ 2 * PG, ~0ULL - PG + 1, GMEM_SHARED,
		  "offset + len wraps to PG (len huge)" },
		{ 0, PG, 2, "state 2" },
		{ 0, PG, -1, "state -1" },
		{ PG, 4 * PG, 255, "state 255" },
	};
	unsigned int i;

	vm = test_create_recorded(vm_fd, ram, mode, &rec, &l, &sub);
	TEST_ASSERT_EQ(gmem_convert(vm, 16 * PG, 16 * PG, GMEM_SHARED), 16);
	recorder_reset_events(&rec);

	test_get_runs(vm, 0, gmem_ram_size(vm), &r0);
	gmem_get_stats(vm, &s0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ret = gmem_convert(vm, bad[i].off, bad[i].len,
					   (enum gmem_state)bad[i].to);

		if (ret != -EINVAL)
			TEST_FAIL("%s: gmem_convert(%#llx, %#llx, %d) = %lld, "
				  "want -EINVAL", bad[i].what,
				  (unsigned long long)bad[i].off,
				  (unsigned long long)bad[i].len, bad[i].to,
				  (long long)ret);
		test_get_runs(vm, 0, gmem_ram_size(vm), &r1);
		test_expect_same_runs(&r0, &r1);
		TEST_ASSERT_EQ(rec.nr, 0);
	}
	gmem_get_stats(vm, &s1);
	TEST_ASSERT_EQ(s1.pages_to_shared, s0.pages_to_shared);
	TEST_ASSERT_EQ(s1.pages_to_private, s0.pages_to_private);
	TEST_ASSERT_EQ(s1.conversions_to_shared, s0.conversions_to_shared);
	TEST_ASSERT_EQ(s1.conversions_to_private, s0.conversions_to_private);
	TEST_ASSERT_EQ(s1.bytes_discarded, s0.bytes_discarded);
	test_audit(vm);

	/* Already converted: 0 and no notification. */
	TEST_ASSERT_EQ(gmem_convert(vm, 16 * PG, 16 * PG, GMEM_SHARED), 0);
	TEST_ASSERT_EQ(gmem_convert(vm, 20 * PG, PG, GMEM_SHARED), 0);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, 16 * PG, GMEM_PRIVATE), 0);
	TEST_ASSERT_EQ(gmem_convert(vm, 32 * PG, ram - 32 * PG, GMEM_PRIVATE),
		       0);
	TEST_ASSERT_EQ(rec.nr, 0);
	gmem_get_stats(vm, &s1);
	TEST_ASSERT_EQ(s1.conversions_to_shared, s0.conversions_to_shared);
	TEST_ASSERT_EQ(s1.conversions_to_private, s0.conversions_to_private);
	/* Partly converted: only the rest counts. */
	TEST_ASSERT_EQ(gmem_convert(vm, 8 * PG, 16 * PG, GMEM_SHARED), 8);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, ram, GMEM_SHARED),
		       ram / PG - 24);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, ram, GMEM_SHARED), 0);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, ram, GMEM_PRIVATE), ram / PG);
	test_audit(vm);

	gmem_listener_unregister(vm, l);
	gmem_unsubscribe(vm, sub);
	gmem_listener_unregister(vm, NULL);	/* no-ops */
	gmem_unsubscribe(vm, NULL);
	/* Bad registrations. */
	{
		struct gmem_listener_ops no_discard = {
	.size = sizeof(struct gmem_listener_ops),
			.populate = recorder_listener_ops.populate,
		};

		l = NULL;
		TEST_ASSERT_EQ(gmem_listener_register(vm, NULL, &rec, &l),
			       -EINVAL);
		TEST_ASSERT_EQ(gmem_listener_register(vm, &no_discard, &rec,
						      &l), -EINVAL);
		TEST_ASSERT_EQ(gmem_subscribe(vm, NULL, &rec, &sub), -EINVAL);
	}
	gmem_destroy(vm);
	recorder_free(&rec);
	close(vm_fd);
}

/* ---- memory given back -------------------------------------------------------- */

static int64_t allocated(struct gmem_vm *vm, enum gmem_backing_id id)
{
	int64_t a = gmem_backing_resident(vm, id);

	TEST_ASSERT(a >= 0);
	return a;
}

/* @p, read from [gpa, gpa + len) after discard mode punched it: zeros. */
static void expect_discarded(const uint8_t *p, uint64_t gpa, uint64_t len)
{
	uint64_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			TEST_FAIL("byte %#llx reads %#x after discard",
				  (unsigned long long)(gpa + i), p[i]);
}

static void test_memory_given_back(enum gmem_mode mode)
{
	const uint64_t ram = 4 * MiB, off = MiB, len = MiB;
	bool discard = mode == GMEM_MODE_DISCARD;
	static uint8_t buf[MiB], check[MiB];
	int64_t g0, s0, g1, s1;
	struct gmem_stats s = { .size = sizeof(s) };
	struct gmem_vm *vm;
	int vm_fd = test_create_vm();
	uint64_t i;

	vm = test_create_gmem(vm_fd, ram, mode, GMEM_PRIVATE, NULL, NULL);
	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(i % 251 + 1);
	TEST_ASSERT_EQ(gmem_access(vm, off, buf, len, true, GMEM_PRIVATE), 0);
	g0 = allocated(vm, GMEM_BACKING_PRIVATE);
	s0 = allocated(vm, GMEM_BACKING_SHARED);
	printf("%s: after writing 1 MiB private: gmem %lld, shared %lld bytes\n",
	       gmem_mode_name(mode), (long long)g0, (long long)s0);
	TEST_ASSERT(g0 >= (int64_t)len);

	/* To shared. */
	TEST_ASSERT_EQ(gmem_convert(vm, off, len, GMEM_SHARED), len / PG);
	test_audit(vm);
	g1 = allocated(vm, GMEM_BACKING_PRIVATE);
	s1 = allocated(vm, GMEM_BACKING_SHARED);
	TEST_ASSERT_EQ(gmem_access(vm, off, check, len, false, GMEM_SHARED), 0);
	if (discard) {
		/* The guest_memfd gave the MiB back; the memfd holds
		 * nothing until written; the page reads zeros. */
		TEST_ASSERT_EQ(g1, g0 - (int64_t)len);
		TEST_ASSERT_EQ(s1, s0);
		expect_discarded(check, off, len);
	} else {
		TEST_ASSERT_EQ(g1, g0);
		TEST_ASSERT(!memcmp(check, buf, len));
	}

	/* Written through the shared view. */
	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(i % 241 + 3);
	TEST_ASSERT_EQ(gmem_access(vm, off, buf, len, true, GMEM_SHARED), 0);
	s1 = allocated(vm, GMEM_BACKING_SHARED);
	g1 = allocated(vm, GMEM_BACKING_PRIVATE);
	if (discard) {
		TEST_ASSERT_EQ(s1, s0 + (int64_t)len);
		TEST_ASSERT_EQ(g1, g0 - (int64_t)len);
	} else {
		TEST_ASSERT_EQ(g1, g0);
	}

	/* Back to private. */
	TEST_ASSERT_EQ(gmem_convert(vm, off, len, GMEM_PRIVATE), len / PG);
	test_audit(vm);
	if (discard) {
		TEST_ASSERT_EQ(allocated(vm, GMEM_BACKING_SHARED), s0);
		TEST_ASSERT_EQ(allocated(vm, GMEM_BACKING_PRIVATE),
			       g0 - (int64_t)len);
	} else {
		TEST_ASSERT_EQ(allocated(vm, GMEM_BACKING_PRIVATE), g0);
	}
	TEST_ASSERT_EQ(gmem_access(vm, off, check, len, false, GMEM_PRIVATE),
		       0);
	if (discard)
		expect_discarded(check, off, len);
	else
		TEST_ASSERT(!memcmp(check, buf, len));
	gmem_get_stats(vm, &s);
	TEST_ASSERT_EQ(s.bytes_discarded, discard ? 2 * len : 0);
	test_audit(vm);
	gmem_destroy(vm);
	close(vm_fd);
}

/* ---- counters -------------------------------------------------------------- */

static void test_stats(enum gmem_mode mode)
{
	const uint64_t ram = 64 * PG;
	struct recorder rec;
	struct gmem_listener *l;
	struct gmem_stats s = { .size = sizeof(s) };
	struct gmem_vm *vm;
	int vm_fd = test_create_vm();

	recorder_init(&rec, ram);
	vm = test_create_gmem(vm_fd, ram, mode, GMEM_PRIVATE, NULL, NULL);
	gmem_get_stats(vm, &s);
	TEST_ASSERT_EQ(s.pages_private, 64);
	TEST_ASSERT_EQ(s.pages_shared, 0);
	TEST_ASSERT_EQ(s.nr_runs, 1);
	TEST_ASSERT_EQ(s.conversions_to_private + s.conversions_to_shared +
		       s.pages_to_private + s.pages_to_shared +
		       s.bytes_discarded + s.conversions_failed, 0);
	TEST_ASSERT(s.map_bytes > 0);
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops, &rec,
					      &l), 0);

	TEST_ASSERT_EQ(gmem_convert(vm, 0, 8 * PG, GMEM_SHARED), 8);
	TEST_ASSERT_EQ(gmem_convert(vm, 4 * PG, 8 * PG, GMEM_SHARED), 4);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, 4 * PG, GMEM_SHARED), 0);
	TEST_ASSERT_EQ(gmem_convert(vm, 2 * PG, 4 * PG, GMEM_PRIVATE), 4);
	TEST_ASSERT_EQ(gmem_convert(vm, 40 * PG, 4 * PG, GMEM_PRIVATE), 0);
	/* A refused conversion counts as failed and changes nothing. */
	rec.fail_discard_nth = 1;
	TEST_ASSERT_EQ(gmem_convert(vm, 8 * PG, 2 * PG, GMEM_PRIVATE), -EAGAIN);
	TEST_ASSERT_EQ(rec.fail_discard_nth, 0);
	test_audit(vm);

	/* [0,2) S, [2,6) P, [6,12) S, [12,64) P */
	gmem_get_stats(vm, &s);
	TEST_ASSERT_EQ(s.pages_shared, 8);
	TEST_ASSERT_EQ(s.pages_private, 56);
	TEST_ASSERT_EQ(s.nr_runs, 4);
	TEST_ASSERT_EQ(s.conversions_to_shared, 2);
	TEST_ASSERT_EQ(s.pages_to_shared, 12);
	TEST_ASSERT_EQ(s.conversions_to_private, 1);
	TEST_ASSERT_EQ(s.pages_to_private, 4);
	TEST_ASSERT_EQ(s.conversions_failed, 1);
	TEST_ASSERT_EQ(s.bytes_discarded,
		       mode == GMEM_MODE_DISCARD ? 16 * PG : 0);
	TEST_ASSERT(s.map_bytes > 0);

	TEST_ASSERT_EQ(gmem_convert(vm, 0, ram, GMEM_PRIVATE), 8);
	gmem_get_stats(vm, &s);
	TEST_ASSERT_EQ(s.nr_runs, 1);
	TEST_ASSERT_EQ(s.pages_private, 64);
	TEST_ASSERT_EQ(s.conversions_to_private, 2);
	TEST_ASSERT_EQ(s.pages_to_private, 12);
	gmem_listener_unregister(vm, l);
	gmem_destroy(vm);
	recorder_free(&rec);
	close(vm_fd);
}

/* The cases run in each mode. */
static void test_convert_mode(enum gmem_mode mode)
{
	test_convert_edges(mode);
	test_memory_given_back(mode);
	test_stats(mode);
}

int main(void)
{
	test_require_gmem();
	test_audit_idle_listener(GMEM_MODE_DISCARD);
	test_audit_idle_listener(GMEM_MODE_IN_PLACE);
	test_each_mode(test_convert_mode);
	printf("ok\n");
	return T_EXIT_PASS;
}
