/* SPDX-License-Identifier: MIT */
/*
 * Memory made of several RAM regions: a random walk against a per-page
 * model over regions and holes, with regions removed and added back.
 * Conversions and plug changes near region boundaries most of the time;
 * one touching a hole is -EINVAL and no callback runs; every callback and
 * DMA mapping stays inside one region; the listener's mappings and the
 * platform's prepared pages equal the model after every step; the audit
 * every 64 steps.  The case-by-case tests are test_gmem_regions.c.
 *
 *   test_gmem_regions_random [OPS]     (3000 per mode by default;
 *                                       GMEM_REGIONS_SEED picks the walk)
 */
#include "regions_fixture.h"

/* ---- random walk against a model ----------------------------------------------- */

#define M_HOLE 0xff

static uint8_t m_state[NPAGES], m_plugged[NPAGES];

static const struct rgn rr[] = {
	{ 0, 3 * MiB }, { 3 * MiB, MiB }, { 5 * MiB, MiB }, { 6 * MiB, MiB / 2 },
};
static bool rr_present[4];

static unsigned int present_regions(struct rgn *out)
{
	unsigned int i, n = 0;

	for (i = 0; i < 4; i++)
		if (rr_present[i])
			out[n++] = rr[i];
	return n;
}

static void model_region(unsigned int i, bool present, uint8_t initial)
{
	uint64_t p;

	rr_present[i] = present;
	for (p = rr[i].gpa / PG; p < (rr[i].gpa + rr[i].len) / PG; p++) {
		m_state[p] = present ? initial : M_HOLE;
		m_plugged[p] = 1;
	}
}

static void model_check(struct gmem_vm *vm)
{
	uint64_t p, rs, rl;
	int st, pl;

	pthread_mutex_lock(&rec.lock);
	for (p = 0; p < NPAGES; p++) {
		bool hole = m_state[p] == M_HOLE;

		if (rec.mapped[p] != (!hole && m_state[p] == GMEM_SHARED &&
				      m_plugged[p]))
			TEST_FAIL("page %#llx: listener mapped %d",
				  (unsigned long long)p, rec.mapped[p]);
		if (rec.prepared[p] != (!hole && m_state[p] == GMEM_PRIVATE &&
					m_plugged[p]))
			TEST_FAIL("page %#llx: prepared %d",
				  (unsigned long long)p, rec.prepared[p]);
	}
	pthread_mutex_unlock(&rec.lock);
	for (p = 0; p < NPAGES; p += rl / PG) {
		st = gmem_state_at(vm, p * PG, &rs, &rl);
		if (m_state[p] == M_HOLE) {
			TEST_ASSERT_EQ(st, -EINVAL);
			TEST_ASSERT_EQ(gmem_plugged_at(vm, p * PG, NULL, NULL),
				       -EINVAL);
			rl = PG;
			continue;
		}
		TEST_ASSERT_EQ(st, m_state[p]);
		TEST_ASSERT_EQ(rs, p * PG);	/* walking run by run */
		for (; rs < p * PG + rl; rs += PG)
			TEST_ASSERT_EQ(m_state[rs / PG], st);
		pl = gmem_plugged_at(vm, p * PG, NULL, NULL);
		TEST_ASSERT_EQ(pl, m_plugged[p]);
	}
}

