/* SPDX-License-Identifier: MIT */
/*
 * Order and exactness of every notification libgmem makes: platform hooks,
 * listeners, subscribers.  One recorder plays all three roles, so the
 * recorded sequence is the global order of the calls.
 *
 *  - To shared, over a range holding two delta runs separated by a run
 *    that is already shared: subscriber CONVERT (old backing) run1, run2;
 *    listener POPULATE run1, run2; platform INVALIDATE run1, run2;
 *    subscriber PUNCH run1, run2 (discard mode only).
 *  - To private: listener DISCARD run1, run2; subscriber CONVERT (old
 *    backing: the memfd in discard mode, the guest_memfd in place) run1,
 *    run2; platform PREPARE run1, run2; subscriber PUNCH (memfd) run1, run2
 *    in discard mode.
 *  - Offsets are backing offsets (bytes into RAM); the range starts inside
 *    a run, so run1 is clipped to it; run1 is 512 pages and still one
 *    event per hook.
 *  - A range already in the target state: no event, returns 0.
 *  - gmem_create: one prepare of all RAM when it starts private, nothing
 *    when it starts shared; gmem_destroy: invalidate per private run,
 *    discard per shared run to every listener, RELEASE per backing.
 *  - gmem_listener_register replays one populate per shared run; a populate
 *    failing during the replay returns its error and discards exactly what
 *    was replayed; unregister replays one discard per shared run.
 *  - Over a random sequence of conversions every page's prepared and mapped
 *    flags toggle exactly with its state (the recorder's strict mode fails
 *    on any double), with one event per delta run per hook.
 */
#include <unistd.h>

#include "test_util.h"

#define PG GMEM_PAGE_SIZE
#define RAM (4ULL << 20)
#define NPAGES (RAM / PG)

/* A run of pages. */
struct run {
	uint64_t start, npages;
};

struct want {
	enum rec_kind kind;
	int reason, backing;	/* REC_INVAL only */
	uint64_t start, npages;	/* pages */
};

static struct want wants[64];
static size_t nr_wants;
static const char *ctx_what = "";

static void want(enum rec_kind kind, int reason, int backing, uint64_t start,
		 uint64_t npages)
{
	TEST_ASSERT(nr_wants < sizeof(wants) / sizeof(wants[0]));
	wants[nr_wants++] = (struct want){ kind, reason, backing, start,
					   npages };
}

/* want() one event for each of the @nr runs @runs (pages). */
static void want_each(enum rec_kind kind, int reason, int backing,
		      const struct run *runs, size_t nr)
{
	size_t i;

	for (i = 0; i < nr; i++)
		want(kind, reason, backing, runs[i].start, runs[i].npages);
}

/*
 * The hook order of a conversion of @runs to shared: the private backing's
 * subscribers, the listeners map, the platform invalidates, and (discard
 * mode) the private pages are punched - each step for every run.
 */
static void want_to_shared(const struct run *runs, size_t nr, bool discard)
{
	want_each(REC_INVAL, GMEM_INVAL_CONVERT, GMEM_BACKING_PRIVATE, runs,
		  nr);
	want_each(REC_POPULATE, 0, 0, runs, nr);
	want_each(REC_INVALIDATE, 0, 0, runs, nr);
	if (discard)
		want_each(REC_INVAL, GMEM_INVAL_PUNCH, GMEM_BACKING_PRIVATE,
			  runs, nr);
}

/*
 * ... and to private: the listeners unmap, the subscribers of the backing
 * that held the shared pages, the platform prepares, and (discard mode)
 * the shared pages are punched.
 */
static void want_to_private(const struct run *runs, size_t nr, bool discard)
{
	int shared_b = discard ? GMEM_BACKING_SHARED : GMEM_BACKING_PRIVATE;

	want_each(REC_DISCARD, 0, 0, runs, nr);
	want_each(REC_INVAL, GMEM_INVAL_CONVERT, shared_b, runs, nr);
	want_each(REC_PREPARE, 0, 0, runs, nr);
	if (discard)
		want_each(REC_INVAL, GMEM_INVAL_PUNCH, GMEM_BACKING_SHARED,
			  runs, nr);
}

