/* SPDX-License-Identifier: MIT */
/*
 * The state-diff oracle: a failing change leaves nothing behind.
 *
 * Thousands of random conversions (a quarter of them batches of disjoint
 * ranges converting both ways, gmem_convert_batch()) and plug changes, over
 * two regions
 * around a hole, with a failure injected at a random step of about half of
 * them: an mprotect (revoke, grant), the punch, a memslot, a platform
 * prepare, a listener's populate or discard (veto), the DMA backend's map
 * or a pinned page refusing its unmap, or the DMA mapper's bookkeeping
 * running out of memory.  Meanwhile a "device" writes through
 * every range it is given the moment it is given it (the first listener's
 * populate), i.e. through the new view inside the window in which a later
 * step can still fail - the write a rollback must not leave behind.
 *
 * After every failing call the observable state must equal the state
 * before it:
 *  - page-state and plug maps (gmem_for_each_extent), checked against a
 *    per-page model as well;
 *  - each page's content (a hash through the view of its state), and its
 *    residency in the backing of its state (mincore);
 *  - both listeners' mapped pages and the platform's prepared pages;
 *  - the DMA backend's live mappings (the strict fake IOMMU);
 * and gmem_audit() (real protections from /proc/self/maps, no page backed
 * twice, listener and mapper reports, regions vs holes) must pass after
 * every call, failing or not.  Both modes, both DMA layouts, with and
 * without deferred reclaim.  The device writes only in discard mode: in
 * in-place mode one backing serves both views, so a write through the
 * granted view is a write to the page's one content (convert.c).
 *
 * GMEM_ORACLE_SEED and GMEM_ORACLE_OPS override the seed and the count.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "fake_iommu.h"
#include "internal.h"
#include "test_util.h"

#define PG GMEM_PAGE_SIZE
#define MAX_GPA (1ULL << 20)
#define NPAGES (MAX_GPA / PG)
/* Region A [0, 448K), hole [448K, 576K), region B [576K, 1M). */
#define A_PAGES 112ULL
#define B_FIRST 144ULL

struct model {
	uint8_t in_ram[NPAGES];
	uint8_t state[NPAGES];
	uint8_t plugged[NPAGES];
};

struct snap {
	uint8_t state[NPAGES], plugged[NPAGES];
	uint64_t hash[NPAGES];
	uint8_t resident[NPAGES];
	uint8_t mapped1[NPAGES], mapped2[NPAGES], prepared[NPAGES];
	struct ival maps[NPAGES];
	size_t nr_maps;
};

struct ctx {
	enum gmem_mode mode;
	bool deferred, blocks;
	struct gmem_vm *vm;
	struct recorder rec1, rec2;
	struct fake iommu;
	struct gmem_dma_mapper *mapper;
	struct gmem_listener *l1, *l2;
	struct model m;
	uint64_t rng;
	bool device_writes;
	uint32_t gen;
};

static struct ctx c;
static struct snap before, after;
static uint64_t zero_hash;

/* ---- the device: writes through whatever it is given, at once ------------ */

static int device_populate(void *data, uint64_t gpa, uint64_t len)
{
	int err = recorder_listener_ops.populate(data, gpa, len);
	uint8_t *p = (uint8_t *)gmem_shared_view(c.vm) + gpa;
	uint64_t off;

	if (err || !c.device_writes)
		return err;
	/* The range is shared and plugged, so its shared view is open. */
	for (off = 0; off < len; off += PG)
		p[off + (c.gen % (PG - 8))] = (uint8_t)(0xa5 ^ c.gen);
	return 0;
}

static int device_discard(void *data, uint64_t gpa, uint64_t len,
			  unsigned int flags)
{
	return recorder_listener_ops.discard(data, gpa, len, flags);
}

static int device_report(void *data,
			 int (*fn)(void *arg, uint64_t gpa, uint64_t len),
			 void *arg)
{
	return recorder_listener_ops.report(data, fn, arg);
}

static const struct gmem_listener_ops device_ops = {
	.size = sizeof(struct gmem_listener_ops),
	.populate = device_populate,
	.discard = device_discard,
	.report = device_report,
};

/* ---- snapshots ------------------------------------------------------------ */

static uint64_t hash_page(const uint8_t *p)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i;

	for (i = 0; i < PG; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, sizeof(w));
		h = (h ^ w) * 1099511628211ULL;
	}
	return h;
}

static int collect_extent(void *arg, const struct gmem_extent *e)
{
	struct snap *s = arg;
	uint64_t p;

	for (p = e->gpa / PG; p < (e->gpa + e->len) / PG; p++) {
		s->state[p] = (uint8_t)e->state;
		s->plugged[p] = e->plugged;
	}
	return 0;
}

