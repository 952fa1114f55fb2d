/* SPDX-License-Identifier: MIT */
/*
 * The DMA mapper against a strict fake backend, on real guest memory.
 *
 * The fake backend holds its mappings the way an IOMMU would and refuses
 * anything the mapper must never ask for: a map over a live mapping, an
 * unmap that is not exactly one live mapping, a cut outside one mapping, a
 * merge that does not tile live mappings.  It also watches the window: a
 * page removed by unmap or cut must lie in the range being converted
 * (exact layout) or in a block that range touches (blocks layout), so a
 * page that stays reachable while a neighbour converts is never unmapped
 * (exact) or only inside the converting blocks (blocks).
 *
 * Checked after every operation of a random sequence of conversions,
 * unplugs, plugs, pins and injected map failures, against a naive model
 * (one state and one plug flag per page): the backend's mappings equal the
 * layout of the model's reachable pages exactly (boundaries included),
 * gmem_dma_mapper_validate() and gmem_audit() pass, and the counters add
 * up.  Plus the scale cases: 16 GiB fully shared is one mapping (exact) or
 * one per 2 MiB block, and a 4 KiB checkerboard costs one per shared page.
 */
#include <unistd.h>

#include "fake_iommu.h"

#define PG 4096ULL

/* ---- the model -------------------------------------------------------- */

struct model {
	uint64_t npages;
	uint8_t *state;		/* enum gmem_state */
	uint8_t *plugged;
};

static bool reach(const struct model *m, uint64_t p)
{
	return m->state[p] == GMEM_SHARED && m->plugged[p];
}

/*
 * The fake's mappings must be the layout of the model: maximal reachable
 * runs, clipped at blocks in the blocks layout.
 */
static void check_layout(const struct model *m, struct fake *f,
			 struct gmem_dma_mapper *mapper, uint64_t block)
{
	uint64_t p = 0, bp = block ? block / PG : m->npages;
	size_t k = 0;
	struct gmem_dma_stats st = { .size = sizeof(st) };
	char msg[512];

	check_backend(f);
	while (p < m->npages) {
		uint64_t e;

		if (!reach(m, p)) {
			p++;
			continue;
		}
		for (e = p + 1; e < m->npages && reach(m, e) && e % bp; e++)
			;
		if (k >= f->nr || f->v[k].s != p * PG || f->v[k].e != e * PG)
			TEST_FAIL("mapping %zu: want [%#llx, %#llx), backend has [%#llx, %#llx)",
				  k, (unsigned long long)(p * PG),
				  (unsigned long long)(e * PG),
				  (unsigned long long)(k < f->nr ? f->v[k].s : 0),
				  (unsigned long long)(k < f->nr ? f->v[k].e : 0));
		k++;
		p = e;
	}
	if (k != f->nr)
		TEST_FAIL("backend holds %zu mappings, layout has %zu", f->nr,
			  k);
	gmem_dma_mapper_get_stats(mapper, &st);
	TEST_ASSERT_EQ(st.live, k);
	TEST_ASSERT(st.max_live >= st.live);
	if (gmem_dma_mapper_validate(mapper, msg, sizeof(msg)))
		TEST_FAIL("validate: %s", msg);
}

/*
 * Is the mapping [s, e) of the layout of reachability @r (one byte per
 * page)?  Maximal run, clipped at blocks of @bp pages.
 */
static bool in_layout(const uint8_t *r, uint64_t npages, uint64_t bp,
		      uint64_t s, uint64_t e)
{
	uint64_t p;

	for (p = s; p < e; p++)
		if (!r[p] || (p > s && p % bp == 0))
			return false;
	return !(s > 0 && s % bp && r[s - 1]) &&
	       !(e < npages && e % bp && r[e]);
}

/*
 * Must the change from reachability @r0 to @r1 be refused by a pin?  The
 * backend refuses to unmap or cut a pinned page: in the exact layout only
 * pages that stop being reachable are removed; in the blocks layout every
 * old mapping that is not in the new layout is unmapped whole, so a pin
 * anywhere in it refuses the change (without partial unmap there is no
 * other way) - even a plug or a conversion to shared next to it.
 */
