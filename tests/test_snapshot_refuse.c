/* SPDX-License-Identifier: MIT */
/*
 * Memory snapshots (vmm/snapshot/, docs/SNAPSHOT.md) that must be refused,
 * without KVM:
 *  - refusals: every truncation of a small snapshot (as is, and with the
 *    header made to agree), thousands of random single-byte corruptions
 *    (as is: all refused; resealed: refused, or restored exactly as the
 *    changed file says), a wrong magic, a future version, flags, a section
 *    claiming 2^63 bytes, and hand-made files breaking each rule of the
 *    format — each refused with its errno and a message naming the
 *    problem, and no VM left behind (live memslots, fds; ASan for leaks);
 *  - restores that fail late (creation, backings not empty, a listener
 *    refusing a conversion, a file changed after it was checked, in either
 *    backing's section) leave no VM;
 * Round trips are test_snapshot_roundtrip.c; failed writes
 * test_snapshot_write_fail.c.
 *
 *   test_snapshot_refuse --seeds DIR    writes fuzz/corpus/fuzz_snapshot/
 */
#include <fcntl.h>
#include <unistd.h>

#include "mem_image.h"
#include "snapshot_fixture.h"

static int open_fds(void)
{
	char path[64];
	int n = 0, fd;

	for (fd = 0; fd < 1024; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n += access(path, F_OK) == 0;
	}
	return n;
}

/* ---- refusals ------------------------------------------------------------ */

/*
 * Open and restore from memory.  On failure: a negative errno, a message,
 * and no VM anywhere.
 */
static int try_restore(const uint8_t *p, size_t len, struct creator *c,
		       char *msg, size_t msg_len, bool *framing)
{
	struct gmem_config base = base_config(0);
	struct snap_restore_opts o = {
		.base = &base, .create = create_cb, .create_data = c,
	};
	struct gmem_vm *vm = NULL;
	struct snap_reader r;
	struct snap_src src;
	int err;

	msg[0] = '\0';
	snap_src_mem(&src, p, len);
	err = snap_reader_open(&r, &src, msg, msg_len);
	if (framing)
		*framing = err != 0;
	if (!err) {
		err = snap_mem_restore(&r, &o, &vm);
		if (!err) {
			/* Accepted: it must be exactly what the file says. */
			if (snap_mem_verify(vm, &r, SNAP_FIND_AUTO))
				TEST_FAIL("an accepted file restored wrong: %s",
					  msg);
			test_audit(vm);
			gmem_destroy(vm);
		}
		snap_reader_close(&r);
	}
	if (err) {
		TEST_ASSERT(err < 0);
		TEST_ASSERT(vm == NULL);
		if (!msg[0])
			TEST_FAIL("refused with %s but no message",
				  strerror(-err));
	}
	TEST_ASSERT_EQ(slots_now(), 0);
	return err;
}

static void expect_refused(const struct bytes *f, int want, const char *what)
{
	char msg[256];
	int err = try_restore(f->p, f->len, NULL, msg, sizeof(msg), NULL);

	if (err != want || !strstr(msg, what))
		TEST_FAIL("expected %s with \"%s\", got %s: \"%s\"",
			  strerror(-want), what, err ? strerror(-err) : "success",
			  msg);
}

static void expect_accepted(const struct bytes *f)
{
	char msg[256];
	int err = try_restore(f->p, f->len, NULL, msg, sizeof(msg), NULL);

	if (err)
		TEST_FAIL("a valid file refused: %s (%s)", msg, strerror(-err));
}

/* A small snapshot made by the writer from a real VM. */
static struct bytes small_snapshot(enum gmem_mode mode)
{
	struct model m;
	struct creator c = { .own_shared = true };
	struct gmem_vm *vm;
	struct bytes f;
	char path[128];
	uint8_t page[PG];

