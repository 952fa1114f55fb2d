/* SPDX-License-Identifier: MIT */
/*
 * Memory made of several RAM regions with holes between them, case by
 * case (the random walk is test_gmem_regions_random.c):
 *  - a request touching a hole (convert, set_plugged, access, state_at,
 *    plugged_at) is -EINVAL and changes nothing, no callback runs;
 *  - changes across two adjacent regions work in one call, and every
 *    callback (listener, platform hook, subscriber) and every DMA mapping
 *    stays inside one region: two adjacent shared regions are two
 *    populates, never one;
 *  - gmem_region_get/find/count, gmem_ram_size, the slots (one private
 *    view and one shared alias per region, ids unique: the slot table
 *    fails the test otherwise);
 *  - hot-plug (gmem_region_add) with VMM-owned fds at non-zero offsets:
 *    listeners and the DMA mapper get the new shared region, content lands
 *    at the file offset; bad adds change nothing;
 *  - gmem_region_remove: listeners discard, private pages are invalidated,
 *    subscribers hear RELEASE, slots are deleted and their ids reused.
 * The audit runs after every change.
 */
#include <sys/stat.h>

#include "regions_fixture.h"

static size_t count_events(enum rec_kind kind, size_t from)
{
	size_t i, n = 0;

	pthread_mutex_lock(&rec.lock);
	for (i = from; i < rec.nr; i++)
		n += rec.ev[i].kind == kind;
	pthread_mutex_unlock(&rec.lock);
	return n;
}

/* ---- holes ----------------------------------------------------------------- */


/*
 * An access touching a hole is -EINVAL (gmem.h), also when a page before
 * the hole is in the other state (which alone would be -EACCES).
 */

static void expect_hole_access(struct gmem_vm *vm, uint64_t gpa, void *buf,
			       uint64_t len, bool write, enum gmem_state view)
{
	int err = gmem_access(vm, gpa, buf, len, write, view);

	if (err == -EINVAL)
		return;
	TEST_FAIL("gmem_access(%#llx, %llu) touching a hole: %d",
		  (unsigned long long)gpa, (unsigned long long)len, err);
}

