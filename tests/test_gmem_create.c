/* SPDX-License-Identifier: MIT */
/*
 * Creating guest memory:
 *  - gmem_create() rejects bad configurations with -EINVAL (-E2BIG for
 *    unknown non-zero fields) and calls no hook; a config that fails late
 *    (overlapping regions, a slot registration refused) undoes every hook
 *    and slot; slots are unique and deleted on destroy; shared_base
 *    defaults to the smallest power of two >= ram_size and an explicit one
 *    is kept; the accessors of a fresh VM;
 *  - creation with every page shared: shared view accessible, private view
 *    not, no prepare; a listener hears all of RAM at once.
 */
#include <unistd.h>

#include "kvm_compat.h"
#include "test_util.h"

#define PG GMEM_PAGE_SIZE
#define MiB (1ULL << 20)

/* ---- gmem_create ---------------------------------------------------------- */

/*
 * One region [0, ram_size); without KVM (vm_fd -1) a memfd stands in for
 * the guest_memfd and the slots go to base_slots.  The memfd is ours:
 * base_release() closes it (libgmem holds its own dup).
 */
static struct gmem_region_config base_rc[2];
static struct slot_table base_slots;
static int base_fd = -1;

static void base_release(void)
{
	if (base_fd >= 0)
		close(base_fd);
	base_fd = -1;
}

static struct gmem_config base_config(int vm_fd, uint64_t ram_size,
				      struct recorder *rec)
{
	struct gmem_config cfg;

	base_release();
	test_fill_config(&cfg, &base_rc[0], vm_fd, ram_size, GMEM_MODE_DISCARD,
			 GMEM_PRIVATE);
	if (vm_fd < 0) {
		base_fd = base_rc[0].private_fd;
		cfg.set_slot = slot_table_set;
		cfg.slot_data = &base_slots;
	}
	cfg.platform = rec ? &recorder_platform_ops : NULL;
	cfg.platform_data = rec;
	return cfg;
}

static void expect_config_err(const struct gmem_config *cfg, int want,
			      const char *what)
{
	struct gmem_vm *vm = NULL;
	int err = gmem_create(cfg, &vm);

	if (err != want)
		TEST_FAIL("gmem_create with %s: %d, want %d", what, err, want);
	TEST_ASSERT(vm == NULL);
}

static void expect_bad_config(const struct gmem_config *cfg, const char *what)
{
	expect_config_err(cfg, -EINVAL, what);
}

static void expect_in_place_accessors(struct gmem_vm *vm, int vm_fd)
{
	TEST_ASSERT(gmem_get_layout(vm) != GMEM_LAYOUT_AUTO);
	if (vm_fd >= 0) {
		TEST_ASSERT(gmem_guest_memfd_flags(vm) & GUEST_MEMFD_FLAG_MMAP);
	} else {
		/* Without a VM: two plain views, no guest_memfd created. */
		TEST_ASSERT_EQ(gmem_get_backend(vm), GMEM_BACKEND_EMULATED);
		TEST_ASSERT_EQ(gmem_get_layout(vm), GMEM_LAYOUT_PLAIN_SLOT);
		TEST_ASSERT_EQ(gmem_guest_memfd_flags(vm), 0);
	}
	TEST_ASSERT(test_backing_fd(vm, GMEM_BACKING_PRIVATE) >= 0);
	/* In place, the shared view is backed by the guest_memfd too. */
	TEST_ASSERT_EQ(test_backing_fd(vm, GMEM_BACKING_SHARED),
		       test_backing_fd(vm, GMEM_BACKING_PRIVATE));
	TEST_ASSERT_EQ(test_backing_fd(vm, (enum gmem_backing_id)5), -EINVAL);
	TEST_ASSERT_EQ(gmem_backing_resident(vm, (enum gmem_backing_id)5),
		       -EINVAL);
	TEST_ASSERT(gmem_private_view(vm) != NULL);
	TEST_ASSERT(gmem_shared_view(vm) != NULL);
	TEST_ASSERT(gmem_private_view(vm) != gmem_shared_view(vm));
}

