/* SPDX-License-Identifier: MIT */
/*
 * The destination refuses every damaged stream and leaves no VM
 * (docs/MIGRATION.md, "What a destination must refuse").  A stream of a
 * few rounds (IMAGE, DATA and HOLES in each, a page converted, one
 * punched and one written between rounds) is recorded once, then fed to
 * mig_receive():
 *  - whole: the VM it builds is exactly the source;
 *  - cut short at every section boundary (and one byte either side) and
 *    at random points: -EBADMSG;
 *  - with one byte changed anywhere: -EBADMSG (the magic: -EINVAL, the
 *    version: -EPROTO);
 *  - edited and resealed (checksums made to agree, so the checks behind
 *    them are reached): sections missing, repeated, out of order, a
 *    FINAL that does not add up, HOLES over unplugged pages, an IMAGE
 *    that changes the regions, unknown section types: each refused with
 *    its errno; random resealed edits are refused or yield a VM that
 *    passes the audit.
 *  - trickled: a source that sends a section a byte at a time, each
 *    byte well within the timeout, is refused (-ETIMEDOUT) once the
 *    section's deadline passes, at the first section and at one after
 *    the VM was built; a destination that reads a byte at a time fails
 *    a sender (mig_send_bytes()) by its deadline too.
 * Every refusal leaves no VM and no memslot.  --seeds DIR writes the
 * fuzzer's seeds (fuzz/corpus/fuzz_migrate).
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migrate_fixture.h"

static struct bytes stream;	/* the recorded stream */
static struct gmem_vm *src;
static enum gmem_state src_initial = GMEM_SHARED;

/* ---- recording ------------------------------------------------------------ */

static void *record_main(void *arg)
{
	int fd = *(int *)arg;
	struct mig_in in;
	struct mig_sec s;
	struct snap_msg m;
	char msg[256];
	uint8_t h[MIG_HEADER_SIZE];

	snap_msg_init(&m, msg, sizeof(msg));
	mig_in_init(&in, fd, 20000, &m);
	TEST_ASSERT_EQ(mig_in_header(&in), 0);
	memset(h, 0, sizeof(h));
	memcpy(h, MIG_MAGIC, 8);
	h[8] = MIG_VERSION;
	b_put(&stream, h, sizeof(h));
	mig_reseal(stream.p, stream.len);
	do {
		TEST_ASSERT_EQ(mig_in_next(&in, &s), 0);
		b_put(&stream, s.raw, SNAP_SEC_HEADER_SIZE + s.len);
	} while (s.type != SNAP_SEC_END);
	mig_in_free(&in);
	TEST_ASSERT_EQ(mig_send_ack(fd, 0), 0);
	TEST_ASSERT_EQ(mig_wait_commit(fd, 20000, &m), 0);
	return NULL;
}

static bool stopped;

static int stop_world(void *data)
{
	stopped = true;
	return 0;
}

static void between_rounds(void *data, unsigned int round, uint64_t pages)
{
	uint8_t buf[PG];
	uint64_t gpa = (round + 1) * 64 * PG;

	/* The guest changes its memory while it runs: not in round 0 (so
	 * that later rounds have something to carry), never once stopped. */
	if (round == 0 || stopped)
		return;
	/* Written (sent next round), punched (a hole next round),
	 * converted (discard: its content goes). */
	pattern_fill(buf, PG, round + 7);
	TEST_ASSERT_EQ(gmem_access(src, gpa, buf, PG, true,
				   gmem_state_at(src, gpa, NULL, NULL)), 0);
	TEST_ASSERT(gmem_set_plugged(src, gpa + 8 * PG, PG, false) >= 0);
	TEST_ASSERT(gmem_set_plugged(src, gpa + 8 * PG, PG, true) >= 0);
	TEST_ASSERT(gmem_convert(src, gpa + 16 * PG, 2 * PG,
				 (enum gmem_state)(round & 1)) >= 0);
	TEST_ASSERT(gmem_set_plugged(src, gpa + 24 * PG, 4 * PG, false) >= 0);
}