static bool pin_refuses(const uint8_t *r0, const uint8_t *r1,
			uint64_t npages, uint64_t block, const uint8_t *pin)
{
	uint64_t bp = block ? block / PG : npages, p = 0, e, q;

	while (p < npages) {
		if (!r0[p]) {
			p++;
			continue;
		}
		for (e = p + 1; e < npages && r0[e] && e % bp; e++)
			;
		if (!in_layout(r1, npages, bp, p, e))
			for (q = p; q < e; q++)
				if (pin[q] && (block || !r1[q]))
					return true;
		p = e;
	}
	return false;
}

/* ---- random sequences --------------------------------------------------- */

/* Over all runs, each path must have been taken (else the test is blind). */
static uint64_t total_refused, total_failed, total_splits, total_merges;

static void random_run(enum gmem_mode mode, uint64_t block, uint64_t seed)
{
	const uint64_t ram = 8ULL << 20, npages = ram / PG;
	struct gmem_dma_mapper_config cfg = { .size = sizeof(cfg) };
	struct gmem_dma_mapper *mapper;
	struct gmem_dma_stats st = { .size = sizeof(st) };
	struct model m = { .npages = npages };
	struct gmem_vm *vm;
	struct fake f;
	uint64_t rng = seed, p;
	uint8_t *r0, *r1;
	int vm_fd, i, refused = 0, failed = 0;

	vm_fd = test_create_vm();
	vm = test_create_gmem(vm_fd, ram, mode, GMEM_PRIVATE, NULL, NULL);
	fake_init(&f, ram, block);
	m.state = calloc(npages, 1);
	m.plugged = malloc(npages);
	r0 = malloc(npages);
	r1 = malloc(npages);
	TEST_ASSERT(m.state && m.plugged && r0 && r1);
	memset(m.plugged, 1, npages);

	cfg.ops = block ? &fake_type1_ops : &fake_exact_ops;
	cfg.data = &f;
	cfg.block_size = block;
	TEST_ASSERT_EQ(gmem_dma_mapper_create(vm, &cfg, &mapper), 0);
	check_layout(&m, &f, mapper, block);

	for (i = 0; i < 400; i++) {
		uint64_t r = test_rand(&rng) % 100;
		/* Mostly small ranges, some large, aligned to pages. */
		uint64_t len = (test_rand(&rng) % 4 == 0) ?
			       1 + test_rand(&rng) % npages :
			       1 + test_rand(&rng) % 24;
		uint64_t start = test_rand(&rng) % npages;
		bool want_fail = false, any_pinned = false, maps = false;
		bool convert, bit;
		enum gmem_state to;
		int64_t ret;

		if (start + len > npages)
			len = npages - start;
		f.x0 = start * PG;
		f.x1 = (start + len) * PG;
		if (getenv("TEST_VERBOSE"))
			fprintf(stderr, "op %d: r=%llu [%#llx, %#llx)\n", i,
				(unsigned long long)r,
				(unsigned long long)(start * PG),
				(unsigned long long)((start + len) * PG));
		if (r < 10) {
			/* Pin or unpin one reachable page. */
			p = start;
			if (f.pinned[p])
				f.pinned[p] = 0;
			else if (reach(&m, p))
				f.pinned[p] = 1;
			f.x0 = 0;
			f.x1 = ram;
			continue;
		}
		/* r < 18: the next map fails, so a conversion to shared or
		 * a plug that maps something must fail cleanly (armed only
		 * for those: an undo's map failing is not recoverable, and
		 * validate would report it). */
		want_fail = r < 18;
		f.fail_err = -ENOMEM;

		/* r < 55: a conversion, else a plug or unplug.  Its pages
		 * are reachable after it when shared and plugged; it maps
		 * something when one was not before. */
		convert = r < 55;
		bit = test_rand(&rng) & 1;
		to = bit ? GMEM_SHARED : GMEM_PRIVATE;

		for (p = 0; p < npages; p++) {
			r0[p] = reach(&m, p);
			r1[p] = r0[p];
			if (p < start || p >= start + len)
				continue;
			r1[p] = (convert ? to : m.state[p]) == GMEM_SHARED &&
				(convert ? m.plugged[p] : bit);
			maps |= r1[p] && !r0[p];
		}
		any_pinned = pin_refuses(r0, r1, npages, block, f.pinned);
		/* Not with a refusal: its undo maps again. */
		want_fail &= !any_pinned;
		f.fail_map_nth = want_fail && bit;
		if (convert)
			ret = gmem_convert(vm, start * PG, len * PG, to);
		else
			ret = gmem_set_plugged(vm, start * PG, len * PG, bit);
		if (any_pinned) {
			TEST_ASSERT_EQ(ret, -EAGAIN);
			refused++;
		} else if (want_fail && maps) {
			TEST_ASSERT_EQ(ret, -ENOMEM);
			failed++;
		} else {
			if (ret < 0)
				TEST_FAIL("op %d %s %d ret %lld pinned %d", i,
					  convert ? "convert" : "plug",
					  bit, (long long)ret, any_pinned);
			memset(convert ? m.state + start : m.plugged + start,
			       convert ? to : bit, len);
		}
		f.fail_map_nth = 0;
		f.x0 = 0;
		f.x1 = ram;
		check_layout(&m, &f, mapper, block);
		test_audit(vm);
	}
	gmem_dma_mapper_get_stats(mapper, &st);
	printf("  %s, %s: %d refused, %d failed; maps %llu unmaps %llu cuts %llu merges %llu splits %llu max %llu\n",
	       gmem_mode_name(mode), block ? "blocks" : "exact", refused,
	       failed, (unsigned long long)st.maps,
	       (unsigned long long)st.unmaps, (unsigned long long)st.cuts,
	       (unsigned long long)st.merges, (unsigned long long)st.splits,
	       (unsigned long long)st.max_live);
	TEST_ASSERT_EQ(st.refused, refused);
	total_refused += refused;
	total_failed += failed;
	total_splits += st.splits;
	total_merges += st.merges;

	/* Destroy unmaps everything, pins or not (forced). */
	gmem_dma_mapper_destroy(vm, mapper);
	TEST_ASSERT_EQ(f.nr, 0);
	check_backend(&f);
	gmem_destroy(vm);
	close(vm_fd);
	fake_free(&f);
	free(m.state);
	free(m.plugged);
	free(r0);
	free(r1);
}

