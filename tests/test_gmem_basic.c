/* SPDX-License-Identifier: MIT */
/*
 * API edge cases of libgmem:
 *  - the audit with a listener registered that maps nothing;
 *  - probes: gmem_probe_vm() (-EBADF for what is not a VM; a real VM's
 *    capabilities where KVM is usable), gmem_pick_guest_memfd_flags() (MMAP
 *    among the flags) and gmem_pick_backend() on given capabilities,
 *    gmem_probe_gating() (a real layout, cached; or -ENOENT/-EACCES
 *    without KVM), the name helpers, gmem_version();
 *  - gmem_create() rejects bad configurations with -EINVAL (-E2BIG for
 *    unknown non-zero fields) and calls no hook; a config that fails late
 *    (overlapping regions, a slot registration refused) undoes every hook
 *    and slot; slots are unique and deleted on destroy; shared_base
 *    defaults to the smallest power of two >= ram_size and an explicit one
 *    is kept;
 *  - gmem_convert() rejects unaligned offsets and lengths, empty ranges,
 *    ranges beyond RAM, offset + len overflows and bad states with -EINVAL,
 *    changing nothing; converting what is already converted returns 0;
 *  - gmem_access(): the right view works (also across pages and at
 *    unaligned offsets), the wrong view or a mixed range is -EACCES with
 *    the buffer untouched, a range outside RAM or a bad view -EINVAL;
 *  - gmem_state_at() with run bounds; gmem_for_each_run() clipping and
 *    early stop;
 *  - creation with every page shared: shared view accessible, private view
 *    not, no prepare;
 *  - memory is given back in discard mode (1 MiB converted away leaves the
 *    backing it left, both ways), and not in place (content kept);
 *  - the counters after a known sequence.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "kvm_compat.h"
#include "test_util.h"

#define PG GMEM_PAGE_SIZE
#define MiB (1ULL << 20)

/* ---- probes -------------------------------------------------------------- */

