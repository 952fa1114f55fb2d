/* SPDX-License-Identifier: MIT */
/*
 * Random conversions against a naive model: one state byte and one content
 * tag per page.
 *
 * Thousands of conversions per mode (offsets and lengths biased to small
 * ranges and to run boundaries, both directions, sometimes all of RAM,
 * sometimes an invalid range or state that must fail with -EINVAL and
 * change nothing), with the recorder as platform hooks, listener and
 * subscriber.  After every operation:
 *  - the return value is the number of pages the model says changed;
 *  - gmem_for_each_run() (whole RAM and a random sub-range) and
 *    gmem_state_at() (state and maximal run) agree with the model, and the
 *    runs are maximal;
 *  - the notifications of the conversion are exactly one per delta run per
 *    hook, with the delta runs' offsets (none for a no-op);
 *  - test_audit() is clean (protections from /proc/self/maps, listener
 *    mappings, nothing backed twice in discard mode);
 *  - the listener maps exactly the shared pages and the platform has
 *    prepared exactly the private ones;
 *  - content: every page holds its tag, read through its view; in discard
 *    mode a converted page reads zeros, in place it keeps its tag;
 *  - the counters agree with the model.
 * Tags are (re)written through gmem_access() with the right view, and
 * writes through the wrong view fail with -EACCES and change nothing.
 * A second listener is registered and unregistered at random moments:
 * registration replays one populate per maximal shared run (a failing
 * populate makes it fail and discards what was replayed), unregistration
 * one discard per shared run.
 *
 * Seed: GMEM_RANDOM_SEED; iterations per mode: GMEM_RANDOM_ITERS.
 */
#include <unistd.h>

#include "test_util.h"

#define PG GMEM_PAGE_SIZE
#define RAM (1ULL << 20)
#define NPAGES (RAM / PG)
#define DEFAULT_ITERS 4000
#define DEFAULT_SEED 0x6d656d72616e64ULL
#define LAST_MASK 0xa5a5a5a5a5a5a5a5ULL

static uint64_t seed, rng;
static const char *cur_mode = "";
static int cur_iter = -1;
static const char *cur_op = "setup";
static bool finished;

static void print_context(void)
{
	if (!finished)
		fprintf(stderr, "context: seed %#llx, mode %s, iteration %d, "
			"op %s (rerun with GMEM_RANDOM_SEED=%#llx)\n",
			(unsigned long long)seed, cur_mode, cur_iter, cur_op,
			(unsigned long long)seed);
}

static uint64_t rnd(uint64_t n)
{
	return n ? test_rand(&rng) % n : 0;
}

struct model {
	uint8_t st[NPAGES];
	uint64_t tag[NPAGES];		/* 0: the page reads all zeros */
	uint64_t pages_to[2];		/* pages changed, per target state */
	uint64_t convs_to[2];		/* calls that changed pages */
	uint64_t failed;		/* conversions_failed: no valid call
					   fails; whether -EINVAL counts is
					   left to the library */
};

struct ctx {
	enum gmem_mode mode;
	int vm_fd;
	struct gmem_vm *vm;
	struct recorder rec, rec2;
	struct gmem_listener *l1, *l2;	/* l2 NULL when not registered */
	struct gmem_subscription *sub;
	struct model m;
	uint64_t next_tag;
	/* statistics of the run */
	unsigned int n_convert, n_noop, n_invalid, n_reg, n_reg_fail, n_unreg,
		n_write, n_whole;
	uint64_t pages_changed;
};

static struct ctx ctx;

/* ---- model helpers ------------------------------------------------------- */

struct prun {
	uint64_t start, npages;
	uint8_t state;
};

static struct prun runs_buf[NPAGES], delta_buf[NPAGES];