/* ---- scale ---------------------------------------------------------------- */

static uint64_t live_of(struct gmem_dma_mapper *mapper)
{
	struct gmem_dma_stats st = { .size = sizeof(st) };

	gmem_dma_mapper_get_stats(mapper, &st);
	return st.live;
}

/*
 * A guest of @ram bytes, all shared, with an exact-layout mapper over
 * fake @f.
 */
static struct gmem_vm *shared_guest(uint64_t ram, int *vm_fd, struct fake *f,
				    struct gmem_dma_mapper_config *cfg,
				    struct gmem_dma_mapper **mapper)
{
	struct gmem_vm *vm;

	*vm_fd = test_create_vm();
	vm = test_create_gmem(*vm_fd, ram, GMEM_MODE_DISCARD, GMEM_SHARED,
			      NULL, NULL);
	fake_init(f, ram, 0);
	cfg->ops = &fake_exact_ops;
	cfg->data = f;
	TEST_ASSERT_EQ(gmem_dma_mapper_create(vm, cfg, mapper), 0);
	return vm;
}

static void scale_16g(void)
{
	const uint64_t ram = 16ULL << 30;
	struct gmem_dma_mapper_config cfg = { .size = sizeof(cfg) };
	struct gmem_dma_mapper *mapper;
	struct gmem_vm *vm;
	struct fake f;
	int vm_fd;

	vm = shared_guest(ram, &vm_fd, &f, &cfg, &mapper);
	TEST_ASSERT_EQ(live_of(mapper), 1);
	TEST_ASSERT_EQ(f.nr, 1);
	TEST_ASSERT(f.v[0].s == 0 && f.v[0].e == ram);
	/* One private page in the middle splits it; sharing it merges. */
	f.x0 = 8ULL << 30;
	f.x1 = f.x0 + PG;
	TEST_ASSERT_EQ(gmem_convert(vm, 8ULL << 30, PG, GMEM_PRIVATE), 1);
	TEST_ASSERT_EQ(live_of(mapper), 2);
	TEST_ASSERT_EQ(gmem_convert(vm, 8ULL << 30, PG, GMEM_SHARED), 1);
	TEST_ASSERT_EQ(live_of(mapper), 1);
	/* Unplugging 1 GiB at the end shrinks it without a second one. */
	f.x0 = 15ULL << 30;
	f.x1 = ram;
	TEST_ASSERT_EQ(gmem_set_plugged(vm, 15ULL << 30, 1ULL << 30, false),
		       (1ULL << 30) / PG);
	TEST_ASSERT_EQ(live_of(mapper), 1);
	TEST_ASSERT(f.v[0].s == 0 && f.v[0].e == 15ULL << 30);
	check_backend(&f);
	gmem_dma_mapper_destroy(vm, mapper);
	fake_free(&f);

	/* VFIO type1 semantics: one mapping per 2 MiB block. */
	fake_init(&f, ram, 2ULL << 20);
	cfg.ops = &fake_type1_ops;
	cfg.block_size = 0;	/* default: 2 MiB */
	TEST_ASSERT_EQ(gmem_dma_mapper_create(vm, &cfg, &mapper), 0);
	TEST_ASSERT_EQ(live_of(mapper), (15ULL << 30) / (2ULL << 20));
	gmem_dma_mapper_destroy(vm, mapper);
	fake_free(&f);
	gmem_destroy(vm);
	close(vm_fd);
	printf("  16 GiB fully shared: 1 mapping (exact), 7680 for 15 GiB plugged (2 MiB blocks)\n");
}