static void test_probes(void)
{
	struct gmem_vm_caps caps = { .size = sizeof(caps) }, bad;
	enum gmem_layout layout, layout2;
	enum gmem_backend backend;
	const char *why = NULL;
	uint64_t flags = 0;
	int vm_fd = test_create_vm(), fd, err;

	TEST_ASSERT_EQ(GMEM_GUEST_MEMFD_MMAP, GUEST_MEMFD_FLAG_MMAP);
	TEST_ASSERT_EQ(GMEM_GUEST_MEMFD_INIT_SHARED,
		       GUEST_MEMFD_FLAG_INIT_SHARED);
	TEST_ASSERT_EQ(GMEM_GUEST_MEMFD_NO_DIRECT_MAP,
		       GUEST_MEMFD_FLAG_NO_DIRECT_MAP);

	/* Not a VM: -EBADF (and nothing is created to find out). */
	TEST_ASSERT_EQ(gmem_probe_vm(-1, &caps), -EBADF);
	fd = test_memfd(PG);
	TEST_ASSERT_EQ(gmem_probe_vm(fd, &caps), -EBADF);
	close(fd);

	if (vm_fd >= 0) {
		/* The VM's own capabilities. */
		TEST_ASSERT_EQ(gmem_probe_vm(vm_fd, &caps), 0);
		TEST_ASSERT_EQ(caps.size, sizeof(caps));
		TEST_ASSERT_EQ(caps.api_version, 12);
		TEST_ASSERT(caps.guest_memfd);
		TEST_ASSERT(caps.user_memory2);
		TEST_ASSERT(caps.guest_memfd_flags & GMEM_GUEST_MEMFD_MMAP);
		TEST_ASSERT(caps.nr_memslots >= 2);
		bad = (struct gmem_vm_caps){ .size = 0 };
		TEST_ASSERT_EQ(gmem_probe_vm(vm_fd, &bad), -EINVAL);
	} else {
		/* No KVM here: the probe of a real VM is skipped; the pickers
		 * below run on the capabilities of a typical default VM. */
		printf("no KVM: gmem_probe_vm() of a real VM skipped\n");
		caps = GMEM_INIT(struct gmem_vm_caps, .api_version = 12,
				 .guest_memfd = true,
				 .guest_memfd_flags = GMEM_GUEST_MEMFD_MMAP |
						      GMEM_GUEST_MEMFD_INIT_SHARED,
				 .user_memory2 = true, .nr_memslots = 32764);
	}
	TEST_ASSERT_EQ(gmem_pick_guest_memfd_flags(&caps, GMEM_BACKEND_EMULATED,
						   &flags, &why), 0);
	TEST_ASSERT(flags & GMEM_GUEST_MEMFD_MMAP);
	/* Only flags the VM offers. */
	TEST_ASSERT_EQ(flags & ~caps.guest_memfd_flags, 0);
	TEST_ASSERT(why != NULL);
	printf("guest_memfd flags %#llx: %s\n", (unsigned long long)flags, why);

	/* A VM without guest_memfd, USER_MEMORY2 or MMAP is refused, saying
	 * why. */
	bad = caps;
	bad.guest_memfd = false;
	why = NULL;
	TEST_ASSERT_EQ(gmem_pick_guest_memfd_flags(&bad, GMEM_BACKEND_EMULATED,
						   &flags, &why), -EOPNOTSUPP);
	TEST_ASSERT(why && *why);
	why = NULL;
	TEST_ASSERT_EQ(gmem_pick_backend(&bad, GMEM_MODE_DISCARD, &backend,
					 &why), -EOPNOTSUPP);
	TEST_ASSERT(why && *why);
	bad = caps;
	bad.user_memory2 = false;
	why = NULL;
	TEST_ASSERT_EQ(gmem_pick_guest_memfd_flags(&bad, GMEM_BACKEND_EMULATED,
						   &flags, &why), -EOPNOTSUPP);
	TEST_ASSERT(why && *why);
	bad = caps;
	bad.guest_memfd_flags &= ~GMEM_GUEST_MEMFD_MMAP;
	why = NULL;
	TEST_ASSERT_EQ(gmem_pick_guest_memfd_flags(&bad, GMEM_BACKEND_EMULATED,
						   &flags, &why), -EOPNOTSUPP);
	TEST_ASSERT(why && *why);
	why = NULL;
	TEST_ASSERT_EQ(gmem_pick_guest_memfd_flags(&bad,
						   GMEM_BACKEND_GMEM_IN_PLACE,
						   &flags, &why), -EOPNOTSUPP);
	TEST_ASSERT(why && *why);
	/* The native VM-attribute backend never maps private pages: no MMAP,
	 * NO_DIRECT_MAP where offered. */
	bad = caps;
	bad.guest_memfd_flags = GMEM_GUEST_MEMFD_NO_DIRECT_MAP;
	bad.memory_attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE;
	TEST_ASSERT_EQ(gmem_pick_guest_memfd_flags(&bad,
						   GMEM_BACKEND_VM_ATTRIBUTES,
						   &flags, &why), 0);
	TEST_ASSERT_EQ(flags, GMEM_GUEST_MEMFD_NO_DIRECT_MAP);

	/* Backends: native where the capabilities offer them. */
	bad = caps;
	bad.memory_attributes = 0;
	bad.gmem_conversion = false;
	TEST_ASSERT_EQ(gmem_pick_backend(&bad, GMEM_MODE_DISCARD, &backend,
					 &why), 0);
	TEST_ASSERT_EQ(backend, GMEM_BACKEND_EMULATED);
	TEST_ASSERT_EQ(gmem_pick_backend(&bad, GMEM_MODE_IN_PLACE, &backend,
					 &why), 0);
	TEST_ASSERT_EQ(backend, GMEM_BACKEND_EMULATED);
	bad.memory_attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE;
	TEST_ASSERT_EQ(gmem_pick_backend(&bad, GMEM_MODE_DISCARD, &backend,
					 &why), 0);
	TEST_ASSERT_EQ(backend, GMEM_BACKEND_VM_ATTRIBUTES);
	bad.gmem_conversion = true;
	bad.guest_memfd_flags |= GMEM_GUEST_MEMFD_MMAP;
	TEST_ASSERT_EQ(gmem_pick_backend(&bad, GMEM_MODE_IN_PLACE, &backend,
					 &why), 0);
	TEST_ASSERT_EQ(backend, GMEM_BACKEND_GMEM_IN_PLACE);
	TEST_ASSERT(why && *why);

	layout = GMEM_LAYOUT_AUTO;
	err = gmem_probe_gating(&layout);
	if (vm_fd >= 0) {
		TEST_ASSERT_EQ(err, 0);
		TEST_ASSERT(layout == GMEM_LAYOUT_GMEM_SLOT ||
			    layout == GMEM_LAYOUT_PLAIN_SLOT);
		TEST_ASSERT_EQ(gmem_probe_gating(&layout2), 0);	/* cached */
		TEST_ASSERT_EQ(layout2, layout);
		printf("layout: %s\n", gmem_layout_name(layout));
	} else {
		/* Without a usable /dev/kvm: -ENOENT or -EACCES, cached. */
		TEST_ASSERT(err == -ENOENT || err == -EACCES);
		TEST_ASSERT_EQ(gmem_probe_gating(&layout2), err);
	}
	close(vm_fd);

	TEST_ASSERT(!strcmp(gmem_state_name(GMEM_PRIVATE), "private"));
	TEST_ASSERT(!strcmp(gmem_state_name(GMEM_SHARED), "shared"));
	TEST_ASSERT(gmem_state_name((enum gmem_state)7) != NULL);
	TEST_ASSERT(!strcmp(gmem_mode_name(GMEM_MODE_DISCARD), "discard"));
	TEST_ASSERT(gmem_mode_name(GMEM_MODE_IN_PLACE) != NULL);
	TEST_ASSERT(gmem_layout_name(GMEM_LAYOUT_AUTO) != NULL);
	TEST_ASSERT(gmem_backend_name(GMEM_BACKEND_EMULATED) != NULL);
	TEST_ASSERT(gmem_backend_name((enum gmem_backend)9) != NULL);
	TEST_ASSERT(gmem_inval_reason_name(GMEM_INVAL_CONVERT) != NULL);
	TEST_ASSERT(gmem_inval_reason_name(GMEM_INVAL_PUNCH) != NULL);
	TEST_ASSERT(gmem_inval_reason_name(GMEM_INVAL_RELEASE) != NULL);
	TEST_ASSERT_EQ(gmem_version(), GMEM_VERSION);
}