static int collect_map(void *arg, uint64_t iova, uint64_t len)
{
	struct snap *s = arg;

	TEST_ASSERT(s->nr_maps < NPAGES);
	s->maps[s->nr_maps].s = iova;
	s->maps[s->nr_maps].e = iova + len;
	s->nr_maps++;
	return 0;
}

static void take(struct snap *s)
{
	uint8_t *views[2] = { gmem_private_view(c.vm),
			      gmem_shared_view(c.vm) };
	unsigned char vec;
	uint64_t p;

	memset(s, 0, sizeof(*s));
	TEST_ASSERT_EQ(gmem_for_each_extent(c.vm, 0, MAX_GPA, collect_extent,
					    s), 0);
	for (p = 0; p < NPAGES; p++) {
		uint8_t *page;

		if (!c.m.in_ram[p] || !s->plugged[p])
			continue;
		page = views[s->state[p]] + p * PG;
		/* Residency first, and a hole is not read (reading a hole of
		 * a shmem file would allocate it): it reads zeros. */
		TEST_ASSERT_EQ(mincore(page, PG, &vec), 0);
		s->resident[p] = vec & 1;
		/* Accessible in the view of its state: a hash reads it. */
		s->hash[p] = s->resident[p] ? hash_page(page) : zero_hash;
	}
	pthread_mutex_lock(&c.rec1.lock);
	memcpy(s->mapped1, c.rec1.mapped, NPAGES);
	memcpy(s->prepared, c.rec1.prepared, NPAGES);
	pthread_mutex_unlock(&c.rec1.lock);
	pthread_mutex_lock(&c.rec2.lock);
	memcpy(s->mapped2, c.rec2.mapped, NPAGES);
	pthread_mutex_unlock(&c.rec2.lock);
	TEST_ASSERT_EQ(gmem_dma_mapper_for_each(c.mapper, collect_map, s), 0);
}

/*
 * The one documented exception (gmem.h, gmem_set_plugged()): a discard-mode
 * unplug of a range holding shared and private pages punches the shared
 * backing first; if the private punch then fails, the shared pages (which
 * were being given up) read zeros afterwards.  @zeroed_ok allows exactly
 * that: those pages, and nothing else, may read zeros and hold no memory.
 */
static bool zeroed_ok;
/* A batch whose punch failed after another of its punches: its pages. */
static uint8_t batch_zero_ok[NPAGES];

static void compare(const char *what)
{
	uint64_t p;
	size_t i;

	for (p = 0; p < NPAGES; p++) {
		if (((zeroed_ok && before.state[p] == GMEM_SHARED) ||
		     batch_zero_ok[p]) && c.m.in_ram[p] && before.plugged[p] &&
		    after.hash[p] == zero_hash && !after.resident[p]) {
			after.hash[p] = before.hash[p];
			after.resident[p] = before.resident[p];
		}
#define SAME(field)                                                          \
	if (before.field[p] != after.field[p])                               \
		TEST_FAIL("%s: page %#llx (%s/%d -> %s/%d): " #field         \
			  " %llu -> %llu", what,                             \
			  (unsigned long long)(p * PG),                      \
			  gmem_state_name(before.state[p]), before.plugged[p], \
			  gmem_state_name(after.state[p]), after.plugged[p], \
			  (unsigned long long)before.field[p],               \
			  (unsigned long long)after.field[p])
		SAME(state);
		SAME(plugged);
		SAME(hash);
		SAME(resident);
		SAME(mapped1);
		SAME(mapped2);
		SAME(prepared);
#undef SAME
	}
	TEST_ASSERT_EQ(before.nr_maps, after.nr_maps);
	for (i = 0; i < before.nr_maps; i++)
		if (before.maps[i].s != after.maps[i].s ||
		    before.maps[i].e != after.maps[i].e)
			TEST_FAIL("%s: DMA mapping %zu [%#llx, %#llx) -> "
				  "[%#llx, %#llx)", what, i,
				  (unsigned long long)before.maps[i].s,
				  (unsigned long long)before.maps[i].e,
				  (unsigned long long)after.maps[i].s,
				  (unsigned long long)after.maps[i].e);
}

