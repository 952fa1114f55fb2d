// SPDX-License-Identifier: MIT
/*
 * soak_gmem: libgmem under everything at once, for minutes (make soak).
 *
 * What runs concurrently, for SOAK_TIME seconds:
 *  - four "vCPU" threads, each owning a quarter of [0, MAX_GPA), doing
 *    random conversions, batches of scattered conversions and plug
 *    changes in their quarter (now and then across a hole, which must be
 *    refused with -EINVAL and change nothing), each checking after every
 *    call that its quarter's page states and plugs are exactly its model's
 *    (a failed call changed nothing, a successful one exactly what it
 *    asked), that a page that came into a view reads zeros there (discard
 *    mode: never old content, deferred reclaim included), and running
 *    gmem_audit() - the audit after every change;
 *  - a fault thread arming a random fault at a random step (an mprotect,
 *    a punch, the DMA mapper's bookkeeping, the DMA backend's map) every
 *    few milliseconds;
 *  - a device thread pinning and unpinning random pages of the DMA
 *    backend (a conversion to private of a pinned page must be refused
 *    with -EAGAIN naming a busy GPA, and change nothing);
 * over two regions around a hole, discard mode with deferred reclaim, a
 * listener in strict mode (a page mapped or unmapped twice in a row is a
 * failure) and the DMA mapper (exact layout) over the strict fake IOMMU.
 *
 * At the end: the audit, the mapper's validation and the fake IOMMU's
 * record of violations must be clean.  Prints one summary line.  It is a
 * soak, not a unit test: it runs by `make soak`, not in `make check`.
 *
 * Exit: 0 clean, 1 a violation (the first is printed), 77 cannot run.
 * SOAK_TIME (seconds, default 600) and SOAK_SEED override the defaults.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "fake_iommu.h"
#include "internal.h"
#include "test_util.h"

#define PG GMEM_PAGE_SIZE
#define MIB (1ULL << 20)
#define MAX_GPA (64 * MIB)
#define NPAGES (MAX_GPA / PG)
/* Region A [0, 28M), hole [28M, 36M), region B [36M, 64M). */
#define A_END (28 * MIB)
#define B_START (36 * MIB)
#define NWORKERS 4
#define QUARTER (NPAGES / NWORKERS)
#define BATCH_MAX 16

struct worker {
	pthread_t thread;
	unsigned int id;
	uint64_t rng;
	uint8_t state[QUARTER], plugged[QUARTER];
	unsigned long ops, failed, refused_hole, busy, batches, plugs,
		zero_checks;
};

static struct gmem_vm *vm;
static struct gmem_dma_mapper *mapper;
static struct gmem_listener *listener;
static struct recorder rec;
static struct fake iommu;
static struct worker workers[NWORKERS];
static atomic_bool stop, round_broken;
static char broken_why[512];
static atomic_ulong faults_armed, pins, audits;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

static bool in_ram(uint64_t page)
{
	uint64_t gpa = page * PG;

	return gpa < A_END || gpa >= B_START;
}

static uint64_t rnd(uint64_t *rng, uint64_t n)
{
	return n ? test_rand(rng) % n : 0;
}