/* ---- the audit with a listener that maps nothing ------------------------------ */

/*
 * Every page private and a listener registered that reports its (empty)
 * set of mappings: the audit must pass.  Under UBSan this is where
 * audit_listener() (lib/audit.c) was caught passing a NULL array to
 * qsort() when the listener reported no range.
 */
static void test_audit_idle_listener(enum gmem_mode mode)
{
	struct recorder rec;
	struct gmem_listener *l;
	struct gmem_vm *vm;
	int vm_fd = test_create_vm();

	printf("audit with a listener that maps nothing (%s)\n",
	       gmem_mode_name(mode));
	fflush(stdout);
	recorder_init(&rec, MiB);
	vm = test_create_gmem(vm_fd, MiB, mode, GMEM_PRIVATE, NULL, NULL);
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops, &rec,
					      &l), 0);
	TEST_ASSERT_EQ(rec.nr, 0);
	test_audit(vm);
	/* And again once it had something and gave it back. */
	TEST_ASSERT_EQ(gmem_convert(vm, 0, PG, GMEM_SHARED), 1);
	test_audit(vm);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, PG, GMEM_PRIVATE), 1);
	test_audit(vm);
	gmem_listener_unregister(vm, l);
	gmem_destroy(vm);
	recorder_free(&rec);
	close(vm_fd);
}

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

	/* Accessors of a fresh VM. */
	vm_fd = test_create_vm();
	vm = test_create_gmem(vm_fd, MiB, GMEM_MODE_IN_PLACE, GMEM_PRIVATE,
			      NULL, NULL);
	TEST_ASSERT_EQ(gmem_get_mode(vm), GMEM_MODE_IN_PLACE);
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
	gmem_destroy(vm);
	close(vm_fd);

	vm_fd = test_create_vm();
	vm = test_create_gmem(vm_fd, MiB, GMEM_MODE_DISCARD, GMEM_PRIVATE,
			      NULL, NULL);
	TEST_ASSERT_EQ(gmem_get_mode(vm), GMEM_MODE_DISCARD);
	TEST_ASSERT(test_backing_fd(vm, GMEM_BACKING_SHARED) >= 0);
	TEST_ASSERT(test_backing_fd(vm, GMEM_BACKING_SHARED) !=
		    test_backing_fd(vm, GMEM_BACKING_PRIVATE));
	gmem_destroy(vm);
	close(vm_fd);
	gmem_destroy(NULL);	/* a no-op */
}

/* ---- gmem_convert ---------------------------------------------------------- */