static void test_holes(enum gmem_mode mode)
{
	static const struct rgn r[] = { { 0, 3 * MiB }, { 4 * MiB, 2 * MiB } };
	static const struct {
		uint64_t gpa, len;
		const char *what;
	} bad[] = {
		{ 3 * MiB - PG, 2 * PG, "the end of region 0 and the hole" },
		{ 3 * MiB, PG, "the first page of the hole" },
		{ 4 * MiB - PG, 2 * PG, "the hole and region 1" },
		{ 0, 6 * MiB, "both regions and the hole" },
		{ 2 * MiB, 3 * MiB, "across the hole" },
		{ 6 * MiB, PG, "above the last region" },
		{ 5 * MiB, 2 * MiB, "region 1 and above" },
		{ 0, MAX_GPA, "everything" },
	};
	struct gmem_stats s0 = { .size = sizeof(s0) }, s1 = { .size = sizeof(s1) };
	struct gmem_region_info info = { .size = sizeof(info) };
	struct gmem_subscription *sub;
	struct gmem_listener *l;
	struct test_runs r0, r1;
	struct gmem_vm *vm;
	uint8_t buf[2 * PG];
	uint64_t rs, rl, h, k;
	unsigned int i;

	printf("holes (%s)\n", gmem_mode_name(mode));
	recorder_init(&rec, MAX_GPA);
	slot_table_init(&slots);
	vm = create(mode, GMEM_PRIVATE, r, 2);
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops, &rec,
					      &l), 0);
	TEST_ASSERT_EQ(gmem_subscribe(vm, recorder_inval, &rec, &sub), 0);
	audit(vm);
	/* One prepare per region, never across the hole. */
	TEST_ASSERT_EQ(count_events(REC_PREPARE, 0), 2);
	expect_events_inside(r, 2, 0);

	/* Regions and what they say. */
	TEST_ASSERT_EQ(gmem_region_count(vm), 2);
	TEST_ASSERT_EQ(gmem_ram_size(vm), 5 * MiB);
	TEST_ASSERT_EQ(gmem_max_gpa(vm), MAX_GPA);
	TEST_ASSERT_EQ(gmem_region_get(vm, 0, &info), 0);
	TEST_ASSERT_EQ(info.index, 0);
	TEST_ASSERT_EQ(info.gpa, 0);
	TEST_ASSERT_EQ(info.len, 3 * MiB);
	TEST_ASSERT(info.private_fd >= 0);
	TEST_ASSERT_EQ(info.private_addr, gmem_private_view(vm));
	TEST_ASSERT_EQ(gmem_region_get(vm, 1, &info), 0);
	TEST_ASSERT_EQ(info.index, 1);
	TEST_ASSERT_EQ(info.gpa, 4 * MiB);
	TEST_ASSERT_EQ(info.len, 2 * MiB);
	TEST_ASSERT_EQ((uint8_t *)info.private_addr,
		       (uint8_t *)gmem_private_view(vm) + 4 * MiB);
	TEST_ASSERT_EQ((uint8_t *)info.shared_addr,
		       (uint8_t *)gmem_shared_view(vm) + 4 * MiB);
	if (mode == GMEM_MODE_IN_PLACE)
		TEST_ASSERT_EQ(info.shared_fd, info.private_fd);
	else
		TEST_ASSERT(info.shared_fd >= 0 &&
			    info.shared_fd != info.private_fd);
	TEST_ASSERT_EQ(gmem_region_get(vm, 2, &info), -ENOENT);
	TEST_ASSERT_EQ(gmem_region_find(vm, 5 * MiB + 17, &info), 0);
	TEST_ASSERT_EQ(info.index, 1);
	TEST_ASSERT_EQ(gmem_region_find(vm, 3 * MiB - 1, &info), 0);
	TEST_ASSERT_EQ(info.index, 0);
	TEST_ASSERT_EQ(gmem_region_find(vm, 3 * MiB, &info), -ENOENT);
	TEST_ASSERT_EQ(gmem_region_find(vm, 6 * MiB, &info), -ENOENT);
	TEST_ASSERT_EQ(gmem_region_find(vm, MAX_GPA, &info), -ENOENT);
	TEST_ASSERT_EQ(gmem_region_find(vm, ~0ULL, &info), -ENOENT);
	/* Slots: the private view and the shared alias of each region. */
	TEST_ASSERT_EQ(slot_table_nr_live(&slots), 4);
	TEST_ASSERT_EQ(slot_table_count_at(&slots, 0, 3 * MiB), 1);
	TEST_ASSERT_EQ(slot_table_count_at(&slots, 4 * MiB, 2 * MiB), 1);
	TEST_ASSERT_EQ(slot_table_count_at(&slots, gmem_shared_base(vm),
					   3 * MiB), 1);
	TEST_ASSERT_EQ(slot_table_count_at(&slots,
					   gmem_shared_base(vm) + 4 * MiB,
					   2 * MiB), 1);

	/* Some shared pages in each region, then the refusals. */
	TEST_ASSERT_EQ(gmem_convert(vm, 3 * MiB - 4 * PG, 4 * PG, GMEM_SHARED),
		       4);
	TEST_ASSERT_EQ(gmem_convert(vm, 4 * MiB, 4 * PG, GMEM_SHARED), 4);
	audit(vm);
	recorder_reset_events(&rec);
	test_get_runs(vm, 0, MAX_GPA, &r0);
	TEST_ASSERT_EQ(gmem_get_stats(vm, &s0), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const uint64_t g = bad[i].gpa, n = bad[i].len;
		int64_t ret;

		ret = gmem_convert(vm, g, n, GMEM_SHARED);
		if (ret != -EINVAL)
			TEST_FAIL("convert %s: %lld", bad[i].what,
				  (long long)ret);
		TEST_ASSERT_EQ(gmem_convert(vm, g, n, GMEM_PRIVATE), -EINVAL);
		TEST_ASSERT_EQ(gmem_set_plugged(vm, g, n, false), -EINVAL);
		TEST_ASSERT_EQ(gmem_set_plugged(vm, g, n, true), -EINVAL);
		/* Access at the first hole byte of the range, and from the
		 * byte before it. */
		h = g < 3 * MiB && g + n > 3 * MiB ? 3 * MiB :
		    g >= 3 * MiB && g < 4 * MiB   ? g :
						    (g > 6 * MiB ? g : 6 * MiB);
		memset(buf, 0xee, sizeof(buf));
		TEST_ASSERT_EQ(gmem_access(vm, h, buf, 1, false, GMEM_PRIVATE),
			       -EINVAL);
		TEST_ASSERT_EQ(gmem_access(vm, h, buf, 1, false, GMEM_SHARED),
			       -EINVAL);
		TEST_ASSERT_EQ(gmem_access(vm, h, buf, PG, true, GMEM_SHARED),
			       -EINVAL);
		expect_hole_access(vm, h - 1, buf, 2, false, GMEM_PRIVATE);
		expect_hole_access(vm, h - 1, buf, 2, true, GMEM_SHARED);
		for (k = 0; k < sizeof(buf); k++)
			TEST_ASSERT_EQ(buf[k], 0xee);
		test_get_runs(vm, 0, MAX_GPA, &r1);
		TEST_ASSERT_EQ(r1.nr, r0.nr);
		TEST_ASSERT(!memcmp(&r0, &r1, sizeof(r0)));
		TEST_ASSERT_EQ(rec.nr, 0);
	}
	/* Access that touches the hole: -EINVAL, buffer and memory kept. */
	memset(buf, 0xee, sizeof(buf));
	TEST_ASSERT_EQ(gmem_access(vm, 3 * MiB - 1, buf, 2, false,
				   GMEM_SHARED), -EINVAL);
	TEST_ASSERT_EQ(gmem_access(vm, 3 * MiB, buf, 1, false, GMEM_SHARED),
		       -EINVAL);
	TEST_ASSERT_EQ(gmem_access(vm, 4 * MiB - 1, buf, 2, true,
				   GMEM_SHARED), -EINVAL);
	TEST_ASSERT_EQ(gmem_access(vm, 6 * MiB, buf, 1, true, GMEM_PRIVATE),
		       -EINVAL);
	for (i = 0; i < sizeof(buf); i++)
		TEST_ASSERT_EQ(buf[i], 0xee);
	TEST_ASSERT_EQ(gmem_access(vm, 4 * MiB, buf, PG, false, GMEM_SHARED),
		       0);
	for (i = 0; i < PG; i++)
		TEST_ASSERT_EQ(buf[i], 0);
	/* Queries in the hole. */
	TEST_ASSERT_EQ(gmem_state_at(vm, 3 * MiB, &rs, &rl), -EINVAL);
	TEST_ASSERT_EQ(gmem_state_at(vm, 4 * MiB - 1, NULL, NULL), -EINVAL);
	TEST_ASSERT_EQ(gmem_state_at(vm, 7 * MiB, NULL, NULL), -EINVAL);
	TEST_ASSERT_EQ(gmem_plugged_at(vm, 3 * MiB + PG, &rs, &rl), -EINVAL);
	TEST_ASSERT_EQ(gmem_plugged_at(vm, 6 * MiB, NULL, NULL), -EINVAL);
	/* ... and next to it: runs clipped to the region. */
	TEST_ASSERT_EQ(gmem_state_at(vm, 3 * MiB - 1, &rs, &rl), GMEM_SHARED);
	TEST_ASSERT_EQ(rs, 3 * MiB - 4 * PG);
	TEST_ASSERT_EQ(rl, 4 * PG);
	TEST_ASSERT_EQ(gmem_state_at(vm, 5 * MiB, &rs, &rl), GMEM_PRIVATE);
	TEST_ASSERT_EQ(rs, 4 * MiB + 4 * PG);
	TEST_ASSERT_EQ(rl, 2 * MiB - 4 * PG);
	/* The run of equal value (state and plug), as gmem_state_at(). */
	TEST_ASSERT_EQ(gmem_plugged_at(vm, 5 * MiB, &rs, &rl), 1);
	TEST_ASSERT_EQ(rs, 4 * MiB + 4 * PG);
	TEST_ASSERT_EQ(rl, 2 * MiB - 4 * PG);
	/* The walk skips the hole: P S | S P */
	TEST_ASSERT_EQ(r0.nr, 4);
	TEST_ASSERT_EQ(r0.gpa[1], 3 * MiB - 4 * PG);
	TEST_ASSERT_EQ(r0.len[1], 4 * PG);
	TEST_ASSERT_EQ(r0.gpa[2], 4 * MiB);
	TEST_ASSERT_EQ(r0.len[2], 4 * PG);
	TEST_ASSERT_EQ(r0.gpa[3] + r0.len[3], 6 * MiB);
	TEST_ASSERT_EQ(gmem_get_stats(vm, &s1), 0);
	TEST_ASSERT_EQ(s1.pages_to_shared, s0.pages_to_shared);
	TEST_ASSERT_EQ(s1.pages_to_private, s0.pages_to_private);
	TEST_ASSERT_EQ(s1.plugs, s0.plugs);
	TEST_ASSERT_EQ(s1.unplugs, s0.unplugs);
	TEST_ASSERT_EQ(s1.bytes_discarded, s0.bytes_discarded);
	TEST_ASSERT_EQ(s1.nr_regions, 2);
	TEST_ASSERT_EQ(s1.pages_private + s1.pages_shared, 5 * MiB / PG);
	audit(vm);

	/* A hole-free request right up to the hole works. */
	TEST_ASSERT_EQ(gmem_convert(vm, 0, 3 * MiB, GMEM_SHARED),
		       3 * MiB / PG - 4);
	TEST_ASSERT_EQ(gmem_set_plugged(vm, 4 * MiB, 2 * MiB, false),
		       2 * MiB / PG);
	audit(vm);
	TEST_ASSERT_EQ(gmem_set_plugged(vm, 4 * MiB, 2 * MiB, true),
		       2 * MiB / PG);
	audit(vm);
	expect_events_inside(r, 2, 0);

	gmem_listener_unregister(vm, l);
	gmem_unsubscribe(vm, sub);
	gmem_destroy(vm);
	TEST_ASSERT_EQ(slot_table_nr_live(&slots), 0);
	for (i = 0; i < NPAGES; i++)
		TEST_ASSERT(!rec.prepared[i] && !rec.mapped[i]);
	recorder_free(&rec);
}

