/* SPDX-License-Identifier: MIT */
/*
 * Fault injection: a conversion is all or nothing.
 *
 * The converted range is a checkerboard of private and shared runs (and is
 * clipped inside runs at both ends), so a conversion works on several delta
 * runs in either direction and can fail after partial progress.  A failure
 * is forced at every step the engine can fail at, in both modes and both
 * directions:
 *   - a listener veto on the 1st, 2nd and last discard, in the first and in
 *     the second of two listeners (to private);
 *   - a populate failure on the 1st, 2nd and last populate, in either
 *     listener (to shared);
 *   - a prepare failure on the 1st, 2nd and last prepare (to private);
 *   - an mprotect failure at each of the 2 * (delta runs) mprotect calls a
 *     conversion makes (and none at call 2n + 1, which proves the count);
 *   - a failure of the punch (fallocate), discard mode.
 * After each failure the call returned the injected -errno (-EAGAIN for a
 * veto) and EXACTLY nothing changed: the run list of the page-state map,
 * the real protection of every page in both views (SIGSEGV probes) and the
 * audit, both listeners' mapped pages, the platform's prepared pages, the
 * content of every page (checksum through its accessible view) and the
 * residency of both backings; no PUNCH was announced; only the failure
 * counter moved.  Then the same conversion without a fault succeeds with
 * the right count, content and residency, and hooks and listeners are
 * balanced (prepared == private pages, mapped == shared pages).
 */
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "test_util.h"

#define PG GMEM_PAGE_SIZE
#define RAM (1ULL << 20)
#define NPAGES (RAM / PG)

/* The converted range, in pages. */
#define R_START 40ULL
#define R_PAGES 64ULL

/*
 * Shared runs (pages); everything else is private.  Inside the range
 * [40, 104): shared [40,44) [46,47) [50,53) [60,70) [75,76) [80,88)
 * [100,104) (7 runs, the first and last clipped), private [44,46) [47,50)
 * [53,60) [70,75) [76,80) [88,100) (6 runs).
 */
static const struct {
	uint64_t start, npages;
} shared_layout[] = {
	{ 0, 2 },   { 10, 4 }, { 36, 8 },  { 46, 1 },  { 50, 3 },
	{ 60, 10 }, { 75, 1 }, { 80, 8 },  { 100, 10 }, { 200, 56 },
};

struct ctx {
	enum gmem_mode mode;
	int vm_fd;
	struct gmem_vm *vm;
	struct recorder rec;	/* platform hooks, listener 1, subscriber */
	struct recorder rec2;	/* listener 2 */
	struct gmem_listener *l1, *l2;
	struct gmem_subscription *sub;
	uint32_t gen;
	uint8_t layout[NPAGES];	/* the state of each page after reset */
};

static struct ctx ctx;
static char what[160];	/* the scenario, for failure messages */

struct run_rec {
	uint64_t off, len;
	int state;
};

struct snap {
	size_t nr_runs;
	struct run_rec runs[NPAGES];
	uint8_t state[NPAGES];
	uint8_t readable[2][NPAGES];	/* [view][page] */
	uint64_t sum[NPAGES];		/* through the page's own view */
	uint8_t mapped[NPAGES], mapped2[NPAGES], prepared[NPAGES];
	int64_t alloc[2];		/* [backing] */
	struct gmem_stats stats;
};

static struct snap before, after;

/* ---- content ------------------------------------------------------------- */

static void fill_page(uint64_t *w, uint64_t page, uint32_t gen)
{
	uint64_t i;

	/* Non-zero (a non-zero value times an odd constant) and distinct for
	 * every (gen, page, word). */
	for (i = 0; i < PG / 8; i++)
		w[i] = (((uint64_t)gen << 40 | page << 16 | i) + 1) *
		       0x9e3779b97f4a7c15ULL;
}

static uint64_t page_sum(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t h = 0xcbf29ce484222325ULL, i;

	for (i = 0; i < PG / 8; i++)
		h = (h ^ w[i]) * 0x100000001b3ULL;
	return h;
}

static uint64_t zero_sum(void)
{
	static uint64_t zero[PG / 8];

	return page_sum((const uint8_t *)zero);
}

/* ---- snapshots ------------------------------------------------------------ */