static const char *kind_name(enum rec_kind k)
{
	switch (k) {
	case REC_PREPARE:
		return "PREPARE";
	case REC_INVALIDATE:
		return "INVALIDATE";
	case REC_POPULATE:
		return "POPULATE";
	case REC_DISCARD:
		return "DISCARD";
	case REC_INVAL:
		return "subscriber";
	}
	return "?";
}

static void dump(struct recorder *r)
{
	size_t i;

	fprintf(stderr, "recorded (%zu):\n", r->nr);
	for (i = 0; i < r->nr; i++)
		fprintf(stderr, "  %s %s %s [%#llx, +%#llx)\n",
			kind_name(r->ev[i].kind),
			r->ev[i].kind == REC_INVAL ?
			gmem_inval_reason_name(r->ev[i].reason) : "",
			r->ev[i].kind == REC_INVAL ?
			(r->ev[i].backing == GMEM_BACKING_PRIVATE ? "gmem" :
								 "shared") : "",
			(unsigned long long)r->ev[i].offset,
			(unsigned long long)r->ev[i].len);
	fprintf(stderr, "expected (%zu):\n", nr_wants);
	for (i = 0; i < nr_wants; i++)
		fprintf(stderr, "  %s %s %s [%#llx, +%#llx)\n",
			kind_name(wants[i].kind),
			wants[i].kind == REC_INVAL ?
			gmem_inval_reason_name(wants[i].reason) : "",
			wants[i].kind == REC_INVAL ?
			(wants[i].backing == GMEM_BACKING_PRIVATE ? "gmem" :
								 "shared") : "",
			(unsigned long long)(wants[i].start * PG),
			(unsigned long long)(wants[i].npages * PG));
}

/* The recorded sequence is exactly the wanted one; then forget both. */
static void expect_sequence(struct recorder *r)
{
	size_t i;

	pthread_mutex_lock(&r->lock);
	if (r->nr != nr_wants) {
		dump(r);
		TEST_FAIL("%s: %zu events, want %zu", ctx_what, r->nr,
			  nr_wants);
	}
	for (i = 0; i < nr_wants; i++) {
		const struct rec_event *e = &r->ev[i];
		const struct want *w = &wants[i];

		if (e->kind != w->kind || e->offset != w->start * PG ||
		    e->len != w->npages * PG ||
		    (w->kind == REC_INVAL && (e->reason != w->reason ||
					      e->backing != w->backing))) {
			dump(r);
			TEST_FAIL("%s: event %zu differs", ctx_what, i);
		}
	}
	r->nr = 0;
	pthread_mutex_unlock(&r->lock);
	nr_wants = 0;
}

static void expect_no_events(struct recorder *r)
{
	nr_wants = 0;
	expect_sequence(r);
}

/* The prepared and mapped flags match the page states. */
static void expect_flags(struct gmem_vm *vm, struct recorder *r,
			 bool platform, bool listener)
{
	uint64_t p;
	int st;

	for (p = 0; p < NPAGES; p++) {
		st = gmem_state_at(vm, p * PG, NULL, NULL);
		TEST_ASSERT(st >= 0);
		if (platform && r->prepared[p] != (st == GMEM_PRIVATE))
			TEST_FAIL("%s: page %#llx %s, prepared %d", ctx_what,
				  (unsigned long long)p, gmem_state_name(st),
				  r->prepared[p]);
		if (listener && r->mapped[p] != (st == GMEM_SHARED))
			TEST_FAIL("%s: page %#llx %s, mapped %d", ctx_what,
				  (unsigned long long)p, gmem_state_name(st),
				  r->mapped[p]);
	}
}

static int64_t convert(struct gmem_vm *vm, uint64_t start, uint64_t npages,
		       enum gmem_state to)
{
	return gmem_convert(vm, start * PG, npages * PG, to);
}

/* ---- create and destroy -------------------------------------------------- */