/* Maximal runs of the model in [start, start + npages). */
static size_t model_runs(const struct model *m, uint64_t start,
			 uint64_t npages, struct prun *out)
{
	size_t n = 0;
	uint64_t p;

	for (p = start; p < start + npages; p++) {
		if (n && out[n - 1].state == m->st[p]) {
			out[n - 1].npages++;
			continue;
		}
		out[n++] = (struct prun){ p, 1, m->st[p] };
	}
	return n;
}

/* The delta of converting [start, +npages) to @to: maximal runs != @to. */
static size_t model_delta(const struct model *m, uint64_t start,
			  uint64_t npages, uint8_t to, struct prun *out,
			  uint64_t *pages)
{
	size_t n = 0;
	uint64_t p;

	*pages = 0;
	for (p = start; p < start + npages; p++) {
		if (m->st[p] == to)
			continue;
		(*pages)++;
		if (n && out[n - 1].start + out[n - 1].npages == p)
			out[n - 1].npages++;
		else
			out[n++] = (struct prun){ p, 1, m->st[p] };
	}
	return n;
}

static size_t model_shared_runs(const struct model *m, struct prun *out)
{
	size_t n = model_runs(m, 0, NPAGES, runs_buf), i, k = 0;

	for (i = 0; i < n; i++)
		if (runs_buf[i].state == GMEM_SHARED)
			out[k++] = runs_buf[i];
	return k;
}

/* ---- content ----------------------------------------------------------------- */

static void make_page(uint64_t *buf, uint64_t tag)
{
	memset(buf, 0, PG);
	buf[0] = tag;
	buf[PG / 8 - 1] = tag ? tag ^ LAST_MASK : 0;
}

static void write_tag(struct ctx *c, uint64_t p)
{
	static uint64_t buf[PG / 8], check[PG / 8];
	uint64_t tag = ++c->next_tag | 1ULL << 63;
	enum gmem_state wrong = c->m.st[p] == GMEM_PRIVATE ? GMEM_SHARED :
							     GMEM_PRIVATE;

	make_page(buf, tag);
	memcpy(check, buf, PG);
	/* The wrong view refuses and copies nothing. */
	TEST_ASSERT_EQ(gmem_access(c->vm, p * PG, buf, PG, true, wrong),
		       -EACCES);
	TEST_ASSERT_EQ(gmem_access(c->vm, p * PG, buf, PG, false, wrong),
		       -EACCES);
	TEST_ASSERT(!memcmp(buf, check, PG));
	TEST_ASSERT_EQ(gmem_access(c->vm, p * PG, buf, PG, true, c->m.st[p]),
		       0);
	c->m.tag[p] = tag;
	c->n_write++;
}

/* Words 0 and last of every page; @full: every byte of the marked pages. */
static void verify_content(struct ctx *c, const uint8_t *full_check)
{
	static uint64_t want[PG / 8], got[PG / 8];
	const uint8_t *view[2] = { gmem_private_view(c->vm),
				   gmem_shared_view(c->vm) };
	uint64_t p;

	for (p = 0; p < NPAGES; p++) {
		const uint64_t *w = (const uint64_t *)(view[c->m.st[p]] +
						       p * PG);
		uint64_t tag = c->m.tag[p];

		if (w[0] != tag || w[PG / 8 - 1] != (tag ? tag ^ LAST_MASK : 0))
			TEST_FAIL("page %#llx (%s): words %#llx/%#llx, want "
				  "tag %#llx", (unsigned long long)p,
				  gmem_state_name(c->m.st[p]),
				  (unsigned long long)w[0],
				  (unsigned long long)w[PG / 8 - 1],
				  (unsigned long long)tag);
		if (full_check && full_check[p]) {
			make_page(want, tag);
			TEST_ASSERT_EQ(gmem_access(c->vm, p * PG, got, PG,
						   false, c->m.st[p]), 0);
			if (memcmp(want, got, PG))
				TEST_FAIL("page %#llx (%s): content differs "
					  "from tag %#llx",
					  (unsigned long long)p,
					  gmem_state_name(c->m.st[p]),
					  (unsigned long long)tag);
		}
	}
}