/* The first violation ends the soak; the others would only repeat it. */
static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void violation(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&fail_lock);
	fprintf(stderr, "soak: VIOLATION: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/*
 * An injected fault can hit a rollback step (another thread's fault armed
 * for "the next mprotect" fires while this one undoes a failed change);
 * then libgmem cannot restore the memory and must say so: it marks it
 * broken, refuses every later change with -EIO, and the audit reports why.
 * That ends the round (round_broken); any other audit failure is a
 * violation.  Returns true while the memory is sound.
 */
#define BROKEN_PREFIX "memory is broken"

static bool audit(const char *after)
{
	char why[512];

	atomic_fetch_add(&audits, 1);
	if (!gmem_audit(vm, why, sizeof(why)))
		return true;
	if (strncmp(why, BROKEN_PREFIX, strlen(BROKEN_PREFIX))) {
		char mv[512] = "";
		const char *b = strchr(why, '[');
		unsigned long long x = 0, y = 0, p;

		gmem_dma_mapper_validate(mapper, mv, sizeof(mv));
		if (b && sscanf(b, "[%llx, %llx)", &x, &y) == 2) {
			for (p = (x > PG ? x - PG : x); p < y + PG && p < MAX_GPA; p += PG)
				fprintf(stderr, "  %#llx: state %d plugged %d recorder %d\n",
					p, gmem_state_at(vm, p, NULL, NULL),
					gmem_plugged_at(vm, p, NULL, NULL),
					rec.mapped[p / PG]);
		}
		violation("audit after %s: %s (mapper: %s)", after, why, mv);
	}
	if (!atomic_exchange(&round_broken, true))
		snprintf(broken_why, sizeof(broken_why), "%s", why);
	atomic_store(&stop, true);
	return false;
}

/* The quarter's real page states and plugs must equal the model. */
static void check_quarter(struct worker *w, const char *after)
{
	uint64_t q0 = (uint64_t)w->id * QUARTER, page = q0, end = q0 + QUARTER;

	while (page < end) {
		uint64_t gpa = page * PG, s_start, s_len, p_start, p_len, stop_at;
		int st, pl;

		if (!in_ram(page)) {
			page = B_START / PG > page ? B_START / PG : end;
			continue;
		}
		st = gmem_state_at(vm, gpa, &s_start, &s_len);
		pl = gmem_plugged_at(vm, gpa, &p_start, &p_len);
		if (st < 0 || pl < 0)
			violation("worker %u after %s: page %#llx: %d/%d", w->id,
				  after, (unsigned long long)gpa, st, pl);
		/* Every page up to the end of both runs has this value. */
		stop_at = (s_start + s_len) / PG;
		if ((p_start + p_len) / PG < stop_at)
			stop_at = (p_start + p_len) / PG;
		if (stop_at > end)
			stop_at = end;
		for (; page < stop_at; page++)
			if (w->state[page - q0] != st ||
			    w->plugged[page - q0] != pl)
				violation("worker %u after %s: page %#llx is %d/%s, model %d/%s",
					  w->id, after,
					  (unsigned long long)(page * PG), st,
					  pl ? "plugged" : "unplugged",
					  w->state[page - q0],
					  w->plugged[page - q0] ? "plugged" : "unplugged");
	}
}

/*
 * A page that just came into a view (its state or plug changed, and it is
 * plugged) must read zeros there; then write a mark, which the next change
 * of the page must not hand out again.
 */
static void check_fresh(struct worker *w, uint64_t page)
{
	uint64_t v = 0, mark = 0x5a5a000000000000ULL | page;
	uint64_t p = page - (uint64_t)w->id * QUARTER;
	int err;

	err = gmem_access(vm, page * PG + 64, &v, sizeof(v), false,
			  (enum gmem_state)w->state[p]);
	if (err == -EIO && atomic_load(&round_broken))
		return;
	if (err)
		violation("worker %u: reading fresh page %#llx: %d", w->id,
			  (unsigned long long)(page * PG), err);
	if (v)
		violation("worker %u: page %#llx came into its view holding %#llx, not zeros",
			  w->id, (unsigned long long)(page * PG),
			  (unsigned long long)v);
	err = gmem_access(vm, page * PG + 64, &mark, sizeof(mark), true,
			  (enum gmem_state)w->state[p]);
	if (err)
		violation("worker %u: writing page %#llx: %d", w->id,
			  (unsigned long long)(page * PG), err);
	w->zero_checks++;
}

/* A random range in the worker's quarter, sometimes across a hole. */
static void pick(struct worker *w, uint64_t *first, uint64_t *n)
{
	uint64_t q0 = (uint64_t)w->id * QUARTER;

	*first = q0 + rnd(&w->rng, QUARTER);
	*n = 1 + rnd(&w->rng, rnd(&w->rng, 8) ? 16 : 512);
	if (*first + *n > q0 + QUARTER)
		*n = q0 + QUARTER - *first;
}

static bool touches_hole(uint64_t first, uint64_t n)
{
	uint64_t p;

	for (p = first; p < first + n; p++)
		if (!in_ram(p))
			return true;
	return false;
}

/* Apply a successful change to the model; fresh pages are checked after. */
static void commit(struct worker *w, uint64_t first, uint64_t n, int to,
		   int plug, uint64_t *fresh)
{
	uint64_t q0 = (uint64_t)w->id * QUARTER, p;

	for (p = first; p < first + n; p++) {
		uint8_t *st = &w->state[p - q0], *pl = &w->plugged[p - q0];
		bool changed;

		if (to >= 0) {
			changed = *st != to;
			*st = (uint8_t)to;
		} else {
			changed = *pl != plug;
			*pl = (uint8_t)plug;
		}
		if (changed && *pl && *fresh == UINT64_MAX)
			*fresh = p;
	}
}

static int64_t do_convert(struct worker *w, uint64_t *fresh, const char **what)
{
	uint64_t first, n, busy = UINT64_MAX;
	int to = (int)rnd(&w->rng, 2);
	int64_t r;

	pick(w, &first, &n);
	*what = "gmem_convert_ex";
	r = gmem_convert_ex(vm, first * PG, n * PG, (enum gmem_state)to, &busy);
	if (touches_hole(first, n) && r != -EINVAL && r != -EIO)
		violation("worker %u: conversion across a hole returned %lld",
			  w->id, (long long)r);
	if (r == -EAGAIN && busy == UINT64_MAX)
		violation("worker %u: -EAGAIN without a busy GPA", w->id);
	if (r >= 0)
		commit(w, first, n, to, -1, fresh);
	return r;
}

static int64_t do_batch(struct worker *w, uint64_t *fresh, const char **what)
{
	struct gmem_batch_entry e[BATCH_MAX];
	uint64_t q0 = (uint64_t)w->id * QUARTER, busy, p;
	unsigned int n = 1 + (unsigned int)rnd(&w->rng, BATCH_MAX), i = 0;
	uint64_t cursor = q0 + rnd(&w->rng, QUARTER / 2);
	int bad = -1;
	int64_t r;

	/* Disjoint, ascending, scattered entries inside the quarter. */
	while (i < n) {
		uint64_t len = 1 + rnd(&w->rng, 4);

		if (cursor + len > q0 + QUARTER)
			break;
		e[i].gpa = cursor * PG;
		e[i].len = len * PG;
		e[i].to = (uint32_t)rnd(&w->rng, 2);
		e[i].flags = 0;
		cursor += len + 1 + rnd(&w->rng, 64);
		i++;
	}
	if (!i)
		return 0;
	*what = "gmem_convert_batch";
	r = gmem_convert_batch(vm, e, i, &bad, &busy);
	if (r >= 0) {
		for (n = 0; n < i; n++) {
			p = e[n].gpa / PG;
			commit(w, p, e[n].len / PG, (int)e[n].to, -1, fresh);
		}
	}
	w->batches++;
	return r;
}

static int64_t do_plug(struct worker *w, uint64_t *fresh, const char **what)
{
	uint64_t first, n;
	int plug = (int)rnd(&w->rng, 2);
	int64_t r;

	pick(w, &first, &n);
	*what = "gmem_set_plugged";
	r = gmem_set_plugged(vm, first * PG, n * PG, plug);
	if (touches_hole(first, n) && r != -EINVAL && r != -EIO)
		violation("worker %u: plug change across a hole returned %lld",
			  w->id, (long long)r);
	if (r >= 0)
		commit(w, first, n, -1, plug, fresh);
	w->plugs++;
	return r;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(&stop)) {
		uint64_t fresh = UINT64_MAX;
		unsigned int kind = (unsigned int)rnd(&w->rng, 10);
		const char *what = "";
		int64_t r;

		if (kind < 6)
			r = do_convert(w, &fresh, &what);
		else if (kind < 8)
			r = do_batch(w, &fresh, &what);
		else
			r = do_plug(w, &fresh, &what);
		w->ops++;
		if (r == -EIO) {
			/* Broken: the call must have changed nothing. */
			check_quarter(w, what);
			if (audit(what)) {
				char why[512] = "";

				gmem_dma_mapper_validate(mapper, why, sizeof(why));
				violation("worker %u: %s returned -EIO but the audit finds the memory sound (mapper: %s; iommu: %s)",
					  w->id, what, why, iommu.why);
			}
			break;
		}
		if (r == -EINVAL)
			w->refused_hole++;
		else if (r == -EAGAIN)
			w->busy++;
		else if (r < 0)
			w->failed++;
		check_quarter(w, what);
		if (fresh != UINT64_MAX)
			check_fresh(w, fresh);
		if (!audit(what))
			break;
	}
	return NULL;
}