	model_init(&m, mode, GMEM_PRIVATE, 16 * MiB);
	vm = create_model_vm(&m, 0, &c);
	memset(page, 0x11, sizeof(page));
	TEST_ASSERT_EQ(gmem_access(vm, 0, page, PG, true, GMEM_PRIVATE), 0);
	TEST_ASSERT_EQ(gmem_convert(vm, 64 * KiB, 64 * KiB, GMEM_SHARED), 16);
	memset(page, 0x22, sizeof(page));
	TEST_ASSERT_EQ(gmem_access(vm, 72 * KiB, page, PG, true, GMEM_SHARED),
		       0);
	TEST_ASSERT_EQ(gmem_set_plugged(vm, 96 * KiB, 16 * KiB, false), 4);
	memset(page, 0x33, sizeof(page));
	TEST_ASSERT_EQ(gmem_access(vm, 8 * MiB, page, PG, true, GMEM_PRIVATE),
		       0);
	path_in_dir(path, sizeof(path), "small.snap");
	save(vm, &m, path, SNAP_FIND_AUTO, NULL);
	f = read_file(path);
	unlink(path);
	gmem_destroy(vm);
	model_free(&m);
	return f;
}

static void truncations(const struct bytes *f)
{
	struct bytes t = { 0 };
	char msg[256];
	size_t len;
	int err;

	for (len = 0; len < f->len; len++) {
		err = try_restore(f->p, len, NULL, msg, sizeof(msg), NULL);
		TEST_ASSERT(err == -EBADMSG || err == -EINVAL);
		/* The header made to agree with the shorter file: the
		 * sections must give it away. */
		if (len < SNAP_HEADER_SIZE)
			continue;
		t.len = 0;
		b_put(&t, f->p, len);
		snap_reseal(t.p, t.len);
		err = try_restore(t.p, t.len, NULL, msg, sizeof(msg), NULL);
		if (err != -EBADMSG)
			TEST_FAIL("truncated to %zu bytes, resealed: %s (%s)",
				  len, msg, err ? strerror(-err) : "accepted");
	}
	b_free(&t);
}

static void corruptions(const struct bytes *f, unsigned int n)
{
	struct bytes t = { 0 };
	unsigned int i, accepted = 0, framing_refused = 0, mem_refused = 0;
	char msg[256];
	bool framing;
	int err;

	b_put(&t, f->p, f->len);
	for (i = 0; i < n; i++) {
		size_t at = rnd(f->len);
		uint8_t x = (uint8_t)(1 + rnd(255));

		memcpy(t.p, f->p, f->len);
		t.p[at] ^= x;
		/* Every byte is under a checksum: always refused. */
		err = try_restore(t.p, t.len, NULL, msg, sizeof(msg), NULL);
		if (!err)
			TEST_FAIL("byte %zu ^ %#x accepted", at, x);
		TEST_ASSERT(err == -EBADMSG || err == -EINVAL ||
			    err == -EPROTO);
		/* Resealed, the meaning itself is damaged: refused, or
		 * restored exactly as the changed file says. */
		snap_reseal(t.p, t.len);
		err = try_restore(t.p, t.len, NULL, msg, sizeof(msg),
				  &framing);
		if (!err)
			accepted++;
		else if (framing)
			framing_refused++;
		else
			mem_refused++;
	}
	printf("%u single-byte corruptions: all refused as is; resealed: %u "
	       "accepted and verified, %u refused by the framing, %u by the "
	       "memory checks\n", n, accepted, framing_refused, mem_refused);
	/* The checks behind the checksums were reached, both ways. */
	TEST_ASSERT(accepted > 0 && mem_refused > 0 && framing_refused > 0);
	b_free(&t);
}

/* ---- hand-made files ------------------------------------------------------ */

static void b_u32(struct bytes *b, uint32_t v)
{
	uint8_t x[4];

	snap_put_le32(x, v);
	b_put(b, x, 4);
}

static void b_u64(struct bytes *b, uint64_t v)
{
	uint8_t x[8];

	snap_put_le64(x, v);
	b_put(b, x, 8);
}