/* ---- checks against the model -------------------------------------------- */

struct walk {
	struct prun runs[NPAGES];
	size_t nr;
};

static struct walk walk_buf;

static int walk_run(void *arg, uint64_t off, uint64_t len,
		    enum gmem_state state)
{
	struct walk *w = arg;

	if (w->nr == NPAGES || (off | len) % PG || !len)
		return -E2BIG;
	w->runs[w->nr++] = (struct prun){ off / PG, len / PG, (uint8_t)state };
	return 0;
}

static void expect_runs(struct ctx *c, uint64_t start, uint64_t npages)
{
	struct walk *w = &walk_buf;
	size_t n, i;

	w->nr = 0;
	TEST_ASSERT_EQ(gmem_for_each_run(c->vm, start * PG, npages * PG,
					 walk_run, w), 0);
	n = model_runs(&c->m, start, npages, runs_buf);
	if (w->nr != n)
		TEST_FAIL("[%#llx, +%#llx pages): %zu runs, model has %zu",
			  (unsigned long long)start, (unsigned long long)npages,
			  w->nr, n);
	for (i = 0; i < n; i++)
		if (w->runs[i].start != runs_buf[i].start ||
		    w->runs[i].npages != runs_buf[i].npages ||
		    w->runs[i].state != runs_buf[i].state)
			TEST_FAIL("run %zu: pages [%#llx, +%#llx) %s, model "
				  "[%#llx, +%#llx) %s", i,
				  (unsigned long long)w->runs[i].start,
				  (unsigned long long)w->runs[i].npages,
				  gmem_state_name(w->runs[i].state),
				  (unsigned long long)runs_buf[i].start,
				  (unsigned long long)runs_buf[i].npages,
				  gmem_state_name(runs_buf[i].state));
}

static void expect_state_at(struct ctx *c, uint64_t p)
{
	uint64_t rs = ~0ULL, rl = ~0ULL, a = p, b = p;

	while (a > 0 && c->m.st[a - 1] == c->m.st[p])
		a--;
	while (b + 1 < NPAGES && c->m.st[b + 1] == c->m.st[p])
		b++;
	/* Any byte of the page answers for the page. */
	TEST_ASSERT_EQ(gmem_state_at(c->vm, p * PG + rnd(PG), &rs, &rl),
		       c->m.st[p]);
	if (rs != a * PG || rl != (b + 1 - a) * PG)
		TEST_FAIL("gmem_state_at(page %#llx): run [%#llx, +%#llx), "
			  "model [%#llx, +%#llx)", (unsigned long long)p,
			  (unsigned long long)rs, (unsigned long long)rl,
			  (unsigned long long)(a * PG),
			  (unsigned long long)((b + 1 - a) * PG));
}

static void expect_flags(struct recorder *r, const uint8_t *st, int want_state,
			 bool registered, const char *name)
{
	uint64_t p;

	pthread_mutex_lock(&r->lock);
	for (p = 0; p < NPAGES; p++) {
		uint8_t want = registered && st[p] == want_state;
		uint8_t got = want_state == GMEM_SHARED ? r->mapped[p] :
							  r->prepared[p];

		if (got != want)
			TEST_FAIL("%s[%#llx] = %d, page is %s", name,
				  (unsigned long long)p, got,
				  gmem_state_name(st[p]));
	}
	pthread_mutex_unlock(&r->lock);
}

