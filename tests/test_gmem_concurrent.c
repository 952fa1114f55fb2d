/* SPDX-License-Identifier: MIT */
/*
 * Concurrent conversions (also run under TSan: the name says "concurrent").
 *
 * Four threads convert random ranges, each mostly in its own quarter of
 * RAM (disjoint: they run in parallel), sometimes anywhere (overlapping:
 * serialised), sometimes all of RAM, and write into their quarter through
 * gmem_access().  Meanwhile a reader thread calls gmem_state_at() (state
 * and run bounds must be sane), gmem_access() through either view (0 or
 * -EACCES on a race, never a crash), gmem_for_each_run() (a consistent
 * snapshot: runs cover RAM and are maximal) and, now and then, the audit;
 * and a listener thread registers and unregisters a second listener (after
 * unregistering it must have nothing mapped).  The recorder is the
 * platform hooks and the first listener, in strict mode: a page mapped,
 * unmapped, prepared or invalidated twice in a row fails the test.
 *
 * At the end: the audit is clean, the listener maps exactly the shared
 * pages, the platform has prepared exactly the private ones, and the
 * counters add up: pages_private + pages_shared == RAM pages, and the sum
 * of what the threads' calls returned equals pages_to_shared /
 * pages_to_private (and the calls that changed something the conversion
 * counters).
 *
 * Runs GMEM_CONCURRENT_MS (default 1500) per mode or until every thread
 * did its iterations, whichever comes first.  Seed: GMEM_CONCURRENT_SEED.
 */
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

#define PG GMEM_PAGE_SIZE
#define RAM (4ULL << 20)
#define NPAGES (RAM / PG)
#define NTHREADS 4
#define QUARTER (NPAGES / NTHREADS)
#define MAX_ITERS 50000
#define DEFAULT_MS 1500

struct worker {
	pthread_t thread;
	int id;
	uint64_t rng;
	uint64_t pages_to[2], convs_to[2];
	unsigned long iters, access_ok, access_denied;
};

static struct gmem_vm *vm;
static struct recorder rec, rec2;
static atomic_bool stop;
static struct worker workers[NTHREADS];
static uint64_t base_seed;

/* Reader and listener results. */
static unsigned long reader_iters, reader_denied, reader_races,
	reader_audits, listener_cycles;