static void test_random(enum gmem_mode mode, unsigned int ops)
{
	struct gmem_dma_mapper_config mcfg = { .size = sizeof(mcfg) };
	struct gmem_dma_mapper *m;
	struct gmem_listener *l;
	struct gmem_vm *vm;
	struct fake f;
	struct rgn cur[4];
	uint64_t seed = test_seed("GMEM_REGIONS_SEED", 0x5eed2);
	unsigned int i, nr, einval = 0, done = 0;
	/* Shared: regions added back populate the listeners and mapper. */
	const uint8_t initial = GMEM_SHARED;

	printf("random (%s): %u ops\n", gmem_mode_name(mode), ops);
	recorder_init(&rec, MAX_GPA);
	slot_table_init(&slots);
	memset(m_state, M_HOLE, sizeof(m_state));
	memset(m_plugged, 0, sizeof(m_plugged));
	for (i = 0; i < 4; i++)
		model_region(i, true, initial);
	vm = create(mode, (enum gmem_state)initial, rr, 4);
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops, &rec,
					      &l), 0);
	fake_init(&f, MAX_GPA, 0);
	mcfg.ops = &fake_exact_ops;
	mcfg.data = &f;
	TEST_ASSERT_EQ(gmem_dma_mapper_create(vm, &mcfg, &m), 0);
	model_check(vm);

	for (i = 0; i < ops; i++) {
		uint64_t r = test_rand(&seed), start, len, p, changed = 0;
		unsigned int op = (unsigned int)(r % 16), k;
		bool hole = false, to;
		size_t from = rec.nr;
		int64_t ret;

		nr = present_regions(cur);
		if (op == 0) {
			/* Remove or add back a region (not region 0). */
			k = 1 + (unsigned int)(test_rand(&seed) % 3);
			if (rr_present[k]) {
				TEST_ASSERT_EQ(gmem_region_remove(vm, rr[k].gpa),
					       0);
				model_region(k, false, initial);
			} else {
				struct gmem_region_config rc =
					region_config(rr[k].gpa, rr[k].len);

				TEST_ASSERT_EQ(gmem_region_add(vm, &rc), 0);
				close_config_fds(&rc);
				model_region(k, true, initial);
			}
			expect_events_inside(rr, 4, from);
			audit(vm);
			model_check(vm);
			continue;
		}
		/* A range near a region boundary most of the time. */
		if (test_rand(&seed) % 4) {
			uint64_t b = rr[test_rand(&seed) % 4].gpa / PG;

			start = b - (b ? test_rand(&seed) % (b < 64 ? b : 64) : 0);
		} else {
			start = test_rand(&seed) % NPAGES;
		}
		len = 1 + test_rand(&seed) % 300;
		if (start + len > NPAGES)
			len = NPAGES - start;
		to = (test_rand(&seed) & 1) != 0;
		for (p = start; p < start + len; p++)
			hole |= m_state[p] == M_HOLE;
		if (op < 10) {
			ret = gmem_convert(vm, start * PG, len * PG,
					   to ? GMEM_SHARED : GMEM_PRIVATE);
		} else {
			ret = gmem_set_plugged(vm, start * PG, len * PG, to);
		}
		if (hole) {
			if (ret != -EINVAL)
				TEST_FAIL("op %u on [%#llx, +%#llx) touching a "
					  "hole: %lld", i,
					  (unsigned long long)(start * PG),
					  (unsigned long long)(len * PG),
					  (long long)ret);
			TEST_ASSERT_EQ(rec.nr, from);
			einval++;
		} else {
			for (p = start; p < start + len; p++) {
				uint8_t *v = op < 10 ? &m_state[p] :
						       &m_plugged[p];

				changed += *v != to;
				*v = to;
			}
			if (ret != (int64_t)changed)
				TEST_FAIL("op %u (%s) on [%#llx, +%#llx): %lld, "
					  "want %llu", i,
					  op < 10 ? "convert" : "plug",
					  (unsigned long long)(start * PG),
					  (unsigned long long)(len * PG),
					  (long long)ret,
					  (unsigned long long)changed);
			done++;
		}
		expect_events_inside(cur, nr, from);
		if (rec.nr > 4096)
			recorder_reset_events(&rec);
		model_check(vm);
		check_mapper(m, &f, cur, nr);
		if (i % 64 == 0)
			audit(vm);
	}
	audit(vm);
	printf("  %u changes, %u refused at a hole\n", done, einval);
	TEST_ASSERT(einval > ops / 20 && done > ops / 4);
	gmem_dma_mapper_destroy(vm, m);
	fake_free(&f);
	gmem_listener_unregister(vm, l);
	gmem_destroy(vm);
	TEST_ASSERT_EQ(slot_table_nr_live(&slots), 0);
	recorder_free(&rec);
}

static unsigned int nr_ops = 3000;

static void test_random_mode(enum gmem_mode mode)
{
	test_random(mode, nr_ops);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		nr_ops = (unsigned int)atoi(argv[1]);
	regions_run(test_random_mode);
	printf("ok\n");
	return T_EXIT_PASS;
}