static void test_create_destroy(enum gmem_mode mode, enum gmem_state initial)
{
	bool discard = mode == GMEM_MODE_DISCARD;
	struct recorder rec, rec2;
	struct gmem_listener *l1, *l2;
	struct gmem_subscription *sub;
	struct gmem_vm *vm;
	int vm_fd = test_create_vm();

	ctx_what = initial == GMEM_PRIVATE ? "create private" :
					     "create shared";
	recorder_init(&rec, RAM);
	recorder_init(&rec2, RAM);
	vm = test_create_gmem(vm_fd, RAM, mode, initial, &recorder_platform_ops,
			      &rec);
	/* One prepare for all of RAM, or nothing. */
	if (initial == GMEM_PRIVATE)
		want(REC_PREPARE, 0, 0, 0, NPAGES);
	expect_sequence(&rec);

	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops, &rec,
					      &l1), 0);
	if (initial == GMEM_SHARED)
		want(REC_POPULATE, 0, 0, 0, NPAGES);
	expect_sequence(&rec);
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops,
					      &rec2, &l2), 0);
	if (initial == GMEM_SHARED)
		want(REC_POPULATE, 0, 0, 0, NPAGES);
	expect_sequence(&rec2);
	TEST_ASSERT_EQ(gmem_subscribe(vm, recorder_inval, &rec, &sub), 0);
	expect_no_events(&rec);

	/* Runs: [0,4) S, [4,100) P, [100,612) S, [612,1000) P, [1000,1024) S
	 * (for initial private); the complement for initial shared. */
	{
		enum gmem_state other = initial == GMEM_PRIVATE ? GMEM_SHARED :
								  GMEM_PRIVATE;

		TEST_ASSERT_EQ(convert(vm, 0, 4, other), 4);
		TEST_ASSERT_EQ(convert(vm, 100, 512, other), 512);
		TEST_ASSERT_EQ(convert(vm, 1000, 24, other), 24);
	}
	test_audit(vm);
	expect_flags(vm, &rec, true, true);
	recorder_reset_events(&rec);
	recorder_reset_events(&rec2);

	ctx_what = "destroy";
	gmem_destroy(vm);
	{
		/* Per run, in order: invalidate if private, discard to each
		 * listener if shared; then RELEASE per backing. */
		static const uint64_t bounds[] = { 0, 4, 100, 612, 1000, 1024 };
		enum gmem_state st = initial == GMEM_PRIVATE ? GMEM_SHARED :
							       GMEM_PRIVATE;
		size_t i;

		for (i = 0; i + 1 < sizeof(bounds) / sizeof(bounds[0]); i++) {
			want(st == GMEM_PRIVATE ? REC_INVALIDATE : REC_DISCARD,
			     0, 0, bounds[i], bounds[i + 1] - bounds[i]);
			st = !st;
		}
		want(REC_INVAL, GMEM_INVAL_RELEASE, GMEM_BACKING_PRIVATE, 0,
		     NPAGES);
		if (discard)
			want(REC_INVAL, GMEM_INVAL_RELEASE,
			     GMEM_BACKING_SHARED, 0, NPAGES);
		expect_sequence(&rec);
		st = initial == GMEM_PRIVATE ? GMEM_SHARED : GMEM_PRIVATE;
		for (i = 0; i + 1 < sizeof(bounds) / sizeof(bounds[0]); i++) {
			if (st == GMEM_SHARED)
				want(REC_DISCARD, 0, 0, bounds[i],
				     bounds[i + 1] - bounds[i]);
			st = !st;
		}
		expect_sequence(&rec2);
	}
	/* Balanced: nothing prepared, nothing mapped any more. */
	{
		uint64_t p;

		for (p = 0; p < NPAGES; p++)
			if (rec.prepared[p] || rec.mapped[p] || rec2.mapped[p])
				TEST_FAIL("after destroy: page %#llx prepared "
					  "%d mapped %d/%d",
					  (unsigned long long)p,
					  rec.prepared[p], rec.mapped[p],
					  rec2.mapped[p]);
	}
	(void)l1;
	(void)l2;
	(void)sub;
	recorder_free(&rec);
	recorder_free(&rec2);
	close(vm_fd);
}

/* ---- conversion order ---------------------------------------------------- */