/* ---- adjacent regions ---------------------------------------------------------- */

static void test_adjacent(enum gmem_mode mode, bool type1)
{
	static const struct rgn r[] = {
		{ 0, 2 * MiB }, { 2 * MiB, 2 * MiB }, { 5 * MiB, MiB },
	};
	struct gmem_dma_mapper_config mcfg = { .size = sizeof(mcfg) };
	struct gmem_subscription *sub;
	struct gmem_dma_mapper *m;
	struct gmem_listener *l;
	struct gmem_vm *vm;
	struct fake f;
	uint8_t buf[2 * PG], check[2 * PG];
	uint64_t rs, rl, i;
	size_t from;

	printf("adjacent regions (%s, %s DMA)\n", gmem_mode_name(mode),
	       type1 ? "type1 4 MiB blocks" : "exact");
	recorder_init(&rec, MAX_GPA);
	slot_table_init(&slots);
	vm = create(mode, GMEM_SHARED, r, 3);
	TEST_ASSERT_EQ(rec.nr, 0);	/* nothing private to prepare */
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops, &rec,
					      &l), 0);
	/* One populate per region: never one across [0, 4 MiB). */
	TEST_ASSERT_EQ(rec.nr, 3);
	for (i = 0; i < 3; i++) {
		TEST_ASSERT_EQ(rec.ev[i].kind, REC_POPULATE);
		TEST_ASSERT_EQ(rec.ev[i].offset, r[i].gpa);
		TEST_ASSERT_EQ(rec.ev[i].len, r[i].len);
	}
	TEST_ASSERT_EQ(gmem_subscribe(vm, recorder_inval, &rec, &sub), 0);
	fake_init(&f, MAX_GPA, type1 ? 4 * MiB : 0);
	mcfg.ops = type1 ? &fake_type1_ops : &fake_exact_ops;
	mcfg.data = &f;
	mcfg.block_size = type1 ? 4 * MiB : 0;
	TEST_ASSERT_EQ(gmem_dma_mapper_create(vm, &mcfg, &m), 0);
	check_mapper(m, &f, r, 3);
	{
		struct gmem_dma_stats ds = { .size = sizeof(ds) };

		TEST_ASSERT_EQ(gmem_dma_mapper_get_stats(m, &ds), 0);
		TEST_ASSERT_EQ(ds.live, 3);
	}
	audit(vm);

	/* Runs are clipped to their region even where the state goes on. */
	TEST_ASSERT_EQ(gmem_state_at(vm, MiB, &rs, &rl), GMEM_SHARED);
	TEST_ASSERT_EQ(rs, 0);
	TEST_ASSERT_EQ(rl, 2 * MiB);
	TEST_ASSERT_EQ(gmem_plugged_at(vm, 3 * MiB, &rs, &rl), 1);
	TEST_ASSERT_EQ(rs, 2 * MiB);
	TEST_ASSERT_EQ(rl, 2 * MiB);

	/* Across the boundary in one call. */
	recorder_reset_events(&rec);
	TEST_ASSERT_EQ(gmem_convert(vm, MiB, 2 * MiB, GMEM_PRIVATE),
		       2 * MiB / PG);
	expect_events_inside(r, 3, 0);
	TEST_ASSERT_EQ(count_events(REC_DISCARD, 0), 2);
	TEST_ASSERT_EQ(count_events(REC_PREPARE, 0), 2);
	check_mapper(m, &f, r, 3);
	audit(vm);
	TEST_ASSERT_EQ(gmem_set_plugged(vm, MiB + MiB / 2, MiB, false),
		       MiB / PG);
	audit(vm);
	from = rec.nr;
	TEST_ASSERT_EQ(gmem_convert(vm, 0, 4 * MiB, GMEM_SHARED),
		       2 * MiB / PG);
	/* Plugged pages [1, 1.5) and [2.5, 3) MiB populate, per region. */
	TEST_ASSERT_EQ(count_events(REC_POPULATE, from), 2);
	expect_events_inside(r, 3, 0);
	check_mapper(m, &f, r, 3);
	audit(vm);
	TEST_ASSERT_EQ(gmem_set_plugged(vm, 0, 4 * MiB, true), MiB / PG);
	expect_events_inside(r, 3, 0);
	check_mapper(m, &f, r, 3);
	audit(vm);
	/* Access across the boundary, in one call. */
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 13 + 5);
	TEST_ASSERT_EQ(gmem_access(vm, 2 * MiB - PG, buf, sizeof(buf), true,
				   GMEM_SHARED), 0);
	TEST_ASSERT_EQ(gmem_access(vm, 2 * MiB - PG, check, sizeof(check),
				   false, GMEM_SHARED), 0);
	TEST_ASSERT(!memcmp(buf, check, sizeof(buf)));
	TEST_ASSERT(!memcmp((uint8_t *)gmem_shared_view(vm) + 2 * MiB - PG,
			    buf, sizeof(buf)));
	/* Across the boundary and on into the hole: nothing. */
	from = rec.nr;
	TEST_ASSERT_EQ(gmem_convert(vm, MiB, 4 * MiB, GMEM_PRIVATE), -EINVAL);
	TEST_ASSERT_EQ(rec.nr, from);
	audit(vm);

	gmem_dma_mapper_destroy(vm, m);
	check_backend(&f);
	TEST_ASSERT_EQ(f.nr, 0);
	fake_free(&f);
	gmem_listener_unregister(vm, l);
	gmem_unsubscribe(vm, sub);
	gmem_destroy(vm);
	TEST_ASSERT_EQ(slot_table_nr_live(&slots), 0);
	recorder_free(&rec);
}

