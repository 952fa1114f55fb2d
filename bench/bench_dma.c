/* SPDX-License-Identifier: MIT */
/*
 * DMA mappings: libgmem's mapper beside one mapping per 4 KiB page.
 *
 * Baseline: a listener that maps every shared page on its own, as QEMU
 * does for guest_memfd (its RamDiscardManager granularity is the page, so
 * that VFIO type1, which cannot unmap part of a mapping, never has to).
 * It exists only in this benchmark, and runs on the same guest memory in
 * the same run.  Both drive the same counting backend (a map is a table
 * entry, as an IOMMU's would be).
 *
 * Cases: a 16 GiB guest fully shared (memory untouched), a 1 GiB guest
 * fully shared, and a 4 KiB checkerboard over 1 GiB (every other page
 * private: the worst case for any run-based layout).  For each: live
 * mappings and the time to reach that state, for the mapper's exact layout
 * (cut and merge available, as our software IOMMU and the device process),
 * its blocks layout at 2 MiB (VFIO type1 semantics) and the per-page
 * baseline.
 */
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "bench.h"

#define PG 4096ULL

struct counter {
	uint64_t live, max_live, calls;
};

static int c_map(void *data, uint64_t iova, uint64_t len)
{
	struct counter *c = data;

	c->calls++;
	if (++c->live > c->max_live)
		c->max_live = c->live;
	return 0;
}

static int c_unmap(void *data, uint64_t iova, uint64_t len,
		   unsigned int flags)
{
	struct counter *c = data;

	c->calls++;
	c->live--;
	return 0;
}

static int c_cut(void *data, uint64_t m_iova, uint64_t m_len, uint64_t iova,
		 uint64_t len, unsigned int flags)
{
	struct counter *c = data;

	c->calls++;
	if (m_iova < iova && iova + len < m_iova + m_len)
		c->live++;
	else if (m_iova == iova && len == m_len)
		c->live--;
	return 0;
}

static int c_merge(void *data, uint64_t iova, uint64_t len)
{
	struct counter *c = data;

	/* The mapper tracks how many it joins; a counting backend only
	 * needs the total, read back from the mapper's stats. */
	c->calls++;
	return 0;
}

static const struct gmem_dma_ops exact_ops = {
	.size = sizeof(struct gmem_dma_ops),
	.map = c_map, .unmap = c_unmap, .cut = c_cut, .merge = c_merge,
};

static const struct gmem_dma_ops type1_ops = {
	.size = sizeof(struct gmem_dma_ops),
	.map = c_map, .unmap = c_unmap,
};

/* ---- the baseline: one mapping per page --------------------------------- */

static int page_populate(void *data, uint64_t off, uint64_t len)
{
	uint64_t p;

	for (p = off; p < off + len; p += PG)
		c_map(data, p, PG);
	return 0;
}

static int page_discard(void *data, uint64_t off, uint64_t len,
			unsigned int flags)
{
	uint64_t p;

	for (p = off; p < off + len; p += PG)
		c_unmap(data, p, PG, flags);
	return 0;
}

static const struct gmem_listener_ops per_page_ops = {
	.size = sizeof(struct gmem_listener_ops),
	.populate = page_populate,
	.discard = page_discard,
};

/* ---- cases -------------------------------------------------------------- */

enum kind { EXACT, BLOCKS, PER_PAGE, NR_KINDS };

static const char *const kind_name[NR_KINDS] = {
	"mapper, exact", "mapper, 2 MiB blocks", "per 4 KiB page",
};

struct result {
	uint64_t live;
	double ns;	/* attach (replay) + the conversions of the case */
};

/*
 * Attach @kind to a fresh guest of @ram bytes, all shared, then (if
 * @checker) make every other page private; count the mappings.
 */
static struct result run_case(enum kind kind, uint64_t ram, bool checker)
{
	struct gmem_dma_mapper_config cfg = { .size = sizeof(cfg) };
	struct gmem_region_config gmem_rc;
	struct gmem_config gmem_cfg;
	struct gmem_dma_mapper *mapper = NULL;
	struct gmem_listener *l = NULL;
	struct counter c = { 0 };
	struct result r;
	struct gmem_vm *vm;
	double t0;
	uint64_t p;
	int vm_fd;

