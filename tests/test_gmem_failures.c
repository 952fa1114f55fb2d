/* SPDX-License-Identifier: MIT */
/*
 * Failures that used to leave something behind or hang (issue 10):
 *
 *  - lock order: a device whose callbacks take the device's own lock while
 *    another of its threads holds that lock and queries libgmem
 *    (gmem_state_at()) must not deadlock, whatever libgmem is doing:
 *    registering or unregistering it (replay), converting, auditing (its
 *    report), removing a region;
 *  - a rollback whose own mprotect fails: the memory is marked broken, the
 *    call fails with -EIO, every later change is refused with -EIO, and
 *    the audit says why - nothing claims a protection the view lacks;
 *  - the DMA mapper's bookkeeping failing (ENOMEM) after nothing was
 *    mapped: the conversion fails and the backend holds exactly what it
 *    held.
 * A deadlock shows as the runner's timeout.
 */
//@ concurrency
#include <unistd.h>

#include "fake_iommu.h"
#include "internal.h"
#include "test_util.h"

#define PG GMEM_PAGE_SIZE
#define RAM (1ULL << 20)

/* ---- lock order ------------------------------------------------------------ */

static pthread_mutex_t dev_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gmem_vm *lvm;
static int stop_querier;	/* atomic */
static struct recorder lrec;

static void *querier(void *arg)
{
	unsigned long n = 0;

	while (!__atomic_load_n(&stop_querier, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&dev_lock);
		/* The device asks libgmem about a page while holding its
		 * own lock: allowed (gmem.h). */
		TEST_ASSERT(gmem_state_at(lvm, (n++ % (RAM / 2 / PG)) * PG, NULL,
					  NULL) >= 0);
		pthread_mutex_unlock(&dev_lock);
	}
	return NULL;
}

static int dev_populate(void *data, uint64_t gpa, uint64_t len)
{
	int err, err2;

	pthread_mutex_lock(&dev_lock);
	err = recorder_listener_ops.populate(data, gpa, len);
	/* A callback may query too; it sees the state before the change
	 * (a hole, for a region being added). */
	err2 = gmem_state_at(lvm, gpa, NULL, NULL);
	TEST_ASSERT(err2 >= 0 || err2 == -EINVAL);
	pthread_mutex_unlock(&dev_lock);
	return err;
}

static int dev_discard(void *data, uint64_t gpa, uint64_t len,
		       unsigned int flags)
{
	int err;

	pthread_mutex_lock(&dev_lock);
	err = recorder_listener_ops.discard(data, gpa, len, flags);
	pthread_mutex_unlock(&dev_lock);
	return err;
}

static int dev_report(void *data,
		      int (*fn)(void *arg, uint64_t gpa, uint64_t len),
		      void *arg)
{
	int err;

	pthread_mutex_lock(&dev_lock);
	err = recorder_listener_ops.report(data, fn, arg);
	pthread_mutex_unlock(&dev_lock);
	return err;
}

static const struct gmem_listener_ops dev_ops = {
	.size = sizeof(struct gmem_listener_ops),
	.populate = dev_populate,
	.discard = dev_discard,
	.report = dev_report,
};

