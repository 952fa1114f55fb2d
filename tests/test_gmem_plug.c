/* SPDX-License-Identifier: MIT */
/*
 * Plugging, the second source of "not populated", against a naive model
 * (state, plugged flag and content tag per page).
 *
 * Random conversions, unplugs and plugs (small ranges, run boundaries,
 * sometimes all of RAM), in both modes, with and without deferred reclaim,
 * with the recorder as platform hooks and listener, and every so often an
 * injected mprotect or fallocate failure that must roll the call back.
 * After every call:
 *  - the return value is the number of pages whose bit changed;
 *  - gmem_for_each_extent(), gmem_state_at() and gmem_plugged_at() agree
 *    with the model, and gmem_for_each_run() merges across plug changes;
 *  - the listener maps exactly the shared-and-plugged pages and the
 *    platform has prepared exactly the private-and-plugged ones;
 *  - test_audit() is clean: views (an unplugged page is accessible in no
 *    view), listener, and no memory held by an unplugged page in any
 *    backing (nor, in discard mode, by a page in its other backing);
 *  - content: a plugged page reads its tag through its view; a page that
 *    was unplugged reads zeros when plugged back (both modes); a
 *    conversion keeps content in place and zeroes it in discard mode;
 *    gmem_access() to an unplugged page fails with -EACCES;
 *  - the counters agree (pages_unplugged, plugs, unplugs).
 */
#include <unistd.h>

#include "internal.h"
#include "test_util.h"

#define PG GMEM_PAGE_SIZE
#define RAM (1ULL << 20)
#define NPAGES (RAM / PG)

struct model {
	uint8_t st[NPAGES];
	uint8_t plugged[NPAGES];
	uint64_t tag[NPAGES];	/* first word of the page; 0: zeros */
	uint64_t plugs, unplugs;
};

static uint64_t rng;
static struct model m;

static uint64_t rnd(uint64_t n)
{
	return n ? test_rand(&rng) % n : 0;
}

static int check_extent(void *arg, const struct gmem_extent *e)
{
	uint64_t *pos = arg, p;

	TEST_ASSERT_EQ(e->gpa, *pos);
	TEST_ASSERT(e->len > 0 && e->len % PG == 0);
	for (p = e->gpa / PG; p < (e->gpa + e->len) / PG; p++) {
		TEST_ASSERT_EQ(e->state, m.st[p]);
		TEST_ASSERT_EQ(e->plugged, m.plugged[p]);
	}
	/* Maximal: the next page differs. */
	p = (e->gpa + e->len) / PG;
	if (p < NPAGES)
		TEST_ASSERT(m.st[p] != e->state || m.plugged[p] != e->plugged);
	*pos = e->gpa + e->len;
	return 0;
}

static int check_run(void *arg, uint64_t off, uint64_t len,
		     enum gmem_state state)
{
	uint64_t *pos = arg, p;

	TEST_ASSERT_EQ(off, *pos);
	for (p = off / PG; p < (off + len) / PG; p++)
		TEST_ASSERT_EQ(state, m.st[p]);
	p = (off + len) / PG;
	if (p < NPAGES)
		TEST_ASSERT(m.st[p] != state);
	*pos = off + len;
	return 0;
}

static void verify(struct gmem_vm *vm, struct recorder *rec)
{
	struct gmem_stats st = { .size = sizeof(st) };
	uint64_t pos = 0, p, unplugged = 0, buf;

	TEST_ASSERT_EQ(gmem_for_each_extent(vm, 0, RAM, check_extent, &pos),
		       0);
	TEST_ASSERT_EQ(pos, RAM);
	pos = 0;
	TEST_ASSERT_EQ(gmem_for_each_run(vm, 0, RAM, check_run, &pos), 0);
	TEST_ASSERT_EQ(pos, RAM);
	for (p = 0; p < NPAGES; p++) {
		bool reach = m.plugged[p] && m.st[p] == GMEM_SHARED;
		bool live = m.plugged[p] && m.st[p] == GMEM_PRIVATE;
		int ret;

		if (p % 7 == 0) {
			TEST_ASSERT_EQ(gmem_state_at(vm, p * PG, NULL, NULL),
				       m.st[p]);
			TEST_ASSERT_EQ(gmem_plugged_at(vm, p * PG, NULL, NULL),
				       m.plugged[p]);
		}
		if (rec->mapped[p] != reach)
			TEST_FAIL("page %#llx: listener mapped %d, want %d",
				  (unsigned long long)p, rec->mapped[p], reach);
		if (rec->prepared[p] != live)
			TEST_FAIL("page %#llx: prepared %d, want %d",
				  (unsigned long long)p, rec->prepared[p],
				  live);
		ret = gmem_access(vm, p * PG, &buf, sizeof(buf), false,
				  (enum gmem_state)m.st[p]);
		if (!m.plugged[p]) {
			TEST_ASSERT_EQ(ret, -EACCES);
			unplugged++;
			continue;
		}
		TEST_ASSERT_EQ(ret, 0);
		if (buf != m.tag[p])
			TEST_FAIL("page %#llx: reads %#llx, want %#llx",
				  (unsigned long long)p,
				  (unsigned long long)buf,
				  (unsigned long long)m.tag[p]);
	}
	test_audit(vm);
	gmem_get_stats(vm, &st);
	TEST_ASSERT_EQ(st.pages_unplugged, unplugged);
	TEST_ASSERT_EQ(st.plugs, m.plugs);
	TEST_ASSERT_EQ(st.unplugs, m.unplugs);
	TEST_ASSERT_EQ(st.pages_private + st.pages_shared, NPAGES);
}