static void expect_stats(struct ctx *c)
{
	struct gmem_stats s = { .size = sizeof(s) };
	uint64_t p, priv = 0;

	for (p = 0; p < NPAGES; p++)
		priv += c->m.st[p] == GMEM_PRIVATE;
	gmem_get_stats(c->vm, &s);
	TEST_ASSERT_EQ(s.pages_private, priv);
	TEST_ASSERT_EQ(s.pages_shared, NPAGES - priv);
	TEST_ASSERT_EQ(s.nr_runs, model_runs(&c->m, 0, NPAGES, runs_buf));
	TEST_ASSERT_EQ(s.pages_to_private, c->m.pages_to[GMEM_PRIVATE]);
	TEST_ASSERT_EQ(s.pages_to_shared, c->m.pages_to[GMEM_SHARED]);
	TEST_ASSERT_EQ(s.conversions_to_private, c->m.convs_to[GMEM_PRIVATE]);
	TEST_ASSERT_EQ(s.conversions_to_shared, c->m.convs_to[GMEM_SHARED]);
	TEST_ASSERT_EQ(s.conversions_failed, c->m.failed);
	if (c->mode == GMEM_MODE_DISCARD)
		TEST_ASSERT_EQ(s.bytes_discarded,
			       (c->m.pages_to[0] + c->m.pages_to[1]) * PG);
	else
		TEST_ASSERT_EQ(s.bytes_discarded, 0);
}

static void verify(struct ctx *c, const uint8_t *full_check)
{
	uint64_t start, n;
	int i;

	expect_runs(c, 0, NPAGES);
	start = rnd(NPAGES);
	n = 1 + rnd(NPAGES - start);
	expect_runs(c, start, n);
	for (i = 0; i < 6; i++)
		expect_state_at(c, rnd(NPAGES));
	expect_state_at(c, 0);
	expect_state_at(c, NPAGES - 1);
	test_audit(c->vm);
	expect_flags(&c->rec, c->m.st, GMEM_SHARED, true, "listener mapped");
	expect_flags(&c->rec, c->m.st, GMEM_PRIVATE, true, "prepared");
	expect_flags(&c->rec2, c->m.st, GMEM_SHARED, c->l2 != NULL,
		     "listener 2 mapped");
	verify_content(c, full_check);
	expect_stats(c);
}

/* ---- events ------------------------------------------------------------------ */

/*
 * The recorder's events of kind @kind (and @reason for REC_INVAL) are
 * exactly @runs, in order.
 */
static void expect_events(struct recorder *r, enum rec_kind kind, int reason,
			  const struct prun *runs, size_t n, const char *name)
{
	size_t i, k = 0;

	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->nr; i++) {
		const struct rec_event *e = &r->ev[i];

		if (e->kind != kind || (kind == REC_INVAL && e->reason != reason))
			continue;
		if (k >= n || e->offset != runs[k].start * PG ||
		    e->len != runs[k].npages * PG)
			TEST_FAIL("%s event %zu: [%#llx, +%#llx), want %s", name,
				  k, (unsigned long long)e->offset,
				  (unsigned long long)e->len,
				  k >= n ? "none" : "the delta run");
		k++;
	}
	pthread_mutex_unlock(&r->lock);
	if (k != n)
		TEST_FAIL("%zu %s events, want %zu", k, name, n);
}