static void test_conversion_order(enum gmem_mode mode)
{
	bool discard = mode == GMEM_MODE_DISCARD;
	struct gmem_listener *l;
	struct gmem_subscription *sub;
	struct recorder rec;
	struct gmem_vm *vm;
	int vm_fd = test_create_vm();
	/* run1 = [88, 600): 512 pages, starting inside the first run;
	 * [600, 610) already shared; run2 = [610, 700). */
	const uint64_t r1 = 88, n1 = 512, mid = 600, nmid = 10, r2 = 610,
		       n2 = 90;
	const struct run one[] = { { mid, nmid } };
	const struct run two[] = { { r1, n1 }, { r2, n2 } };
	const struct run all[] = { { 0, NPAGES } };

	vm = test_create_recorded(vm_fd, RAM, mode, &rec, &l, &sub);
	recorder_reset_events(&rec);

	/* A single run to shared. */
	ctx_what = "one run to shared";
	TEST_ASSERT_EQ(convert(vm, mid, nmid, GMEM_SHARED), nmid);
	want_to_shared(one, 1, discard);
	expect_sequence(&rec);

	/* Two delta runs around an already-shared run, to shared. */
	ctx_what = "two runs to shared";
	TEST_ASSERT_EQ(convert(vm, r1, r2 + n2 - r1, GMEM_SHARED), n1 + n2);
	want_to_shared(two, 2, discard);
	expect_sequence(&rec);
	test_audit(vm);
	expect_flags(vm, &rec, true, true);

	/* Already there: nothing at all. */
	ctx_what = "no-op to shared";
	TEST_ASSERT_EQ(convert(vm, r1, r2 + n2 - r1, GMEM_SHARED), 0);
	TEST_ASSERT_EQ(convert(vm, 300, 100, GMEM_SHARED), 0);
	TEST_ASSERT_EQ(convert(vm, mid, 1, GMEM_SHARED), 0);
	expect_no_events(&rec);
	ctx_what = "no-op to private";
	TEST_ASSERT_EQ(convert(vm, 0, r1, GMEM_PRIVATE), 0);
	TEST_ASSERT_EQ(convert(vm, 700, NPAGES - 700, GMEM_PRIVATE), 0);
	expect_no_events(&rec);

	/* A single run back to private: the middle one. */
	ctx_what = "one run to private";
	TEST_ASSERT_EQ(convert(vm, mid, nmid, GMEM_PRIVATE), nmid);
	want_to_private(one, 1, discard);
	expect_sequence(&rec);

	/* Two delta runs around an already-private run, to private. */
	ctx_what = "two runs to private";
	TEST_ASSERT_EQ(convert(vm, r1, r2 + n2 - r1, GMEM_PRIVATE), n1 + n2);
	want_to_private(two, 2, discard);
	expect_sequence(&rec);
	test_audit(vm);
	expect_flags(vm, &rec, true, true);

	ctx_what = "no-op to private (all RAM)";
	TEST_ASSERT_EQ(convert(vm, 0, NPAGES, GMEM_PRIVATE), 0);
	expect_no_events(&rec);

	/* Whole RAM to shared and back: one event per hook each way. */
	ctx_what = "all RAM to shared";
	TEST_ASSERT_EQ(convert(vm, 0, NPAGES, GMEM_SHARED), NPAGES);
	want_to_shared(all, 1, discard);
	expect_sequence(&rec);
	ctx_what = "all RAM to private";
	TEST_ASSERT_EQ(convert(vm, 0, NPAGES, GMEM_PRIVATE), NPAGES);
	want_to_private(all, 1, discard);
	expect_sequence(&rec);

	/* Without a subscriber and without listeners: only the platform. */
	ctx_what = "platform only";
	gmem_unsubscribe(vm, sub);
	gmem_listener_unregister(vm, l);
	expect_no_events(&rec);	/* nothing was shared */
	TEST_ASSERT_EQ(convert(vm, 8, 8, GMEM_SHARED), 8);
	want(REC_INVALIDATE, 0, 0, 8, 8);
	expect_sequence(&rec);
	TEST_ASSERT_EQ(convert(vm, 8, 8, GMEM_PRIVATE), 8);
	want(REC_PREPARE, 0, 0, 8, 8);
	expect_sequence(&rec);
	test_audit(vm);

	gmem_destroy(vm);
	recorder_free(&rec);
	close(vm_fd);
}

/* ---- register / unregister replay ------------------------------------------ */

