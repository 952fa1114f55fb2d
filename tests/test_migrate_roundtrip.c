/* SPDX-License-Identifier: MIT */
/*
 * Live migration of a VM's memory, end to end without KVM (vmm/migrate/,
 * docs/MIGRATION.md): a source VM of four regions (with holes between
 * them) in discard mode (also with deferred reclaim) and in-place mode,
 * written by writer threads through the host views, converted and
 * (un)plugged by another thread, and written by a "device" through its
 * own mapping of the shared backing, all during pre-copy; the destination
 * receives in a thread over a socketpair.  Afterwards the destination is
 * exactly the source (maps, every page's content, holes: the source's
 * snapshot verifies against it), both pass the audit, and nothing of the
 * tracking is left on the source.  Deterministic events between rounds
 * prove the rules one by one: a page converted (discard: its content
 * gone) or punched after it was sent, a device write after it was sent
 * (missed without the device rule, carried with it).  A 16 GiB sparse VM
 * costs about its resident bytes.
 *
 * //@ concurrency (threads write, convert and receive while it migrates)
 */
#include <sys/socket.h>
#include <unistd.h>

#include "migrate_fixture.h"

struct hooks {
	struct load *l;
	struct gmem_vm *vm;
	uint64_t converted, punched;	/* pages changed after round 0 */
	bool device_write;
	unsigned int rounds_seen;
};

/* A written page outside the device range, in region 1 (not touched by
 * the converter's luck alone). */
static uint64_t written_page(struct load *l, uint64_t from)
{
	uint64_t i;

	for (i = from / PG; i < l->m->npages; i++)
		if (__atomic_load_n(&l->last_seed[i], __ATOMIC_ACQUIRE) &&
		    (!l->dev_len || i * PG < l->dev_gpa ||
		     i * PG >= l->dev_gpa + l->dev_len))
			return i * PG;
	TEST_FAIL("no written page");
}

static int h_stop(void *data)
{
	return load_stop(((struct hooks *)data)->l);
}

static void h_resume(void *data)
{
	load_resume(((struct hooks *)data)->l);
}

static int h_device(void *data, int (*fn)(void *arg, uint64_t gpa, uint64_t len),
		    void *arg)
{
	return load_device_ranges(((struct hooks *)data)->l, fn, arg);
}

static void on_round(void *data, unsigned int round, uint64_t pages)
{
	struct hooks *h = data;
	int st;

	h->rounds_seen = round + 1;
	/* Let the guest's stand-in run between rounds. */
	if (h->l && h->l->nth)
		usleep(20000);
	/* Never once the world is stopped (the last round). */
	if (round != 1 || !h->l || h->l->pause_req)
		return;
	/* Sent in round 0, changed now. */
	h->converted = written_page(h->l, 6 * MiB);
	st = gmem_state_at(h->vm, h->converted, NULL, NULL);
	TEST_ASSERT(st >= 0);
	TEST_ASSERT(gmem_convert(h->vm, h->converted, PG, (enum gmem_state)!st) >= 0);
	h->punched = written_page(h->l, h->converted + PG);
	TEST_ASSERT(gmem_set_plugged(h->vm, h->punched, PG, false) >= 0);
	TEST_ASSERT(gmem_set_plugged(h->vm, h->punched, PG, true) >= 0);
	if (h->device_write)
		pattern_fill(h->l->dev_map, PG, 0xd1ce);
}

struct run {
	enum gmem_mode mode;
	enum gmem_state initial;
	uint32_t flags;
	unsigned int writers;
	bool convert;
	bool device;		/* a device thread writes its range */
	bool device_once;	/* only one device write, after round 0 */
	bool device_rule;	/* mig_send_opts.device_ranges given */
	const char *name;
};

/* Migrate a VM as @c says; 0 if the destination is exactly the source,
 * else -EUCLEAN and why. */
static int run_one(const struct run *c, struct mig_stats *st,
		   char *why, size_t why_len)
{
	struct creator cr = { .own_shared = true };
	struct mig_send_opts o = { 0 };
	struct hooks h = { 0 };
	struct gmem_vm *vm;
	struct model m;
	struct load l;
	struct dest d;
	char msg[512];
	int sv[2], err, same;

	model_init(&m, c->mode, c->initial, 16 * MiB);
	vm = create_model_vm(&m, c->flags, &cr);
	load_start(&l, vm, &m, c->writers, c->convert,
		   c->device || c->device_once, !c->device_once);
	h.l = &l;
	h.vm = vm;
	h.device_write = c->device_once;
	sock_pair(sv);
	dest_start(&d, sv[1], c->flags);
	o.initial_state = c->initial;
	o.stop = h_stop;
	o.resume = h_resume;
	o.device_ranges = c->device_rule ? h_device : NULL;
	o.on_round = on_round;
	o.data = &h;
	o.max_rounds = 5;
	o.converged_bytes = 8 * PG;
	err = mig_send(vm, sv[0], &o, st, msg, sizeof(msg));
	if (err) {
		dest_join(&d);
		TEST_FAIL("%s: mig_send: %d %s (destination: %d %s)", c->name,
			  err, msg, d.err, d.msg);
	}
	if (dest_join(&d))
		TEST_FAIL("%s: mig_receive: %d %s", c->name, d.err, d.msg);
	TEST_ASSERT(h.rounds_seen >= 2);
	load_end(&l);
	check_audit(vm, "source");
	check_audit(d.vm, "destination");
	check_untracked(vm);
	same = compare_vms(vm, d.vm, c->initial, why, why_len);
	printf("%-34s %u rounds, %llu bytes (%llu content, %llu hole pages), "
	       "last round %llu pages, %llu writes, %llu changes, "
	       "%.3f s, downtime %.3f s\n", c->name, st->rounds,
	       ULL(st->bytes), ULL(st->data_bytes), ULL(st->hole_pages),
	       ULL(st->last_round_pages), ULL(l.writes), ULL(l.changes),
	       st->total_s, st->downtime_s);
	gmem_destroy(d.vm);
	gmem_destroy(vm);
	close(sv[0]);
	close(sv[1]);
	model_free(&m);
	return same;
}

