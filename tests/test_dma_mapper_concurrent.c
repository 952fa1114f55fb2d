/* SPDX-License-Identifier: MIT */
/*
 * The DMA mapper under concurrent conversions and plug changes (also run
 * under TSan: the name says "concurrent").
 *
 * Three threads convert, unplug and plug random ranges, mostly in their own
 * third of RAM (disjoint: libgmem runs them in parallel, and the mapper
 * must serialise the ops that touch a shared mapping at the borders),
 * sometimes anywhere.  Meanwhile a checker thread validates the mapper (its
 * layout against the strict fake backend's mappings) and a churn thread
 * attaches and detaches a second mapper in the blocks layout.  At the end
 * both backends hold exactly the layout of the final shared-and-plugged
 * pages, the audit is clean, and the fakes saw no forbidden op.
 */
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "fake_iommu.h"

#define PG GMEM_PAGE_SIZE
#define RAM (4ULL << 20)
#define NPAGES (RAM / PG)
#define NTHREADS 3
#define ITERS 1500

static struct gmem_vm *vm;
static struct gmem_dma_mapper *mapper;
static atomic_bool stop;
static uint64_t seed;
static unsigned long checks, churns;

static void *converter(void *arg)
{
	uint64_t id = (uint64_t)(uintptr_t)arg, rng = seed + id * 7919;
	uint64_t third = NPAGES / NTHREADS;
	int i;

	for (i = 0; i < ITERS; i++) {
		uint64_t start, len = 1 + test_rand(&rng) % 16;
		uint64_t r = test_rand(&rng) % 100;
		int64_t ret;

		start = r < 10 ? test_rand(&rng) % NPAGES :
				 id * third + test_rand(&rng) % third;
		if (start + len > NPAGES)
			len = NPAGES - start;
		if (r % 3)
			ret = gmem_convert(vm, start * PG, len * PG,
					   test_rand(&rng) & 1 ? GMEM_SHARED :
								 GMEM_PRIVATE);
		else
			ret = gmem_set_plugged(vm, start * PG, len * PG,
					       test_rand(&rng) % 3 != 0);
		TEST_ASSERT(ret >= 0);
	}
	return NULL;
}

static void *checker(void *arg)
{
	char msg[512];

	while (!atomic_load(&stop)) {
		if (gmem_dma_mapper_validate(mapper, msg, sizeof(msg)))
			TEST_FAIL("validate: %s", msg);
		checks++;
		usleep(500);
	}
	return NULL;
}

static void *churn(void *arg)
{
	struct gmem_dma_mapper_config cfg = { .size = sizeof(cfg), .ops = &fake_type1_ops,
					      .block_size = 64 * PG };
	struct gmem_dma_mapper *m2;
	struct fake f2;

	while (!atomic_load(&stop)) {
		fake_init(&f2, RAM, cfg.block_size);
		cfg.data = &f2;
		TEST_ASSERT_EQ(gmem_dma_mapper_create(vm, &cfg, &m2), 0);
		usleep(2000);
		gmem_dma_mapper_destroy(vm, m2);
		TEST_ASSERT_EQ(f2.nr, 0);
		check_backend(&f2);
		fake_free(&f2);
		churns++;
	}
	return NULL;
}

static uint8_t reach[NPAGES];

static int note_extent(void *arg, const struct gmem_extent *e)
{
	uint64_t p;

	for (p = e->gpa / PG; p < (e->gpa + e->len) / PG; p++)
		reach[p] = e->plugged && e->state == GMEM_SHARED;
	return 0;
}

/* The fake holds exactly the maximal runs of reach[] (exact layout). */
static void check_final(struct fake *f)
{
	uint64_t p = 0, e;
	size_t k = 0;

	check_backend(f);
	while (p < NPAGES) {
		if (!reach[p]) {
			p++;
			continue;
		}
		for (e = p + 1; e < NPAGES && reach[e]; e++)
			;
		TEST_ASSERT(k < f->nr);
		TEST_ASSERT_EQ(f->v[k].s, p * PG);
		TEST_ASSERT_EQ(f->v[k].e, e * PG);
		k++;
		p = e;
	}
	TEST_ASSERT_EQ(k, f->nr);
}

static void run(enum gmem_mode mode)
{
	struct gmem_dma_mapper_config cfg = { .size = sizeof(cfg), .ops = &fake_exact_ops };
	pthread_t conv[NTHREADS], chk, ch;
	struct fake f;
	int vm_fd;
	uintptr_t i;

	vm_fd = test_create_vm();
	vm = test_create_gmem(vm_fd, RAM, mode, GMEM_SHARED, NULL, NULL);
	fake_init(&f, RAM, 0);
	cfg.data = &f;
	TEST_ASSERT_EQ(gmem_dma_mapper_create(vm, &cfg, &mapper), 0);
	atomic_store(&stop, false);
	checks = churns = 0;
	TEST_ASSERT_EQ(pthread_create(&chk, NULL, checker, NULL), 0);
	TEST_ASSERT_EQ(pthread_create(&ch, NULL, churn, NULL), 0);
	for (i = 0; i < NTHREADS; i++)
		TEST_ASSERT_EQ(pthread_create(&conv[i], NULL, converter,
					      (void *)i), 0);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(conv[i], NULL);
	atomic_store(&stop, true);
	pthread_join(chk, NULL);
	pthread_join(ch, NULL);

	TEST_ASSERT_EQ(gmem_for_each_extent(vm, 0, RAM, note_extent, NULL),
		       0);
	check_final(&f);
	test_audit(vm);
	printf("  %s: %d x %d changes, %lu validations, %lu mapper churns\n",
	       gmem_mode_name(mode), NTHREADS, ITERS, checks, churns);
	gmem_dma_mapper_destroy(vm, mapper);
	TEST_ASSERT_EQ(f.nr, 0);
	fake_free(&f);
	gmem_destroy(vm);
	close(vm_fd);
}

int main(void)
{
	seed = test_seed("GMEM_TEST_SEED", 0xc0ca);
	test_require_gmem();
	run(GMEM_MODE_DISCARD);
	run(GMEM_MODE_IN_PLACE);
	printf("ok\n");
	return 0;
}