static void test_replay(enum gmem_mode mode)
{
	static const struct {
		uint64_t start, npages;
	} sh[] = { { 0, 4 }, { 100, 512 }, { 1000, 24 } };
	struct recorder rec, rec2;
	struct gmem_listener *l, *l2 = NULL;
	struct gmem_vm *vm;
	int vm_fd = test_create_vm();
	unsigned int k, i;

	recorder_init(&rec, RAM);
	recorder_init(&rec2, RAM);
	vm = test_create_gmem(vm_fd, RAM, mode, GMEM_PRIVATE, NULL, NULL);

	/* Nothing shared: nothing to replay. */
	ctx_what = "register with nothing shared";
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops,
					      &rec2, &l2), 0);
	expect_no_events(&rec2);
	gmem_listener_unregister(vm, l2);
	expect_no_events(&rec2);

	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops, &rec,
					      &l), 0);
	for (i = 0; i < 3; i++)
		TEST_ASSERT_EQ(convert(vm, sh[i].start, sh[i].npages,
				       GMEM_SHARED), sh[i].npages);
	recorder_reset_events(&rec);

	ctx_what = "register";
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops,
					      &rec2, &l2), 0);
	for (i = 0; i < 3; i++)
		want(REC_POPULATE, 0, 0, sh[i].start, sh[i].npages);
	expect_sequence(&rec2);
	expect_no_events(&rec);	/* the other listener hears nothing */
	test_audit(vm);
	expect_flags(vm, &rec2, false, true);

	ctx_what = "unregister";
	gmem_listener_unregister(vm, l2);
	for (i = 0; i < 3; i++)
		want(REC_DISCARD, 0, 0, sh[i].start, sh[i].npages);
	expect_sequence(&rec2);
	expect_no_events(&rec);
	test_audit(vm);

	/* A populate fails during the replay: the error is returned and
	 * exactly what was replayed is discarded. */
	for (k = 1; k <= 3; k++) {
		ctx_what = "register with a failing populate";
		rec2.fail_populate_nth = k;
		rec2.fail_err = -ENOSPC;
		l2 = NULL;
		TEST_ASSERT_EQ(gmem_listener_register(vm,
						      &recorder_listener_ops,
						      &rec2, &l2), -ENOSPC);
		rec2.fail_populate_nth = 0;
		for (i = 0; i + 1 < k; i++)
			want(REC_POPULATE, 0, 0, sh[i].start, sh[i].npages);
		for (i = 0; i + 1 < k; i++)
			want(REC_DISCARD, 0, 0, sh[i].start, sh[i].npages);
		expect_sequence(&rec2);
		for (i = 0; i < NPAGES; i++)
			TEST_ASSERT_EQ(rec2.mapped[i], 0);
		/* Not registered: a conversion does not reach it. */
		TEST_ASSERT_EQ(convert(vm, 50, 1, GMEM_SHARED), 1);
		TEST_ASSERT_EQ(convert(vm, 50, 1, GMEM_PRIVATE), 1);
		expect_no_events(&rec2);
		test_audit(vm);
	}
	recorder_reset_events(&rec);

	/* Registered listeners hear conversions in registration order. */
	ctx_what = "two listeners";
	rec2.fail_err = -EAGAIN;
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops,
					      &rec2, &l2), 0);
	recorder_reset_events(&rec2);
	TEST_ASSERT_EQ(convert(vm, 10, 80, GMEM_SHARED), 80);
	want(REC_POPULATE, 0, 0, 10, 80);
	expect_sequence(&rec);
	want(REC_POPULATE, 0, 0, 10, 80);
	expect_sequence(&rec2);
	test_audit(vm);
	gmem_listener_unregister(vm, l2);
	gmem_listener_unregister(vm, l);
	gmem_destroy(vm);
	recorder_free(&rec);
	recorder_free(&rec2);
	close(vm_fd);
}

/* ---- exactly once per page transition -------------------------------------- */