	/* Without KVM, libgmem runs without a VM: the counts are the same. */
	vm_fd = bench_create_vm();
	bench_gmem_config(&gmem_cfg, &gmem_rc, vm_fd, ram, GMEM_MODE_DISCARD,
			  GMEM_SHARED);
	vm = bench_gmem_create(&gmem_cfg);
	t0 = bench_now_ns();
	if (kind == PER_PAGE) {
		BENCH_ASSERT_EQ(gmem_listener_register(vm, &per_page_ops, &c,
						       &l), 0);
	} else {
		cfg.ops = kind == EXACT ? &exact_ops : &type1_ops;
		cfg.data = &c;
		BENCH_ASSERT_EQ(gmem_dma_mapper_create(vm, &cfg, &mapper), 0);
	}
	if (checker)
		for (p = 1; p < ram / PG; p += 2)
			BENCH_ASSERT_EQ(gmem_convert(vm, p * PG, PG,
						     GMEM_PRIVATE), 1);
	r.ns = bench_now_ns() - t0;
	if (mapper) {
		struct gmem_dma_stats st = { .size = sizeof(st) };

		gmem_dma_mapper_get_stats(mapper, &st);
		r.live = st.live;
		gmem_dma_mapper_destroy(vm, mapper);
	} else {
		r.live = c.live;
		gmem_listener_unregister(vm, l);
	}
	gmem_destroy(vm);
	close(vm_fd);
	return r;
}

static void row(const char *name, const char *key, uint64_t ram, bool checker)
{
	struct result res[NR_KINDS];
	int k;

	for (k = 0; k < NR_KINDS; k++)
		res[k] = run_case((enum kind)k, ram, checker);
	printf("| %s | %llu | %llu | %llu | %.2g | %.1f ms | %.1f ms |\n",
	       name, (unsigned long long)res[EXACT].live,
	       (unsigned long long)res[BLOCKS].live,
	       (unsigned long long)res[PER_PAGE].live,
	       (double)res[EXACT].live / (double)res[PER_PAGE].live,
	       res[EXACT].ns / 1e6, res[PER_PAGE].ns / 1e6);
	for (k = 0; k < NR_KINDS; k++)
		printf("BENCH dma_%s_%d_live %llu\nBENCH dma_%s_%d_ms %.3f\n",
		       key, k, (unsigned long long)res[k].live, key, k,
		       res[k].ns / 1e6);
}

/*
 * The emulated backend gates each view with mprotect(), so a checkerboard
 * costs one VMA per page per view: vm.max_map_count (65530 by default)
 * must allow it.  Raise it for the run if we may (and put it back), else
 * measure the largest checkerboard that fits.
 */
static uint64_t max_map_count(void)
{
	unsigned long long v = 0;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");

	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

static bool set_max_map_count(uint64_t v)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "w");
	bool ok;

	if (!f)
		return false;
	ok = fprintf(f, "%llu\n", (unsigned long long)v) > 0;
	return fclose(f) == 0 && ok;
}

int main(void)
{
	uint64_t old_max, ram_checker = 1ULL << 30;
	bool raised = false;
	char name[96];

	old_max = max_map_count();
	/* Two views, one VMA per page each, plus the process's own. */
	if (old_max < 2 * (ram_checker / PG) + 65536)
		raised = set_max_map_count(2 * (ram_checker / PG) + 65536);
	while (!raised && ram_checker > (1ULL << 20) &&
	       2 * (ram_checker / PG) + 4096 > old_max)
		ram_checker /= 2;
	printf("## DMA mappings (item 5)\n\n");
	printf("Live DMA mappings once the guest is in the given state, for libgmem's mapper (%s; %s) and the baseline, one mapping per shared 4 KiB page (QEMU's design for guest_memfd), measured on the same guest memory in the same run; time = attaching (replay of the shared runs) plus the conversions of the case.\n\n",
	       kind_name[EXACT], kind_name[BLOCKS]);
	printf("| guest | exact | 2 MiB blocks | per page (baseline) | exact / baseline | time, exact | time, baseline |\n");
	printf("|---|---|---|---|---|---|---|\n");
	row("16 GiB, fully shared", "16g", 16ULL << 30, false);
	row("1 GiB, fully shared", "1g", 1ULL << 30, false);
	snprintf(name, sizeof(name), "%llu MiB, 4 KiB checkerboard%s",
		 (unsigned long long)(ram_checker >> 20),
		 ram_checker < (1ULL << 30) ?
			 " (vm.max_map_count too low for 1 GiB)" : "");
	row(name, "checker", ram_checker, true);
	if (raised)
		set_max_map_count(old_max);
	printf("\nGoal: fewer mappings than one per page wherever shared pages form runs; the checkerboard (no two shared pages adjacent) is the worst case, where every layout needs one mapping per shared page. VFIO type1's default limit is 65,535 mappings.\n");
	return 0;
}