static void record(unsigned int writes)
{
	struct mig_send_opts o = {
		.initial_state = src_initial,
		.on_round = between_rounds,
		.stop = stop_world,
		.max_rounds = 3,
		.converged_bytes = 1,
	};
	struct creator cr = { .own_shared = true };
	struct model m;
	pthread_t th;
	char msg[512];
	uint8_t buf[PG];
	int sv[2], i, err;
	uint64_t gpa;

	model_init(&m, GMEM_MODE_DISCARD, src_initial, 16 * MiB);
	src = create_model_vm(&m, 0, &cr);
	for (i = 0; i < (int)writes; i++) {
		gpa = m.r[rnd(m.nr)].gpa + rnd(256) * PG;
		pattern_fill(buf, PG, (uint32_t)i + 1);
		TEST_ASSERT_EQ(gmem_access(src, gpa, buf, PG, true,
					   gmem_state_at(src, gpa, NULL, NULL)),
			       0);
	}
	TEST_ASSERT(gmem_convert(src, 6 * MiB, 1 * MiB, GMEM_PRIVATE) >= 0);
	TEST_ASSERT(gmem_set_plugged(src, 12 * MiB, 64 * PG, false) >= 0);
	sock_pair(sv);
	TEST_ASSERT_EQ(pthread_create(&th, NULL, record_main, &sv[1]), 0);
	err = mig_send(src, sv[0], &o, NULL, msg, sizeof(msg));
	if (err)
		TEST_FAIL("recording: %d %s", err, msg);
	pthread_join(th, NULL);
	close(sv[0]);
	close(sv[1]);
	model_free(&m);
	printf("recorded stream: %zu bytes\n", stream.len);
}

/* ---- feeding -------------------------------------------------------------- */

struct feed {
	int fd;
	const uint8_t *p;
	size_t len;
	bool commit;
};

/* Write the stream and, for one that may be accepted, the source's
 * COMMIT right behind it (the destination reads it after its ACK), then
 * end it: a stream cut short ends there. */
static void *feed_main(void *arg)
{
	struct feed *f = arg;

	if (!mig_send_bytes(f->fd, f->p, f->len, 0) && f->commit)
		mig_send_commit(f->fd, 0);
	shutdown(f->fd, SHUT_WR);
	return NULL;
}

/* Receive @p: the errno, and the VM in *vm (NULL after a refusal). */
static int feed(const uint8_t *p, size_t len, bool commit, struct gmem_vm **vm,
		char *msg, size_t msg_len)
{
	long slots = slots_now();
	struct feed f = { .p = p, .len = len, .commit = commit };
	struct dest d;
	pthread_t th;
	int sv[2], err;

	sock_pair(sv);
	f.fd = sv[0];
	TEST_ASSERT_EQ(pthread_create(&th, NULL, feed_main, &f), 0);
	dest_start(&d, sv[1], 0);
	err = dest_join(&d);
	pthread_join(th, NULL);
	close(sv[0]);
	close(sv[1]);
	snprintf(msg, msg_len, "%s", d.msg);
	*vm = d.vm;
	if (err) {
		TEST_ASSERT(!d.vm);
		TEST_ASSERT(d.msg[0]);
		TEST_ASSERT_EQ(slots_now(), slots);
	}
	return err;
}

static void expect(const uint8_t *p, size_t len, int want, const char *what)
{
	struct gmem_vm *vm;
	char msg[512];
	int err = feed(p, len, want == 0, &vm, msg, sizeof(msg));

	if (err != want)
		TEST_FAIL("%s: %d (%s), expected %d", what, err, msg, want);
	if (vm)
		gmem_destroy(vm);
}

/* ---- the stream's sections ---------------------------------------------- */

struct sec {
	size_t off, len;	/* header + payload */
	uint32_t type;
};

static struct sec secs[4096];
static size_t nr_secs;

static void index_stream(void)
{
	size_t off = MIG_HEADER_SIZE;

	while (off < stream.len) {
		TEST_ASSERT(nr_secs < 4096);
		secs[nr_secs].off = off;
		secs[nr_secs].type = snap_get_le32(stream.p + off);
		secs[nr_secs].len = SNAP_SEC_HEADER_SIZE +
				    snap_get_le64(stream.p + off + 8);
		off += secs[nr_secs++].len;
	}
	TEST_ASSERT_EQ(off, stream.len);
}

