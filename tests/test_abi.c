/* SPDX-License-Identifier: MIT */
/*
 * Extensible structs (gmem.h): a caller built against an older, smaller
 * struct keeps working and the library never touches a byte past the
 * caller's size; a larger struct is accepted when the bytes the library
 * does not know are zero, else -E2BIG; size 0 is -EINVAL.  And
 * gmem_version() is this header's GMEM_VERSION.
 */
#include <stddef.h>
#include <unistd.h>

#include "test_util.h"

#define PG GMEM_PAGE_SIZE
#define MiB (1ULL << 20)
#define CANARY 0xa5

/* A struct followed by canary bytes the library must not touch. */
#define PADDED(type) struct { type s; uint8_t pad[64]; }

static void expect_canary(const void *p, size_t from, size_t to)
{
	const uint8_t *b = p;
	size_t i;

	for (i = from; i < to; i++)
		if (b[i] != CANARY)
			TEST_FAIL("byte %zu past the caller's size was written "
				  "(%#x)", i, b[i]);
}

static struct gmem_vm *create(struct gmem_config *cfg,
			      struct gmem_region_config *rc, int vm_fd)
{
	struct gmem_vm *vm;

	test_fill_config(cfg, rc, vm_fd, MiB, GMEM_MODE_DISCARD, GMEM_PRIVATE);
	TEST_ASSERT_EQ(gmem_create(cfg, &vm), 0);
	return vm;
}

static void test_stats(struct gmem_vm *vm)
{
	const size_t old = offsetof(struct gmem_stats, nr_regions);
	PADDED(struct gmem_stats) st;
	struct {
		struct gmem_stats s;
		uint64_t newer[4];
	} big;

	/* An old caller: no nr_regions and later fields. */
	memset(&st, CANARY, sizeof(st));
	st.s.size = (uint32_t)old;
	TEST_ASSERT_EQ(gmem_get_stats(vm, &st.s), 0);
	TEST_ASSERT_EQ(st.s.size, old);	/* kept */
	TEST_ASSERT_EQ(st.s.pages_private, MiB / PG - 1);
	TEST_ASSERT_EQ(st.s.pages_shared, 1);
	TEST_ASSERT_EQ(st.s.conversions_to_shared, 1);
	expect_canary(&st, old, sizeof(st));
	/* The smallest: just the size. */
	memset(&st, CANARY, sizeof(st));
	st.s.size = sizeof(uint32_t);
	TEST_ASSERT_EQ(gmem_get_stats(vm, &st.s), 0);
	expect_canary(&st, sizeof(uint32_t), sizeof(st));
	/* Size 0: -EINVAL, nothing written. */
	memset(&st, CANARY, sizeof(st));
	st.s.size = 0;
	TEST_ASSERT_EQ(gmem_get_stats(vm, &st.s), -EINVAL);
	expect_canary(&st, sizeof(uint32_t), sizeof(st));
	/* A newer caller: fields the library does not know read zero. */
	memset(&big, CANARY, sizeof(big));
	big.s.size = sizeof(big);
	TEST_ASSERT_EQ(gmem_get_stats(vm, &big.s), 0);
	TEST_ASSERT_EQ(big.s.nr_regions, 1);
	TEST_ASSERT_EQ(big.s.pages_shared, 1);
	TEST_ASSERT_EQ(big.newer[0] | big.newer[1] | big.newer[2] |
		       big.newer[3], 0);
	/* The current size. */
	memset(&st, CANARY, sizeof(st));
	st.s.size = sizeof(st.s);
	TEST_ASSERT_EQ(gmem_get_stats(vm, &st.s), 0);
	TEST_ASSERT_EQ(st.s.nr_regions, 1);
	expect_canary(&st, sizeof(st.s), sizeof(st));
}