static void run(enum gmem_mode mode, bool deferred, int iters)
{
	struct gmem_region_config rc;
	struct gmem_config cfg;
	struct gmem_listener *l;
	struct recorder rec;
	struct gmem_vm *vm;
	uint64_t next_tag = 1, p;
	int vm_fd, i, rolled_back = 0;

	memset(&m, 0, sizeof(m));
	memset(m.plugged, 1, sizeof(m.plugged));
	recorder_init(&rec, RAM);
	vm_fd = test_create_vm();
	test_fill_config(&cfg, &rc, vm_fd, RAM, mode, GMEM_PRIVATE);
	cfg.platform = &recorder_platform_ops;
	cfg.platform_data = &rec;
	if (deferred)
		cfg.flags |= GMEM_CONFIG_DEFERRED_RECLAIM;
	TEST_ASSERT_EQ(gmem_create(&cfg, &vm), 0);
	if (rc.private_fd >= 0)
		close(rc.private_fd);	/* libgmem holds its own dup */
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops, &rec,
					      &l), 0);
	verify(vm, &rec);

	for (i = 0; i < iters; i++) {
		uint64_t start = rnd(NPAGES), len, changed = 0;
		unsigned int op = (unsigned int)rnd(3), fault = 0;
		enum gmem_fault_point point = GMEM_FAULT_MPROTECT;
		bool bit = rnd(2);
		int64_t ret;

		len = rnd(8) == 0 ? 1 + rnd(NPAGES) : 1 + rnd(12);
		if (rnd(40) == 0) {
			start = 0;
			len = NPAGES;
		}
		if (start + len > NPAGES)
			len = NPAGES - start;
		for (p = start; p < start + len; p++)
			changed += op == 0 ? m.st[p] != bit :
					     m.plugged[p] != bit;
		/* Sometimes a step of the call fails: nothing may change. */
		if (changed && rnd(6) == 0) {
			fault = 1 + (unsigned int)rnd(3);
			point = rnd(2) ? GMEM_FAULT_MPROTECT :
					 GMEM_FAULT_FALLOCATE;
			gmem_fault_inject(vm, point, fault, EIO);
		}
		if (getenv("TEST_VERBOSE"))
			fprintf(stderr, "%d: op %u bit %d [%#llx+%#llx) fault %u\n",
				i, op, bit, (unsigned long long)start,
				(unsigned long long)len, fault);
		ret = op == 0 ? gmem_convert(vm, start * PG, len * PG,
					     (enum gmem_state)bit) :
				gmem_set_plugged(vm, start * PG, len * PG,
						 bit);
		gmem_fault_inject(vm, GMEM_FAULT_MPROTECT, 0, 0);
		gmem_fault_inject(vm, GMEM_FAULT_FALLOCATE, 0, 0);
		if (ret == -EIO && fault) {
			rolled_back++;
			/*
			 * The one documented exception to all or nothing:
			 * an unplug in discard mode punches the shared
			 * backing, then the private one; if the second
			 * fails, the shared pages it gave up read zeros.
			 */
			if (op != 0 && !bit && mode == GMEM_MODE_DISCARD &&
			    point == GMEM_FAULT_FALLOCATE && fault == 2)
				for (p = start; p < start + len; p++)
					if (m.st[p] == GMEM_SHARED)
						m.tag[p] = 0;
			verify(vm, &rec);
			continue;
		}
		TEST_ASSERT_EQ(ret, changed);
		for (p = start; p < start + len; p++) {
			if (op == 0 && m.st[p] != bit) {
				m.st[p] = bit;
				if (mode == GMEM_MODE_DISCARD)
					m.tag[p] = 0;
			} else if (op != 0 && m.plugged[p] != bit) {
				m.plugged[p] = bit;
				m.tag[p] = 0;	/* zero when back */
			}
		}
		if (changed && op != 0)
			bit ? m.plugs++ : m.unplugs++;
		/* Tag a few plugged pages through their view. */
		for (p = start; p < start + len && p < start + 3; p++) {
			if (!m.plugged[p])
				continue;
			m.tag[p] = next_tag++;
			TEST_ASSERT_EQ(gmem_access(vm, p * PG, &m.tag[p],
						   sizeof(m.tag[p]), true,
						   (enum gmem_state)m.st[p]),
				       0);
		}
		verify(vm, &rec);
	}
	printf("  %s%s: %d calls, %d rolled back, %llu plugs, %llu unplugs\n",
	       gmem_mode_name(mode), deferred ? " + deferred reclaim" : "",
	       iters, rolled_back, (unsigned long long)m.plugs,
	       (unsigned long long)m.unplugs);
	TEST_ASSERT(rolled_back > 0 && m.plugs > 0 && m.unplugs > 0);
	gmem_listener_unregister(vm, l);
	gmem_destroy(vm);
	/* Destroy invalidated exactly the private-and-plugged pages. */
	for (p = 0; p < NPAGES; p++)
		TEST_ASSERT_EQ(rec.prepared[p], 0);
	recorder_free(&rec);
	close(vm_fd);
}

int main(void)
{
	rng = test_seed("GMEM_TEST_SEED", 0x706c7567ULL);
	test_require_gmem();
	run(GMEM_MODE_DISCARD, false, 600);
	run(GMEM_MODE_IN_PLACE, false, 600);
	run(GMEM_MODE_DISCARD, true, 400);
	printf("ok\n");
	return 0;
}
