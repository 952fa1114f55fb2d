/* SPDX-License-Identifier: MIT */
/*
 * What the tests of memory made of several RAM regions share
 * (test_gmem_regions, the hand-written cases; test_gmem_regions_random,
 * the random walk): an 8 MiB GPA space whose regions are created with
 * libgmem-checked slots (a slot_table) and recorded hooks (a recorder);
 * the audit after a change; checks that every callback and every DMA
 * mapping stays inside one region.  Each test program has its own copy of
 * this state (one program, one VM at a time).
 */
#ifndef GMEM_REGIONS_FIXTURE_H
#define GMEM_REGIONS_FIXTURE_H

#include <unistd.h>

#include "fake_iommu.h"

#define PG GMEM_PAGE_SIZE
#define MiB (1ULL << 20)
#define MAX_GPA (8 * MiB)
#define NPAGES (MAX_GPA / PG)

static int vm_fd = -1;
static struct slot_table slots;
static struct recorder rec;

struct rgn {
	uint64_t gpa, len;
};

static inline struct gmem_region_config region_config(uint64_t gpa,
							uint64_t len)
{
	/* Without KVM a memfd stands in for the guest_memfd: the caller
	 * closes it once libgmem has its dup. */
	return GMEM_INIT(struct gmem_region_config, .gpa = gpa, .len = len,
			 .private_fd = vm_fd < 0 ? test_memfd(len) : -1,
			 .shared_fd = -1);
}

static inline void close_config_fds(struct gmem_region_config *rc)
{
	if (rc->private_fd >= 0)
		close(rc->private_fd);
	rc->private_fd = -1;
}

static inline struct gmem_vm *create(enum gmem_mode mode,
				     enum gmem_state initial,
				     const struct rgn *r, unsigned int nr)
{
	struct gmem_region_config rc[8];
	struct gmem_config cfg;
	struct gmem_vm *vm;
	unsigned int i;
	int err;

	for (i = 0; i < nr; i++)
		rc[i] = region_config(r[i].gpa, r[i].len);
	cfg = GMEM_INIT(struct gmem_config, .vm_fd = vm_fd, .mode = mode,
			.initial_state = initial, .max_gpa = MAX_GPA,
			.regions = rc, .nr_regions = nr,
			.set_slot = slot_table_set, .slot_data = &slots,
			.platform = &recorder_platform_ops,
			.platform_data = &rec);
	if (vm_fd >= 0) {
		enum gmem_layout layout;

		TEST_ASSERT_EQ(gmem_probe_gating(&layout), 0);
		cfg.layout = layout;
	}
	err = gmem_create(&cfg, &vm);
	for (i = 0; i < nr; i++)
		close_config_fds(&rc[i]);
	if (err)
		TEST_FAIL("gmem_create: %s", strerror(-err));
	return vm;
}

/* gmem_audit(); a violation fails the test, naming the caller's line. */
static inline void audit_at(struct gmem_vm *vm, int line)
{
	char msg[512];
	int err = gmem_audit(vm, msg, sizeof(msg));

	if (err)
		TEST_FAIL("audit after line %d: %s (%s)", line, msg,
			  strerror(-err));
}

#define audit(vm) audit_at(vm, __LINE__)

/* Is [gpa, gpa + len) inside one of @r? */
static inline bool inside_one(const struct rgn *r, unsigned int nr,
			      uint64_t gpa, uint64_t len)
{
	unsigned int i;

	for (i = 0; i < nr; i++)
		if (gpa >= r[i].gpa && gpa + len <= r[i].gpa + r[i].len)
			return true;
	return false;
}

/* Every callback recorded since @from stays inside one region. */
static inline void expect_events_inside(const struct rgn *r,
					unsigned int nr, size_t from)
{
	size_t i;

	pthread_mutex_lock(&rec.lock);
	for (i = from; i < rec.nr; i++)
		if (!inside_one(r, nr, rec.ev[i].offset, rec.ev[i].len))
			TEST_FAIL("callback %d on [%#llx, +%#llx) crosses a "
				  "region boundary or a hole", rec.ev[i].kind,
				  (unsigned long long)rec.ev[i].offset,
				  (unsigned long long)rec.ev[i].len);
	pthread_mutex_unlock(&rec.lock);
}

struct map_check {
	const struct rgn *r;
	unsigned int nr;
};

static inline int mapping_inside(void *arg, uint64_t iova, uint64_t len)
{
	struct map_check *c = arg;

	if (!inside_one(c->r, c->nr, iova, len))
		TEST_FAIL("DMA mapping [%#llx, +%#llx) crosses a region",
			  (unsigned long long)iova, (unsigned long long)len);
	return 0;
}

static inline void check_mapper(struct gmem_dma_mapper *m, struct fake *f,
				const struct rgn *r, unsigned int nr)
{
	struct map_check c = { r, nr };
	char msg[256];

	if (!m)
		return;
	check_backend(f);
	TEST_ASSERT_EQ(gmem_dma_mapper_for_each(m, mapping_inside, &c), 0);
	if (gmem_dma_mapper_validate(m, msg, sizeof(msg)))
		TEST_FAIL("mapper: %s", msg);
}

/* Run @fn in each mode on the VM of this host's KVM (or none: vm_fd -1). */
static inline void regions_run(void (*fn)(enum gmem_mode mode))
{
	vm_fd = test_create_vm();
	if (vm_fd < 0)
		printf("no KVM: memfd backings, slots recorded\n");
	test_each_mode(fn);
	if (vm_fd >= 0)
		close(vm_fd);
	vm_fd = -1;
}

#endif /* GMEM_REGIONS_FIXTURE_H */