static void test_lock_order(void)
{
	struct gmem_region_config rc[2], extra;
	struct gmem_config cfg;
	struct gmem_listener *l;
	pthread_t th;
	int vm_fd = test_create_vm(), i;

	test_fill_config(&cfg, &rc[0], vm_fd, RAM / 2, GMEM_MODE_DISCARD,
			 GMEM_SHARED);
	cfg.max_gpa = 2 * RAM;
	TEST_ASSERT_EQ(gmem_create(&cfg, &lvm), 0);
	if (rc[0].private_fd >= 0)
		close(rc[0].private_fd);
	extra = rc[0];
	extra.gpa = RAM / 2;
	extra.private_fd = vm_fd < 0 ? test_memfd(RAM / 2) : -1;
	recorder_init(&lrec, 2 * RAM);
	__atomic_store_n(&stop_querier, 0, __ATOMIC_RELEASE);
	TEST_ASSERT_EQ(pthread_create(&th, NULL, querier, NULL), 0);
	for (i = 0; i < 200; i++) {
		TEST_ASSERT_EQ(gmem_listener_register(lvm, &dev_ops, &lrec, &l),
			       0);
		TEST_ASSERT(gmem_convert(lvm, (uint64_t)(i % 64) * PG, 4 * PG,
					 i & 1 ? GMEM_SHARED : GMEM_PRIVATE) >= 0);
		TEST_ASSERT_EQ(gmem_region_add(lvm, &extra), 0);
		test_audit(lvm);
		TEST_ASSERT_EQ(gmem_region_remove(lvm, RAM / 2), 0);
		gmem_listener_unregister(lvm, l);
	}
	__atomic_store_n(&stop_querier, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	if (extra.private_fd >= 0)
		close(extra.private_fd);
	gmem_destroy(lvm);
	recorder_free(&lrec);
	if (vm_fd >= 0)
		close(vm_fd);
	printf("lock order: 200 registrations, conversions, hot-plugs and "
	       "audits against a querying device thread\n");
}

/* ---- a rollback that cannot roll back ------------------------------------- */

static void test_broken(void)
{
	struct gmem_vm *vm;
	char msg[256];
	int vm_fd = test_create_vm();
	uint64_t p;

	vm = test_create_gmem(vm_fd, RAM, GMEM_MODE_DISCARD, GMEM_PRIVATE,
			      NULL, NULL);
	/* A checkerboard: a conversion of it revokes several runs. */
	for (p = 0; p < 8; p += 2)
		TEST_ASSERT_EQ(gmem_convert(vm, p * PG, PG, GMEM_SHARED), 1);
	test_audit(vm);
	/* The 2nd revoke fails, and so does every mprotect after it: the
	 * undo of the 1st revoke cannot restore its view. */
	gmem_fault_inject(vm, GMEM_FAULT_MPROTECT, 2 | GMEM_FAULT_STICKY,
			  ENOMEM);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, 8 * PG, GMEM_SHARED), -EIO);
	gmem_fault_inject(vm, GMEM_FAULT_MPROTECT, 0, 0);
	/* Broken: refused from now on, and the audit says so. */
	TEST_ASSERT_EQ(gmem_convert(vm, 16 * PG, PG, GMEM_SHARED), -EIO);
	TEST_ASSERT_EQ(gmem_set_plugged(vm, 16 * PG, PG, false), -EIO);
	TEST_ASSERT_EQ(gmem_audit(vm, msg, sizeof(msg)), -EUCLEAN);
	TEST_ASSERT(strstr(msg, "broken") != NULL);
	printf("broken: %s\n", msg);
	gmem_destroy(vm);
	if (vm_fd >= 0)
		close(vm_fd);
}

/* ---- the mapper's bookkeeping fails ----------------------------------------- */

/*
 * Discard-mode guest memory, all private, with a DMA mapper on the fake
 * @f: exact layout, or VFIO type1 in blocks of @block bytes.
 */
static struct gmem_vm *mapped_vm(int vm_fd, uint64_t block, struct fake *f,
				 struct gmem_dma_mapper **m)
{
	struct gmem_dma_mapper_config mcfg = { .size = sizeof(mcfg) };
	struct gmem_vm *vm;

	vm = test_create_gmem(vm_fd, RAM, GMEM_MODE_DISCARD, GMEM_PRIVATE,
			      NULL, NULL);
	fake_init(f, RAM, block);
	mcfg.ops = block ? &fake_type1_ops : &fake_exact_ops;
	mcfg.data = f;
	mcfg.block_size = block;
	TEST_ASSERT_EQ(gmem_dma_mapper_create(vm, &mcfg, m), 0);
	return vm;
}

/* The audit and the fake agree, then everything goes. */
static void check_and_destroy(struct gmem_vm *vm, struct gmem_dma_mapper *m,
			      struct fake *f)
{
	test_audit(vm);
	check_backend(f);
	gmem_dma_mapper_destroy(vm, m);
	fake_free(f);
	gmem_destroy(vm);
}

