/* SPDX-License-Identifier: MIT */
//@ run: 0 -- rounds=300
//@ run: 0 --conversion in-place -- rounds=300
//@ run: 0 --vcpus 2 --dmatest external --init-shared -- rounds=200
/*
 * A guest that a snapshot and restore must not disturb
 * (tests/test_gmvm_restore.sh snapshots it at random moments, restores,
 * snapshots the restored VM, and so on): every vCPU keeps converting the
 * pages of its own area, writing patterns through the view of their
 * state, and checking pages against its model (state and content per
 * page), through both its own reads and the DMA device (CHECKSUM reaches
 * exactly the shared pages, with their content).  vCPU 0 also keeps one
 * shared page pinned for the whole run, and checks now and then that a
 * conversion of it to private is refused busy (-11): the pin must
 * survive a restore.  Registers, the stack and the model itself live in
 * the snapshot like everything else, so any state lost or changed shows
 * up as a failed check (status 1) or a wrong final status.
 *
 * Arguments: rounds=N steps per vCPU (default 2000), status=S the exit
 * status at the end (default 0, so that a restored run can be told from
 * a fresh one), seed=N.  vCPU 0 prints "ready" once set up, then "done"
 * and exits when every vCPU is done.
 */
#include "guest.h"

#define MAX_CPUS 8
#define NPAGES 16

struct cpu_area {
	uint64_t base;
	uint8_t shared[NPAGES];
	uint8_t fill[NPAGES];	/* every byte of the page, 0 = zeros */
	struct rng rng;
};

static struct cpu_area cpus[MAX_CPUS];
static uint64_t area;
static unsigned int finished;

static uint64_t pg(const struct cpu_area *c, unsigned int i)
{
	return c->base + (uint64_t)i * PAGE_SIZE;
}

static volatile uint8_t *view(const struct cpu_area *c, unsigned int i)
{
	return c->shared[i] ? gpa_shared(pg(c, i)) : gpa_private(pg(c, i));
}

static void check_page(struct cpu_area *c, unsigned int i)
{
	volatile uint8_t *v = view(c, i);
	unsigned int k, off;
	uint32_t sum = 0;
	int s;

	for (k = 0; k < 4; k++) {
		off = (unsigned int)rng_below(&c->rng, PAGE_SIZE);
		GUEST_ASSERT_MSG(v[off] == c->fill[i],
				 "page %u (%s) byte %u reads %#x, want %#x", i,
				 c->shared[i] ? "shared" : "private", off,
				 v[off], c->fill[i]);
	}
	if (!rng_chance(&c->rng, 20))
		return;
	s = dma_checksum(pg(c, i), PAGE_SIZE, &sum);
	if (!c->shared[i])
		GUEST_ASSERT_MSG(s == GM_DMA_FAULT,
				 "private page %u: DMA status %d", i, s);
	else
		GUEST_ASSERT_MSG(s == GM_DMA_OK &&
				 sum == (uint32_t)c->fill[i] * PAGE_SIZE,
				 "shared page %u: DMA status %d sum %u", i, s,
				 sum);
}

/* vCPU 0's page 0 is pinned: it must stay shared. */
static bool pinned(unsigned int cpu, unsigned int i)
{
	return cpu == 0 && i == 0;
}

static void step(struct cpu_area *c, unsigned int cpu)
{
	unsigned int i = (unsigned int)rng_below(&c->rng, NPAGES);
	unsigned int op = (unsigned int)rng_below(&c->rng, 100);
	uint8_t b;

	if (op < 40 && !pinned(cpu, i)) {
		bool to = !c->shared[i];

		GUEST_ASSERT_EQ(to ? to_shared(pg(c, i), 1) :
				     to_private(pg(c, i), 1), 0);
		c->shared[i] = to;
		c->fill[i] = after_conversion(c->fill[i]);
	} else if (op < 80) {
		b = (uint8_t)(1 + rng_below(&c->rng, 255));
		memset((void *)view(c, i), b, PAGE_SIZE);
		c->fill[i] = b;
	} else if (op < 85 && cpu == 0) {
		GUEST_ASSERT_EQ(to_private(pg(c, 0), 1), -11);
	}
	check_page(c, (unsigned int)rng_below(&c->rng, NPAGES));
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	uint64_t rounds = arg_u64("rounds", 2000), n;
	unsigned int ncpus = bi->nr_vcpus < MAX_CPUS ? bi->nr_vcpus : MAX_CPUS;
	struct cpu_area *c = &cpus[cpu];
	unsigned int i;

	if (cpu >= MAX_CPUS)
		return 0;
	if (cpu == 0)
		store_release(&area,
			      test_alloc((uint64_t)MAX_CPUS * NPAGES * PAGE_SIZE,
					 PAGE_SIZE));
	while (!load_acquire(&area))
		cpu_relax();
	c->base = area + (uint64_t)cpu * NPAGES * PAGE_SIZE;
	rng_seed(&c->rng, arg_u64("seed", 1) * 1000 + cpu);
	/* A known start: every page private and zero. */
	if (gm_init_shared())
		GUEST_ASSERT_EQ(to_private(c->base, NPAGES), 0);
	for (i = 0; i < NPAGES; i++)
		memset(gpa_private(pg(c, i)), 0, PAGE_SIZE);
	if (cpu == 0) {
		GUEST_ASSERT_EQ(to_shared(pg(c, 0), 1), 0);
		c->shared[0] = 1;
		c->fill[0] = after_conversion(0);
		GUEST_ASSERT_EQ(dma_pin(pg(c, 0), PAGE_SIZE), GM_DMA_OK);
		puts("ready");
	}
	for (n = 0; n < rounds; n++)
		step(c, cpu);
	for (i = 0; i < NPAGES; i++)
		check_page(c, i);
	atomic_fetch_add(&finished, 1);
	if (cpu != 0)
		return 0;
	while (load_acquire(&finished) < ncpus)
		cpu_relax();
	GUEST_ASSERT_EQ(dma_unpin(pg(c, 0), PAGE_SIZE), GM_DMA_OK);
	puts("done");
	gexit((int)arg_u64("status", 0));
}