static int snap_run(void *arg, uint64_t off, uint64_t len,
		    enum gmem_state state)
{
	struct snap *s = arg;

	if (s->nr_runs == NPAGES)
		return -E2BIG;
	s->runs[s->nr_runs++] = (struct run_rec){ off, len, (int)state };
	return 0;
}

static void take_snapshot(struct ctx *c, struct snap *s)
{
	uint8_t *view[2] = { gmem_private_view(c->vm), gmem_shared_view(c->vm) };
	uint64_t p, q;
	size_t i;
	uint8_t b;

	memset(s, 0, sizeof(*s));
	/* Residency first: the reads below may fault in zero pages. */
	s->alloc[GMEM_BACKING_PRIVATE] = gmem_backing_resident(c->vm,
							     GMEM_BACKING_PRIVATE);
	s->alloc[GMEM_BACKING_SHARED] =
		gmem_backing_resident(c->vm, GMEM_BACKING_SHARED);
	TEST_ASSERT(s->alloc[0] >= 0 && s->alloc[1] >= 0);
	TEST_ASSERT_EQ(gmem_for_each_run(c->vm, 0, RAM, snap_run, s), 0);
	for (i = 0; i < s->nr_runs; i++)
		for (q = s->runs[i].off / PG;
		     q < (s->runs[i].off + s->runs[i].len) / PG; q++)
			s->state[q] = (uint8_t)s->runs[i].state;
	for (p = 0; p < NPAGES; p++) {
		s->readable[GMEM_PRIVATE][p] =
			test_probe_read(view[GMEM_PRIVATE] + p * PG, &b);
		s->readable[GMEM_SHARED][p] =
			test_probe_read(view[GMEM_SHARED] + p * PG, &b);
		if (s->readable[s->state[p]][p])
			s->sum[p] = page_sum(view[s->state[p]] + p * PG);
	}
	pthread_mutex_lock(&c->rec.lock);
	memcpy(s->mapped, c->rec.mapped, NPAGES);
	memcpy(s->prepared, c->rec.prepared, NPAGES);
	pthread_mutex_unlock(&c->rec.lock);
	pthread_mutex_lock(&c->rec2.lock);
	memcpy(s->mapped2, c->rec2.mapped, NPAGES);
	pthread_mutex_unlock(&c->rec2.lock);
	s->stats.size = sizeof(s->stats);
	TEST_ASSERT_EQ(gmem_get_stats(c->vm, &s->stats), 0);
}

/* Everything but the counters must be identical. */
static void expect_unchanged(const struct snap *a, const struct snap *b)
{
	uint64_t p;
	size_t i;

	if (a->nr_runs != b->nr_runs)
		TEST_FAIL("%s: %zu runs before, %zu after", what, a->nr_runs,
			  b->nr_runs);
	for (i = 0; i < a->nr_runs; i++)
		if (a->runs[i].off != b->runs[i].off ||
		    a->runs[i].len != b->runs[i].len ||
		    a->runs[i].state != b->runs[i].state)
			TEST_FAIL("%s: run %zu was [%#llx, +%#llx) %s, now "
				  "[%#llx, +%#llx) %s", what, i,
				  (unsigned long long)a->runs[i].off,
				  (unsigned long long)a->runs[i].len,
				  gmem_state_name(a->runs[i].state),
				  (unsigned long long)b->runs[i].off,
				  (unsigned long long)b->runs[i].len,
				  gmem_state_name(b->runs[i].state));
	for (p = 0; p < NPAGES; p++) {
		if (a->readable[0][p] != b->readable[0][p] ||
		    a->readable[1][p] != b->readable[1][p])
			TEST_FAIL("%s: page %#llx readable private/shared "
				  "%d/%d before, %d/%d after", what,
				  (unsigned long long)p, a->readable[0][p],
				  a->readable[1][p], b->readable[0][p],
				  b->readable[1][p]);
		if (a->sum[p] != b->sum[p])
			TEST_FAIL("%s: content of page %#llx changed", what,
				  (unsigned long long)p);
		if (a->mapped[p] != b->mapped[p])
			TEST_FAIL("%s: listener 1 mapped[%#llx] %d -> %d", what,
				  (unsigned long long)p, a->mapped[p],
				  b->mapped[p]);
		if (a->mapped2[p] != b->mapped2[p])
			TEST_FAIL("%s: listener 2 mapped[%#llx] %d -> %d", what,
				  (unsigned long long)p, a->mapped2[p],
				  b->mapped2[p]);
		if (a->prepared[p] != b->prepared[p])
			TEST_FAIL("%s: prepared[%#llx] %d -> %d", what,
				  (unsigned long long)p, a->prepared[p],
				  b->prepared[p]);
	}
	for (i = 0; i < 2; i++)
		if (a->alloc[i] != b->alloc[i])
			TEST_FAIL("%s: backing %zu holds %lld bytes, was %lld",
				  what, i, (long long)b->alloc[i],
				  (long long)a->alloc[i]);
}