static void test_mapper_enomem(void)
{
	struct gmem_dma_stats st = { .size = sizeof(st) };
	struct gmem_dma_mapper *m;
	struct gmem_vm *vm;
	struct fake f;
	char msg[256];
	int vm_fd = test_create_vm(), blocks;

	for (blocks = 0; blocks < 2; blocks++) {
		vm = mapped_vm(vm_fd, blocks ? 16 * PG : 0, &f, &m);
		TEST_ASSERT_EQ(gmem_convert(vm, 0, 4 * PG, GMEM_SHARED), 4);
		gmem_fault_inject(vm, GMEM_FAULT_ALLOC, 1, ENOMEM);
		TEST_ASSERT_EQ(gmem_convert(vm, 8 * PG, 4 * PG, GMEM_SHARED),
			       -ENOMEM);
		/* The backend holds exactly the first range; the mapper
		 * agrees, and so does the audit. */
		TEST_ASSERT_EQ(gmem_dma_mapper_validate(m, msg, sizeof(msg)),
			       0);
		TEST_ASSERT_EQ(gmem_dma_mapper_get_stats(m, &st), 0);
		TEST_ASSERT_EQ(st.live, 1);
		TEST_ASSERT_EQ(f.nr, 1);
		TEST_ASSERT_EQ(f.v[0].s, 0);
		TEST_ASSERT_EQ(f.v[0].e, 4 * PG);
		check_and_destroy(vm, m, &f);
	}
	if (vm_fd >= 0)
		close(vm_fd);
	printf("mapper ENOMEM: nothing mapped behind the mapper's back\n");
}

/*
 * An undo that cannot restore a listener's mappings is a broken memory,
 * not "nothing changed": (a) the DMA mapper cannot map again what a failed
 * conversion had it drop (its bookkeeping is out of memory); (b) in the
 * blocks layout the mapper cannot map again the block mapping it took
 * down to split it (the backend's map keeps failing).  Both: -EIO, every later change -EIO,
 * the audit names the reason.  (Found by make soak.)
 */
static void expect_broken(struct gmem_vm *vm, const char *why)
{
	char msg[256];

	TEST_ASSERT_EQ(gmem_convert(vm, 32 * PG, PG, GMEM_SHARED), -EIO);
	TEST_ASSERT_EQ(gmem_audit(vm, msg, sizeof(msg)), -EUCLEAN);
	printf("broken: %s\n", msg);
	TEST_ASSERT(strstr(msg, "broken") != NULL);
	TEST_ASSERT(strstr(msg, why) != NULL);
}

static void test_undo_fails(void)
{
	struct gmem_dma_mapper *m;
	struct gmem_vm *vm;
	struct fake f;
	int vm_fd = test_create_vm();

	/* (a) Revoke fails after the mapper dropped [0, 4); its map again
	 * finds no memory for its bookkeeping (the 2nd reservation). */
	vm = mapped_vm(vm_fd, 0, &f, &m);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, 4 * PG, GMEM_SHARED), 4);
	gmem_fault_inject(vm, GMEM_FAULT_ALLOC, 2, ENOMEM);
	gmem_fault_inject(vm, GMEM_FAULT_MPROTECT, 1, ENOMEM);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, 4 * PG, GMEM_PRIVATE), -EIO);
	gmem_fault_inject(vm, GMEM_FAULT_ALLOC, 0, 0);
	gmem_fault_inject(vm, GMEM_FAULT_MPROTECT, 0, 0);
	expect_broken(vm, "listener could not map");
	gmem_dma_mapper_destroy(vm, m);
	fake_free(&f);
	gmem_destroy(vm);

	/* (b) VFIO type1 blocks of 16 pages: [0, 16) is one mapping;
	 * converting [4, 8) unmaps it to map [0, 4) and [8, 16), and
	 * every map from then on fails, the undo's map of [0, 16) too. */
	vm = mapped_vm(vm_fd, 16 * PG, &f, &m);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, 16 * PG, GMEM_SHARED), 16);
	pthread_mutex_lock(&f.lock);
	f.fail_map_nth = 1;
	f.fail_map_sticky = true;
	f.fail_err = -ENOMEM;
	pthread_mutex_unlock(&f.lock);
	TEST_ASSERT_EQ(gmem_convert(vm, 4 * PG, 4 * PG, GMEM_PRIVATE), -EIO);
	expect_broken(vm, "DMA mapper");
	pthread_mutex_lock(&f.lock);
	f.fail_map_nth = 0;
	f.fail_map_sticky = false;
	pthread_mutex_unlock(&f.lock);
	gmem_dma_mapper_destroy(vm, m);
	fake_free(&f);
	gmem_destroy(vm);
	if (vm_fd >= 0)
		close(vm_fd);
}

/* ---- the batch API's own contract ---------------------------------------- */