/* ---- hot-plug and remove ----------------------------------------------------- */

static unsigned int live_ids_at(uint64_t gpa, uint32_t *ids)
{
	unsigned int i, n = 0;

	pthread_mutex_lock(&slots.lock);
	for (i = 0; i < SLOT_TABLE_MAX; i++)
		if (slots.live[i] && slots.slot[i].gpa == gpa)
			ids[n++] = i;
	pthread_mutex_unlock(&slots.lock);
	return n;
}

static void test_hotplug(enum gmem_mode mode, enum gmem_state initial)
{
	static const struct rgn r0[] = { { 0, 2 * MiB } };
	static const struct rgn r1[] = { { 0, 2 * MiB }, { 4 * MiB, 2 * MiB } };
	const bool discard = mode == GMEM_MODE_DISCARD;
	struct gmem_dma_mapper_config mcfg = { .size = sizeof(mcfg) };
	struct gmem_stats st = { .size = sizeof(st) };
	struct gmem_region_info info = { .size = sizeof(info) };
	struct gmem_region_config rc;
	struct gmem_subscription *sub;
	struct gmem_dma_mapper *m;
	struct gmem_listener *l;
	struct gmem_vm *vm;
	struct fake f;
	uint32_t ids[4], ids_after[4];
	uint64_t sb, p, releases = 0;
	long registers;
	size_t from, i;
	int shared_fd = -1;
	uint8_t buf[PG], check[PG];
	struct stat sst;

	printf("hot-plug (%s, initially %s)\n", gmem_mode_name(mode),
	       gmem_state_name(initial));
	recorder_init(&rec, MAX_GPA);
	slot_table_init(&slots);
	vm = create(mode, initial, r0, 1);
	sb = gmem_shared_base(vm);
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops, &rec,
					      &l), 0);
	TEST_ASSERT_EQ(gmem_subscribe(vm, recorder_inval, &rec, &sub), 0);
	fake_init(&f, MAX_GPA, 0);
	mcfg.ops = &fake_exact_ops;
	mcfg.data = &f;
	/* The mapper must see a hot-plugged region as one unit (listeners
	 * are told once the region is in the array). */
	TEST_ASSERT_EQ(gmem_dma_mapper_create(vm, &mcfg, &m), 0);
	TEST_ASSERT_EQ(slot_table_nr_live(&slots), 2);
	registers = slots.registers;

	/* Bad adds change nothing. */
	recorder_reset_events(&rec);
	rc = region_config(MiB, 2 * MiB);
	TEST_ASSERT_EQ(gmem_region_add(vm, &rc), -EINVAL);	/* overlap */
	close_config_fds(&rc);
	rc = region_config(7 * MiB, 2 * MiB);
	TEST_ASSERT_EQ(gmem_region_add(vm, &rc), -EINVAL);	/* > max_gpa */
	close_config_fds(&rc);
	rc = region_config(4 * MiB + 0x800, MiB);
	TEST_ASSERT_EQ(gmem_region_add(vm, &rc), -EINVAL);	/* unaligned */
	close_config_fds(&rc);
	rc = region_config(4 * MiB, 0);
	TEST_ASSERT_EQ(gmem_region_add(vm, &rc), -EINVAL);	/* empty */
	close_config_fds(&rc);
	rc = region_config(4 * MiB, MiB);
	rc.size = 0;
	TEST_ASSERT_EQ(gmem_region_add(vm, &rc), -EINVAL);	/* size 0 */
	close_config_fds(&rc);
	TEST_ASSERT_EQ(gmem_region_add(vm, NULL), -EINVAL);
	TEST_ASSERT_EQ(rec.nr, 0);
	TEST_ASSERT_EQ(slots.registers, registers);
	TEST_ASSERT_EQ(gmem_region_count(vm), 1);
	TEST_ASSERT_EQ(gmem_ram_size(vm), 2 * MiB);
	audit(vm);

	/* Add [4, 6) MiB; in discard mode the VMM gives its own shared
	 * memfd, the region at offset 1 MiB of it. */
	rc = region_config(4 * MiB, 2 * MiB);
	if (discard) {
		shared_fd = test_memfd(4 * MiB);
		rc.shared_fd = shared_fd;
		rc.shared_offset = MiB;
	}
	TEST_ASSERT_EQ(gmem_region_add(vm, &rc), 0);
	close_config_fds(&rc);
	audit(vm);
	check_mapper(m, &f, r1, 2);
	expect_events_inside(r1, 2, 0);
	TEST_ASSERT_EQ(gmem_region_count(vm), 2);
	TEST_ASSERT_EQ(gmem_ram_size(vm), 4 * MiB);
	TEST_ASSERT_EQ(slot_table_nr_live(&slots), 4);
	TEST_ASSERT_EQ(slot_table_count_at(&slots, 4 * MiB, 2 * MiB), 1);
	TEST_ASSERT_EQ(slot_table_count_at(&slots, sb + 4 * MiB, 2 * MiB), 1);
	if (initial == GMEM_SHARED) {
		/* Listeners are told populate for the new region, once. */
		TEST_ASSERT_EQ(rec.nr, 1);
		TEST_ASSERT_EQ(rec.ev[0].kind, REC_POPULATE);
		TEST_ASSERT_EQ(rec.ev[0].offset, 4 * MiB);
		TEST_ASSERT_EQ(rec.ev[0].len, 2 * MiB);
		TEST_ASSERT_EQ(f.nr, 2);
	} else {
		/* Private: prepared, nothing for listeners. */
		TEST_ASSERT_EQ(rec.nr, 1);
		TEST_ASSERT_EQ(rec.ev[0].kind, REC_PREPARE);
		TEST_ASSERT_EQ(rec.ev[0].offset, 4 * MiB);
		TEST_ASSERT_EQ(rec.ev[0].len, 2 * MiB);
		TEST_ASSERT_EQ(f.nr, 0);
	}
	TEST_ASSERT_EQ(gmem_region_find(vm, 5 * MiB, &info), 0);
	TEST_ASSERT_EQ(info.index, 1);
	TEST_ASSERT_EQ(info.gpa, 4 * MiB);
	TEST_ASSERT_EQ(info.len, 2 * MiB);
	if (discard) {
		/* libgmem holds a dup of the VMM's fd at the VMM's offset. */
		TEST_ASSERT(info.shared_fd >= 0 && info.shared_fd != shared_fd);
		TEST_ASSERT_EQ(info.shared_offset, MiB);
	}
	TEST_ASSERT_EQ(gmem_get_stats(vm, &st), 0);
	TEST_ASSERT_EQ(st.nr_regions, 2);
	TEST_ASSERT_EQ(st.regions_added, 1);
	TEST_ASSERT_EQ(st.regions_removed, 0);

	/* Content written to a shared page lands at the VMM's file offset. */
	TEST_ASSERT_EQ(gmem_convert(vm, 4 * MiB, 8 * PG, GMEM_SHARED),
		       initial == GMEM_SHARED ? 0 : 8);
	for (i = 0; i < PG; i++)
		buf[i] = (uint8_t)(i * 3 + 1);
	TEST_ASSERT_EQ(gmem_access(vm, 4 * MiB + 3 * PG, buf, PG, true,
				   GMEM_SHARED), 0);
	if (discard) {
		TEST_ASSERT_EQ(pread(shared_fd, check, PG, MiB + 3 * PG),
			       (ssize_t)PG);
		TEST_ASSERT(!memcmp(buf, check, PG));
		TEST_ASSERT_EQ(pread(shared_fd, check, PG, 3 * PG),
			       (ssize_t)PG);
		for (i = 0; i < PG; i++)
			TEST_ASSERT_EQ(check[i], 0);
	}
	/* Some private pages and an unplugged run in the new region. */
	TEST_ASSERT_EQ(gmem_convert(vm, 5 * MiB, 16 * PG, GMEM_PRIVATE),
		       initial == GMEM_PRIVATE ? 0 : 16);
	TEST_ASSERT_EQ(gmem_convert(vm, 4 * MiB + 8 * PG, 8 * PG,
				    GMEM_SHARED),
		       initial == GMEM_SHARED ? 0 : 8);
	TEST_ASSERT_EQ(gmem_set_plugged(vm, 5 * MiB + 8 * PG, 16 * PG, false),
		       16);
	TEST_ASSERT_EQ(gmem_convert(vm, 2 * MiB - 4 * PG, 4 * PG, GMEM_SHARED),
		       initial == GMEM_SHARED ? 0 : 4);
	audit(vm);
	check_mapper(m, &f, r1, 2);

	/* Remove: only a region's start names it. */
	TEST_ASSERT_EQ(gmem_region_remove(vm, 4 * MiB + PG), -ENOENT);
	TEST_ASSERT_EQ(gmem_region_remove(vm, 3 * MiB), -ENOENT);
	TEST_ASSERT_EQ(live_ids_at(4 * MiB, ids), 1);
	TEST_ASSERT_EQ(live_ids_at(sb + 4 * MiB, ids + 1), 1);
	from = rec.nr;
	TEST_ASSERT_EQ(gmem_region_remove(vm, 4 * MiB), 0);
	audit(vm);
	check_mapper(m, &f, r0, 1);
	expect_events_inside(r1, 2, from);
	pthread_mutex_lock(&rec.lock);
	for (i = from; i < rec.nr; i++) {
		/* Only the removed region hears anything. */
		TEST_ASSERT(rec.ev[i].offset >= 4 * MiB);
		TEST_ASSERT(rec.ev[i].kind == REC_DISCARD ||
			    rec.ev[i].kind == REC_INVALIDATE ||
			    rec.ev[i].kind == REC_INVAL);
		if (rec.ev[i].kind == REC_INVAL) {
			TEST_ASSERT_EQ(rec.ev[i].reason, GMEM_INVAL_RELEASE);
			releases++;
		}
	}
	/* Nothing of it stays mapped or prepared (the strict recorder also
	 * failed on a double discard or invalidate, e.g. of the unplugged
	 * pages). */
	for (p = 4 * MiB / PG; p < 6 * MiB / PG; p++)
		TEST_ASSERT(!rec.mapped[p] && !rec.prepared[p]);
	/* The rest is as it was. */
	for (p = 2 * MiB / PG - 4; p < 2 * MiB / PG; p++)
		TEST_ASSERT(rec.mapped[p]);
	pthread_mutex_unlock(&rec.lock);
	TEST_ASSERT_EQ(releases, discard ? 2 : 1);
	TEST_ASSERT_EQ(slot_table_nr_live(&slots), 2);
	TEST_ASSERT_EQ(slot_table_count_at(&slots, 4 * MiB, 2 * MiB), 0);
	TEST_ASSERT_EQ(slot_table_count_at(&slots, sb + 4 * MiB, 2 * MiB), 0);
	TEST_ASSERT_EQ(gmem_region_count(vm), 1);
	TEST_ASSERT_EQ(gmem_ram_size(vm), 2 * MiB);
	TEST_ASSERT_EQ(gmem_region_find(vm, 5 * MiB, &info), -ENOENT);
	TEST_ASSERT_EQ(gmem_convert(vm, 4 * MiB, PG, GMEM_SHARED), -EINVAL);
	TEST_ASSERT_EQ(gmem_state_at(vm, 4 * MiB, NULL, NULL), -EINVAL);
	TEST_ASSERT_EQ(gmem_access(vm, 4 * MiB, buf, 1, false, GMEM_SHARED),
		       -EINVAL);
	TEST_ASSERT_EQ(gmem_region_remove(vm, 4 * MiB), -ENOENT);
	TEST_ASSERT_EQ(gmem_get_stats(vm, &st), 0);
	TEST_ASSERT_EQ(st.nr_regions, 1);
	TEST_ASSERT_EQ(st.regions_removed, 1);
	TEST_ASSERT_EQ(st.pages_private + st.pages_shared, 2 * MiB / PG);
	TEST_ASSERT_EQ(st.pages_unplugged, 0);
	/* The VMM's own fd is still its own. */
	if (discard)
		TEST_ASSERT_EQ(fstat(shared_fd, &sst), 0);

	/* A new region reuses the freed slot ids. */
	rc = region_config(6 * MiB, MiB);
	TEST_ASSERT_EQ(gmem_region_add(vm, &rc), 0);
	close_config_fds(&rc);
	audit(vm);
	TEST_ASSERT_EQ(live_ids_at(6 * MiB, ids_after), 1);
	TEST_ASSERT_EQ(live_ids_at(sb + 6 * MiB, ids_after + 1), 1);
	TEST_ASSERT((ids_after[0] == ids[0] && ids_after[1] == ids[1]) ||
		    (ids_after[0] == ids[1] && ids_after[1] == ids[0]));
	/* And the old place is free again: [3, 5) MiB fits now. */
	rc = region_config(3 * MiB, 2 * MiB);
	TEST_ASSERT_EQ(gmem_region_add(vm, &rc), 0);
	close_config_fds(&rc);
	audit(vm);
	TEST_ASSERT_EQ(gmem_region_count(vm), 3);
	TEST_ASSERT_EQ(gmem_region_get(vm, 1, &info), 0);
	TEST_ASSERT_EQ(info.gpa, 3 * MiB);
	{
		static const struct rgn r3[] = {
			{ 0, 2 * MiB }, { 3 * MiB, 2 * MiB }, { 6 * MiB, MiB },
		};

		from = rec.nr;
		TEST_ASSERT_EQ(gmem_convert(vm, 3 * MiB, 2 * MiB,
					    GMEM_SHARED),
			       initial == GMEM_SHARED ? 0 : 2 * MiB / PG);
		check_mapper(m, &f, r3, 3);
		expect_events_inside(r3, 3, from);
	}
	audit(vm);

	if (m)
		gmem_dma_mapper_destroy(vm, m);
	fake_free(&f);
	gmem_listener_unregister(vm, l);
	gmem_unsubscribe(vm, sub);
	gmem_destroy(vm);
	TEST_ASSERT_EQ(slot_table_nr_live(&slots), 0);
	TEST_ASSERT_EQ(slots.registers, slots.deletes);
	for (p = 0; p < NPAGES; p++)
		TEST_ASSERT(!rec.prepared[p] && !rec.mapped[p]);
	if (shared_fd >= 0)
		close(shared_fd);
	recorder_free(&rec);
}

static void test_regions_mode(enum gmem_mode mode)
{
	test_holes(mode);
	test_adjacent(mode, false);
	test_adjacent(mode, true);
	test_hotplug(mode, GMEM_SHARED);
	test_hotplug(mode, GMEM_PRIVATE);
}

int main(void)
{
	regions_run(test_regions_mode);
	printf("ok\n");
	return T_EXIT_PASS;
}