static void b_fill(struct bytes *b, uint8_t c, size_t n)
{
	uint8_t x[256];

	memset(x, c, sizeof(x));
	while (n) {
		size_t k = n < sizeof(x) ? n : sizeof(x);

		b_put(b, x, k);
		n -= k;
	}
}

/*
 * A valid discard-mode file: regions [0, 256K) and [512K, 768K) in a 1 MiB
 * space; [0, 64K) private, [64K, 256K) shared, region 1 private;
 * [128K, 192K) unplugged; content in both backings.
 */
struct spec {
	struct bytes config, regions, state, plug, data[2];
	struct bytes opt;	/* payload of an optional section */
};

static void run(struct bytes *b, uint64_t gpa, uint64_t npages, uint32_t st)
{
	b_u64(b, gpa);
	b_u64(b, npages);
	b_u32(b, st);
	b_u32(b, 0);
}

static void range(struct bytes *b, uint64_t gpa, uint64_t npages)
{
	b_u64(b, gpa);
	b_u64(b, npages);
}

static void record(struct bytes *b, uint64_t gpa, uint64_t len, uint8_t fill)
{
	b_u64(b, gpa);
	b_u64(b, len);
	b_fill(b, fill, (size_t)len);
}

static void config(struct bytes *b, uint32_t mode, uint32_t page,
		   uint32_t nr, uint64_t max_gpa)
{
	b->len = 0;
	b_u32(b, mode);
	b_u32(b, GMEM_PRIVATE);
	b_u32(b, page);
	b_u32(b, nr);
	b_u64(b, max_gpa);
}

static void spec_default(struct spec *s)
{
	memset(s, 0, sizeof(*s));
	config(&s->config, GMEM_MODE_DISCARD, PG, 2, 1 * MiB);
	range(&s->regions, 0, 256 * KiB);		/* bytes: (gpa, len) */
	range(&s->regions, 512 * KiB, 256 * KiB);
	run(&s->state, 0, 16, GMEM_PRIVATE);
	run(&s->state, 64 * KiB, 48, GMEM_SHARED);
	run(&s->state, 512 * KiB, 64, GMEM_PRIVATE);
	range(&s->plug, 128 * KiB, 16);
	b_u32(&s->data[0], GMEM_BACKING_PRIVATE);
	b_u32(&s->data[0], 0);
	record(&s->data[0], 0, 8 * KiB, 0xa1);
	record(&s->data[0], 516 * KiB, 4 * KiB, 0xa2);
	b_u32(&s->data[1], GMEM_BACKING_SHARED);
	b_u32(&s->data[1], 0);
	record(&s->data[1], 64 * KiB, 4 * KiB, 0xb1);
	record(&s->data[1], 192 * KiB, 8 * KiB, 0xb2);
	b_fill(&s->opt, 0x77, 16);
}

static void spec_free(struct spec *s)
{
	b_free(&s->config);
	b_free(&s->regions);
	b_free(&s->state);
	b_free(&s->plug);
	b_free(&s->data[0]);
	b_free(&s->data[1]);
	b_free(&s->opt);
}

static void file_start(struct bytes *f)
{
	f->len = 0;
	b_put(f, SNAP_MAGIC, SNAP_MAGIC_LEN);
	b_u32(f, SNAP_VERSION);
	b_u32(f, 0);
	b_u64(f, 0);
	b_u32(f, 0);
	b_u32(f, 0);
}

static void file_section(struct bytes *f, uint32_t type, uint32_t flags,
			 const struct bytes *payload)
{
	b_u32(f, type);
	b_u32(f, flags);
	b_u64(f, payload ? payload->len : 0);
	b_u32(f, 0);
	b_u32(f, 0);
	if (payload && payload->len)
		b_put(f, payload->p, payload->len);
}