/* The map equals the model everywhere. */
static void check_model(const char *what)
{
	uint64_t p;

	for (p = 0; p < NPAGES; p++) {
		if (!c.m.in_ram[p]) {
			TEST_ASSERT_EQ(gmem_state_at(c.vm, p * PG, NULL, NULL),
				       -EINVAL);
			continue;
		}
		if (after.state[p] != c.m.state[p] ||
		    after.plugged[p] != c.m.plugged[p])
			TEST_FAIL("%s: page %#llx is %s/%s, model %s/%s", what,
				  (unsigned long long)(p * PG),
				  gmem_state_name(after.state[p]),
				  after.plugged[p] ? "plugged" : "unplugged",
				  gmem_state_name(c.m.state[p]),
				  c.m.plugged[p] ? "plugged" : "unplugged");
	}
}

/* ---- faults ----------------------------------------------------------------- */

enum fault {
	F_NONE, F_MPROTECT, F_PUNCH, F_PREPARE, F_POPULATE, F_VETO, F_DMA_MAP,
	F_PIN, F_ALLOC, F_NR,
};

static const char *const fault_names[F_NR] = {
	"none", "mprotect", "punch", "prepare", "populate", "veto",
	"dma map", "pin", "mapper alloc",
};

static uint64_t rnd(uint64_t n)
{
	return test_rand(&c.rng) % n;
}

static void arm(enum fault f, uint64_t gpa, uint64_t len)
{
	/* Mostly the first call: later ones often do not happen. */
	unsigned int nth = 1 + (rnd(4) ? 0 : (unsigned int)rnd(3));

	switch (f) {
	case F_NONE:
		break;
	case F_MPROTECT:
		gmem_fault_inject(c.vm, GMEM_FAULT_MPROTECT, nth, ENOMEM);
		break;
	case F_PUNCH:
		gmem_fault_inject(c.vm, GMEM_FAULT_FALLOCATE, nth, ENOSPC);
		break;
	case F_PREPARE:
		c.rec1.fail_prepare_nth = nth;
		c.rec1.fail_err = -EPERM;
		break;
	case F_POPULATE:
		/* The second listener fails after the device has written. */
		c.rec2.fail_populate_nth = nth;
		c.rec2.fail_err = -ENOMEM;
		break;
	case F_VETO:
		c.rec2.fail_discard_nth = nth;
		c.rec2.fail_err = -EAGAIN;
		break;
	case F_DMA_MAP:
		pthread_mutex_lock(&c.iommu.lock);
		c.iommu.fail_map_nth = nth;
		c.iommu.fail_err = -ENOMEM;
		pthread_mutex_unlock(&c.iommu.lock);
		break;
	case F_PIN: {
		/* Pin a page of the range that is mapped (if any). */
		uint64_t p = gpa / PG + rnd(len / PG);

		pthread_mutex_lock(&c.iommu.lock);
		c.iommu.pinned[p] = 1;
		pthread_mutex_unlock(&c.iommu.lock);
		break;
	}
	case F_ALLOC:
		gmem_fault_inject(c.vm, GMEM_FAULT_ALLOC, nth, ENOMEM);
		break;
	case F_NR:
		break;
	}
}

static void disarm(void)
{
	gmem_fault_inject(c.vm, GMEM_FAULT_MPROTECT, 0, 0);
	gmem_fault_inject(c.vm, GMEM_FAULT_FALLOCATE, 0, 0);
	gmem_fault_inject(c.vm, GMEM_FAULT_ALLOC, 0, 0);
	c.rec1.fail_prepare_nth = 0;
	c.rec2.fail_populate_nth = 0;
	c.rec2.fail_discard_nth = 0;
	pthread_mutex_lock(&c.iommu.lock);
	c.iommu.fail_map_nth = 0;
	memset(c.iommu.pinned, 0, NPAGES);
	pthread_mutex_unlock(&c.iommu.lock);
}

/* ---- the run ----------------------------------------------------------------- */