static const struct sec *find_sec(uint32_t type, unsigned int nth)
{
	size_t i;

	for (i = 0; i < nr_secs; i++)
		if (secs[i].type == type && nth-- == 0)
			return &secs[i];
	TEST_FAIL("no section %#x", type);
}

/* The stream without section @drop, with @ins (a whole section) before
 * section @at, resealed. */
static struct bytes edit(const struct sec *drop, const struct sec *at,
			 const uint8_t *ins, size_t ins_len)
{
	struct bytes b = { 0 };
	size_t i;

	b_put(&b, stream.p, MIG_HEADER_SIZE);
	for (i = 0; i < nr_secs; i++) {
		if (&secs[i] == at)
			b_put(&b, ins, ins_len);
		if (&secs[i] != drop)
			b_put(&b, stream.p + secs[i].off, secs[i].len);
	}
	mig_reseal(b.p, b.len);
	return b;
}

static void expect_edit(const struct sec *drop, const struct sec *at,
			const uint8_t *ins, size_t ins_len, int want,
			const char *what)
{
	struct bytes b = edit(drop, at, ins, ins_len);

	expect(b.p, b.len, want, what);
	b_free(&b);
}

/* A section of @type with @len bytes of payload (zeros, sealed later). */
static size_t make_sec(uint8_t *out, uint32_t type, uint32_t flags,
		       const void *p, size_t len)
{
	snap_put_le32(out, type);
	snap_put_le32(out + 4, flags);
	snap_put_le64(out + 8, len);
	snap_put_le32(out + 16, 0);
	snap_put_le32(out + 20, 0);
	if (len)
		memcpy(out + SNAP_SEC_HEADER_SIZE, p, len);
	return SNAP_SEC_HEADER_SIZE + len;
}

/* ---- the cases ------------------------------------------------------------ */

static void whole(void)
{
	struct gmem_vm *vm;
	char msg[512];

	TEST_ASSERT_EQ(feed(stream.p, stream.len, true, &vm, msg, sizeof(msg)), 0);
	check_same(src, vm, src_initial);
	gmem_destroy(vm);
}

static void truncated(void)
{
	size_t i, n = 0, cut;
	int d;

	for (i = 0; i < nr_secs; i++)
		for (d = -1; d <= 1; d++) {
			cut = secs[i].off + (size_t)d;
			expect(stream.p, cut, -EBADMSG, "cut at a boundary");
			n++;
		}
	for (i = 0; i < 60; i++, n++)
		expect(stream.p, rnd(stream.len), -EBADMSG, "cut");
	printf("%zu truncations refused\n", n);
}

static void corrupted(void)
{
	struct bytes b = { 0 };
	size_t i, pos;
	int want;

	b_put(&b, stream.p, stream.len);
	for (i = 0; i < 150; i++) {
		pos = i < 32 ? i : rnd(stream.len);
		b.p[pos] ^= (uint8_t)(1 + rnd(255));
		want = pos < 8 ? -EINVAL : pos < 12 ? -EPROTO : -EBADMSG;
		expect(b.p, b.len, want, "one byte changed");
		memcpy(b.p, stream.p, stream.len);
	}
	b_free(&b);
	printf("%zu single-byte corruptions refused\n", i);
}