/*
 * A whole file of @s's sections in the order @order names them: C CONFIG,
 * R REGIONS, S STATE, P PLUG, D and d the private and shared DATA, O an
 * optional section of unknown type 0x42 (with s->opt), o one of 0x43
 * (empty); then END, and the header's length and every checksum set.
 */
static void file_of(struct bytes *f, const struct spec *s, const char *order)
{
	f->len = 0;
	file_start(f);
	for (; *order; order++) {
		switch (*order) {
		case 'C': file_section(f, SNAP_SEC_CONFIG, 0, &s->config); break;
		case 'R': file_section(f, SNAP_SEC_REGIONS, 0, &s->regions); break;
		case 'S': file_section(f, SNAP_SEC_STATE, 0, &s->state); break;
		case 'P': file_section(f, SNAP_SEC_PLUG, 0, &s->plug); break;
		case 'D': file_section(f, SNAP_SEC_DATA, 0, &s->data[0]); break;
		case 'd': file_section(f, SNAP_SEC_DATA, 0, &s->data[1]); break;
		case 'O': file_section(f, 0x42, SNAP_SEC_OPTIONAL, &s->opt); break;
		case 'o': file_section(f, 0x43, SNAP_SEC_OPTIONAL, NULL); break;
		default: TEST_FAIL("file_of: section '%c'?", *order);
		}
	}
	file_section(f, SNAP_SEC_END, 0, NULL);
	snap_reseal(f->p, f->len);
}

static struct bytes spec_file(const struct spec *s, unsigned int nr_data)
{
	struct bytes f = { 0 };

	file_of(&f, s, nr_data == 2 ? "CRSPDd" : "CRSPD");
	return f;
}

/* Build the default spec, let @edit change it, expect the outcome. */
#define CASE(want, what, edit)                                            \
	do {                                                              \
		struct spec s;                                            \
		struct bytes f;                                           \
		spec_default(&s);                                         \
		edit;                                                     \
		f = spec_file(&s, 2);                                     \
		if (want)                                                 \
			expect_refused(&f, want, what);                   \
		else                                                      \
			expect_accepted(&f);                              \
		b_free(&f);                                               \
		spec_free(&s);                                            \
	} while (0)