static void setup(void)
{
	struct gmem_region_config rc[2];
	struct gmem_config cfg;
	struct gmem_dma_mapper_config mcfg = { .size = sizeof(mcfg) };
	int vm_fd = test_create_vm(), i;
	uint64_t p;

	test_fill_config(&cfg, &rc[0], vm_fd, A_PAGES * PG, c.mode,
			 GMEM_PRIVATE);
	rc[1] = rc[0];
	rc[1].gpa = B_FIRST * PG;
	rc[1].len = MAX_GPA - B_FIRST * PG;
	if (vm_fd < 0)
		rc[1].private_fd = test_memfd(rc[1].len);
	cfg.regions = rc;
	cfg.nr_regions = 2;
	cfg.max_gpa = MAX_GPA;
	cfg.platform = &recorder_platform_ops;
	cfg.platform_data = &c.rec1;
	if (c.deferred)
		cfg.flags |= GMEM_CONFIG_DEFERRED_RECLAIM;
	recorder_init(&c.rec1, MAX_GPA);
	recorder_init(&c.rec2, MAX_GPA);
	TEST_ASSERT_EQ(gmem_create(&cfg, &c.vm), 0);
	for (i = 0; i < 2; i++)
		if (vm_fd < 0)
			close(rc[i].private_fd);
	TEST_ASSERT_EQ(gmem_listener_register(c.vm, &device_ops, &c.rec1,
					      &c.l1), 0);
	TEST_ASSERT_EQ(gmem_listener_register(c.vm, &recorder_listener_ops,
					      &c.rec2, &c.l2), 0);
	fake_init(&c.iommu, MAX_GPA, c.blocks ? 2 * PG * 8 : 0);
	mcfg.ops = c.blocks ? &fake_type1_ops : &fake_exact_ops;
	mcfg.data = &c.iommu;
	mcfg.block_size = c.blocks ? 2 * PG * 8 : 0;
	TEST_ASSERT_EQ(gmem_dma_mapper_create(c.vm, &mcfg, &c.mapper), 0);

	memset(&c.m, 0, sizeof(c.m));
	for (p = 0; p < NPAGES; p++) {
		c.m.in_ram[p] = p < A_PAGES || p >= B_FIRST;
		c.m.plugged[p] = 1;
	}
}

static void teardown(void)
{
	gmem_dma_mapper_destroy(c.vm, c.mapper);
	gmem_listener_unregister(c.vm, c.l2);
	gmem_listener_unregister(c.vm, c.l1);
	gmem_destroy(c.vm);
	check_backend(&c.iommu);
	fake_free(&c.iommu);
	recorder_free(&c.rec1);
	recorder_free(&c.rec2);
}

#define MAX_ENTRIES 6

static void one_op(unsigned int i, unsigned int *failed)
{
	struct gmem_batch_entry ent[MAX_ENTRIES];
	unsigned int nent = 0, k;
	uint64_t start, npages, p;
	bool hole = false, plug_op = rnd(3) == 0, batch = false;
	bool all_shared = true;
	int failed_entry = -2;
	enum fault f = rnd(2) ? F_NONE : (enum fault)(1 + rnd(F_NR - 1));
	uint8_t to = (uint8_t)rnd(2);
	char what[160];
	int64_t ret;

	/* Mostly inside one region; sometimes across both (and the hole). */
	if (rnd(8) == 0) {
		start = rnd(A_PAGES);
		npages = B_FIRST + 1 + rnd(NPAGES - B_FIRST - 1) - start;
	} else if (rnd(2)) {
		start = rnd(A_PAGES);
		npages = 1 + rnd(A_PAGES - start);
	} else {
		start = B_FIRST + rnd(NPAGES - B_FIRST);
		npages = 1 + rnd(NPAGES - start);
	}
	/*
	 * A quarter of the conversions are batches: disjoint pieces of the
	 * range, in shuffled order, each converting either way.
	 */
	if (!plug_op && rnd(4) == 0 && npages >= 2) {
		uint64_t q = start, end = start + npages;

		batch = true;
		while (q < end && nent < MAX_ENTRIES) {
			uint64_t len = 1 + rnd(end - q);

			if (len > 1 + npages / 3)
				len = 1 + npages / 3;
			ent[nent] = (struct gmem_batch_entry){
				.gpa = q * PG, .len = len * PG,
				.to = (uint32_t)rnd(2) };
			all_shared &= ent[nent].to == GMEM_SHARED;
			nent++;
			q += len + rnd(3);	/* sometimes a gap */
		}
		for (k = nent; k > 1; k--) {	/* shuffle */
			unsigned int j = (unsigned int)rnd(k);
			struct gmem_batch_entry t = ent[k - 1];

			ent[k - 1] = ent[j];
			ent[j] = t;
		}
		hole = false;
		for (k = 0; k < nent; k++)
			for (p = ent[k].gpa / PG;
			     p < (ent[k].gpa + ent[k].len) / PG; p++)
				hole |= !c.m.in_ram[p];
	} else {
		for (p = start; p < start + npages; p++)
			hole |= !c.m.in_ram[p];
	}
	snprintf(what, sizeof(what), "op %u: %s [%#llx, +%#llx) -> %u, fault %s",
		 i, batch ? "batch" : plug_op ? "plug" : "convert",
		 (unsigned long long)(start * PG),
		 (unsigned long long)(npages * PG), to, fault_names[f]);

	if (getenv("GMEM_ORACLE_TRACE"))
		printf("%s\n", what);
	c.gen++;
	/*
	 * The device writes on forward populates only: an op that makes
	 * pages reachable never drops any, so every populate in it is
	 * forward (an op that drops pages re-populates only to undo, and a
	 * device writing then writes after the call, legitimately).
	 */
	c.device_writes = c.mode == GMEM_MODE_DISCARD &&
			  (batch ? all_shared : to == 1);
	take(&before);
	/* The strict IOMMU checks that nothing outside the range (or its
	 * blocks) is ever unmapped. */
	pthread_mutex_lock(&c.iommu.lock);
	c.iommu.x0 = start * PG;
	c.iommu.x1 = (start + npages) * PG;
	pthread_mutex_unlock(&c.iommu.lock);
	arm(f, start * PG, npages * PG);
	if (batch)
		ret = gmem_convert_batch(c.vm, ent, nent, &failed_entry, NULL);
	else if (plug_op)
		ret = gmem_set_plugged(c.vm, start * PG, npages * PG, to);
	else
		ret = gmem_convert(c.vm, start * PG, npages * PG, to);
	disarm();
	pthread_mutex_lock(&c.iommu.lock);
	c.iommu.x0 = 0;
	c.iommu.x1 = MAX_GPA;
	pthread_mutex_unlock(&c.iommu.lock);
	take(&after);
	test_audit(c.vm);
	check_backend(&c.iommu);

	if (hole) {
		if (ret != -EINVAL)
			TEST_FAIL("%s: touching the hole gave %lld", what,
				  (long long)ret);
		if (batch) {
			/* The entry to blame touches the hole. */
			bool touches = false;

			TEST_ASSERT(failed_entry >= 0 &&
				    failed_entry < (int)nent);
			for (p = ent[failed_entry].gpa / PG;
			     p < (ent[failed_entry].gpa +
				  ent[failed_entry].len) / PG; p++)
				touches |= !c.m.in_ram[p];
			TEST_ASSERT(touches);
		}
		compare(what);
		return;
	}
	if (ret < 0) {
		if (ret == -EIO)
			TEST_FAIL("%s: rollback failed (memory broken)", what);
		(*failed)++;
		zeroed_ok = plug_op && !to && f == F_PUNCH &&
			    c.mode == GMEM_MODE_DISCARD;
		if (batch && f == F_PUNCH && c.mode == GMEM_MODE_DISCARD)
			for (k = 0; k < nent; k++)
				memset(batch_zero_ok + ent[k].gpa / PG, 1,
				       ent[k].len / PG);
		compare(what);
		zeroed_ok = false;
		memset(batch_zero_ok, 0, sizeof(batch_zero_ok));
		return;
	}
	if (batch) {
		for (k = 0; k < nent; k++)
			for (p = ent[k].gpa / PG;
			     p < (ent[k].gpa + ent[k].len) / PG; p++)
				c.m.state[p] = (uint8_t)ent[k].to;
	}
	for (p = start; !batch && p < start + npages; p++) {
		if (plug_op)
			c.m.plugged[p] = to;
		else
			c.m.state[p] = to;
	}
	check_model(what);
}