static void test_region_info(struct gmem_vm *vm)
{
	const size_t old = offsetof(struct gmem_region_info, private_addr);
	PADDED(struct gmem_region_info) info;

	memset(&info, CANARY, sizeof(info));
	info.s.size = (uint32_t)old;
	TEST_ASSERT_EQ(gmem_region_get(vm, 0, &info.s), 0);
	TEST_ASSERT_EQ(info.s.gpa, 0);
	TEST_ASSERT_EQ(info.s.len, MiB);
	expect_canary(&info, old, sizeof(info));
	memset(&info, CANARY, sizeof(info));
	info.s.size = 0;
	TEST_ASSERT_EQ(gmem_region_find(vm, 0, &info.s), -EINVAL);
}

/* A DMA map or a listener populate: one more mapping in *data. */
static int nop_map(void *data, uint64_t addr, uint64_t len)
{
	++*(int *)data;
	return 0;
}

/* A DMA unmap or a listener discard: one fewer. */
static int nop_unmap(void *data, uint64_t addr, uint64_t len,
		     unsigned int flags)
{
	--*(int *)data;
	return 0;
}

/* Ops tables and DMA stats of an older caller. */
static void test_ops_and_dma_stats(struct gmem_vm *vm)
{
	const size_t old = offsetof(struct gmem_dma_stats, refused);
	/* Older tables: no cut/merge/report, no listener report.  Garbage
	 * past .size must not be read: the pads hold non-NULL junk. */
	PADDED(struct gmem_dma_ops) dops;
	PADDED(struct gmem_listener_ops) lops;
	PADDED(struct gmem_dma_stats) st;
	struct gmem_dma_mapper_config mcfg = { .size = sizeof(mcfg) };
	struct gmem_dma_mapper *m;
	struct gmem_listener *l;
	int maps = 0, pops = 0;

	memset(&dops, CANARY, sizeof(dops));
	dops.s.size = offsetof(struct gmem_dma_ops, cut);
	dops.s.map = nop_map;
	dops.s.unmap = nop_unmap;
	mcfg.ops = &dops.s;
	mcfg.data = &maps;
	TEST_ASSERT_EQ(gmem_dma_mapper_create(vm, &mcfg, &m), 0);
	TEST_ASSERT_EQ(maps, 1);	/* the one shared page */
	memset(&lops, CANARY, sizeof(lops));
	lops.s.size = offsetof(struct gmem_listener_ops, report);
	lops.s.populate = nop_map;
	lops.s.discard = nop_unmap;
	TEST_ASSERT_EQ(gmem_listener_register(vm, &lops.s, &pops, &l), 0);
	TEST_ASSERT_EQ(pops, 1);
	TEST_ASSERT_EQ(gmem_convert(vm, 8 * PG, 2 * PG, GMEM_SHARED), 2);
	TEST_ASSERT_EQ(pops, 2);
	test_audit(vm);

	memset(&st, CANARY, sizeof(st));
	st.s.size = (uint32_t)old;
	TEST_ASSERT_EQ(gmem_dma_mapper_get_stats(m, &st.s), 0);
	TEST_ASSERT_EQ(st.s.size, old);
	TEST_ASSERT_EQ(st.s.live, 2);
	TEST_ASSERT_EQ(st.s.maps, 2);
	expect_canary(&st, old, sizeof(st));
	memset(&st, CANARY, sizeof(st));
	st.s.size = 0;
	TEST_ASSERT_EQ(gmem_dma_mapper_get_stats(m, &st.s), -EINVAL);
	expect_canary(&st, sizeof(uint32_t), sizeof(st));

	gmem_listener_unregister(vm, l);
	TEST_ASSERT_EQ(pops, 0);
	gmem_dma_mapper_destroy(vm, m);
	TEST_ASSERT_EQ(maps, 0);
	TEST_ASSERT_EQ(gmem_convert(vm, 8 * PG, 2 * PG, GMEM_PRIVATE), 2);
}