/* Hooks and listeners balanced against the state. */
static void expect_balanced(const struct snap *s)
{
	uint64_t p;

	for (p = 0; p < NPAGES; p++) {
		if (s->prepared[p] != (s->state[p] == GMEM_PRIVATE))
			TEST_FAIL("%s: page %#llx is %s but prepared=%d", what,
				  (unsigned long long)p,
				  gmem_state_name(s->state[p]), s->prepared[p]);
		if (s->mapped[p] != (s->state[p] == GMEM_SHARED) ||
		    s->mapped2[p] != (s->state[p] == GMEM_SHARED))
			TEST_FAIL("%s: page %#llx is %s but mapped=%d/%d", what,
				  (unsigned long long)p,
				  gmem_state_name(s->state[p]), s->mapped[p],
				  s->mapped2[p]);
		if (!s->readable[s->state[p]][p] ||
		    s->readable[!s->state[p]][p])
			TEST_FAIL("%s: page %#llx is %s but readable "
				  "private/shared %d/%d", what,
				  (unsigned long long)p,
				  gmem_state_name(s->state[p]),
				  s->readable[0][p], s->readable[1][p]);
	}
}

/* ---- setup ----------------------------------------------------------------- */

/* Put every page back to the layout and write fresh content everywhere. */
static void reset_layout(struct ctx *c)
{
	static uint64_t buf[PG / 8];
	uint64_t p;
	size_t i;

	TEST_ASSERT(gmem_convert(c->vm, 0, RAM, GMEM_PRIVATE) >= 0);
	for (i = 0; i < sizeof(shared_layout) / sizeof(shared_layout[0]); i++)
		TEST_ASSERT_EQ(gmem_convert(c->vm, shared_layout[i].start * PG,
					    shared_layout[i].npages * PG,
					    GMEM_SHARED),
			       shared_layout[i].npages);
	c->gen++;
	for (p = 0; p < NPAGES; p++) {
		fill_page(buf, p, c->gen);
		TEST_ASSERT_EQ(gmem_access(c->vm, p * PG, buf, PG, true,
					   c->layout[p]), 0);
	}
	recorder_reset_events(&c->rec);
	recorder_reset_events(&c->rec2);
	test_audit(c->vm);
}

static void setup(struct ctx *c, enum gmem_mode mode)
{
	size_t i;
	uint64_t p;

	memset(c, 0, sizeof(*c));
	c->mode = mode;
	for (i = 0; i < sizeof(shared_layout) / sizeof(shared_layout[0]); i++)
		for (p = shared_layout[i].start;
		     p < shared_layout[i].start + shared_layout[i].npages; p++)
			c->layout[p] = GMEM_SHARED;
	recorder_init(&c->rec2, RAM);
	c->vm_fd = test_create_vm();
	c->vm = test_create_recorded(c->vm_fd, RAM, mode, &c->rec, &c->l1,
				     &c->sub);
	TEST_ASSERT_EQ(gmem_listener_register(c->vm, &recorder_listener_ops,
					      &c->rec2, &c->l2), 0);
}

static void teardown(struct ctx *c)
{
	uint64_t p;

	gmem_listener_unregister(c->vm, c->l2);
	gmem_listener_unregister(c->vm, c->l1);
	gmem_unsubscribe(c->vm, c->sub);
	gmem_destroy(c->vm);
	/* Everything prepared was invalidated, everything mapped unmapped. */
	for (p = 0; p < NPAGES; p++) {
		TEST_ASSERT_EQ(c->rec.prepared[p], 0);
		TEST_ASSERT_EQ(c->rec.mapped[p], 0);
		TEST_ASSERT_EQ(c->rec2.mapped[p], 0);
	}
	recorder_free(&c->rec);
	recorder_free(&c->rec2);
	close(c->vm_fd);
}

