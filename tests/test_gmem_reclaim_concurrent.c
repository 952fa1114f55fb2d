/* SPDX-License-Identifier: MIT */
/*
 * Deferred reclaim keeps every invariant:
 *  - a page converted away and straight back reads zeros, never its old
 *    content, although its old memory may still be queued for the reclaim
 *    thread (the conversion that hands it out again punches first);
 *  - with several threads converting their own areas back and forth,
 *    every read after a conversion sees zeros;
 *  - back-pressure: past reclaim_max_pending, conversions punch
 *    synchronously;
 *  - after a drain, no page is backed twice (audit) and each backing holds
 *    exactly the pages written in its state.
 */
#include <unistd.h>

#include "test_util.h"

#define RAM (16ULL << 20)
#define THREADS 4
#define AREA (RAM / THREADS)
#define ROUNDS 300

static struct gmem_vm *vm;

static void expect_zero_then_tag(uint64_t off, uint64_t len,
				 enum gmem_state view, uint8_t tag)
{
	uint8_t buf[64];
	uint64_t p;

	for (p = off; p < off + len; p += GMEM_PAGE_SIZE) {
		memset(buf, 0xee, sizeof(buf));
		TEST_ASSERT_EQ(gmem_access(vm, p, buf, sizeof(buf), false,
					   view), 0);
		for (size_t i = 0; i < sizeof(buf); i++)
			if (buf[i])
				TEST_FAIL("page %#llx reads %#x in the %s view "
					  "after conversion: old content "
					  "leaked", (unsigned long long)p,
					  buf[i], gmem_state_name(view));
		memset(buf, tag, sizeof(buf));
		TEST_ASSERT_EQ(gmem_access(vm, p, buf, sizeof(buf), true,
					   view), 0);
	}
}

static void expect_tag(uint64_t off, uint64_t len, enum gmem_state view,
		       uint8_t tag)
{
	uint8_t buf[64];
	uint64_t p;

	/* Pages of this thread's area hold 0 (never written or converted
	 * since) or the thread's tag; rewrite the tag everywhere. */
	for (p = off; p < off + len; p += GMEM_PAGE_SIZE) {
		TEST_ASSERT_EQ(gmem_access(vm, p, buf, sizeof(buf), false,
					   view), 0);
		if (buf[0] != 0 && buf[0] != tag)
			TEST_FAIL("page %#llx holds %#x, not 0 or %#x",
				  (unsigned long long)p, buf[0], tag);
		memset(buf, tag, sizeof(buf));
		TEST_ASSERT_EQ(gmem_access(vm, p, buf, sizeof(buf), true,
					   view), 0);
	}
}

static void *worker(void *arg)
{
	uint64_t id = (uint64_t)(uintptr_t)arg, seed = 0x1234 + id;
	uint64_t base = id * AREA;
	int round;

	for (round = 0; round < ROUNDS; round++) {
		uint64_t npages = 1 + test_rand(&seed) % 64;
		uint64_t off = base + (test_rand(&seed) %
				       (AREA / GMEM_PAGE_SIZE - npages)) *
				      GMEM_PAGE_SIZE;
		uint64_t len = npages * GMEM_PAGE_SIZE;

		/* Make the range uniformly private, tag it, convert away and
		 * straight back: the old tag must be gone both times. */
		TEST_ASSERT(gmem_convert(vm, off, len, GMEM_PRIVATE) >= 0);
		expect_tag(off, len, GMEM_PRIVATE, (uint8_t)(id + 1));
		TEST_ASSERT_EQ(gmem_convert(vm, off, len, GMEM_SHARED),
			       (int64_t)npages);
		expect_zero_then_tag(off, len, GMEM_SHARED, (uint8_t)(id + 1));
		TEST_ASSERT_EQ(gmem_convert(vm, off, len, GMEM_PRIVATE),
			       (int64_t)npages);
		expect_zero_then_tag(off, len, GMEM_PRIVATE, (uint8_t)(id + 1));
	}
	return NULL;
}

int main(void)
{
	struct gmem_region_config rc;
	struct gmem_config cfg;
	pthread_t th[THREADS];
	struct gmem_stats st = { .size = sizeof(st) };
	int64_t g, s;
	uint64_t i;

	test_require_gmem();
	test_fill_config(&cfg, &rc, test_create_vm(), RAM, GMEM_MODE_DISCARD,
			 GMEM_PRIVATE);
	cfg.flags |= GMEM_CONFIG_DEFERRED_RECLAIM;
	cfg.reclaim_max_pending = 256 * GMEM_PAGE_SIZE;
	TEST_ASSERT_EQ(gmem_create(&cfg, &vm), 0);
	if (rc.private_fd >= 0)
		close(rc.private_fd);	/* libgmem holds its own dup */

	for (i = 0; i < THREADS; i++)
		TEST_ASSERT_EQ(pthread_create(&th[i], NULL, worker,
					      (void *)(uintptr_t)i), 0);
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);

	/* Back-pressure: 8 MiB at once is more than the 1 MiB
	 * (256 pages) that may wait, so it is punched synchronously. */
	TEST_ASSERT(gmem_convert(vm, 0, 8ULL << 20, GMEM_SHARED) >= 0);
	TEST_ASSERT(gmem_convert(vm, 0, 8ULL << 20, GMEM_PRIVATE) >= 0);
	gmem_get_stats(vm, &st);
	printf("pending %llu bytes, %llu punches done outside the thread, "
	       "%llu bytes discarded\n",
	       (unsigned long long)st.reclaim_pending_bytes,
	       (unsigned long long)st.reclaim_sync_punches,
	       (unsigned long long)st.bytes_discarded);
	TEST_ASSERT(st.reclaim_sync_punches > 0);

	/* Drained: nothing backed twice, and the accounting is exact. */
	TEST_ASSERT_EQ(gmem_reclaim_drain(vm), 0);
	test_audit(vm);
	gmem_get_stats(vm, &st);
	TEST_ASSERT_EQ(st.reclaim_pending_bytes, 0);
	TEST_ASSERT_EQ(st.bytes_discarded,
		       (st.pages_to_shared + st.pages_to_private) *
		       GMEM_PAGE_SIZE);
	g = gmem_backing_resident(vm, GMEM_BACKING_PRIVATE);
	s = gmem_backing_resident(vm, GMEM_BACKING_SHARED);
	printf("allocated: guest_memfd %lld, memfd %lld\n", (long long)g,
	       (long long)s);
	/* Every page is private now: the shared backing must be empty. */
	TEST_ASSERT_EQ(s, 0);
	TEST_ASSERT(g > 0);
	gmem_destroy(vm);
	close(cfg.vm_fd);
	printf("ok\n");
	return T_EXIT_PASS;
}