static void expect_fresh_accessors(enum gmem_mode mode)
{
	int vm_fd = test_create_vm();
	struct gmem_vm *vm = test_create_gmem(vm_fd, MiB, mode, GMEM_PRIVATE,
					      NULL, NULL);

	if (mode == GMEM_MODE_DISCARD) {
		TEST_ASSERT_EQ(gmem_get_mode(vm), GMEM_MODE_DISCARD);
		TEST_ASSERT(test_backing_fd(vm, GMEM_BACKING_SHARED) >= 0);
		TEST_ASSERT(test_backing_fd(vm, GMEM_BACKING_SHARED) !=
			    test_backing_fd(vm, GMEM_BACKING_PRIVATE));
	} else {
		TEST_ASSERT_EQ(gmem_get_mode(vm), GMEM_MODE_IN_PLACE);
		expect_in_place_accessors(vm, vm_fd);
	}
	gmem_destroy(vm);
	close(vm_fd);
}

static void test_create_config(void)
{
	struct recorder rec;
	struct gmem_config cfg;
	struct gmem_vm *vm;
	int vm_fd = test_create_vm(), memfd;
	struct {
		struct gmem_config c;
		uint64_t unknown[2];
	} big;

	recorder_init(&rec, 4 * MiB);
	slot_table_init(&base_slots);
	memfd = test_memfd(4 * MiB);

	cfg = base_config(vm_fd, 0, &rec);
	expect_bad_config(&cfg, "ram_size 0");
	cfg = base_config(vm_fd, MiB + 100, &rec);
	expect_bad_config(&cfg, "ram_size not page aligned");
	cfg = base_config(vm_fd, PG - 1, &rec);
	expect_bad_config(&cfg, "ram_size below a page");
	cfg = base_config(vm_fd, MiB, &rec);
	cfg.mode = (enum gmem_mode)2;
	expect_bad_config(&cfg, "mode 2");
	cfg = base_config(vm_fd, MiB, &rec);
	cfg.mode = (enum gmem_mode)-1;
	expect_bad_config(&cfg, "mode -1");
	cfg = base_config(vm_fd, MiB, &rec);
	cfg.initial_state = (enum gmem_state)2;
	expect_bad_config(&cfg, "initial state 2");
	cfg = base_config(vm_fd, MiB, &rec);
	cfg.layout = (enum gmem_layout)9;
	expect_bad_config(&cfg, "layout 9");
	cfg = base_config(vm_fd, MiB, &rec);
	cfg.backend = (enum gmem_backend)9;
	expect_bad_config(&cfg, "backend 9");
	cfg = base_config(vm_fd, MiB, &rec);
	cfg.flags = 1u << 7;
	expect_bad_config(&cfg, "unknown config flag");
	cfg = base_config(vm_fd, 2 * MiB, &rec);
	cfg.shared_base = MiB;
	expect_bad_config(&cfg, "shared_base < ram_size");
	cfg = base_config(vm_fd, 2 * MiB, &rec);
	cfg.shared_base = 2 * MiB - PG;
	expect_bad_config(&cfg, "shared_base just below ram_size");
	cfg = base_config(vm_fd, 2 * MiB, &rec);
	cfg.shared_base = 4 * MiB + 0x800;
	expect_bad_config(&cfg, "shared_base unaligned");
	/* Without a VM, nobody could register the slots. */
	cfg = base_config(-1, MiB, &rec);
	cfg.set_slot = NULL;
	expect_bad_config(&cfg, "vm_fd -1 without set_slot");
	/* Without a VM, nothing can create a guest_memfd. */
	cfg = base_config(-1, MiB, &rec);
	base_rc[0].private_fd = -1;
	expect_bad_config(&cfg, "vm_fd -1 without a private fd");
	/* Extensible struct: size 0, and unknown non-zero bytes. */
	cfg = base_config(vm_fd, MiB, &rec);
	cfg.size = 0;
	expect_bad_config(&cfg, "size 0");
	cfg = base_config(vm_fd, MiB, &rec);
	cfg.size = sizeof(uint32_t);
	expect_bad_config(&cfg, "size 4");
	memset(&big, 0, sizeof(big));
	big.c = base_config(vm_fd, MiB, &rec);
	big.c.size = sizeof(big);
	big.unknown[1] = 1;
	expect_config_err(&big.c, -E2BIG, "an unknown non-zero field");
	/* Regions. */
	cfg = base_config(vm_fd, MiB, &rec);
	cfg.max_gpa = MiB - PG;
	expect_bad_config(&cfg, "a region past max_gpa");
	cfg = base_config(vm_fd, MiB, &rec);
	cfg.max_gpa = 2 * MiB + 0x10;
	expect_bad_config(&cfg, "max_gpa unaligned");
	cfg = base_config(vm_fd, MiB, &rec);
	cfg.regions = NULL;
	expect_bad_config(&cfg, "nr_regions 1, regions NULL");
	cfg = base_config(vm_fd, MiB, &rec);
	cfg.nr_regions = 0;
	expect_bad_config(&cfg, "no region and max_gpa 0");
	cfg = base_config(vm_fd, MiB, &rec);
	base_rc[0].gpa = 0x800;
	cfg.max_gpa = 2 * MiB;
	expect_bad_config(&cfg, "a region gpa unaligned");
	cfg = base_config(vm_fd, MiB, &rec);
	base_rc[0].flags = 1;
	expect_bad_config(&cfg, "a region flag");
	cfg = base_config(vm_fd, MiB, &rec);
	base_rc[0].size = 0;
	expect_bad_config(&cfg, "a region of size 0");
	cfg = base_config(-1, MiB, &rec);
	base_rc[0].private_offset = 0x800;
	expect_bad_config(&cfg, "a private offset unaligned");
	cfg = base_config(-1, MiB, &rec);
	base_rc[0].private_offset = PG;
	expect_bad_config(&cfg, "a private fd too small");
	cfg = base_config(-1, MiB, &rec);
	base_rc[0].shared_fd = memfd;
	base_rc[0].shared_offset = 4 * MiB - MiB + PG;
	expect_bad_config(&cfg, "a shared fd too small");
	cfg = base_config(-1, MiB, &rec);
	cfg.mode = GMEM_MODE_IN_PLACE;
	base_rc[0].shared_fd = memfd;
	expect_bad_config(&cfg, "a shared fd in place");
	/* A rejected configuration calls no hook and registers no slot. */
	TEST_ASSERT_EQ(rec.nr, 0);
	TEST_ASSERT_EQ(base_slots.registers, 0);

	/* Overlapping regions: -EINVAL; the first region was set up and is
	 * undone (its prepare with an invalidate, its slots deleted). */
	cfg = base_config(-1, MiB, &rec);
	base_rc[1] = GMEM_INIT(struct gmem_region_config, .gpa = MiB / 2,
			       .len = MiB, .private_fd = memfd,
			       .shared_fd = -1);
	cfg.nr_regions = 2;
	cfg.max_gpa = 2 * MiB;
	expect_bad_config(&cfg, "overlapping regions");
	TEST_ASSERT_EQ(slot_table_nr_live(&base_slots), 0);
	TEST_ASSERT_EQ(base_slots.registers, base_slots.deletes);
	{
		uint64_t p, prepares = 0;
		size_t i;

		for (p = 0; p < 4 * MiB / PG; p++)
			TEST_ASSERT_EQ(rec.prepared[p], 0);
		for (i = 0; i < rec.nr; i++)
			prepares += rec.ev[i].kind == REC_PREPARE;
		TEST_ASSERT_EQ(prepares, rec.nr - prepares);
	}
	recorder_reset_events(&rec);

	/* A larger struct whose unknown bytes are zero is accepted. */
	memset(&big, 0, sizeof(big));
	big.c = base_config(-1, MiB, &rec);
	big.c.size = sizeof(big);
	TEST_ASSERT_EQ(gmem_create(&big.c, &vm), 0);
	/* The memslots: two per region (private view, shared alias), ids
	 * unique (the table checks), all deleted on destroy. */
	TEST_ASSERT_EQ(slot_table_nr_live(&base_slots), 2);
	TEST_ASSERT_EQ(slot_table_count_at(&base_slots, 0, MiB), 1);
	TEST_ASSERT_EQ(slot_table_count_at(&base_slots, gmem_shared_base(vm),
					   MiB), 1);
	test_audit(vm);
	gmem_destroy(vm);
	TEST_ASSERT_EQ(slot_table_nr_live(&base_slots), 0);
	TEST_ASSERT_EQ(base_slots.registers, base_slots.deletes);
	/* Every prepare was invalidated. */
	{
		uint64_t p;

		for (p = 0; p < 4 * MiB / PG; p++)
			TEST_ASSERT_EQ(rec.prepared[p], 0);
	}
	base_release();
	close(memfd);
	recorder_free(&rec);
	close(vm_fd);

	/* Default shared_base: the smallest power of two >= ram_size. */
	{
		static const struct {
			uint64_t ram, base;
		} cases[] = {
			{ 3 * MiB, 4 * MiB }, { 4 * MiB, 4 * MiB },
			{ 5 * PG, 8 * PG },   { PG, PG },
			{ 4 * MiB + PG, 8 * MiB },
		};
		unsigned int i;

		for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			vm_fd = test_create_vm();
			vm = test_create_gmem(vm_fd, cases[i].ram,
					      GMEM_MODE_DISCARD, GMEM_PRIVATE,
					      NULL, NULL);
			if (gmem_shared_base(vm) != cases[i].base)
				TEST_FAIL("ram_size %#llx: shared_base %#llx, "
					  "want %#llx",
					  (unsigned long long)cases[i].ram,
					  (unsigned long long)
					  gmem_shared_base(vm),
					  (unsigned long long)cases[i].base);
			TEST_ASSERT_EQ(gmem_ram_size(vm), cases[i].ram);
			TEST_ASSERT_EQ(gmem_max_gpa(vm), cases[i].ram);
			TEST_ASSERT_EQ(gmem_region_count(vm), 1);
			test_audit(vm);
			gmem_destroy(vm);
			close(vm_fd);
		}
	}

	/* An explicit shared_base is kept, also one equal to ram_size. */
	{
		static const uint64_t bases[] = { 8 * MiB, 3 * MiB,
						  5 * MiB + PG };
		unsigned int i;

		for (i = 0; i < 3; i++) {
			vm_fd = test_create_vm();
			cfg = base_config(vm_fd, 3 * MiB, NULL);
			cfg.shared_base = bases[i];
			TEST_ASSERT_EQ(gmem_create(&cfg, &vm), 0);
			TEST_ASSERT_EQ(gmem_shared_base(vm), bases[i]);
			test_audit(vm);
			gmem_destroy(vm);
			close(vm_fd);
		}
		base_release();
	}

	/*
	 * A creation that fails late, when registering its memslots (the
	 * VMM's slot table is full, at the first or the second slot; with
	 * KVM also: their GPAs or slot ids are taken by a first VM's memory
	 * in the same KVM VM): it returns the error, deletes the slots it
	 * had registered, undoes its prepare with an invalidate and leaves
	 * the first VM's memory working.
	 */
	{
		static const uint32_t slot_bases[] = { 0, 2 };
		struct slot_table st;
		struct gmem_vm *vm2;
		unsigned int i;
		uint64_t p;
		int err;

		vm_fd = test_create_vm();
		vm = test_create_gmem(vm_fd, MiB, GMEM_MODE_DISCARD,
				      GMEM_PRIVATE, NULL, NULL);
		TEST_ASSERT_EQ(gmem_convert(vm, 0, PG, GMEM_SHARED), 1);
		for (i = 0; i < 4; i++) {
			if (i >= 2 && vm_fd < 0)
				break;	/* the KVM half: no KVM here */
			recorder_init(&rec, MiB);
			slot_table_init(&st);
			if (i < 2) {
				cfg = base_config(-1, MiB, &rec);
				cfg.slot_data = &st;
				st.fail_register_nth = i + 1;
			} else {
				cfg = base_config(vm_fd, MiB, &rec);
				cfg.slot_base = slot_bases[i - 2];
			}
			vm2 = NULL;
			err = gmem_create(&cfg, &vm2);
			if (err >= 0)
				TEST_FAIL("second memory (case %u): created",
					  i);
			if (i < 2) {
				TEST_ASSERT_EQ(err, -ENOSPC);
				TEST_ASSERT_EQ(st.registers, i);
				TEST_ASSERT_EQ(st.deletes, i);
				TEST_ASSERT_EQ(slot_table_nr_live(&st), 0);
			}
			pthread_mutex_lock(&rec.lock);
			TEST_ASSERT_EQ(rec.nr, 2);
			TEST_ASSERT_EQ(rec.ev[0].kind, REC_PREPARE);
			TEST_ASSERT_EQ(rec.ev[1].kind, REC_INVALIDATE);
			for (p = 0; p < MiB / PG; p++)
				TEST_ASSERT_EQ(rec.prepared[p], 0);
			pthread_mutex_unlock(&rec.lock);
			recorder_free(&rec);
		}
		base_release();
		test_audit(vm);
		TEST_ASSERT_EQ(gmem_convert(vm, 0, 2 * PG, GMEM_PRIVATE), 1);
		test_audit(vm);
		gmem_destroy(vm);
		close(vm_fd);
	}

	/* Accessors of a fresh VM, in place and in discard mode. */
	test_each_mode(expect_fresh_accessors);
	gmem_destroy(NULL);	/* a no-op */
}