static void run(enum gmem_mode mode, bool deferred, bool blocks,
		unsigned int ops, uint64_t seed)
{
	unsigned int i, failed = 0;

	memset(&c, 0, sizeof(c));
	c.mode = mode;
	c.deferred = deferred;
	c.blocks = blocks;
	c.rng = seed;
	setup();
	for (i = 0; i < ops; i++)
		one_op(i, &failed);
	printf("%s%s, %s DMA: %u ops, %u failed and left nothing behind\n",
	       gmem_mode_name(mode), deferred ? " + deferred reclaim" : "",
	       blocks ? "blocks" : "exact", ops, failed);
	/* Injected failures must really happen, or the oracle proves
	 * nothing. */
	TEST_ASSERT(failed > ops / 16);
	teardown();
}

int main(void)
{
	uint64_t seed = test_seed("GMEM_ORACLE_SEED", 0x04ac1e);
	unsigned int ops = (unsigned int)test_seed("GMEM_ORACLE_OPS", 800);
	int mode, deferred, blocks;

	static const uint8_t zero[PG];

	zero_hash = hash_page(zero);
	test_require_gmem();
	printf("seed %#llx\n", (unsigned long long)seed);
	for (mode = 0; mode < 2; mode++)
		for (deferred = 0; deferred < 2; deferred++)
			for (blocks = 0; blocks < 2; blocks++) {
				if (deferred && mode == GMEM_MODE_IN_PLACE)
					continue;	/* nothing to reclaim */
				run((enum gmem_mode)mode, deferred, blocks,
				    ops, seed + (uint64_t)(mode * 4 +
							   deferred * 2 +
							   blocks));
			}
	return T_EXIT_PASS;
}