static void edited(void)
{
	const struct sec *image0 = find_sec(MIG_SEC_IMAGE, 0);
	const struct sec *image1 = find_sec(MIG_SEC_IMAGE, 1);
	const struct sec *final = find_sec(MIG_SEC_FINAL, 0);
	const struct sec *end = find_sec(SNAP_SEC_END, 0);
	const struct sec *holes = find_sec(MIG_SEC_HOLES, 0);
	const struct sec *data = find_sec(MIG_SEC_DATA, 0);
	uint8_t s[256], p[32];
	struct bytes b;
	size_t n;

	expect_edit(image0, NULL, NULL, 0, -EBADMSG, "no first IMAGE");
	expect_edit(final, NULL, NULL, 0, -EBADMSG, "no FINAL");
	expect_edit(end, NULL, NULL, 0, -EBADMSG, "no END");
	expect_edit(image1, NULL, NULL, 0, -EBADMSG,
		    "an IMAGE lost (FINAL's count)");
	expect_edit(data, NULL, NULL, 0, -EBADMSG,
		    "a DATA lost (FINAL's byte count)");
	/* Repeated and out of place. */
	expect_edit(NULL, end, stream.p + final->off, final->len, -EBADMSG,
		    "FINAL twice");
	expect_edit(NULL, image0, stream.p + data->off, data->len, -EBADMSG,
		    "DATA before IMAGE");
	expect_edit(NULL, end, stream.p + image1->off, image1->len, -EBADMSG,
		    "IMAGE after FINAL");
	expect_edit(NULL, end, stream.p + data->off, data->len, -EBADMSG,
		    "DATA after FINAL");
	n = make_sec(s, MIG_SEC_COMMIT, 0, NULL, 0);
	expect_edit(NULL, final, s, n, -EBADMSG, "COMMIT in the stream");
	/* The VMM's sections: after FINAL only; unknown ones. */
	memset(p, 0, sizeof(p));
	n = make_sec(s, 0x10, 0, p, 8);
	expect_edit(NULL, final, s, n, -EBADMSG, "a vCPU section before FINAL");
	expect_edit(NULL, end, s, n, -EPROTO,
		    "a vCPU section nobody takes");
	n = make_sec(s, 0x77, SNAP_SEC_OPTIONAL, p, 8);
	expect_edit(NULL, end, s, n, 0, "an optional unknown section");
	n = make_sec(s, 0x77, 0, p, 8);
	expect_edit(NULL, end, s, n, -EPROTO, "a required unknown section");
	n = make_sec(s, 0x77, 2, p, 8);
	expect_edit(NULL, end, s, n, -EPROTO, "unknown section flags");
	/* HOLES over an unplugged page (12M is unplugged). */
	snap_put_le64(p, 12 * MiB);
	snap_put_le64(p + 8, 1);
	n = make_sec(s, MIG_SEC_HOLES, 0, p, 16);
	expect_edit(NULL, holes, s, n, -EBADMSG, "HOLES over unplugged");
	snap_put_le64(p, 5 * MiB);
	n = make_sec(s, MIG_SEC_HOLES, 0, p, 16);
	expect_edit(NULL, holes, s, n, -EBADMSG, "HOLES outside regions");
	snap_put_le64(p, 0);
	snap_put_le64(p + 8, 1ULL << 60);
	n = make_sec(s, MIG_SEC_HOLES, 0, p, 16);
	expect_edit(NULL, holes, s, n, -EBADMSG, "HOLES too long");
	n = make_sec(s, MIG_SEC_HOLES, 0, p, 15);
	expect_edit(NULL, holes, s, n, -EBADMSG, "HOLES of 15 bytes");
	/* DATA for a backing the mode has not; shorter than its head. */
	snap_put_le32(p, 2);
	snap_put_le32(p + 4, 0);
	n = make_sec(s, MIG_SEC_DATA, 0, p, 8);
	expect_edit(NULL, data, s, n, -EBADMSG, "DATA of backing 2");
	n = make_sec(s, MIG_SEC_DATA, 0, p, 4);
	expect_edit(NULL, data, s, n, -EBADMSG, "DATA without its head");
	/* An IMAGE whose regions differ: the first one, a region dropped
	 * by making it count one less. */
	b = edit(NULL, NULL, NULL, 0);
	{
		uint8_t *doc = b.p + image1->off + SNAP_SEC_HEADER_SIZE;

		/* CONFIG's nr_regions inside the document: refused by the
		 * snapshot reader (REGIONS' size) after resealing it. */
		snap_put_le32(doc + SNAP_HEADER_SIZE + SNAP_SEC_HEADER_SIZE + 12,
			      3);
		snap_reseal(doc, image1->len - SNAP_SEC_HEADER_SIZE);
		mig_reseal(b.p, b.len);
		expect(b.p, b.len, -EBADMSG, "IMAGE with a region less");
	}
	b_free(&b);
	/* Bounds: a DATA section claiming 2^40 bytes. */
	b = edit(NULL, NULL, NULL, 0);
	snap_put_le64(b.p + data->off + 8, 1ULL << 40);
	expect(b.p, b.len, -EBADMSG, "DATA over its bound");
	b_free(&b);
	printf("hand-made streams refused\n");
}