/* Each rule of the payloads, broken once. */
static void handmade_payloads(void)
{
	CASE(0, "", (void)0);

	/* CONFIG */
	CASE(-EBADMSG, "unknown mode", config(&s.config, 7, PG, 2, MiB));
	CASE(-EBADMSG, "page size", config(&s.config, 0, 8192, 2, MiB));
	CASE(-EBADMSG, "regions, not", config(&s.config, 0, PG, 0, MiB));
	CASE(-EBADMSG, "max_gpa", config(&s.config, 0, PG, 2, MiB + 1));
	CASE(-EBADMSG, "max_gpa", config(&s.config, 0, PG, 2, 1ULL << 53));
	CASE(-EBADMSG, "version 1 has", b_u32(&s.config, 0));
	CASE(-EBADMSG, "DATA sections",
	     config(&s.config, GMEM_MODE_IN_PLACE, PG, 2, MiB));
	/* REGIONS */
	CASE(-EBADMSG, "CONFIG says", range(&s.regions, 900 * KiB, 4 * KiB));
	CASE(-EBADMSG, "overlaps", (s.regions.len = 0,
		range(&s.regions, 0, 256 * KiB),
		range(&s.regions, 128 * KiB, 256 * KiB)));
	CASE(-EBADMSG, "past max_gpa", (s.regions.len = 0,
		range(&s.regions, 0, 256 * KiB),
		range(&s.regions, 1020 * KiB, 8 * KiB)));
	CASE(-EBADMSG, "not page aligned", (s.regions.len = 0,
		range(&s.regions, 0, 256 * KiB + 1),
		range(&s.regions, 512 * KiB, 256 * KiB)));
	/* STATE */
	CASE(-EBADMSG, "gap", (s.state.len = 0,
		run(&s.state, 0, 16, 0), run(&s.state, 68 * KiB, 47, 1),
		run(&s.state, 512 * KiB, 64, 0)));
	CASE(-EBADMSG, "crosses the end", (s.state.len = 0,
		run(&s.state, 0, 16, 0), run(&s.state, 64 * KiB, 49, 1),
		run(&s.state, 512 * KiB, 64, 0)));
	CASE(-EBADMSG, "maximal", (s.state.len = 0,
		run(&s.state, 0, 8, 0), run(&s.state, 32 * KiB, 8, 0),
		run(&s.state, 64 * KiB, 48, 1),
		run(&s.state, 512 * KiB, 64, 0)));
	CASE(-EBADMSG, "unknown state", (s.state.len = 0,
		run(&s.state, 0, 16, 0), run(&s.state, 64 * KiB, 48, 2),
		run(&s.state, 512 * KiB, 64, 0)));
	CASE(-EBADMSG, "missing", (s.state.len = 0,
		run(&s.state, 0, 16, 0), run(&s.state, 64 * KiB, 48, 1)));
	CASE(-EBADMSG, "outside every region",
	     run(&s.state, 800 * KiB, 1, 0));
	CASE(-EBADMSG, "not a multiple", b_u32(&s.state, 0));
	CASE(-EBADMSG, "reserved", (s.state.p[20] = 1));
	CASE(-EBADMSG, "largest guest-physical", (s.state.len = 0,
		run(&s.state, 0, 1ULL << 62, 0)));
	/* PLUG */
	CASE(-EBADMSG, "not inside one region", (s.plug.len = 0,
		range(&s.plug, 192 * KiB, 128)));
	CASE(-EBADMSG, "overlaps", (s.plug.len = 0,
		range(&s.plug, 128 * KiB, 8), range(&s.plug, 132 * KiB, 8)));
	CASE(-EBADMSG, "maximal", (s.plug.len = 0,
		range(&s.plug, 128 * KiB, 8), range(&s.plug, 160 * KiB, 8)));
	CASE(-EBADMSG, "empty", range(&s.plug, 600 * KiB, 0));
	/* DATA */
	CASE(-EBADMSG, "unplugged", (s.data[1].len = 8,
		record(&s.data[1], 128 * KiB, PG, 1)));
	CASE(-EBADMSG, "is shared", (s.data[0].len = 8,
		record(&s.data[0], 0, 8 * KiB, 1),
		record(&s.data[0], 64 * KiB, PG, 1)));
	CASE(-EBADMSG, "is private", (s.data[1].len = 8,
		record(&s.data[1], 0, PG, 1)));
	CASE(-EBADMSG, "not page aligned", record(&s.data[0], 600 * KiB + 8,
						  PG, 1));
	CASE(-EBADMSG, "not inside one region", (s.data[0].len = 8,
		record(&s.data[0], 252 * KiB, 8 * KiB, 1)));
	CASE(-EBADMSG, "overlaps", (s.data[0].len = 8,
		record(&s.data[0], 0, 8 * KiB, 1),
		record(&s.data[0], 4 * KiB, 8 * KiB, 1)));
	CASE(-EBADMSG, "runs past the end", (s.data[1].len -= 1));
	CASE(-EBADMSG, "truncated header", b_u64(&s.data[1], 0));
	CASE(-EBADMSG, "backing", (s.data[0].p[0] = 1));
	CASE(-EBADMSG, "reserved", (s.data[1].p[4] = 1));
	CASE(-EBADMSG, "shorter than its head", (s.data[1].len = 4));
	/* Records may touch; a section may hold none. */
	CASE(0, "", record(&s.data[0], 520 * KiB, 4 * KiB, 0xa3));
	CASE(0, "", (s.data[1].len = 8));
}