static void test_convert_edges(enum gmem_mode mode)
{
	const uint64_t ram = 2 * MiB;
	struct recorder rec;
	struct gmem_listener *l;
	struct gmem_subscription *sub;
	struct gmem_stats s0 = { .size = sizeof(s0) }, s1 = { .size = sizeof(s1) };
	struct test_runs r0, r1;
	struct gmem_vm *vm;
	int vm_fd = test_create_vm();
	static const struct {
		uint64_t off, len;
		int to;
		const char *what;
	} bad[] = {
		{ 0x800, PG, GMEM_SHARED, "unaligned offset" },
		{ PG + 1, PG, GMEM_SHARED, "offset off by one" },
		{ PG, PG + 0x10, GMEM_SHARED, "unaligned len" },
		{ PG, 1, GMEM_SHARED, "len 1" },
		{ PG, 0, GMEM_SHARED, "len 0" },
		{ 0, 0, GMEM_PRIVATE, "len 0 at 0" },
		{ 2 * MiB, PG, GMEM_SHARED, "offset == RAM" },
		{ 2 * MiB - PG, 2 * PG, GMEM_SHARED, "one page past RAM" },
		{ 0, 2 * MiB + PG, GMEM_SHARED, "len > RAM" },
		{ 64 * MiB, PG, GMEM_SHARED, "far beyond RAM" },
		{ ~0ULL - PG + 1, PG, GMEM_SHARED, "offset near UINT64_MAX" },
		{ ~0ULL - PG + 1, 2 * PG, GMEM_SHARED,
		  "offset + len wraps to PG" },
		{ PG, ~0ULL - PG + 1, GMEM_SHARED, "offset + len wraps to 0" },
		{ 2 * PG, ~0ULL - PG + 1, GMEM_SHARED,
		  "offset + len wraps to PG (len huge)" },
		{ 0, PG, 2, "state 2" },
		{ 0, PG, -1, "state -1" },
		{ PG, 4 * PG, 255, "state 255" },
	};
	unsigned int i;

	vm = test_create_recorded(vm_fd, ram, mode, &rec, &l, &sub);
	TEST_ASSERT_EQ(gmem_convert(vm, 16 * PG, 16 * PG, GMEM_SHARED), 16);
	recorder_reset_events(&rec);

	test_get_runs(vm, 0, gmem_ram_size(vm), &r0);
	gmem_get_stats(vm, &s0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ret = gmem_convert(vm, bad[i].off, bad[i].len,
					   (enum gmem_state)bad[i].to);

		if (ret != -EINVAL)
			TEST_FAIL("%s: gmem_convert(%#llx, %#llx, %d) = %lld, "
				  "want -EINVAL", bad[i].what,
				  (unsigned long long)bad[i].off,
				  (unsigned long long)bad[i].len, bad[i].to,
				  (long long)ret);
		test_get_runs(vm, 0, gmem_ram_size(vm), &r1);
		test_expect_same_runs(&r0, &r1);
		TEST_ASSERT_EQ(rec.nr, 0);
	}
	gmem_get_stats(vm, &s1);
	TEST_ASSERT_EQ(s1.pages_to_shared, s0.pages_to_shared);
	TEST_ASSERT_EQ(s1.pages_to_private, s0.pages_to_private);
	TEST_ASSERT_EQ(s1.conversions_to_shared, s0.conversions_to_shared);
	TEST_ASSERT_EQ(s1.conversions_to_private, s0.conversions_to_private);
	TEST_ASSERT_EQ(s1.bytes_discarded, s0.bytes_discarded);
	test_audit(vm);

	/* Already converted: 0 and no notification. */
	TEST_ASSERT_EQ(gmem_convert(vm, 16 * PG, 16 * PG, GMEM_SHARED), 0);
	TEST_ASSERT_EQ(gmem_convert(vm, 20 * PG, PG, GMEM_SHARED), 0);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, 16 * PG, GMEM_PRIVATE), 0);
	TEST_ASSERT_EQ(gmem_convert(vm, 32 * PG, ram - 32 * PG, GMEM_PRIVATE),
		       0);
	TEST_ASSERT_EQ(rec.nr, 0);
	gmem_get_stats(vm, &s1);
	TEST_ASSERT_EQ(s1.conversions_to_shared, s0.conversions_to_shared);
	TEST_ASSERT_EQ(s1.conversions_to_private, s0.conversions_to_private);
	/* Partly converted: only the rest counts. */
	TEST_ASSERT_EQ(gmem_convert(vm, 8 * PG, 16 * PG, GMEM_SHARED), 8);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, ram, GMEM_SHARED),
		       ram / PG - 24);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, ram, GMEM_SHARED), 0);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, ram, GMEM_PRIVATE), ram / PG);
	test_audit(vm);

	gmem_listener_unregister(vm, l);
	gmem_unsubscribe(vm, sub);
	gmem_listener_unregister(vm, NULL);	/* no-ops */
	gmem_unsubscribe(vm, NULL);
	/* Bad registrations. */
	{
		struct gmem_listener_ops no_discard = {
	.size = sizeof(struct gmem_listener_ops),
			.populate = recorder_listener_ops.populate,
		};

		l = NULL;
		TEST_ASSERT_EQ(gmem_listener_register(vm, NULL, &rec, &l),
			       -EINVAL);
		TEST_ASSERT_EQ(gmem_listener_register(vm, &no_discard, &rec,
						      &l), -EINVAL);
		TEST_ASSERT_EQ(gmem_subscribe(vm, NULL, &rec, &sub), -EINVAL);
	}
	gmem_destroy(vm);
	recorder_free(&rec);
	close(vm_fd);
}