/*
 * Random faults at random steps; each fires once (not sticky), a few
 * tens of milliseconds apart.  Mostly where the kernel really fails (an mprotect
 * at ENOMEM, the mapper's bookkeeping, the DMA backend's map); a failing
 * punch, which shmem and guest_memfd never report for a hole punch, only
 * now and then: when it lands on a rollback's punch the memory is broken
 * and the round ends, which is right but leaves less time for the rest.
 */
static void *fault_main(void *arg)
{
	uint64_t rng = *(uint64_t *)arg;
	bool map_faults = !getenv("SOAK_NO_MAP_FAULT");

	while (!atomic_load(&stop)) {
		unsigned int nth = 1 + (unsigned int)rnd(&rng, 3);
		uint64_t pick_fault = rnd(&rng, 20);

		if (pick_fault < 7) {
			gmem_fault_inject(vm, GMEM_FAULT_MPROTECT, nth, ENOMEM);
		} else if (pick_fault < 13) {
			gmem_fault_inject(vm, GMEM_FAULT_ALLOC, nth, ENOMEM);
		} else if (pick_fault < 19 && map_faults) {
			pthread_mutex_lock(&iommu.lock);
			iommu.fail_map_nth = nth;
			iommu.fail_err = -EFAULT;
			pthread_mutex_unlock(&iommu.lock);
		} else if (pick_fault == 19) {
			gmem_fault_inject(vm, GMEM_FAULT_FALLOCATE, nth, ENOSPC);
		}
		atomic_fetch_add(&faults_armed, 1);
		usleep(10000 + (useconds_t)rnd(&rng, 40000));
	}
	return NULL;
}