/* Each rule of the framing, broken once. */
static void handmade_framing(void)
{
	struct bytes f = { 0 };
	struct spec s;

	spec_default(&s);
	b_free(&f);
	f = spec_file(&s, 1);
	expect_refused(&f, -EBADMSG, "DATA sections");
	file_of(&f, &s, "CRPSDd");
	expect_refused(&f, -EBADMSG, "out of order");
	file_of(&f, &s, "CCRSPDd");
	expect_refused(&f, -EBADMSG, "more than 1");
	file_of(&f, &s, "CRSDd");
	expect_refused(&f, -EBADMSG, "no section PLUG");
	file_of(&f, &s, "CRSPDdDd");
	expect_refused(&f, -EBADMSG, "more than 2");

	/* Unknown sections: refused unless optional, then skipped. */
	file_of(&f, &s, "COoRSPDdo");
	expect_accepted(&f);
	f.p[SNAP_HEADER_SIZE + SNAP_SEC_HEADER_SIZE + 24 + 4] = 0;	/* 0x42 required */
	snap_reseal(f.p, f.len);
	expect_refused(&f, -EPROTO, "unknown type and not optional");
	f.p[SNAP_HEADER_SIZE + SNAP_SEC_HEADER_SIZE + 24 + 4] = 2;	/* a new flag */
	snap_reseal(f.p, f.len);
	expect_refused(&f, -EPROTO, "unknown flags");

	/* END: no payload, nothing after it. */
	b_free(&f);
	f = spec_file(&s, 2);
	b_fill(&f, 0, 8);
	snap_reseal(f.p, f.len);
	expect_refused(&f, -EBADMSG, "8 bytes follow it");
	snap_put_le64(f.p + f.len - 8 - 16, 8);		/* END's length */
	snap_reseal(f.p, f.len);
	expect_refused(&f, -EBADMSG, "END must have no payload");

	/* Header */
	b_free(&f);
	f = spec_file(&s, 2);
	expect_accepted(&f);
	f.p[0] = 'X';
	expect_refused(&f, -EINVAL, "not a gmvm snapshot");
	f.p[0] = 'G';
	snap_put_le32(f.p + 8, 2);	/* a future version, checksum right */
	snap_reseal(f.p, f.len);
	expect_refused(&f, -EPROTO, "format version 2");
	snap_put_le32(f.p + 8, SNAP_VERSION);
	snap_put_le32(f.p + 12, 1);	/* header flags */
	snap_reseal(f.p, f.len);
	expect_refused(&f, -EPROTO, "header: unknown flags");
	snap_put_le32(f.p + 12, 0);
	snap_put_le32(f.p + 24, 1);
	snap_reseal(f.p, f.len);
	expect_refused(&f, -EBADMSG, "reserved");
	snap_put_le32(f.p + 24, 0);
	snap_reseal(f.p, f.len);
	f.p[28] ^= 1;
	expect_refused(&f, -EBADMSG, "header: checksum mismatch");
	f.p[28] ^= 1;
	/* CONFIG claims 2^63 bytes: past the end, whatever its checksum. */
	snap_put_le64(f.p + SNAP_HEADER_SIZE + 8, 1ULL << 63);
	expect_refused(&f, -EBADMSG, "section CONFIG at offset 32: length "
		       "9223372036854775808 runs past the end");
	snap_put_le64(f.p + SNAP_HEADER_SIZE + 8, UINT64_MAX);
	expect_refused(&f, -EBADMSG, "runs past the end");
	snap_put_le64(f.p + SNAP_HEADER_SIZE + 8, SNAP_CONFIG_SIZE);
	f.p[f.len - 30] ^= 0x40;	/* in the last DATA payload */
	expect_refused(&f, -EBADMSG, "checksum mismatch");
	b_free(&f);
	spec_free(&s);
}

/* ---- restores that fail late ------------------------------------------------ */