static void test_batch_api(void)
{
	struct gmem_dma_mapper *m;
	struct gmem_batch_entry e[3];
	struct gmem_vm *vm;
	struct fake f;
	uint64_t busy = 0;
	int vm_fd = test_create_vm(), failed;

	vm = mapped_vm(vm_fd, 0, &f, &m);

	/* Nothing to do. */
	TEST_ASSERT_EQ(gmem_convert_batch(vm, NULL, 0, &failed, NULL), 0);
	TEST_ASSERT_EQ(failed, -1);
	/* Bad entries are named and change nothing. */
	e[0] = (struct gmem_batch_entry){ .gpa = 0, .len = PG, .to = 1 };
	e[1] = (struct gmem_batch_entry){ .gpa = 8 * PG, .len = 4 * PG,
					  .to = 1 };
	e[2] = (struct gmem_batch_entry){ .gpa = 10 * PG, .len = PG,
					  .to = 0 };
	TEST_ASSERT_EQ(gmem_convert_batch(vm, e, 3, &failed, NULL), -EINVAL);
	TEST_ASSERT_EQ(failed, 2);	/* overlaps e[1], whatever its target */
	/* Sorted by GPA, equal GPAs by index, the first entry starting
	 * inside the one before it is named (guest ABI extension 3 relies
	 * on it): the same pair named the same way in either order. */
	{
		struct gmem_batch_entry o[2] = {
			{ .gpa = 9 * PG, .len = PG, .to = 1 },
			{ .gpa = 8 * PG, .len = 4 * PG, .to = 1 },
		};

		TEST_ASSERT_EQ(gmem_convert_batch(vm, o, 2, &failed, NULL),
			       -EINVAL);
		TEST_ASSERT_EQ(failed, 0);
		o[0].gpa = 8 * PG;
		TEST_ASSERT_EQ(gmem_convert_batch(vm, o, 2, &failed, NULL),
			       -EINVAL);
		TEST_ASSERT_EQ(failed, 1);
		o[1].len = PG;
		o[0].len = 4 * PG;
		TEST_ASSERT_EQ(gmem_convert_batch(vm, o, 2, &failed, NULL),
			       -EINVAL);
		TEST_ASSERT_EQ(failed, 1);
	}
	e[2].gpa = 20 * PG;
	e[2].flags = 1;
	TEST_ASSERT_EQ(gmem_convert_batch(vm, e, 3, &failed, NULL), -EINVAL);
	TEST_ASSERT_EQ(failed, 2);
	e[2].flags = 0;
	e[2].to = 7;
	TEST_ASSERT_EQ(gmem_convert_batch(vm, e, 3, &failed, NULL), -EINVAL);
	TEST_ASSERT_EQ(failed, 2);
	e[2].to = 0;
	e[1].len = RAM;		/* past the end */
	TEST_ASSERT_EQ(gmem_convert_batch(vm, e, 3, &failed, NULL), -EINVAL);
	TEST_ASSERT_EQ(failed, 1);
	e[1].len = 4 * PG;
	TEST_ASSERT_EQ(gmem_convert_batch(vm, e, GMEM_BATCH_MAX + 1, &failed,
					  NULL), -E2BIG);
	TEST_ASSERT_EQ(gmem_state_at(vm, 0, NULL, NULL), GMEM_PRIVATE);
	/* A valid batch: 5 pages to shared (e[2] is already private). */
	TEST_ASSERT_EQ(gmem_convert_batch(vm, e, 3, &failed, NULL), 5);
	TEST_ASSERT_EQ(gmem_state_at(vm, 9 * PG, NULL, NULL), GMEM_SHARED);
	test_audit(vm);
	/* A pinned page refuses; the entry holding it and the page named. */
	f.pinned[10] = 1;
	e[0] = (struct gmem_batch_entry){ .gpa = 0, .len = PG, .to = 0 };
	e[1] = (struct gmem_batch_entry){ .gpa = 9 * PG, .len = 3 * PG,
					  .to = 0 };
	TEST_ASSERT_EQ(gmem_convert_batch(vm, e, 2, &failed, &busy), -EAGAIN);
	TEST_ASSERT_EQ(failed, 1);
	TEST_ASSERT_EQ(busy, 10 * PG);
	TEST_ASSERT_EQ(gmem_state_at(vm, 0, NULL, NULL), GMEM_SHARED);
	f.pinned[10] = 0;
	TEST_ASSERT_EQ(gmem_convert_batch(vm, e, 2, &failed, &busy), 4);
	check_and_destroy(vm, m, &f);
	if (vm_fd >= 0)
		close(vm_fd);
	printf("batch API: validation, failed entry and busy GPA\n");
}

int main(void)
{
	test_require_gmem();
	test_batch_api();
	test_lock_order();
	test_broken();
	test_mapper_enomem();
	test_undo_fails();
	return T_EXIT_PASS;
}