/* ---- gmem_access and gmem_state_at ------------------------------------------ */

static int stop_at_second(void *arg, uint64_t off, uint64_t len,
			  enum gmem_state st)
{
	int *n = arg;

	(void)off;
	(void)len;
	(void)st;
	return ++*n == 2 ? 42 : 0;
}

static void test_access(enum gmem_mode mode)
{
	const uint64_t ram = MiB;
	static uint8_t buf[8 * PG], check[8 * PG];
	uint64_t rs, rl, i;
	struct test_runs r;
	struct gmem_vm *vm;
	int vm_fd = test_create_vm(), n;

	vm = test_create_gmem(vm_fd, ram, mode, GMEM_PRIVATE, NULL, NULL);
	/* Pages [10, 20) shared, the rest private. */
	TEST_ASSERT_EQ(gmem_convert(vm, 10 * PG, 10 * PG, GMEM_SHARED), 10);

	/* The right view, across several pages and at odd offsets. */
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 1);
	TEST_ASSERT_EQ(gmem_access(vm, 2 * PG + 123, buf, 5 * PG + 7, true,
				   GMEM_PRIVATE), 0);
	memset(check, 0, sizeof(check));
	TEST_ASSERT_EQ(gmem_access(vm, 2 * PG + 123, check, 5 * PG + 7, false,
				   GMEM_PRIVATE), 0);
	TEST_ASSERT(!memcmp(buf, check, 5 * PG + 7));
	/* Through the view's host mapping too. */
	TEST_ASSERT(!memcmp((uint8_t *)gmem_private_view(vm) + 2 * PG + 123,
			    buf, 5 * PG + 7));
	TEST_ASSERT_EQ(gmem_access(vm, 12 * PG + 4000, buf, 3 * PG, true,
				   GMEM_SHARED), 0);
	memset(check, 0, sizeof(check));
	TEST_ASSERT_EQ(gmem_access(vm, 12 * PG + 4000, check, 3 * PG, false,
				   GMEM_SHARED), 0);
	TEST_ASSERT(!memcmp(buf, check, 3 * PG));
	TEST_ASSERT_EQ(gmem_access(vm, 0, check, 1, false, GMEM_PRIVATE), 0);
	TEST_ASSERT_EQ(gmem_access(vm, ram - 1, check, 1, false, GMEM_PRIVATE),
		       0);
	TEST_ASSERT_EQ(gmem_access(vm, 0, check, 8 * PG, false, GMEM_PRIVATE),
		       0);

	/* The wrong view, or a range mixing both states: -EACCES, and the
	 * buffer is untouched (reads) and memory too (writes). */
	memset(check, 0xee, sizeof(check));
	TEST_ASSERT_EQ(gmem_access(vm, 2 * PG, check, PG, false, GMEM_SHARED),
		       -EACCES);
	TEST_ASSERT_EQ(gmem_access(vm, 12 * PG, check, 16, false,
				   GMEM_PRIVATE), -EACCES);
	TEST_ASSERT_EQ(gmem_access(vm, 9 * PG, check, 2 * PG, false,
				   GMEM_PRIVATE), -EACCES);
	TEST_ASSERT_EQ(gmem_access(vm, 9 * PG, check, 2 * PG, false,
				   GMEM_SHARED), -EACCES);
	TEST_ASSERT_EQ(gmem_access(vm, 20 * PG - 1, check, 2, false,
				   GMEM_SHARED), -EACCES);
	for (i = 0; i < sizeof(check); i++)
		TEST_ASSERT_EQ(check[i], 0xee);
	TEST_ASSERT_EQ(gmem_access(vm, 2 * PG + 123, check, 16, true,
				   GMEM_SHARED), -EACCES);
	TEST_ASSERT_EQ(gmem_access(vm, 19 * PG, check, 2 * PG, true,
				   GMEM_SHARED), -EACCES);
	memset(check, 0, sizeof(check));
	TEST_ASSERT_EQ(gmem_access(vm, 2 * PG + 123, check, 16, false,
				   GMEM_PRIVATE), 0);
	TEST_ASSERT(!memcmp(check, buf, 16));
	TEST_ASSERT_EQ(gmem_access(vm, 19 * PG, check, PG, false, GMEM_SHARED),
		       0);
	for (i = 0; i < PG; i++)
		TEST_ASSERT_EQ(check[i], 0);

	/* Outside RAM, empty, or a bad view: -EINVAL. */
	TEST_ASSERT_EQ(gmem_access(vm, ram, check, 1, false, GMEM_PRIVATE),
		       -EINVAL);
	TEST_ASSERT_EQ(gmem_access(vm, ram - 1, check, 2, false, GMEM_PRIVATE),
		       -EINVAL);
	TEST_ASSERT_EQ(gmem_access(vm, 0, check, ram + 1, false, GMEM_PRIVATE),
		       -EINVAL);
	TEST_ASSERT_EQ(gmem_access(vm, ~0ULL, check, 2, false, GMEM_PRIVATE),
		       -EINVAL);
	TEST_ASSERT_EQ(gmem_access(vm, PG, check, ~0ULL, false, GMEM_PRIVATE),
		       -EINVAL);
	TEST_ASSERT_EQ(gmem_access(vm, 0, check, 0, false, GMEM_PRIVATE),
		       -EINVAL);
	TEST_ASSERT_EQ(gmem_access(vm, 0, check, 1, false,
				   (enum gmem_state)2), -EINVAL);

	/* gmem_state_at: state and the maximal run around the offset. */
	TEST_ASSERT_EQ(gmem_state_at(vm, 0, &rs, &rl), GMEM_PRIVATE);
	TEST_ASSERT_EQ(rs, 0);
	TEST_ASSERT_EQ(rl, 10 * PG);
	TEST_ASSERT_EQ(gmem_state_at(vm, 15 * PG + 17, &rs, &rl), GMEM_SHARED);
	TEST_ASSERT_EQ(rs, 10 * PG);
	TEST_ASSERT_EQ(rl, 10 * PG);
	TEST_ASSERT_EQ(gmem_state_at(vm, 20 * PG - 1, &rs, &rl), GMEM_SHARED);
	TEST_ASSERT_EQ(gmem_state_at(vm, 20 * PG, &rs, &rl), GMEM_PRIVATE);
	TEST_ASSERT_EQ(rs, 20 * PG);
	TEST_ASSERT_EQ(rl, ram - 20 * PG);
	TEST_ASSERT_EQ(gmem_state_at(vm, ram - 1, NULL, NULL), GMEM_PRIVATE);
	TEST_ASSERT_EQ(gmem_state_at(vm, ram, &rs, &rl), -EINVAL);
	TEST_ASSERT_EQ(gmem_state_at(vm, ~0ULL, NULL, NULL), -EINVAL);

	/* gmem_for_each_run: clipped to the range, stops on non-zero. */
	test_get_runs(vm, 5 * PG, 10 * PG, &r);
	TEST_ASSERT_EQ(r.nr, 2);
	TEST_ASSERT_EQ(r.gpa[0], 5 * PG);
	TEST_ASSERT_EQ(r.len[0], 5 * PG);
	TEST_ASSERT_EQ(r.state[0], GMEM_PRIVATE);
	TEST_ASSERT_EQ(r.gpa[1], 10 * PG);
	TEST_ASSERT_EQ(r.len[1], 5 * PG);
	TEST_ASSERT_EQ(r.state[1], GMEM_SHARED);
	n = 0;
	TEST_ASSERT_EQ(gmem_for_each_run(vm, 0, ram, stop_at_second, &n), 42);
	TEST_ASSERT_EQ(n, 2);
	TEST_ASSERT_EQ(gmem_for_each_run(vm, 0, 0, stop_at_second, &n), -EINVAL);
	TEST_ASSERT_EQ(gmem_for_each_run(vm, 0, ram + PG, stop_at_second, &n),
		       -EINVAL);
	TEST_ASSERT_EQ(gmem_for_each_run(vm, 1, PG, stop_at_second, &n), -EINVAL);
	test_audit(vm);
	gmem_destroy(vm);
	close(vm_fd);
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