static void test_config(int vm_fd)
{
	struct gmem_region_config rc;
	struct gmem_config cfg;
	struct gmem_vm *vm;
	int err;
	struct {
		struct gmem_config c;
		uint64_t newer[2];
	} big;
	struct {
		struct gmem_region_config r;
		uint64_t newer;
	} bigrc;

	/* An old config without reclaim_max_pending works. */
	test_fill_config(&cfg, &rc, vm_fd, MiB, GMEM_MODE_DISCARD,
			 GMEM_SHARED);
	cfg.size = offsetof(struct gmem_config, reclaim_max_pending);
	cfg.flags = GMEM_CONFIG_DEFERRED_RECLAIM;
	err = gmem_create(&cfg, &vm);
	{
		TEST_ASSERT_EQ(err, 0);
		TEST_ASSERT_EQ(gmem_ram_size(vm), MiB);
		TEST_ASSERT_EQ(gmem_convert(vm, 0, 16 * PG, GMEM_PRIVATE),
			       16);
		TEST_ASSERT_EQ(gmem_reclaim_drain(vm), 0);
		test_audit(vm);
		gmem_destroy(vm);
	}
	cfg.size = sizeof(cfg);
	/* Size 0, or too small to hold the fields every version has. */
	cfg.size = 0;
	TEST_ASSERT_EQ(gmem_create(&cfg, &vm), -EINVAL);
	cfg.size = offsetof(struct gmem_config, mode);
	TEST_ASSERT_EQ(gmem_create(&cfg, &vm), -EINVAL);
	cfg.size = sizeof(uint32_t);
	TEST_ASSERT_EQ(gmem_create(&cfg, &vm), -EINVAL);
	/* Larger: zero unknown bytes accepted, non-zero -E2BIG. */
	memset(&big, 0, sizeof(big));
	big.c = cfg;
	big.c.size = sizeof(big);
	big.c.flags = 0;
	TEST_ASSERT_EQ(gmem_create(&big.c, &vm), 0);
	gmem_destroy(vm);
	big.newer[1] = 1ULL << 63;
	TEST_ASSERT_EQ(gmem_create(&big.c, &vm), -E2BIG);
	big.newer[1] = 0;
	big.newer[0] = 1;
	TEST_ASSERT_EQ(gmem_create(&big.c, &vm), -E2BIG);
	/* The same for a region: larger with zeros, then -E2BIG. */
	memset(&bigrc, 0, sizeof(bigrc));
	bigrc.r = rc;
	bigrc.r.size = sizeof(bigrc);
	cfg = big.c;
	cfg.size = sizeof(cfg);
	cfg.regions = &bigrc.r;
	TEST_ASSERT_EQ(gmem_create(&cfg, &vm), 0);
	/* A hot-plugged region with an unknown non-zero field. */
	{
		struct gmem_region_config r2 = rc;

		memset(&bigrc, 0, sizeof(bigrc));
		r2.gpa = 0;
		bigrc.r = r2;
		bigrc.r.size = sizeof(bigrc);
		bigrc.newer = 7;
		TEST_ASSERT_EQ(gmem_region_add(vm, &bigrc.r), -E2BIG);
		bigrc.r.size = 0;
		TEST_ASSERT_EQ(gmem_region_add(vm, &bigrc.r), -EINVAL);
	}
	test_audit(vm);
	gmem_destroy(vm);
	bigrc.newer = 7;
	bigrc.r = rc;
	bigrc.r.size = sizeof(bigrc);
	TEST_ASSERT_EQ(gmem_create(&cfg, &vm), -E2BIG);
	if (rc.private_fd >= 0)
		close(rc.private_fd);
}

int main(void)
{
	struct gmem_region_config rc;
	struct gmem_config cfg;
	struct gmem_vm *vm;
	int vm_fd = test_create_vm();

	TEST_ASSERT_EQ(gmem_version(), GMEM_VERSION);
	TEST_ASSERT_EQ(GMEM_VERSION, GMEM_VERSION_CODE(GMEM_VERSION_MAJOR,
						       GMEM_VERSION_MINOR,
						       GMEM_VERSION_PATCH));
	TEST_ASSERT_EQ(GMEM_VERSION_MAJOR, 2);
	vm = create(&cfg, &rc, vm_fd);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, PG, GMEM_SHARED), 1);
	test_stats(vm);
	test_region_info(vm);
	test_ops_and_dma_stats(vm);
	gmem_destroy(vm);
	if (rc.private_fd >= 0)
		close(rc.private_fd);
	test_config(vm_fd);
	if (vm_fd >= 0)
		close(vm_fd);
	printf("ok\n");
	return T_EXIT_PASS;
}