/* A byte of a section's header or of a payload that is not page content
 * (half the time), else anywhere. */
static size_t edit_pos(void)
{
	const struct sec *x;

	if (rnd(2))
		return MIG_HEADER_SIZE + rnd(stream.len - MIG_HEADER_SIZE);
	do
		x = &secs[rnd(nr_secs)];
	while (x->type == MIG_SEC_DATA && rnd(4));
	if (x->type == MIG_SEC_DATA)
		return x->off + rnd(SNAP_SEC_HEADER_SIZE + 8 + 16);
	return x->off + rnd(x->len);
}

/* Reseal the IMAGEs' documents too, then the stream. */
static void reseal_all(struct bytes *b)
{
	size_t i;

	for (i = 0; i < nr_secs; i++)
		if (secs[i].type == MIG_SEC_IMAGE)
			snap_reseal(b->p + secs[i].off + SNAP_SEC_HEADER_SIZE,
				    secs[i].len - SNAP_SEC_HEADER_SIZE);
	mig_reseal(b->p, b->len);
}

static void resealed(void)
{
	struct bytes b = { 0 };
	struct gmem_vm *vm;
	char msg[512];
	size_t i, ok = 0;
	int err;

	b_put(&b, stream.p, stream.len);
	for (i = 0; i < 200; i++) {
		b.p[edit_pos()] ^= (uint8_t)(1 + rnd(255));
		reseal_all(&b);
		err = feed(b.p, b.len, true, &vm, msg, sizeof(msg));
		if (!err) {
			check_audit(vm, "destination of an edited stream");
			gmem_destroy(vm);
			ok++;
		} else if (err != -EBADMSG && err != -EPROTO &&
			   err != -EFBIG && err != -EINVAL) {
			TEST_FAIL("an edited stream: %d %s", err, msg);
		}
		memcpy(b.p, stream.p, stream.len);
	}
	b_free(&b);
	printf("%zu resealed edits: %zu refused, %zu accepted\n", i, i - ok,
	       ok);
}

/* ---- trickling peers ------------------------------------------------------ */

#define TRICKLE_TIMEOUT_MS 400

struct trickle {
	int fd;
	size_t whole;		/* bytes of the stream sent at once */
	size_t len;		/* then up to here, a byte per 100 ms */
};

static void *trickle_main(void *arg)
{
	struct trickle *t = arg;
	size_t i;

	if (mig_send_bytes(t->fd, stream.p, t->whole, 0))
		return NULL;
	/* Until the destination gives up (the socket shut: EPIPE). */
	for (i = t->whole; i < t->len; i++) {
		usleep(100000);
		if (mig_send_bytes(t->fd, stream.p + i, 1, 0))
			break;
	}
	shutdown(t->fd, SHUT_WR);
	return NULL;
}

/* The stream whole up to section @at, then that section a byte at a
 * time: every byte comes well within the timeout, the section does not
 * come within its deadline. */
static void trickled_at(size_t at)
{
	struct trickle t = { .whole = secs[at].off,
			     .len = secs[at].off + secs[at].len };
	struct dest d;
	pthread_t th;
	double t0 = now_s(), took;
	int sv[2], err;

	sock_pair(sv);
	t.fd = sv[0];
	TEST_ASSERT_EQ(pthread_create(&th, NULL, trickle_main, &t), 0);
	dest_start_timeout(&d, sv[1], 0, TRICKLE_TIMEOUT_MS);
	err = dest_join(&d);
	took = now_s() - t0;
	pthread_join(th, NULL);
	close(sv[0]);
	close(sv[1]);
	if (err != -ETIMEDOUT || d.vm)
		TEST_FAIL("section %zu trickled: %d (%s), expected %d", at, err,
			  d.msg, -ETIMEDOUT);
	/* The deadline, with room for a loaded machine: the trickle alone
	 * would take far longer (a byte per 100 ms, 24 bytes or more). */
	if (took > 5.0 * TRICKLE_TIMEOUT_MS / 1000)
		TEST_FAIL("section %zu (%zu bytes) trickled: refused after "
			  "%.2f s", at, secs[at].len, took);
	printf("section %zu (%s, %zu bytes) trickled: refused after %.2f s: "
	       "%s\n", at, mig_sec_name(secs[at].type), secs[at].len, took,
	       d.msg);
}