/* ---- faults ---------------------------------------------------------------- */

enum fault_kind {
	F_VETO,		/* listener 1 refuses a discard */
	F_VETO2,	/* listener 2 refuses a discard */
	F_POPULATE,	/* listener 1 fails a populate */
	F_POPULATE2,	/* listener 2 fails a populate */
	F_PREPARE,	/* platform prepare fails */
	F_MPROTECT,
	F_FALLOCATE,
	F_NONE,
};

static const char *const fault_names[] = {
	[F_VETO] = "veto of listener 1",
	[F_VETO2] = "veto of listener 2",
	[F_POPULATE] = "populate failure in listener 1",
	[F_POPULATE2] = "populate failure in listener 2",
	[F_PREPARE] = "prepare failure",
	[F_MPROTECT] = "mprotect failure",
	[F_FALLOCATE] = "fallocate failure",
	[F_NONE] = "no fault",
};

static void arm(struct ctx *c, enum fault_kind k, unsigned int nth, int err)
{
	struct recorder *r = k == F_VETO2 || k == F_POPULATE2 ? &c->rec2 :
								 &c->rec;

	pthread_mutex_lock(&r->lock);
	r->fail_err = -err;
	switch (k) {
	case F_VETO:
	case F_VETO2:
		r->fail_discard_nth = nth;
		break;
	case F_POPULATE:
	case F_POPULATE2:
		r->fail_populate_nth = nth;
		break;
	case F_PREPARE:
		r->fail_prepare_nth = nth;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&r->lock);
	if (k == F_MPROTECT)
		gmem_fault_inject(c->vm, GMEM_FAULT_MPROTECT, nth, err);
	if (k == F_FALLOCATE)
		gmem_fault_inject(c->vm, GMEM_FAULT_FALLOCATE, nth, err);
}

static void disarm(struct ctx *c)
{
	struct recorder *rs[2] = { &c->rec, &c->rec2 };
	int i;

	for (i = 0; i < 2; i++) {
		pthread_mutex_lock(&rs[i]->lock);
		rs[i]->fail_discard_nth = 0;
		rs[i]->fail_populate_nth = 0;
		rs[i]->fail_prepare_nth = 0;
		rs[i]->fail_err = -EAGAIN;
		pthread_mutex_unlock(&rs[i]->lock);
	}
	gmem_fault_inject(c->vm, GMEM_FAULT_MPROTECT, 0, 0);
	gmem_fault_inject(c->vm, GMEM_FAULT_FALLOCATE, 0, 0);
}

/* Delta runs and pages of converting the range to @to from the layout. */
static unsigned int delta_runs(const struct ctx *c, enum gmem_state to,
			       uint64_t *pages)
{
	unsigned int runs = 0;
	uint64_t p;

	*pages = 0;
	for (p = R_START; p < R_START + R_PAGES; p++) {
		if (c->layout[p] == to)
			continue;
		(*pages)++;
		if (p == R_START || c->layout[p - 1] == to)
			runs++;
	}
	return runs;
}

static bool any_punch_event(struct recorder *r)
{
	bool found = false;
	size_t i;

	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->nr; i++)
		if (r->ev[i].kind == REC_INVAL &&
		    r->ev[i].reason == GMEM_INVAL_PUNCH)
			found = true;
	pthread_mutex_unlock(&r->lock);
	return found;
}

/*
 * From the layout, convert the range to @to with fault @k armed at @nth:
 * it must return -@err (or -EAGAIN for a veto) and change nothing.
 */
static void expect_failure(struct ctx *c, enum gmem_state to,
			   enum fault_kind k, unsigned int nth, int err)
{
	int want = k == F_VETO || k == F_VETO2 ? -EAGAIN : -err;
	int64_t ret;