static void checkerboard(void)
{
	const uint64_t ram = 64ULL << 20;
	struct gmem_dma_mapper_config cfg = { .size = sizeof(cfg) };
	struct gmem_dma_mapper *mapper;
	struct gmem_vm *vm;
	struct fake f;
	uint64_t p;
	int vm_fd;

	vm = shared_guest(ram, &vm_fd, &f, &cfg, &mapper);
	for (p = 1; p < ram / PG; p += 2) {
		f.x0 = p * PG;
		f.x1 = f.x0 + PG;
		TEST_ASSERT_EQ(gmem_convert(vm, p * PG, PG, GMEM_PRIVATE), 1);
	}
	TEST_ASSERT_EQ(live_of(mapper), ram / PG / 2);
	TEST_ASSERT_EQ(f.nr, ram / PG / 2);
	/* Sharing everything merges it all back into one. */
	f.x0 = 0;
	f.x1 = ram;
	TEST_ASSERT_EQ(gmem_convert(vm, 0, ram, GMEM_SHARED), ram / PG / 2);
	TEST_ASSERT_EQ(live_of(mapper), 1);
	check_backend(&f);
	test_audit(vm);
	gmem_dma_mapper_destroy(vm, mapper);
	fake_free(&f);
	gmem_destroy(vm);
	close(vm_fd);
}

static void bad_config(void)
{
	struct gmem_dma_mapper_config cfg = { .size = sizeof(cfg), .ops = &fake_exact_ops };
	struct gmem_dma_ops no_unmap = { .map = fake_map };
	struct gmem_dma_mapper *mapper;
	struct gmem_vm *vm;
	int vm_fd;

	vm_fd = test_create_vm();
	vm = test_create_gmem(vm_fd, 2ULL << 20, GMEM_MODE_DISCARD,
			      GMEM_PRIVATE, NULL, NULL);
	TEST_ASSERT_EQ(gmem_dma_mapper_create(vm, NULL, &mapper), -EINVAL);
	cfg.ops = &no_unmap;
	TEST_ASSERT_EQ(gmem_dma_mapper_create(vm, &cfg, &mapper), -EINVAL);
	cfg.ops = &fake_type1_ops;
	cfg.block_size = 3 * PG;
	TEST_ASSERT_EQ(gmem_dma_mapper_create(vm, &cfg, &mapper), -EINVAL);
	cfg.block_size = 2048;
	TEST_ASSERT_EQ(gmem_dma_mapper_create(vm, &cfg, &mapper), -EINVAL);
	gmem_destroy(vm);
	close(vm_fd);
}

int main(void)
{
	uint64_t seed = test_seed("GMEM_TEST_SEED", 0x5eed0d3a);

	test_require_gmem();
	bad_config();
	random_run(GMEM_MODE_DISCARD, 0, seed);
	random_run(GMEM_MODE_IN_PLACE, 0, seed + 1);
	random_run(GMEM_MODE_DISCARD, 16 * PG, seed + 2);
	random_run(GMEM_MODE_IN_PLACE, 64 * PG, seed + 3);
	TEST_ASSERT(total_refused > 0 && total_failed > 0);
	TEST_ASSERT(total_splits > 0 && total_merges > 0);
	checkerboard();
	scale_16g();
	printf("ok\n");
	return 0;
}