static uint64_t rnd(uint64_t *rng, uint64_t n)
{
	return n ? test_rand(rng) % n : 0;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void *converter(void *arg)
{
	struct worker *w = arg;
	uint64_t q0 = (uint64_t)w->id * QUARTER, start, n, p;
	uint8_t buf[16];
	int64_t ret;
	int to, st, err, r;

	while (!atomic_load(&stop) && w->iters < MAX_ITERS) {
		r = (int)rnd(&w->rng, 100);
		if (r < 85) {
			start = q0 + rnd(&w->rng, QUARTER);
			n = 1 + rnd(&w->rng, min_u64(32, q0 + QUARTER - start));
		} else if (r < 98) {
			start = rnd(&w->rng, NPAGES);
			n = 1 + rnd(&w->rng, min_u64(NPAGES - start, 300));
		} else {
			start = 0;
			n = NPAGES;
		}
		to = (int)rnd(&w->rng, 2);
		ret = gmem_convert(vm, start * PG, n * PG, (enum gmem_state)to);
		if (ret < 0 || ret > (int64_t)n)
			TEST_FAIL("thread %d: convert [%#llx, +%#llx) to %s: "
				  "%lld", w->id,
				  (unsigned long long)(start * PG),
				  (unsigned long long)(n * PG),
				  gmem_state_name(to), (long long)ret);
		w->pages_to[to] += (uint64_t)ret;
		w->convs_to[to] += ret > 0;
		__atomic_fetch_add(&w->iters, 1, __ATOMIC_RELAXED);

		/* Write into the own quarter through the page's view; a
		 * conversion from another thread may win the race. */
		if (rnd(&w->rng, 4) == 0) {
			p = q0 + rnd(&w->rng, QUARTER);
			st = gmem_state_at(vm, p * PG, NULL, NULL);
			TEST_ASSERT(st == GMEM_PRIVATE || st == GMEM_SHARED);
			memset(buf, w->id + 1, sizeof(buf));
			err = gmem_access(vm, p * PG + rnd(&w->rng, PG - 16),
					  buf, sizeof(buf), true,
					  (enum gmem_state)st);
			if (err && err != -EACCES)
				TEST_FAIL("thread %d: gmem_access: %d", w->id,
					  err);
			if (err)
				w->access_denied++;
			else
				w->access_ok++;
		}
	}
	return NULL;
}

struct walk {
	uint64_t next;
	int last;
};

static int walk_run(void *arg, uint64_t off, uint64_t len,
		    enum gmem_state state)
{
	struct walk *wk = arg;

	if (off != wk->next || !len || len % PG || (int)state == wk->last ||
	    (state != GMEM_PRIVATE && state != GMEM_SHARED))
		TEST_FAIL("run [%#llx, +%#llx) %s after %#llx (%d): the "
			  "snapshot is not a maximal cover",
			  (unsigned long long)off, (unsigned long long)len,
			  gmem_state_name(state),
			  (unsigned long long)wk->next, wk->last);
	wk->next = off + len;
	wk->last = (int)state;
	return 0;
}

static void *reader(void *arg)
{
	uint64_t rng = base_seed ^ 0x7265616465720000ULL, p, rs, rl, len;
	static uint8_t buf[3 * PG];
	struct walk wk;
	int st, err, i;

	(void)arg;
	while (!atomic_load(&stop)) {
		p = rnd(&rng, NPAGES);
		rs = rl = ~0ULL;
		st = gmem_state_at(vm, p * PG + rnd(&rng, PG), &rs, &rl);
		if ((st != GMEM_PRIVATE && st != GMEM_SHARED) ||
		    rs > p * PG || rs + rl <= p * PG || rs + rl > RAM ||
		    (rs | rl) % PG || !rl)
			TEST_FAIL("gmem_state_at(%#llx): %d, run [%#llx, "
				  "+%#llx)", (unsigned long long)(p * PG), st,
				  (unsigned long long)rs,
				  (unsigned long long)rl);
		len = 1 + rnd(&rng, min_u64(sizeof(buf), RAM - p * PG));
		for (i = 0; i < 2; i++) {
			/* The view of the state just read, then the other
			 * one: either may have changed meanwhile. */
			err = gmem_access(vm, p * PG, buf, len, false,
					  (enum gmem_state)(i ? !st : st));
			if (err && err != -EACCES)
				TEST_FAIL("gmem_access(%#llx, %#llx): %d",
					  (unsigned long long)(p * PG),
					  (unsigned long long)len, err);
			if (err && !i)
				reader_races++;
			reader_denied += err != 0;
		}
		TEST_ASSERT_EQ(gmem_access(vm, RAM - PG, buf, 2 * PG, false,
					   (enum gmem_state)st), -EINVAL);
		if (reader_iters % 64 == 0) {
			wk.next = 0;
			wk.last = -1;
			TEST_ASSERT_EQ(gmem_for_each_run(vm, 0, RAM, walk_run,
							 &wk), 0);
			TEST_ASSERT_EQ(wk.next, RAM);
		}
		if (reader_iters % 512 == 0) {
			test_audit(vm);
			reader_audits++;
		}
		reader_iters++;
	}
	return NULL;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void *listener_thread(void *arg)
{
	struct gmem_listener *l;
	uint64_t p;

	(void)arg;
	while (!atomic_load(&stop)) {
		TEST_ASSERT_EQ(gmem_listener_register(vm,
						      &recorder_listener_ops,
						      &rec2, &l), 0);
		sleep_ms(5 + listener_cycles % 20);
		gmem_listener_unregister(vm, l);
		/* Everything it was given, it was told to give back. */
		pthread_mutex_lock(&rec2.lock);
		for (p = 0; p < NPAGES; p++)
			if (rec2.mapped[p])
				TEST_FAIL("listener 2 still maps page %#llx "
					  "after unregistering",
					  (unsigned long long)p);
		rec2.nr = 0;
		pthread_mutex_unlock(&rec2.lock);
		recorder_reset_events(&rec);	/* keep memory bounded */
		listener_cycles++;
		sleep_ms(2);
	}
	return NULL;
}

static uint8_t final_state[NPAGES];

static int final_run(void *arg, uint64_t off, uint64_t len,
		     enum gmem_state state)
{
	uint64_t p;

	(void)arg;
	for (p = off / PG; p < (off + len) / PG; p++)
		final_state[p] = (uint8_t)state;
	return 0;
}

static void run_mode(enum gmem_mode mode, unsigned int ms)
{
	pthread_t rd, ls;
	struct gmem_listener *l;
	struct gmem_stats s = { .size = sizeof(s) };
	uint64_t to[2] = { 0, 0 }, convs[2] = { 0, 0 }, p, priv = 0;
	unsigned long iters = 0, denied = 0, ok = 0;
	int vm_fd = test_create_vm(), i;
	struct timespec t0, t1;

	recorder_init(&rec, RAM);
	recorder_init(&rec2, RAM);
	vm = test_create_gmem(vm_fd, RAM, mode, GMEM_PRIVATE,
			      &recorder_platform_ops, &rec);
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops, &rec,
					      &l), 0);
	atomic_store(&stop, false);
	reader_iters = reader_denied = reader_races = reader_audits = 0;
	listener_cycles = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < NTHREADS; i++) {
		memset(&workers[i], 0, sizeof(workers[i]));
		workers[i].id = i;
		workers[i].rng = base_seed + 0x9e3779b97f4a7c15ULL *
					     (uint64_t)(i + 1) + mode;
		TEST_ASSERT_EQ(pthread_create(&workers[i].thread, NULL,
					      converter, &workers[i]), 0);
	}
	TEST_ASSERT_EQ(pthread_create(&rd, NULL, reader, NULL), 0);
	TEST_ASSERT_EQ(pthread_create(&ls, NULL, listener_thread, NULL), 0);

	/* Until the time is up or every converter is done. */
	for (;;) {
		unsigned long done = 0;

		sleep_ms(20);
		for (i = 0; i < NTHREADS; i++)
			done += __atomic_load_n(&workers[i].iters,
						__ATOMIC_RELAXED) >= MAX_ITERS;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (done == NTHREADS ||
		    (t1.tv_sec - t0.tv_sec) * 1000 +
		    (t1.tv_nsec - t0.tv_nsec) / 1000000 >= (long)ms)
			break;
	}
	atomic_store(&stop, true);
	for (i = 0; i < NTHREADS; i++)
		TEST_ASSERT_EQ(pthread_join(workers[i].thread, NULL), 0);
	TEST_ASSERT_EQ(pthread_join(rd, NULL), 0);
	TEST_ASSERT_EQ(pthread_join(ls, NULL), 0);

	for (i = 0; i < NTHREADS; i++) {
		to[0] += workers[i].pages_to[0];
		to[1] += workers[i].pages_to[1];
		convs[0] += workers[i].convs_to[0];
		convs[1] += workers[i].convs_to[1];
		iters += workers[i].iters;
		ok += workers[i].access_ok;
		denied += workers[i].access_denied;
	}
	printf("%s: %lu conversions (%llu pages to private, %llu to shared), "
	       "%lu/%lu writes denied by a race; reader %lu rounds, %lu "
	       "accesses denied (%lu through the view just read: races), "
	       "%lu audits; listener %lu cycles\n",
	       gmem_mode_name(mode), iters, (unsigned long long)to[0],
	       (unsigned long long)to[1], denied, ok + denied, reader_iters,
	       reader_denied, reader_races, reader_audits, listener_cycles);
	TEST_ASSERT(listener_cycles > 0);

	test_audit(vm);
	TEST_ASSERT_EQ(gmem_for_each_run(vm, 0, RAM, final_run, NULL), 0);
	for (p = 0; p < NPAGES; p++) {
		priv += final_state[p] == GMEM_PRIVATE;
		if (rec.mapped[p] != (final_state[p] == GMEM_SHARED) ||
		    rec.prepared[p] != (final_state[p] == GMEM_PRIVATE) ||
		    rec2.mapped[p])
			TEST_FAIL("page %#llx is %s: mapped %d, prepared %d, "
				  "listener 2 mapped %d", (unsigned long long)p,
				  gmem_state_name(final_state[p]),
				  rec.mapped[p], rec.prepared[p],
				  rec2.mapped[p]);
	}
	gmem_get_stats(vm, &s);
	TEST_ASSERT_EQ(s.pages_private + s.pages_shared, NPAGES);
	TEST_ASSERT_EQ(s.pages_private, priv);
	TEST_ASSERT_EQ(s.pages_to_private, to[GMEM_PRIVATE]);
	TEST_ASSERT_EQ(s.pages_to_shared, to[GMEM_SHARED]);
	TEST_ASSERT_EQ(s.conversions_to_private, convs[GMEM_PRIVATE]);
	TEST_ASSERT_EQ(s.conversions_to_shared, convs[GMEM_SHARED]);
	TEST_ASSERT_EQ(s.conversions_failed, 0);
	/* All of RAM started private. */
	TEST_ASSERT_EQ(NPAGES + to[GMEM_PRIVATE] - to[GMEM_SHARED], priv);
	if (mode == GMEM_MODE_DISCARD)
		TEST_ASSERT_EQ(s.bytes_discarded,
			       (to[0] + to[1]) * PG);

	gmem_listener_unregister(vm, l);
	gmem_destroy(vm);
	for (p = 0; p < NPAGES; p++)
		TEST_ASSERT(!rec.mapped[p] && !rec.prepared[p]);
	recorder_free(&rec);
	recorder_free(&rec2);
	close(vm_fd);
}

int main(void)
{
	const char *s = getenv("GMEM_CONCURRENT_MS");
	unsigned int ms = s ? (unsigned int)atoi(s) : DEFAULT_MS;

	test_require_gmem();
	base_seed = test_seed("GMEM_CONCURRENT_SEED", 0xc0c0a11eULL);
	run_mode(GMEM_MODE_DISCARD, ms);
	run_mode(GMEM_MODE_IN_PLACE, ms);
	printf("ok\n");
	return T_EXIT_PASS;
}