	snprintf(what, sizeof(what), "%s, to %s, %s at call %u",
		 gmem_mode_name(c->mode), gmem_state_name(to), fault_names[k],
		 nth);
	reset_layout(c);
	take_snapshot(c, &before);
	expect_balanced(&before);
	arm(c, k, nth, k == F_VETO || k == F_VETO2 ? EAGAIN : err);
	ret = gmem_convert(c->vm, R_START * PG, R_PAGES * PG, to);
	disarm(c);
	if (ret != want)
		TEST_FAIL("%s: gmem_convert returned %lld, want %d", what,
			  (long long)ret, want);
	take_snapshot(c, &after);
	expect_unchanged(&before, &after);
	if (any_punch_event(&c->rec))
		TEST_FAIL("%s: subscriber heard PUNCH of a failed conversion",
			  what);
	TEST_ASSERT_EQ(after.stats.conversions_failed,
		       before.stats.conversions_failed + 1);
	TEST_ASSERT_EQ(after.stats.conversions_to_private,
		       before.stats.conversions_to_private);
	TEST_ASSERT_EQ(after.stats.conversions_to_shared,
		       before.stats.conversions_to_shared);
	TEST_ASSERT_EQ(after.stats.pages_to_private,
		       before.stats.pages_to_private);
	TEST_ASSERT_EQ(after.stats.pages_to_shared,
		       before.stats.pages_to_shared);
	TEST_ASSERT_EQ(after.stats.bytes_discarded,
		       before.stats.bytes_discarded);
	test_audit(c->vm);
}

/*
 * Convert the range to @to (from wherever the last failure left it, which
 * is the layout) with @k armed at @nth, which must not fire: it succeeds
 * and does exactly the conversion.
 */
static void expect_success(struct ctx *c, enum gmem_state to,
			   enum fault_kind k, unsigned int nth)
{
	enum gmem_state from = to == GMEM_PRIVATE ? GMEM_SHARED : GMEM_PRIVATE;
	enum gmem_backing_id old_b = c->mode == GMEM_MODE_IN_PLACE ?
				     GMEM_BACKING_PRIVATE :
				     from == GMEM_PRIVATE ? GMEM_BACKING_PRIVATE :
							    GMEM_BACKING_SHARED;
	enum gmem_backing_id new_b = c->mode == GMEM_MODE_IN_PLACE ?
				     GMEM_BACKING_PRIVATE :
				     to == GMEM_PRIVATE ? GMEM_BACKING_PRIVATE :
							  GMEM_BACKING_SHARED;
	uint64_t pages, p, freed = 0;
	int64_t ret;

	snprintf(what, sizeof(what), "%s, to %s, %s armed at call %u "
		 "(must not fire)", gmem_mode_name(c->mode),
		 gmem_state_name(to), fault_names[k], nth);
	delta_runs(c, to, &pages);
	take_snapshot(c, &before);
	for (p = 0; p < NPAGES; p++)
		TEST_ASSERT_EQ(before.state[p], c->layout[p]);
	arm(c, k, nth, EIO);
	ret = gmem_convert(c->vm, R_START * PG, R_PAGES * PG, to);
	disarm(c);
	if (ret != (int64_t)pages)
		TEST_FAIL("%s: gmem_convert returned %lld, want %llu", what,
			  (long long)ret, (unsigned long long)pages);
	test_audit(c->vm);
	take_snapshot(c, &after);
	expect_balanced(&after);
	for (p = 0; p < NPAGES; p++) {
		bool in_range = p >= R_START && p < R_START + R_PAGES;
		bool converted = in_range && c->layout[p] != to;

		TEST_ASSERT_EQ(after.state[p], in_range ? to : c->layout[p]);
		if (converted && c->mode == GMEM_MODE_DISCARD) {
			if (after.sum[p] != zero_sum())
				TEST_FAIL("%s: converted page %#llx does not "
					  "read zeros", what,
					  (unsigned long long)p);
			freed++;
		} else if (after.sum[p] != before.sum[p]) {
			TEST_FAIL("%s: page %#llx lost its content", what,
				  (unsigned long long)p);
		}
	}
	/* The old backing gave back exactly the converted pages; the new one
	 * holds nothing more until the pages are touched. */
	if (c->mode == GMEM_MODE_DISCARD) {
		TEST_ASSERT_EQ(after.alloc[old_b],
			       before.alloc[old_b] - (int64_t)(freed * PG));
		TEST_ASSERT_EQ(after.alloc[new_b], before.alloc[new_b]);
		TEST_ASSERT_EQ(after.stats.bytes_discarded,
			       before.stats.bytes_discarded + pages * PG);
	} else {
		TEST_ASSERT_EQ(after.alloc[0], before.alloc[0]);
		TEST_ASSERT_EQ(after.alloc[1], before.alloc[1]);
		TEST_ASSERT_EQ(after.stats.bytes_discarded, 0);
	}
	if (to == GMEM_SHARED) {
		TEST_ASSERT_EQ(after.stats.pages_to_shared,
			       before.stats.pages_to_shared + pages);
		TEST_ASSERT_EQ(after.stats.conversions_to_shared,
			       before.stats.conversions_to_shared + 1);
	} else {
		TEST_ASSERT_EQ(after.stats.pages_to_private,
			       before.stats.pages_to_private + pages);
		TEST_ASSERT_EQ(after.stats.conversions_to_private,
			       before.stats.conversions_to_private + 1);
	}
	TEST_ASSERT_EQ(after.stats.conversions_failed,
		       before.stats.conversions_failed);
}