/* A device pinning a run of pages for DMA for a while, then the next. */
static void *device_main(void *arg)
{
	uint64_t rng = *(uint64_t *)arg;

	while (!atomic_load(&stop)) {
		uint64_t p0 = rnd(&rng, NPAGES), n = 1 + rnd(&rng, 64), p;

		if (p0 + n > NPAGES)
			n = NPAGES - p0;
		pthread_mutex_lock(&iommu.lock);
		for (p = p0; p < p0 + n; p++)
			iommu.pinned[p] = 1;
		pthread_mutex_unlock(&iommu.lock);
		usleep(1000 + (useconds_t)rnd(&rng, 2000));
		pthread_mutex_lock(&iommu.lock);
		for (p = p0; p < p0 + n; p++)
			iommu.pinned[p] = 0;
		pthread_mutex_unlock(&iommu.lock);
		atomic_fetch_add(&pins, 1);
	}
	return NULL;
}

static void setup(void)
{
	struct gmem_region_config rc[2];
	struct gmem_config cfg;
	struct gmem_dma_mapper_config mcfg = { .size = sizeof(mcfg) };
	int vm_fd = test_create_vm(), i;
	uint64_t p;

	test_fill_config(&cfg, &rc[0], vm_fd, A_END, GMEM_MODE_DISCARD,
			 GMEM_PRIVATE);
	rc[1] = rc[0];
	rc[1].gpa = B_START;
	rc[1].len = MAX_GPA - B_START;
	if (vm_fd < 0)
		rc[1].private_fd = test_memfd(rc[1].len);
	cfg.regions = rc;
	cfg.nr_regions = 2;
	cfg.max_gpa = MAX_GPA;
	cfg.flags |= GMEM_CONFIG_DEFERRED_RECLAIM;
	TEST_ASSERT_EQ(gmem_create(&cfg, &vm), 0);
	for (i = 0; i < 2; i++)
		if (vm_fd < 0)
			close(rc[i].private_fd);
	recorder_init(&rec, MAX_GPA);
	rec.strict = true;
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops, &rec,
					      &listener), 0);
	fake_init(&iommu, MAX_GPA, 0);
	/* Concurrent changes: the unmap window is the whole space. */
	iommu.x0 = 0;
	iommu.x1 = MAX_GPA;
	mcfg.ops = &fake_exact_ops;
	mcfg.data = &iommu;
	TEST_ASSERT_EQ(gmem_dma_mapper_create(vm, &mcfg, &mapper), 0);
	for (i = 0; i < NWORKERS; i++)
		for (p = 0; p < QUARTER; p++) {
			workers[i].state[p] = GMEM_PRIVATE;
			workers[i].plugged[p] = 1;
		}
}

/* The broken memory must refuse every change and keep its states. */
static void check_broken(void)
{
	int64_t r = gmem_convert(vm, 0, PG, GMEM_SHARED);

	if (r != -EIO)
		violation("broken memory accepted a conversion: %lld",
			  (long long)r);
	r = gmem_set_plugged(vm, 0, PG, false);
	if (r != -EIO)
		violation("broken memory accepted a plug change: %lld",
			  (long long)r);
}