static void late_failures(const struct bytes *f)
{
	struct creator c = { .own_shared = true };
	char msg[256];
	int fds = open_fds(), err;

	c.fail_err = -ENOSPC;
	err = try_restore(f->p, f->len, &c, msg, sizeof(msg), NULL);
	TEST_ASSERT_EQ(err, -ENOSPC);
	TEST_ASSERT(strstr(msg, "creating the VM"));
	c.fail_err = 0;

	c.dirty = true;
	err = try_restore(f->p, f->len, &c, msg, sizeof(msg), NULL);
	TEST_ASSERT_EQ(err, -ENOTEMPTY);
	TEST_ASSERT(strstr(msg, "already holds memory at 0"));
	c.dirty = false;

	/* The VM is created, then a conversion to shared fails: it must be
	 * destroyed, not handed out half restored. */
	c.veto = true;
	err = try_restore(f->p, f->len, &c, msg, sizeof(msg), NULL);
	TEST_ASSERT_EQ(err, -ENOMEM);
	TEST_ASSERT(strstr(msg, "converting"));
	c.veto = false;
	TEST_ASSERT_EQ(c.created, 2);

	err = try_restore(f->p, f->len, &c, msg, sizeof(msg), NULL);
	TEST_ASSERT_EQ(err, 0);
	TEST_ASSERT_EQ(open_fds(), fds);

	/* Paths that are no snapshot file. */
	{
		struct gmem_config base = base_config(0);
		struct snap_restore_opts o = { .base = &base,
					       .create = create_cb };
		struct gmem_vm *vm = NULL;

		TEST_ASSERT_EQ(snap_mem_restore_file("/nonexistent/x", &o, &vm,
						     msg, sizeof(msg)),
			       -ENOENT);
		TEST_ASSERT(strstr(msg, "/nonexistent/x"));
		TEST_ASSERT_EQ(snap_mem_restore_file("/dev/null", &o, &vm, msg,
						     sizeof(msg)), -EINVAL);
		TEST_ASSERT(strstr(msg, "not a regular file"));
		TEST_ASSERT(vm == NULL);
	}
	TEST_ASSERT_EQ(open_fds(), fds);
}

/* ---- fuzzing seeds ---------------------------------------------------------- */

/* fuzz/fuzz_snapshot.c's input: a flags byte (1: reseal), then a file. */
static void write_seed(const char *seeds, const char *name, uint8_t flags,
		       const struct bytes *f)
{
	char path[512];
	FILE *out;

	snprintf(path, sizeof(path), "%s/%s", seeds, name);
	out = fopen(path, "w");
	TEST_ASSERT(out);
	TEST_ASSERT(fputc(flags, out) == flags);
	TEST_ASSERT(fwrite(f->p, 1, f->len, out) == f->len);
	TEST_ASSERT(fclose(out) == 0);
}

/*
 * A file changed after snap_reader_open() checked it: the content walk
 * computes each DATA section's checksum again and refuses (-EBADMSG, the
 * section named), whichever backing's section changed -- in discard mode
 * the shared one's is walked on a thread of its own
 * (snap_restore_side_min 0 here, so even this small file's is) -- and no
 * VM is left.
 */
static void changed_after_open(const struct bytes *f)
{
	uint64_t side_min = snap_restore_side_min;
	struct creator c = { .own_shared = true };
	struct gmem_config base = base_config(0);
	struct snap_restore_opts o = {
		.base = &base, .create = create_cb, .create_data = &c,
	};
	const struct snap_section *sec;
	struct gmem_vm *vm = NULL;
	struct snap_reader r;
	struct snap_src src;
	char path[128], msg[256];
	unsigned int idx;
	uint8_t byte;
	int fd;

	snap_restore_side_min = 0;
	path_in_dir(path, sizeof(path), "changed.snap");
	for (idx = 0; idx < 2; idx++) {
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		TEST_ASSERT(fd >= 0);
		TEST_ASSERT(pwrite(fd, f->p, f->len, 0) == (ssize_t)f->len);
		TEST_ASSERT_EQ(snap_src_fd(&src, fd), 0);
		TEST_ASSERT_EQ(snap_reader_open(&r, &src, msg, sizeof(msg)), 0);
		sec = snap_reader_find(&r, SNAP_SEC_DATA, idx);
		TEST_ASSERT(sec && sec->len > 8 + SNAP_RECORD_SIZE);
		/* The section's last content byte, changed behind its back. */
		TEST_ASSERT(pread(fd, &byte, 1, (off_t)(sec->off + sec->len - 1))
			    == 1);
		byte ^= 0x5a;
		TEST_ASSERT(pwrite(fd, &byte, 1, (off_t)(sec->off + sec->len - 1))
			    == 1);
		TEST_ASSERT_EQ(snap_mem_restore(&r, &o, &vm), -EBADMSG);
		TEST_ASSERT(vm == NULL);
		if (!strstr(msg, "checksum"))
			TEST_FAIL("DATA %u changed after open: '%s'", idx, msg);
		printf("DATA section %u changed after open: %s\n", idx, msg);
		snap_reader_close(&r);
		close(fd);
		TEST_ASSERT_EQ(slots_now(), 0);
	}
	unlink(path);
	snap_restore_side_min = side_min;
}