struct slow_reader {
	int fd;
	bool quit;
};

/* A KiB every ms: about 1 MB/s, steady progress, never an idle second. */
static void *slow_reader_main(void *arg)
{
	struct slow_reader *r = arg;
	char buf[1024];

	while (!__atomic_load_n(&r->quit, __ATOMIC_ACQUIRE) &&
	       read(r->fd, buf, sizeof(buf)) > 0)
		usleep(1000);
	return NULL;
}

static void trickled(void)
{
	struct slow_reader r = { 0 };
	size_t len = MIG_DEADLINE_UNIT, i;
	uint8_t *big = calloc(1, len);
	double t0, took;
	pthread_t th;
	int sv[2], err;

	/* The first section (IMAGE: no VM yet), and the first DATA after
	 * a whole IMAGE (a VM being built, read ahead). */
	trickled_at(0);
	for (i = 0; secs[i].type != MIG_SEC_DATA; i++)
		;
	trickled_at(i);
	/* The sender: 16 MiB to a reader taking about 16 s for them. */
	TEST_ASSERT(big);
	sock_pair(sv);
	r.fd = sv[1];
	TEST_ASSERT_EQ(pthread_create(&th, NULL, slow_reader_main, &r), 0);
	t0 = now_s();
	err = mig_send_bytes(sv[0], big, len, TRICKLE_TIMEOUT_MS);
	took = now_s() - t0;
	__atomic_store_n(&r.quit, true, __ATOMIC_RELEASE);
	shutdown(sv[0], SHUT_RDWR);
	pthread_join(th, NULL);
	close(sv[0]);
	close(sv[1]);
	free(big);
	if (err != -ETIMEDOUT || took > 5.0 * TRICKLE_TIMEOUT_MS / 1000)
		TEST_FAIL("sending to a slow reader: %d after %.2f s, expected "
			  "%d", err, took, -ETIMEDOUT);
	printf("sending 16 MiB to a reader of 1 MB/s: %s after %.2f s\n",
	       strerror(-err), took);
}

/* The fuzzer's input: a flags byte (bit 0: reseal), then the stream. */
static void write_seed(const char *dir, const char *name, char flags)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	TEST_ASSERT(fd >= 0);
	TEST_ASSERT(write(fd, &flags, 1) == 1);
	TEST_ASSERT(write(fd, stream.p, stream.len) == (ssize_t)stream.len);
	close(fd);
}

int main(int argc, char **argv)
{
	double t0;

	signal(SIGPIPE, SIG_IGN);
	mig_fixture_init("test_migrate_refuse");
	t0 = now_s();
	/* The fuzzer's seeds: a small stream (few pages of content). */
	record(argc == 3 && !strcmp(argv[1], "--seeds") ? 4 : 200);
	index_stream();
	if (argc == 3 && !strcmp(argv[1], "--seeds")) {
		write_seed(argv[2], "stream", 0);
		write_seed(argv[2], "stream-resealed", 1);
		gmem_destroy(src);
		return 0;
	}
	whole();
	t0 = lap(t0, "record and receive");
	truncated();
	t0 = lap(t0, "truncated");
	corrupted();
	t0 = lap(t0, "corrupted");
	edited();
	t0 = lap(t0, "edited");
	resealed();
	t0 = lap(t0, "resealed");
	trickled();
	lap(t0, "trickled");
	gmem_destroy(src);
	b_free(&stream);
	snap_fixture_fini();
	printf("PASS\n");
	return 0;
}