static void teardown(void)
{
	char why[512];
	int i;

	/* Disarm everything, then the final checks. */
	gmem_fault_inject(vm, GMEM_FAULT_MPROTECT, 0, 0);
	gmem_fault_inject(vm, GMEM_FAULT_FALLOCATE, 0, 0);
	gmem_fault_inject(vm, GMEM_FAULT_ALLOC, 0, 0);
	iommu.fail_map_nth = 0;
	if (atomic_load(&round_broken))
		check_broken();
	else
		audit("the round");
	if (gmem_dma_mapper_validate(mapper, why, sizeof(why)))
		violation("DMA mapper: %s", why);
	check_backend(&iommu);
	for (i = 0; i < NWORKERS; i++)
		check_quarter(&workers[i], "the round");
	gmem_dma_mapper_destroy(vm, mapper);
	gmem_listener_unregister(vm, listener);
	gmem_destroy(vm);
	check_backend(&iommu);
	fake_free(&iommu);
	recorder_free(&rec);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(void)
{
	const char *t = getenv("SOAK_TIME");
	uint64_t seed = test_seed("SOAK_SEED", (uint64_t)time(NULL));
	unsigned long seconds = t ? strtoul(t, NULL, 10) : 600;
	unsigned long ops = 0, failed = 0, holes = 0, busy = 0, batches = 0,
		      plugs = 0, zeros = 0, rounds = 0, broken = 0;
	double t0, deadline;
	int i;

	if (!seconds) {
		fprintf(stderr, "soak: SOAK_TIME must be a positive number of seconds\n");
		return 1;
	}
	printf("soak: libgmem, %lu s, seed %llu: 4 converting threads over two regions around a hole, discard mode, deferred reclaim, DMA mapper, random faults and pins, audit after every change\n",
	       seconds, (unsigned long long)seed);
	fflush(stdout);
	t0 = now_s();
	deadline = t0 + (double)seconds;
	/* Rounds: a fresh VM whenever a fault left the last one broken. */
	while (now_s() < deadline) {
		uint64_t fault_rng = seed ^ (0xfaULL + rounds);
		uint64_t device_rng = seed ^ (0xde00ULL + rounds);
		pthread_t faults, device;

		atomic_store(&stop, false);
		atomic_store(&round_broken, false);
		setup();
		for (i = 0; i < NWORKERS; i++) {
			memset(&workers[i].thread, 0, sizeof(workers[i].thread));
			workers[i].id = (unsigned int)i;
			workers[i].rng = seed + rounds * 0x51ed27ULL +
					 (uint64_t)i * 0x9e3779b97f4a7c15ULL;
			TEST_ASSERT_EQ(pthread_create(&workers[i].thread, NULL,
						      worker_main, &workers[i]), 0);
		}
		TEST_ASSERT_EQ(pthread_create(&faults, NULL, fault_main,
					      &fault_rng), 0);
		TEST_ASSERT_EQ(pthread_create(&device, NULL, device_main,
					      &device_rng), 0);
		/* The recorder keeps every event: drop them now and then so
		 * that a long soak does not grow without bound. */
		while (!atomic_load(&stop) && now_s() < deadline) {
			usleep(10000);
			recorder_reset_events(&rec);
		}
		atomic_store(&stop, true);
		for (i = 0; i < NWORKERS; i++)
			pthread_join(workers[i].thread, NULL);
		pthread_join(faults, NULL);
		pthread_join(device, NULL);
		if (atomic_load(&round_broken)) {
			broken++;
			printf("soak: round %lu ended with the memory marked broken (%s); checked that it refuses every change, starting a new VM\n",
			       rounds + 1, broken_why);
		}
		teardown();
		rounds++;
		for (i = 0; i < NWORKERS; i++) {
			ops += workers[i].ops;
			failed += workers[i].failed;
			holes += workers[i].refused_hole;
			busy += workers[i].busy;
			batches += workers[i].batches;
			plugs += workers[i].plugs;
			zeros += workers[i].zero_checks;
			workers[i].ops = workers[i].failed = 0;
			workers[i].refused_hole = workers[i].busy = 0;
			workers[i].batches = workers[i].plugs = 0;
			workers[i].zero_checks = 0;
		}
	}
	printf("soak: clean after %.0f s, %lu rounds (%lu ended broken, as documented): %lu changes (%lu batches, %lu plug changes), %lu failed under %lu injected faults and rolled back, %lu refused busy under %lu pins, %lu refused for a hole, %lu audits, %lu fresh pages read zeros\n",
	       now_s() - t0, rounds, broken, ops, batches, plugs, failed,
	       (unsigned long)atomic_load(&faults_armed), busy,
	       (unsigned long)atomic_load(&pins), holes,
	       (unsigned long)atomic_load(&audits), zeros);
	return 0;
}