static void test_exactly_once(enum gmem_mode mode, uint64_t *rng)
{
	static uint8_t st[NPAGES];
	struct recorder rec;
	struct gmem_listener *l;
	struct gmem_subscription *sub;
	struct gmem_vm *vm;
	int vm_fd = test_create_vm();
	uint64_t sum[5], runs[5], p, start, n, pages, nd;
	int i, to;
	size_t e;

	/* The recorder is strict: a double fails the test. */
	vm = test_create_recorded(vm_fd, RAM, mode, &rec, &l, &sub);
	memset(st, GMEM_PRIVATE, sizeof(st));
	ctx_what = "random sequence";
	for (i = 0; i < 600; i++) {
		start = test_rand(rng) % NPAGES;
		n = test_rand(rng) % 4 == 0 ? NPAGES - start :
					      1 + test_rand(rng) % 64;
		if (n > NPAGES - start)
			n = NPAGES - start;
		to = (int)(test_rand(rng) % 2);
		/* Delta of the model. */
		pages = nd = 0;
		for (p = start; p < start + n; p++) {
			if (st[p] == to)
				continue;
			pages++;
			if (p == start || st[p - 1] == to)
				nd++;
		}
		recorder_reset_events(&rec);
		TEST_ASSERT_EQ(convert(vm, start, n, (enum gmem_state)to),
			       pages);
		for (p = start; p < start + n; p++)
			st[p] = (uint8_t)to;
		/* One event per delta run per hook, covering the delta. */
		memset(sum, 0, sizeof(sum));
		memset(runs, 0, sizeof(runs));
		for (e = 0; e < rec.nr; e++) {
			if (rec.ev[e].kind == REC_INVAL &&
			    rec.ev[e].reason != GMEM_INVAL_CONVERT)
				continue;
			sum[rec.ev[e].kind] += rec.ev[e].len / PG;
			runs[rec.ev[e].kind]++;
		}
		if (to == GMEM_SHARED) {
			TEST_ASSERT_EQ(sum[REC_POPULATE], pages);
			TEST_ASSERT_EQ(runs[REC_POPULATE], nd);
			TEST_ASSERT_EQ(sum[REC_INVALIDATE], pages);
			TEST_ASSERT_EQ(runs[REC_INVALIDATE], nd);
			TEST_ASSERT_EQ(runs[REC_PREPARE] + runs[REC_DISCARD], 0);
		} else {
			TEST_ASSERT_EQ(sum[REC_DISCARD], pages);
			TEST_ASSERT_EQ(runs[REC_DISCARD], nd);
			TEST_ASSERT_EQ(sum[REC_PREPARE], pages);
			TEST_ASSERT_EQ(runs[REC_PREPARE], nd);
			TEST_ASSERT_EQ(runs[REC_POPULATE] +
				       runs[REC_INVALIDATE], 0);
		}
		TEST_ASSERT_EQ(sum[REC_INVAL], pages);
		TEST_ASSERT_EQ(runs[REC_INVAL], nd);
		for (p = 0; p < NPAGES; p++)
			if (rec.prepared[p] != (st[p] == GMEM_PRIVATE) ||
			    rec.mapped[p] != (st[p] == GMEM_SHARED))
				TEST_FAIL("step %d: page %#llx %s, prepared "
					  "%d mapped %d", i,
					  (unsigned long long)p,
					  gmem_state_name(st[p]),
					  rec.prepared[p], rec.mapped[p]);
		if (i % 50 == 0)
			test_audit(vm);
	}
	test_audit(vm);
	gmem_listener_unregister(vm, l);
	gmem_unsubscribe(vm, sub);
	gmem_destroy(vm);
	for (p = 0; p < NPAGES; p++)
		TEST_ASSERT(!rec.prepared[p] && !rec.mapped[p]);
	recorder_free(&rec);
	close(vm_fd);
}

int main(void)
{
	static const enum gmem_mode modes[] = { GMEM_MODE_DISCARD,
						GMEM_MODE_IN_PLACE };
	uint64_t rng;
	unsigned int i;

	test_require_gmem();
	rng = test_seed("GMEM_HOOKS_SEED", 0x686f6f6b73ULL);
	for (i = 0; i < 2; i++) {
		printf("mode %s\n", gmem_mode_name(modes[i]));
		test_create_destroy(modes[i], GMEM_PRIVATE);
		test_create_destroy(modes[i], GMEM_SHARED);
		test_conversion_order(modes[i]);
		test_replay(modes[i]);
		test_exactly_once(modes[i], &rng);
	}
	printf("ok\n");
	return T_EXIT_PASS;
}