/* ---- memory given back -------------------------------------------------------- */

static int64_t allocated(struct gmem_vm *vm, enum gmem_backing_id id)
{
	int64_t a = gmem_backing_resident(vm, id);

	TEST_ASSERT(a >= 0);
	return a;
}

static void test_memory_given_back(enum gmem_mode mode)
{
	const uint64_t ram = 4 * MiB, off = MiB, len = MiB;
	bool discard = mode == GMEM_MODE_DISCARD;
	static uint8_t buf[MiB], check[MiB];
	int64_t g0, s0, g1, s1;
	struct gmem_stats s = { .size = sizeof(s) };
	struct gmem_vm *vm;
	int vm_fd = test_create_vm();
	uint64_t i;

	vm = test_create_gmem(vm_fd, ram, mode, GMEM_PRIVATE, NULL, NULL);
	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(i % 251 + 1);
	TEST_ASSERT_EQ(gmem_access(vm, off, buf, len, true, GMEM_PRIVATE), 0);
	g0 = allocated(vm, GMEM_BACKING_PRIVATE);
	s0 = allocated(vm, GMEM_BACKING_SHARED);
	printf("%s: after writing 1 MiB private: gmem %lld, shared %lld bytes\n",
	       gmem_mode_name(mode), (long long)g0, (long long)s0);
	TEST_ASSERT(g0 >= (int64_t)len);

	/* To shared. */
	TEST_ASSERT_EQ(gmem_convert(vm, off, len, GMEM_SHARED), len / PG);
	test_audit(vm);
	g1 = allocated(vm, GMEM_BACKING_PRIVATE);
	s1 = allocated(vm, GMEM_BACKING_SHARED);
	TEST_ASSERT_EQ(gmem_access(vm, off, check, len, false, GMEM_SHARED), 0);
	if (discard) {
		/* The guest_memfd gave the MiB back; the memfd holds
		 * nothing until written; the page reads zeros. */
		TEST_ASSERT_EQ(g1, g0 - (int64_t)len);
		TEST_ASSERT_EQ(s1, s0);
		for (i = 0; i < len; i++)
			if (check[i])
				TEST_FAIL("byte %#llx reads %#x after discard",
					  (unsigned long long)(off + i),
					  check[i]);
	} else {
		TEST_ASSERT_EQ(g1, g0);
		TEST_ASSERT(!memcmp(check, buf, len));
	}

	/* Written through the shared view. */
	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(i % 241 + 3);
	TEST_ASSERT_EQ(gmem_access(vm, off, buf, len, true, GMEM_SHARED), 0);
	s1 = allocated(vm, GMEM_BACKING_SHARED);
	g1 = allocated(vm, GMEM_BACKING_PRIVATE);
	if (discard) {
		TEST_ASSERT_EQ(s1, s0 + (int64_t)len);
		TEST_ASSERT_EQ(g1, g0 - (int64_t)len);
	} else {
		TEST_ASSERT_EQ(g1, g0);
	}

	/* Back to private. */
	TEST_ASSERT_EQ(gmem_convert(vm, off, len, GMEM_PRIVATE), len / PG);
	test_audit(vm);
	if (discard) {
		TEST_ASSERT_EQ(allocated(vm, GMEM_BACKING_SHARED), s0);
		TEST_ASSERT_EQ(allocated(vm, GMEM_BACKING_PRIVATE),
			       g0 - (int64_t)len);
	} else {
		TEST_ASSERT_EQ(allocated(vm, GMEM_BACKING_PRIVATE), g0);
	}
	TEST_ASSERT_EQ(gmem_access(vm, off, check, len, false, GMEM_PRIVATE),
		       0);
	if (discard) {
		for (i = 0; i < len; i++)
			if (check[i])
				TEST_FAIL("byte %#llx reads %#x after discard",
					  (unsigned long long)(off + i),
					  check[i]);
	} else {
		TEST_ASSERT(!memcmp(check, buf, len));
	}
	gmem_get_stats(vm, &s);
	TEST_ASSERT_EQ(s.bytes_discarded, discard ? 2 * len : 0);
	test_audit(vm);
	gmem_destroy(vm);
	close(vm_fd);
}