/*
 * `test_snapshot_refuse --seeds DIR` writes fuzz/corpus/fuzz_snapshot/: small
 * valid snapshots made by the writer (and one hand-made file with optional
 * sections), so that they follow the format when it changes.
 */
static void write_seeds(const char *seeds)
{
	struct bytes f = { 0 };
	struct creator c = { .own_shared = true };
	struct gmem_vm *vm;
	struct spec s;
	struct model m;
	char path[128];
	uint64_t i;

	f = small_snapshot(GMEM_MODE_DISCARD);
	write_seed(seeds, "discard", 1, &f);
	write_seed(seeds, "discard-raw", 0, &f);
	b_free(&f);
	f = small_snapshot(GMEM_MODE_IN_PLACE);
	write_seed(seeds, "in-place", 1, &f);
	b_free(&f);

	/* Many short runs, no content: the maps' parsers at length. */
	model_init(&m, GMEM_MODE_IN_PLACE, GMEM_SHARED, 16 * MiB);
	vm = create_model_vm(&m, 0, &c);
	for (i = 0; i < 64; i++) {
		TEST_ASSERT_EQ(gmem_convert(vm, i * 2 * PG, PG, GMEM_PRIVATE),
			       1);
		TEST_ASSERT_EQ(gmem_set_plugged(vm, 6 * MiB + i * 3 * PG, PG,
						false), 1);
	}
	path_in_dir(path, sizeof(path), "seed.snap");
	save(vm, &m, path, SNAP_FIND_AUTO, NULL);
	f = read_file(path);
	unlink(path);
	write_seed(seeds, "in-place-runs", 3, &f);
	b_free(&f);
	gmem_destroy(vm);
	model_free(&m);

	spec_default(&s);
	file_of(&f, &s, "CRSPDOd");
	write_seed(seeds, "handmade-optional", 1, &f);
	b_free(&f);
	spec_free(&s);
}

int main(int argc, char **argv)
{
	double t0;
	struct bytes f;

	snap_fixture_init("test_snapshot_refuse");
	if (argc == 3 && !strcmp(argv[1], "--seeds")) {
		write_seeds(argv[2]);
		snap_fixture_fini();
		return T_EXIT_PASS;
	}

	t0 = now_s();
	f = small_snapshot(GMEM_MODE_DISCARD);
	printf("small snapshot: %zu bytes\n", f.len);
	truncations(&f);
	t0 = lap(t0, "truncations");
	corruptions(&f, 4000);
	late_failures(&f);
	changed_after_open(&f);
	b_free(&f);
	f = small_snapshot(GMEM_MODE_IN_PLACE);
	corruptions(&f, 1000);
	b_free(&f);
	t0 = lap(t0, "corruptions");
	handmade_payloads();
	handmade_framing();
	lap(t0, "hand-made files");
	snap_fixture_fini();
	printf("all passed\n");
	return T_EXIT_PASS;
}