static size_t nr_events(struct recorder *r)
{
	size_t n;

	pthread_mutex_lock(&r->lock);
	n = r->nr;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* ---- operations ---------------------------------------------------------- */

/* A page number biased to run boundaries and the ends of RAM. */
static uint64_t pick_page(struct ctx *c)
{
	uint64_t r = rnd(100), p;
	size_t n;

	if (r < 40)
		return rnd(NPAGES);
	if (r < 70) {
		n = model_runs(&c->m, 0, NPAGES, runs_buf);
		p = runs_buf[rnd(n)].start;
		r = rnd(3);
		if (r == 0 && p > 0)
			p--;
		else if (r == 2 && p + 1 < NPAGES)
			p++;
		return p;
	}
	if (r < 80)
		return rnd(3);
	return NPAGES - 1 - rnd(4);
}

static uint64_t pick_len(struct ctx *c, uint64_t start)
{
	uint64_t max = NPAGES - start, r = rnd(100), len, end;

	if (r < 40) {
		len = 1 + rnd(4);
	} else if (r < 65) {
		len = 1 + rnd(16);
	} else if (r < 80) {
		/* To the end of the run at start or the next one, +-1. */
		end = start + 1;
		while (end < NPAGES && c->m.st[end] == c->m.st[start])
			end++;
		if (rnd(2))
			while (end < NPAGES && c->m.st[end] != c->m.st[start])
				end++;
		len = end - start;
		r = rnd(3);
		if (r == 0 && len > 1)
			len--;
		else if (r == 2)
			len++;
	} else if (r < 95) {
		len = 1 + rnd(max);
	} else {
		len = max;
	}
	return len > max ? max : len;
}

static void op_convert(struct ctx *c, uint64_t start, uint64_t npages,
		       enum gmem_state to)
{
	static uint8_t converted[NPAGES];
	enum gmem_state from = to == GMEM_PRIVATE ? GMEM_SHARED : GMEM_PRIVATE;
	int old_b = c->mode == GMEM_MODE_IN_PLACE || from == GMEM_PRIVATE ?
		    GMEM_BACKING_PRIVATE : GMEM_BACKING_SHARED;
	uint64_t pages, p;
	size_t nd, none = 0;
	int64_t ret;

	cur_op = to == GMEM_SHARED ? "convert to shared" : "convert to private";
	nd = model_delta(&c->m, start, npages, (uint8_t)to, delta_buf, &pages);
	recorder_reset_events(&c->rec);
	ret = gmem_convert(c->vm, start * PG, npages * PG, to);
	if (ret != (int64_t)pages)
		TEST_FAIL("convert pages [%#llx, +%#llx) to %s: %lld, model "
			  "says %llu pages change", (unsigned long long)start,
			  (unsigned long long)npages, gmem_state_name(to),
			  (long long)ret, (unsigned long long)pages);
	/* One notification per delta run per hook, none for a no-op. */
	if (!pages)
		TEST_ASSERT_EQ(nr_events(&c->rec), 0);
	expect_events(&c->rec, REC_POPULATE, 0, delta_buf,
		      to == GMEM_SHARED ? nd : none, "populate");
	expect_events(&c->rec, REC_INVALIDATE, 0, delta_buf,
		      to == GMEM_SHARED ? nd : none, "invalidate");
	expect_events(&c->rec, REC_DISCARD, 0, delta_buf,
		      to == GMEM_PRIVATE ? nd : none, "discard");
	expect_events(&c->rec, REC_PREPARE, 0, delta_buf,
		      to == GMEM_PRIVATE ? nd : none, "prepare");
	expect_events(&c->rec, REC_INVAL, GMEM_INVAL_CONVERT, delta_buf, nd,
		      "subscriber CONVERT");
	expect_events(&c->rec, REC_INVAL, GMEM_INVAL_PUNCH, delta_buf,
		      c->mode == GMEM_MODE_DISCARD ? nd : none,
		      "subscriber PUNCH");
	pthread_mutex_lock(&c->rec.lock);
	for (p = 0; p < c->rec.nr; p++)
		if (c->rec.ev[p].kind == REC_INVAL)
			TEST_ASSERT_EQ(c->rec.ev[p].backing, old_b);
	pthread_mutex_unlock(&c->rec.lock);

	memset(converted, 0, sizeof(converted));
	for (p = start; p < start + npages; p++) {
		if (c->m.st[p] == to)
			continue;
		c->m.st[p] = (uint8_t)to;
		if (c->mode == GMEM_MODE_DISCARD)
			c->m.tag[p] = 0;
		converted[p] = 1;
	}
	c->m.pages_to[to] += pages;
	c->m.convs_to[to] += pages != 0;
	c->n_convert++;
	c->n_noop += pages == 0;
	c->pages_changed += pages;
	verify(c, converted);
	/* Sometimes give converted pages a fresh tag. */
	if (pages && rnd(2)) {
		write_tag(c, delta_buf[0].start);
		write_tag(c, delta_buf[nd - 1].start +
			     delta_buf[nd - 1].npages - 1);
	}
}

static void op_invalid(struct ctx *c)
{
	uint64_t off, len, p;
	int to = (int)rnd(2), kind = (int)rnd(8);
	struct gmem_stats s0 = { .size = sizeof(s0) }, s1 = { .size = sizeof(s1) };

	cur_op = "invalid convert";
	p = rnd(NPAGES);
	switch (kind) {
	case 0:	/* unaligned offset */
		off = p * PG + 1 + rnd(PG - 1);
		len = PG;
		break;
	case 1:	/* unaligned length */
		off = p * PG;
		len = rnd(NPAGES - p) * PG + 1 + rnd(PG - 1);
		break;
	case 2:	/* empty */
		off = p * PG;
		len = 0;
		break;
	case 3:	/* past the end */
		off = p * PG;
		len = (NPAGES - p + 1 + rnd(4)) * PG;
		break;
	case 4:	/* starts outside */
		off = RAM + rnd(4) * PG;
		len = PG;
		break;
	case 5:	/* offset + len wraps to 0 */
		off = (p + 1) * PG;
		len = 0ULL - off;
		break;
	case 6:	/* offset near UINT64_MAX */
		off = ~(PG - 1);
		len = PG * (1 + rnd(2));
		break;
	default:	/* bad state */
		off = p * PG;
		len = (1 + rnd(NPAGES - p)) * PG;
		to = 2 + (int)rnd(250);
		break;
	}
	gmem_get_stats(c->vm, &s0);
	recorder_reset_events(&c->rec);
	if (gmem_convert(c->vm, off, len, (enum gmem_state)to) != -EINVAL)
		TEST_FAIL("gmem_convert(%#llx, %#llx, %d) did not fail with "
			  "-EINVAL", (unsigned long long)off,
			  (unsigned long long)len, to);
	TEST_ASSERT_EQ(nr_events(&c->rec), 0);
	gmem_get_stats(c->vm, &s1);
	TEST_ASSERT_EQ(s1.pages_to_private, s0.pages_to_private);
	TEST_ASSERT_EQ(s1.pages_to_shared, s0.pages_to_shared);
	TEST_ASSERT_EQ(s1.bytes_discarded, s0.bytes_discarded);
	TEST_ASSERT_EQ(s1.conversions_to_private, s0.conversions_to_private);
	TEST_ASSERT_EQ(s1.conversions_to_shared, s0.conversions_to_shared);
	c->m.failed = s1.conversions_failed;
	c->n_invalid++;
	verify(c, NULL);
}

static void op_toggle_listener(struct ctx *c)
{
	struct recorder *r = &c->rec2;
	size_t n = model_shared_runs(&c->m, delta_buf), k;
	int err;

	recorder_reset_events(r);
	if (c->l2) {
		cur_op = "unregister listener 2";
		gmem_listener_unregister(c->vm, c->l2);
		c->l2 = NULL;
		expect_events(r, REC_DISCARD, 0, delta_buf, n, "unregister");
		TEST_ASSERT_EQ(nr_events(r), n);
		c->n_unreg++;
	} else if (n && rnd(4) == 0) {
		cur_op = "register listener 2, failing";
		k = 1 + rnd(n);
		pthread_mutex_lock(&r->lock);
		r->fail_populate_nth = (unsigned int)k;
		r->fail_err = -EIO;
		pthread_mutex_unlock(&r->lock);
		err = gmem_listener_register(c->vm, &recorder_listener_ops, r,
					     &c->l2);
		TEST_ASSERT_EQ(err, -EIO);
		c->l2 = NULL;
		pthread_mutex_lock(&r->lock);
		r->fail_populate_nth = 0;
		r->fail_err = -EAGAIN;
		pthread_mutex_unlock(&r->lock);
		/* The first k - 1 runs were populated, then discarded. */
		expect_events(r, REC_POPULATE, 0, delta_buf, k - 1,
			      "failed register populate");
		expect_events(r, REC_DISCARD, 0, delta_buf, k - 1,
			      "failed register discard");
		TEST_ASSERT_EQ(nr_events(r), 2 * (k - 1));
		c->n_reg_fail++;
	} else {
		cur_op = "register listener 2";
		TEST_ASSERT_EQ(gmem_listener_register(c->vm,
						      &recorder_listener_ops,
						      r, &c->l2), 0);
		expect_events(r, REC_POPULATE, 0, delta_buf, n, "register");
		TEST_ASSERT_EQ(nr_events(r), n);
		c->n_reg++;
	}
	verify(c, NULL);
}

static void op_write(struct ctx *c)
{
	unsigned int i, n = 1 + (unsigned int)rnd(8);

	cur_op = "write tags";
	for (i = 0; i < n; i++)
		write_tag(c, pick_page(c));
	verify(c, NULL);
}

static void run_mode(enum gmem_mode mode, int iters)
{
	struct ctx *c = &ctx;
	uint64_t p, start;
	int r;

	memset(c, 0, sizeof(*c));
	c->mode = mode;
	cur_mode = gmem_mode_name(mode);
	cur_iter = -1;
	cur_op = "setup";
	recorder_init(&c->rec2, RAM);
	c->vm_fd = test_create_vm();
	c->vm = test_create_recorded(c->vm_fd, RAM, mode, &c->rec, &c->l1,
				     &c->sub);
	for (p = 0; p < NPAGES; p++)
		write_tag(c, p);
	verify(c, NULL);

	for (cur_iter = 0; cur_iter < iters; cur_iter++) {
		r = (int)rnd(100);
		if (r < 3) {
			op_invalid(c);
		} else if (r < 5) {
			op_toggle_listener(c);
		} else if (r < 12) {
			op_write(c);
		} else if (r < 15) {
			c->n_whole++;
			op_convert(c, 0, NPAGES,
				   rnd(2) ? GMEM_SHARED : GMEM_PRIVATE);
		} else {
			/* Mostly away from the state at the start, so
			 * that most calls change something. */
			start = pick_page(c);
			op_convert(c, start, pick_len(c, start),
				   rnd(10) < 7 ? !c->m.st[start] :
						 c->m.st[start]);
		}
	}
	cur_op = "teardown";
	printf("%s: %u conversions (%u no-ops, %u whole RAM, %llu pages "
	       "changed), %u invalid, %u tag writes, listener 2: %u "
	       "registered, %u failed registrations, %u unregistered\n",
	       cur_mode, c->n_convert, c->n_noop, c->n_whole,
	       (unsigned long long)c->pages_changed, c->n_invalid, c->n_write,
	       c->n_reg, c->n_reg_fail, c->n_unreg);
	TEST_ASSERT(c->n_reg > 0 && c->n_unreg > 0 && c->n_invalid > 0);
	if (c->l2)
		gmem_listener_unregister(c->vm, c->l2);
	gmem_listener_unregister(c->vm, c->l1);
	gmem_unsubscribe(c->vm, c->sub);
	gmem_destroy(c->vm);
	for (p = 0; p < NPAGES; p++)
		TEST_ASSERT(!c->rec.prepared[p] && !c->rec.mapped[p] &&
			    !c->rec2.mapped[p]);
	recorder_free(&c->rec);
	recorder_free(&c->rec2);
	close(c->vm_fd);
}

int main(void)
{
	const char *s = getenv("GMEM_RANDOM_ITERS");
	int iters = s ? atoi(s) : DEFAULT_ITERS;

	test_require_gmem();
	seed = test_seed("GMEM_RANDOM_SEED", DEFAULT_SEED);
	atexit(print_context);
	rng = seed;
	run_mode(GMEM_MODE_DISCARD, iters);
	run_mode(GMEM_MODE_IN_PLACE, iters);
	finished = true;
	printf("ok\n");
	return T_EXIT_PASS;
}