static void migrate_ok(const struct run *c)
{
	struct mig_stats st;
	char why[512] = "";

	if (run_one(c, &st, why, sizeof(why)))
		TEST_FAIL("%s: the destination is not the source: %s",
			  c->name, why);
	TEST_ASSERT(!strcmp(st.tracker, "uffd-wp"));
}

/* A 16 GiB guest with a few MiB written: the stream is about them. */
static void sparse_16g(void)
{
	struct gmem_region_config rc = GMEM_INIT(struct gmem_region_config,
		.gpa = 0, .len = 16 * GiB, .private_fd = -1, .shared_fd = -1);
	struct gmem_config cfg = base_config(0);
	struct creator cr = { .own_shared = true };
	struct mig_send_opts o = { .initial_state = GMEM_PRIVATE };
	struct mig_stats st;
	struct gmem_vm *vm;
	struct dest d;
	uint8_t buf[PG];
	uint64_t resident, i, gpa;
	char msg[512];
	int sv[2], err;

	cfg.mode = GMEM_MODE_DISCARD;
	cfg.initial_state = GMEM_PRIVATE;
	cfg.max_gpa = 16 * GiB;
	cfg.regions = &rc;
	cfg.nr_regions = 1;
	TEST_ASSERT_EQ(create_cb(&cr, &cfg, &vm), 0);
	TEST_ASSERT(gmem_convert(vm, 8 * GiB, 2 * GiB, GMEM_SHARED) >= 0);
	for (i = 0; i < 1024; i++) {
		gpa = rnd(16 * GiB / PG) * PG;
		pattern_fill(buf, PG, (uint32_t)i + 1);
		err = gmem_access(vm, gpa, buf, PG, true,
				  gmem_state_at(vm, gpa, NULL, NULL));
		TEST_ASSERT_EQ(err, 0);
	}
	TEST_ASSERT(gmem_set_plugged(vm, 12 * GiB, 1 * GiB, false) >= 0);
	resident = (uint64_t)gmem_backing_resident(vm, GMEM_BACKING_PRIVATE) +
		   (uint64_t)gmem_backing_resident(vm, GMEM_BACKING_SHARED);
	sock_pair(sv);
	dest_start(&d, sv[1], 0);
	err = mig_send(vm, sv[0], &o, &st, msg, sizeof(msg));
	if (err)
		TEST_FAIL("16 GiB: mig_send: %d %s", err, msg);
	if (dest_join(&d))
		TEST_FAIL("16 GiB: mig_receive: %d %s", d.err, d.msg);
	check_same(vm, d.vm, GMEM_PRIVATE);
	printf("16 GiB sparse: resident %llu B, stream %llu B (%.4fx), "
	       "%u rounds, %.3f s\n", ULL(resident), ULL(st.bytes),
	       (double)st.bytes / (double)resident, st.rounds, st.total_s);
	TEST_ASSERT(st.bytes <= resident + resident / 20 + MiB);
	gmem_destroy(d.vm);
	gmem_destroy(vm);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	static const struct run runs[] = {
		{ GMEM_MODE_DISCARD, GMEM_PRIVATE, 0, 2, true, true, false,
		  true, "discard" },
		{ GMEM_MODE_DISCARD, GMEM_SHARED, GMEM_CONFIG_DEFERRED_RECLAIM,
		  2, true, true, false, true, "discard, deferred reclaim" },
		{ GMEM_MODE_IN_PLACE, GMEM_PRIVATE, 0, 2, true, true, false,
		  true, "in-place" },
		{ GMEM_MODE_IN_PLACE, GMEM_SHARED, 0, 2, true, false, true,
		  true, "in-place, one device write" },
	};
	const struct run blind = {
		GMEM_MODE_DISCARD, GMEM_PRIVATE, 0, 0, false, false, true,
		false, "discard, no device rule",
	};
	struct mig_stats st;
	char why[512] = "";
	double t0;
	size_t i;

	mig_fixture_init("test_migrate_roundtrip");
	t0 = now_s();
	for (i = 0; i < sizeof(runs) / sizeof(runs[0]); i++)
		migrate_ok(&runs[i]);
	t0 = lap(t0, "random migrations");
	/* The tracker cannot see a device's write: without the device
	 * rule the destination misses it, which is why the rule exists. */
	if (!run_one(&blind, &st, why, sizeof(why)))
		TEST_FAIL("a device write after round 0 reached the "
			  "destination without the device rule");
	printf("without the device rule: %s (as expected)\n", why);
	t0 = lap(t0, "device rule");
	sparse_16g();
	lap(t0, "16 GiB sparse");
	snap_fixture_fini();
	printf("PASS\n");
	return 0;
}