/* A failure, then the same conversion without it. */
static void fault_then_success(struct ctx *c, enum gmem_state to,
			       enum fault_kind k, unsigned int nth, int err)
{
	expect_failure(c, to, k, nth, err);
	expect_success(c, to, F_NONE, 0);
}

static void run_direction(struct ctx *c, enum gmem_state to)
{
	unsigned int nth, n;
	uint64_t pages;
	int tried = 0;

	n = delta_runs(c, to, &pages);
	printf("  %s to %s: %u delta runs, %llu pages\n",
	       gmem_mode_name(c->mode), gmem_state_name(to), n,
	       (unsigned long long)pages);
	TEST_ASSERT(n >= 3);
	{
		const unsigned int nths[] = { 1, 2, n };
		unsigned int i;

		for (i = 0; i < 3; i++) {
			nth = nths[i];
			if (to == GMEM_PRIVATE) {
				fault_then_success(c, to, F_VETO, nth, EAGAIN);
				fault_then_success(c, to, F_VETO2, nth, EAGAIN);
				fault_then_success(c, to, F_PREPARE, nth,
						   EPERM);
				tried++;
			} else {
				fault_then_success(c, to, F_POPULATE, nth,
						   EIO);
				fault_then_success(c, to, F_POPULATE2, nth,
						   ENOSPC);
			}
			tried += 2;
		}
	}
	/* One mprotect per delta run to close the old view, one to open
	 * the new one; call 2n + 1 never comes. */
	for (nth = 1; nth <= 2 * n; nth++) {
		fault_then_success(c, to, F_MPROTECT, nth, ENOMEM);
		tried++;
	}
	reset_layout(c);
	expect_success(c, to, F_MPROTECT, 2 * n + 1);
	/* One punch over the hull in discard mode, none in place. */
	if (c->mode == GMEM_MODE_DISCARD) {
		fault_then_success(c, to, F_FALLOCATE, 1, EIO);
		tried++;
		reset_layout(c);
		expect_success(c, to, F_FALLOCATE, 2);
	} else {
		reset_layout(c);
		expect_success(c, to, F_FALLOCATE, 1);
	}
	printf("  %s to %s: %d faults rolled back\n", gmem_mode_name(c->mode),
	       gmem_state_name(to), tried);
}

static void run_mode(enum gmem_mode mode)
{
	struct ctx *c = &ctx;
	uint64_t p;

	setup(c, mode);
	run_direction(c, GMEM_PRIVATE);
	run_direction(c, GMEM_SHARED);
	/* Hooks balanced after everything. */
	take_snapshot(c, &after);
	expect_balanced(&after);
	for (p = 0; p < NPAGES; p++)
		TEST_ASSERT_EQ(after.prepared[p],
			       after.state[p] == GMEM_PRIVATE);
	test_audit(c->vm);
	teardown(c);
}

int main(void)
{
	test_require_gmem();
	run_mode(GMEM_MODE_DISCARD);
	run_mode(GMEM_MODE_IN_PLACE);
	printf("ok\n");
	return T_EXIT_PASS;
}