/* ---- counters -------------------------------------------------------------- */

static void test_stats(enum gmem_mode mode)
{
	const uint64_t ram = 64 * PG;
	struct recorder rec;
	struct gmem_listener *l;
	struct gmem_stats s = { .size = sizeof(s) };
	struct gmem_vm *vm;
	int vm_fd = test_create_vm();

	recorder_init(&rec, ram);
	vm = test_create_gmem(vm_fd, ram, mode, GMEM_PRIVATE, NULL, NULL);
	gmem_get_stats(vm, &s);
	TEST_ASSERT_EQ(s.pages_private, 64);
	TEST_ASSERT_EQ(s.pages_shared, 0);
	TEST_ASSERT_EQ(s.nr_runs, 1);
	TEST_ASSERT_EQ(s.conversions_to_private + s.conversions_to_shared +
		       s.pages_to_private + s.pages_to_shared +
		       s.bytes_discarded + s.conversions_failed, 0);
	TEST_ASSERT(s.map_bytes > 0);
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops, &rec,
					      &l), 0);

	TEST_ASSERT_EQ(gmem_convert(vm, 0, 8 * PG, GMEM_SHARED), 8);
	TEST_ASSERT_EQ(gmem_convert(vm, 4 * PG, 8 * PG, GMEM_SHARED), 4);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, 4 * PG, GMEM_SHARED), 0);
	TEST_ASSERT_EQ(gmem_convert(vm, 2 * PG, 4 * PG, GMEM_PRIVATE), 4);
	TEST_ASSERT_EQ(gmem_convert(vm, 40 * PG, 4 * PG, GMEM_PRIVATE), 0);
	/* A refused conversion counts as failed and changes nothing. */
	rec.fail_discard_nth = 1;
	TEST_ASSERT_EQ(gmem_convert(vm, 8 * PG, 2 * PG, GMEM_PRIVATE), -EAGAIN);
	TEST_ASSERT_EQ(rec.fail_discard_nth, 0);
	test_audit(vm);

	/* [0,2) S, [2,6) P, [6,12) S, [12,64) P */
	gmem_get_stats(vm, &s);
	TEST_ASSERT_EQ(s.pages_shared, 8);
	TEST_ASSERT_EQ(s.pages_private, 56);
	TEST_ASSERT_EQ(s.nr_runs, 4);
	TEST_ASSERT_EQ(s.conversions_to_shared, 2);
	TEST_ASSERT_EQ(s.pages_to_shared, 12);
	TEST_ASSERT_EQ(s.conversions_to_private, 1);
	TEST_ASSERT_EQ(s.pages_to_private, 4);
	TEST_ASSERT_EQ(s.conversions_failed, 1);
	TEST_ASSERT_EQ(s.bytes_discarded,
		       mode == GMEM_MODE_DISCARD ? 16 * PG : 0);
	TEST_ASSERT(s.map_bytes > 0);

	TEST_ASSERT_EQ(gmem_convert(vm, 0, ram, GMEM_PRIVATE), 8);
	gmem_get_stats(vm, &s);
	TEST_ASSERT_EQ(s.nr_runs, 1);
	TEST_ASSERT_EQ(s.pages_private, 64);
	TEST_ASSERT_EQ(s.conversions_to_private, 2);
	TEST_ASSERT_EQ(s.pages_to_private, 12);
	gmem_listener_unregister(vm, l);
	gmem_destroy(vm);
	recorder_free(&rec);
	close(vm_fd);
}

int main(void)
{
	static const enum gmem_mode modes[] = { GMEM_MODE_DISCARD,
						GMEM_MODE_IN_PLACE };
	unsigned int i;

	test_require_gmem();
	test_probes();
	test_audit_idle_listener(GMEM_MODE_DISCARD);
	test_audit_idle_listener(GMEM_MODE_IN_PLACE);
	test_create_config();
	for (i = 0; i < 2; i++) {
		printf("mode %s\n", gmem_mode_name(modes[i]));
		test_convert_edges(modes[i]);
		test_access(modes[i]);
		test_init_shared(modes[i]);
		test_memory_given_back(modes[i]);
		test_stats(modes[i]);
	}
	printf("ok\n");
	return T_EXIT_PASS;
}