/* ---- all shared at creation ------------------------------------------------- */

static void test_init_shared(enum gmem_mode mode)
{
	const uint64_t ram = MiB;
	struct recorder rec;
	struct gmem_listener *l;
	struct gmem_stats s = { .size = sizeof(s) };
	struct test_runs r;
	struct gmem_vm *vm;
	uint8_t *priv, *shared, v;
	uint64_t p, rs, rl;
	int vm_fd = test_create_vm();

	recorder_init(&rec, ram);
	vm = test_create_gmem(vm_fd, ram, mode, GMEM_SHARED,
			      &recorder_platform_ops, &rec);
	TEST_ASSERT_EQ(rec.nr, 0);	/* nothing to prepare */
	priv = gmem_private_view(vm);
	shared = gmem_shared_view(vm);
	test_get_runs(vm, 0, gmem_ram_size(vm), &r);
	TEST_ASSERT_EQ(r.nr, 1);
	TEST_ASSERT_EQ(r.state[0], GMEM_SHARED);
	TEST_ASSERT_EQ(r.len[0], ram);
	TEST_ASSERT_EQ(gmem_state_at(vm, ram / 2, &rs, &rl), GMEM_SHARED);
	TEST_ASSERT_EQ(rs, 0);
	TEST_ASSERT_EQ(rl, ram);
	for (p = 0; p < ram / PG; p += 7) {
		TEST_ASSERT(test_probe_write(shared + p * PG, 0x5a));
		TEST_ASSERT(test_probe_read(shared + p * PG, &v));
		TEST_ASSERT_EQ(v, 0x5a);
		TEST_ASSERT(!test_probe_read(priv + p * PG, &v));
		TEST_ASSERT(!test_probe_write(priv + p * PG, 0x5a));
	}
	gmem_get_stats(vm, &s);
	TEST_ASSERT_EQ(s.pages_shared, ram / PG);
	TEST_ASSERT_EQ(s.pages_private, 0);
	TEST_ASSERT_EQ(s.nr_runs, 1);
	test_audit(vm);
	/* A listener hears all of RAM at once. */
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops, &rec,
					      &l), 0);
	TEST_ASSERT_EQ(rec.nr, 1);
	TEST_ASSERT_EQ(rec.ev[0].kind, REC_POPULATE);
	TEST_ASSERT_EQ(rec.ev[0].offset, 0);
	TEST_ASSERT_EQ(rec.ev[0].len, ram);
	test_audit(vm);
	/* One page private: reachable only through the private view. */
	TEST_ASSERT_EQ(gmem_convert(vm, 3 * PG, PG, GMEM_PRIVATE), 1);
	TEST_ASSERT(test_probe_write(priv + 3 * PG, 1));
	TEST_ASSERT(!test_probe_read(shared + 3 * PG, &v));
	TEST_ASSERT(test_probe_read(shared + 2 * PG, &v));
	TEST_ASSERT(test_probe_read(shared + 4 * PG, &v));
	test_audit(vm);
	gmem_listener_unregister(vm, l);
	gmem_destroy(vm);
	for (p = 0; p < ram / PG; p++)
		TEST_ASSERT(!rec.prepared[p] && !rec.mapped[p]);
	recorder_free(&rec);
	close(vm_fd);
}

int main(void)
{
	test_require_gmem();
	test_create_config();
	test_each_mode(test_init_shared);
	printf("ok\n");
	return T_EXIT_PASS;
}
