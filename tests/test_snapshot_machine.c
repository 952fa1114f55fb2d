/* SPDX-License-Identifier: MIT */
/*
 * The snapshot sections beyond memory (vmm/snapshot/machine*.c,
 * docs/SNAPSHOT.md: VCPU, CLOCK, DMADEV, RUNOPTS), without KVM:
 *  - round trips: whole-VM files (memory sections of a real libgmem VM,
 *    then random machine state: up to 64 vCPUs, XSAVE areas from 4 KiB to
 *    64 KiB, up to 300 MSRs, pins) parse back to exactly what was
 *    written, and writing what was parsed gives the same bytes;
 *  - snap_save_file(), gmvm's path: the machine it is given written
 *    after the memory, the same bytes; its prepare() called once PATH.tmp
 *    exists, a failure there leaving nothing; a PATH that appears
 *    meanwhile kept;
 *  - every truncation of a file is refused by the framing (as is) or by
 *    a parser (header made to agree): never a crash, always a message;
 *  - random single-byte corruptions of the machine sections: all refused
 *    as is (checksums); resealed, refused or parsed to exactly the bytes
 *    of the changed file (one encoding per state);
 *  - hand-made sections with valid checksums breaking each rule (sizes,
 *    counts, ranges, reserved fields, order, cross-section agreement,
 *    a memory-only file, a required section type from a newer format),
 *    each refused with -EBADMSG or -EPROTO and a message naming it.
 *
 *   test_snapshot_machine --seeds DIR   writes whole-VM seeds into
 *                                       fuzz/corpus/fuzz_snapshot/
 *   test_snapshot_machine --gmvm DIR    writes the files
 *                                       tests/test_gmvm_restore.sh gives
 *                                       `gmvm restore` (one good for a
 *                                       16 MiB flat VM, and ones that
 *                                       only gmvm can refuse)
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "machine.h"
#include "snapshot_fixture.h"

static void rnd_fill(void *p, size_t len)
{
	uint8_t *b = p;

	while (len--)
		*b++ = (uint8_t)rnd(256);
}

static void rnd_segment(struct kvm_segment *g)
{
	g->base = rnd(UINT64_MAX);
	g->limit = (uint32_t)rnd(UINT32_MAX);
	g->selector = (uint16_t)rnd(65536);
	g->type = (uint8_t)rnd(16);
	g->present = (uint8_t)rnd(2);
	g->dpl = (uint8_t)rnd(4);
	g->db = (uint8_t)rnd(2);
	g->s = (uint8_t)rnd(2);
	g->l = (uint8_t)rnd(2);
	g->g = (uint8_t)rnd(2);
	g->avl = (uint8_t)rnd(2);
	g->unusable = (uint8_t)rnd(2);
	g->padding = 0;
}

/* A valid vCPU with random contents (free with snap_vcpu_free()). */
static void rnd_vcpu(struct snap_vcpu *v, uint32_t index, bool big)
{
	struct kvm_segment *seg[] = {
		&v->sregs.cs, &v->sregs.ds, &v->sregs.es, &v->sregs.fs,
		&v->sregs.gs, &v->sregs.ss, &v->sregs.tr, &v->sregs.ldt,
	};
	uint32_t i, idx;

	memset(v, 0, sizeof(*v));
	v->index = index;
	v->flags = (uint32_t)rnd(2);
	v->mp_state = (uint32_t)rnd(5);
	rnd_fill(&v->regs, sizeof(v->regs));
	v->regs.rflags &= (1ULL << 22) - 1;
	for (i = 0; i < 8; i++)
		rnd_segment(seg[i]);
	v->sregs.gdt.base = rnd(UINT64_MAX);
	v->sregs.gdt.limit = (uint16_t)rnd(65536);
	v->sregs.idt.base = rnd(UINT64_MAX);
	v->sregs.cr0 = rnd(UINT64_MAX);
	v->sregs.cr2 = rnd(UINT64_MAX);
	v->sregs.cr3 = rnd(UINT64_MAX);
	v->sregs.cr4 = rnd(UINT64_MAX);
	v->sregs.cr8 = rnd(16);
	v->sregs.efer = rnd(UINT64_MAX);
	v->sregs.apic_base = rnd(UINT64_MAX);
	if (rnd(2))
		v->sregs.interrupt_bitmap[rnd(4)] = 1ULL << rnd(64);
	v->xcrs.nr_xcrs = (uint32_t)rnd(KVM_MAX_XCRS + 1);
	for (i = 0; i < v->xcrs.nr_xcrs; i++) {
		v->xcrs.xcrs[i].xcr = (uint32_t)rnd(UINT32_MAX);
		v->xcrs.xcrs[i].value = rnd(UINT64_MAX);
	}
	v->events.exception.injected = (uint8_t)rnd(2);
	v->events.exception.nr = (uint8_t)rnd(32);
	v->events.exception.has_error_code = (uint8_t)rnd(2);
	v->events.exception.pending = (uint8_t)rnd(2);
	v->events.exception.error_code = (uint32_t)rnd(UINT32_MAX);
	v->events.interrupt.injected = (uint8_t)rnd(2);
	v->events.interrupt.nr = (uint8_t)rnd(256);
	v->events.interrupt.soft = (uint8_t)rnd(2);
	v->events.interrupt.shadow = (uint8_t)rnd(4);
	v->events.nmi.masked = (uint8_t)rnd(2);
	v->events.sipi_vector = (uint32_t)rnd(UINT32_MAX);
	v->events.flags = (uint32_t)rnd(0x40);
	v->events.triple_fault.pending = (uint8_t)rnd(2);
	v->events.exception_has_payload = (uint8_t)rnd(2);
	v->events.exception_payload = rnd(UINT64_MAX);
	v->xsave_size = SNAP_XSAVE_LEGACY +
			(uint32_t)rnd(big ? 15 * 1024 : 64) * 4;
	v->xsave = malloc(v->xsave_size);
	TEST_ASSERT(v->xsave);
	rnd_fill(v->xsave, v->xsave_size);
	v->nr_msrs = (uint32_t)rnd(big ? 300 : 40);
	v->msrs = calloc(v->nr_msrs + 1, sizeof(*v->msrs));
	TEST_ASSERT(v->msrs);
	for (i = 0, idx = 0; i < v->nr_msrs; i++) {
		idx += 1 + (uint32_t)rnd(0x1000);
		v->msrs[i].index = idx;
		v->msrs[i].value = rnd(UINT64_MAX);
	}
}

static void rnd_machine(struct snap_machine *m, enum gmem_mode mode,
			unsigned int nr_vcpus, bool big)
{
	unsigned int i;

	memset(m, 0, sizeof(*m));
	m->opts.ram_size = (1 + rnd(1 << 20)) * PG;
	m->opts.layout = (uint32_t)rnd(2);
	m->opts.nr_vcpus = nr_vcpus;
	m->opts.mode = mode;
	m->opts.implicit = (uint32_t)rnd(2);
	m->opts.flags = (uint32_t)rnd(SNAP_RUNOPT_ALL + 1);
	if (mode != GMEM_MODE_DISCARD)
		m->opts.flags &= ~(SNAP_RUNOPT_DEFERRED_RECLAIM |
				   SNAP_RUNOPT_DMA_EXTERNAL);
	m->clock.clock = rnd(UINT64_MAX);
	m->dma.regs.addr_lo = (uint32_t)rnd(UINT32_MAX);
	m->dma.regs.addr_hi = (uint32_t)rnd(UINT32_MAX);
	m->dma.regs.len = (uint32_t)rnd(UINT32_MAX);
	m->dma.regs.pattern = (uint32_t)rnd(UINT32_MAX);
	m->dma.regs.status = (uint32_t)rnd(4);
	m->dma.regs.result = (uint32_t)rnd(UINT32_MAX);
	m->dma.nr_pins = (uint32_t)rnd(SNAP_MAX_PINS + 1);
	for (i = 0; i < m->dma.nr_pins; i++) {
		m->dma.pins[i].addr = rnd(1ULL << 40);
		m->dma.pins[i].len = 1 + rnd(SNAP_DMA_MAX_LEN);
	}
	for (i = 0; i < nr_vcpus; i++)
		rnd_vcpu(&m->vcpu[i], i, big);
	m->nr_vcpus = nr_vcpus;
}

/* ---- files --------------------------------------------------------------- */

static struct bytes fd_bytes(int fd, uint64_t len)
{
	struct bytes b = { 0 };

	b.p = malloc(len);
	TEST_ASSERT(b.p);
	TEST_ASSERT_EQ(pread(fd, b.p, len, 0), (ssize_t)len);
	b.len = b.cap = len;
	return b;
}

/* @vm's memory (NULL: none), then @m's sections (NULL: none). */
static struct bytes whole_file(struct gmem_vm *vm, const struct snap_machine *m)
{
	struct snap_save_opts so = { .initial_state = GMEM_PRIVATE };
	struct snap_writer w;
	struct snap_msg msg;
	struct bytes b;
	char buf[256] = "";
	int64_t len;
	int fd = memfd_create("machine", MFD_CLOEXEC);

	TEST_ASSERT(fd >= 0);
	snap_msg_init(&msg, buf, sizeof(buf));
	TEST_ASSERT_EQ(snap_writer_init(&w, fd, NULL, &msg), 0);
	if (vm)
		TEST_ASSERT_EQ(snap_mem_save(vm, &w, &so, NULL), 0);
	if (m)
		TEST_ASSERT_EQ(snap_machine_write(&w, m), 0);
	len = snap_writer_finish(&w);
	if (len < 0)
		TEST_FAIL("writing: %s", buf);
	snap_writer_free(&w);
	b = fd_bytes(fd, (uint64_t)len);
	close(fd);
	return b;
}

/* Open, check memory, parse the machine: 0 or the refusal (a message). */
static int load(const uint8_t *p, size_t len, struct snap_machine *m,
		char *msg, size_t msg_len)
{
	struct snap_reader r;
	struct snap_src src;
	int err;

	msg[0] = '\0';
	memset(m, 0, sizeof(*m));
	snap_src_mem(&src, p, len);
	err = snap_reader_open(&r, &src, msg, msg_len);
	if (err)
		goto out;
	err = snap_mem_check(&r, NULL);
	if (!err)
		err = snap_machine_parse(&r, m);
	if (err)
		snap_machine_free(m);
	snap_reader_close(&r);
out:
	if (err) {
		TEST_ASSERT(err < 0);
		if (!msg[0])
			TEST_FAIL("refused with %s but no message",
				  strerror(-err));
	}
	return err;
}

static void same_vcpu(const struct snap_vcpu *a, const struct snap_vcpu *b)
{
	TEST_ASSERT_EQ(a->index, b->index);
	TEST_ASSERT_EQ(a->mp_state, b->mp_state);
	TEST_ASSERT(!memcmp(&a->regs, &b->regs, sizeof(a->regs)));
	TEST_ASSERT(!memcmp(&a->sregs, &b->sregs, sizeof(a->sregs)));
	TEST_ASSERT(!memcmp(&a->xcrs, &b->xcrs, sizeof(a->xcrs)));
	TEST_ASSERT(!memcmp(&a->events, &b->events, sizeof(a->events)));
	TEST_ASSERT_EQ(a->xsave_size, b->xsave_size);
	TEST_ASSERT(!memcmp(a->xsave, b->xsave, a->xsave_size));
	TEST_ASSERT_EQ(a->nr_msrs, b->nr_msrs);
	TEST_ASSERT(!memcmp(a->msrs, b->msrs, a->nr_msrs * sizeof(*a->msrs)));
}

static void same_machine(const struct snap_machine *a,
			 const struct snap_machine *b)
{
	unsigned int i;

	TEST_ASSERT(!memcmp(&a->opts, &b->opts, sizeof(a->opts)));
	TEST_ASSERT_EQ(a->clock.clock, b->clock.clock);
	TEST_ASSERT(!memcmp(&a->dma, &b->dma, sizeof(a->dma)));
	TEST_ASSERT_EQ(a->nr_vcpus, b->nr_vcpus);
	for (i = 0; i < a->nr_vcpus; i++)
		same_vcpu(&a->vcpu[i], &b->vcpu[i]);
}

/* Where the machine sections start: the first VCPU section's header. */
static size_t machine_offset(const struct bytes *f)
{
	struct snap_reader r;
	struct snap_src src;
	char msg[256];
	size_t off;

	snap_src_mem(&src, f->p, f->len);
	TEST_ASSERT_EQ(snap_reader_open(&r, &src, msg, sizeof(msg)), 0);
	off = (size_t)snap_reader_find(&r, SNAP_SEC_VCPU, 0)->off;
	snap_reader_close(&r);
	return off;
}

/* ---- tests --------------------------------------------------------------- */

static struct snap_machine *ma, *mb;	/* big: on the heap */

static struct gmem_vm *small_vm(struct model *mod, enum gmem_mode mode)
{
	static struct creator c = { .own_shared = true };
	struct gmem_vm *vm;
	uint8_t page[PG];

	model_init(mod, mode, GMEM_PRIVATE, 16 * MiB);
	vm = create_model_vm(mod, 0, &c);
	memset(page, 0x5a, sizeof(page));
	TEST_ASSERT_EQ(gmem_access(vm, 0, page, PG, true, GMEM_PRIVATE), 0);
	TEST_ASSERT_EQ(gmem_convert(vm, 64 * KiB, 64 * KiB, GMEM_SHARED), 16);
	return vm;
}

static void round_trips(struct gmem_vm *vm, enum gmem_mode mode, int rounds)
{
	struct bytes f, g;
	char msg[256];
	int i;

	for (i = 0; i < rounds; i++) {
		unsigned int n = i == 0 ? SNAP_MAX_VCPUS : 1 + (unsigned)rnd(4);

		rnd_machine(ma, mode, n, i == 1);
		f = whole_file(vm, ma);
		if (load(f.p, f.len, mb, msg, sizeof(msg)))
			TEST_FAIL("round %d: a file as written refused: %s", i,
				  msg);
		same_machine(ma, mb);
		/* One encoding: what was parsed writes the same bytes. */
		g = whole_file(vm, mb);
		TEST_ASSERT_EQ(g.len, f.len);
		TEST_ASSERT(!memcmp(g.p, f.p, f.len));
		snap_machine_free(ma);
		snap_machine_free(mb);
		b_free(&f);
		b_free(&g);
	}
}

/*
 * snap_save_file(), gmvm's one path to a snapshot file: the machine it is
 * given written after the memory, byte for byte what a writer makes;
 * prepare() called once PATH.tmp exists, its failure leaving nothing; a
 * PATH that appears meanwhile kept (no_replace).
 */
struct prep {
	const char *tmp, *path;
	int calls, fail;
	bool make_path;
};

static int prepare(void *data, struct snap_msg *m)
{
	struct prep *p = data;

	p->calls++;
	TEST_ASSERT(exists(p->tmp));
	TEST_ASSERT(!exists(p->path));
	if (p->make_path) {
		int fd = open(p->path, O_WRONLY | O_CREAT | O_EXCL, 0600);

		TEST_ASSERT(fd >= 0);
		TEST_ASSERT_EQ(write(fd, "theirs", 6), 6);
		close(fd);
	}
	return p->fail ? snap_err(m, p->fail, "prepare refused") : 0;
}

static void saved_by_path(struct gmem_vm *vm, enum gmem_mode mode)
{
	char path[128], tmp[160], msg[256];
	struct prep p = { .tmp = tmp, .path = path };
	struct snap_save_opts so = {
		.initial_state = GMEM_PRIVATE, .no_replace = true,
		.prepare = prepare, .prepare_data = &p, .machine = ma,
	};
	struct snap_save_stats st = { 0 };
	struct bytes f, want;

	path_in_dir(path, sizeof(path), "machine.snap");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	rnd_machine(ma, mode, 3, false);
	want = whole_file(vm, ma);

	TEST_ASSERT_EQ(snap_save_file(vm, path, &so, &st, msg, sizeof(msg)),
		       0);
	TEST_ASSERT_EQ(p.calls, 1);
	TEST_ASSERT_EQ(st.file_bytes, want.len);
	TEST_ASSERT(!exists(tmp));
	f = read_file(path);
	TEST_ASSERT_EQ(f.len, want.len);
	TEST_ASSERT(!memcmp(f.p, want.p, f.len));
	if (load(f.p, f.len, mb, msg, sizeof(msg)))
		TEST_FAIL("saved by path, refused: %s", msg);
	same_machine(ma, mb);
	snap_machine_free(mb);
	b_free(&f);
	TEST_ASSERT_EQ(unlink(path), 0);

	/* prepare() fails: its errno and message, nothing left. */
	p.fail = -EIO;
	msg[0] = '\0';
	TEST_ASSERT_EQ(snap_save_file(vm, path, &so, NULL, msg, sizeof(msg)),
		       -EIO);
	TEST_ASSERT(strstr(msg, "prepare refused"));
	TEST_ASSERT(!exists(tmp));
	TEST_ASSERT(!exists(path));

	/* PATH appears while the file is written: kept, ours removed. */
	p.fail = 0;
	p.make_path = true;
	TEST_ASSERT_EQ(snap_save_file(vm, path, &so, NULL, msg, sizeof(msg)),
		       -EEXIST);
	TEST_ASSERT(!exists(tmp));
	f = read_file(path);
	TEST_ASSERT(f.len == 6 && !memcmp(f.p, "theirs", 6));
	b_free(&f);
	TEST_ASSERT_EQ(unlink(path), 0);
	TEST_ASSERT_EQ(p.calls, 3);
	snap_machine_free(ma);
	b_free(&want);
}

static void truncations(const struct bytes *f)
{
	uint8_t *buf = malloc(f->len);
	char msg[256];
	size_t len;

	TEST_ASSERT(buf);
	for (len = 0; len < f->len; len++) {
		TEST_ASSERT(load(f->p, len, mb, msg, sizeof(msg)) < 0);
		memcpy(buf, f->p, len);
		snap_reseal(buf, len);
		TEST_ASSERT(load(buf, len, mb, msg, sizeof(msg)) < 0);
	}
	free(buf);
}

/*
 * A resealed file that parses must be written back byte for byte:
 * compare the machine sections of @p with those written from @m.
 */
static void same_bytes(struct gmem_vm *vm, const uint8_t *p, size_t len,
		       const struct snap_machine *m)
{
	struct bytes g = whole_file(vm, m);

	TEST_ASSERT_EQ(g.len, len);
	TEST_ASSERT(!memcmp(g.p, p, len));
	b_free(&g);
}

static void corruptions(struct gmem_vm *vm, const struct bytes *f, int n)
{
	size_t start = machine_offset(f), at;
	uint8_t *buf = malloc(f->len);
	unsigned int accepted = 0;
	char msg[256];
	int i;

	TEST_ASSERT(buf);
	for (i = 0; i < n; i++) {
		memcpy(buf, f->p, f->len);
		/* In the machine sections, END's header excluded. */
		at = start + (size_t)rnd(f->len - SNAP_SEC_HEADER_SIZE - start);
		buf[at] ^= (uint8_t)(1 + rnd(255));
		TEST_ASSERT(load(buf, f->len, mb, msg, sizeof(msg)) < 0);
		snap_reseal(buf, f->len);
		if (load(buf, f->len, mb, msg, sizeof(msg)))
			continue;
		accepted++;
		same_bytes(vm, buf, f->len, mb);
		snap_machine_free(mb);
	}
	printf("corruptions: %d, %u accepted once resealed (each exact)\n", n,
	       accepted);
	free(buf);
}

/* Write @m (broken on purpose) after @vm's memory: refused with @err and
 * a message containing @what. */
static void expect_refused(struct gmem_vm *vm, const struct snap_machine *m,
			   int err, const char *what)
{
	struct bytes f = whole_file(vm, m);
	char msg[256];
	int got = load(f.p, f.len, mb, msg, sizeof(msg));

	if (got != err || !strstr(msg, what))
		TEST_FAIL("expected %s with \"%s\", got %s: %s", strerror(-err),
			  what, strerror(-got), msg);
	b_free(&f);
}

/* Change one byte of section @type's payload (at @pos) and reseal. */
static void expect_poked(struct gmem_vm *vm, const struct snap_machine *m,
			 uint32_t type, size_t pos, uint8_t val,
			 const char *what)
{
	struct bytes f = whole_file(vm, m);
	struct snap_reader r;
	struct snap_src src;
	char msg[256];
	uint64_t off;
	int got;

	snap_src_mem(&src, f.p, f.len);
	TEST_ASSERT_EQ(snap_reader_open(&r, &src, msg, sizeof(msg)), 0);
	off = snap_reader_find(&r, type, 0)->off + SNAP_SEC_HEADER_SIZE;
	snap_reader_close(&r);
	f.p[off + pos] = val;
	snap_reseal(f.p, f.len);
	got = load(f.p, f.len, mb, msg, sizeof(msg));
	if (got != -EBADMSG || !strstr(msg, what))
		TEST_FAIL("poke %#x at %zu: expected \"%s\", got %s: %s", type,
			  pos, what, strerror(-got), msg);
	b_free(&f);
}

static void handmade(struct gmem_vm *vm, enum gmem_mode mode)
{
	struct snap_vcpu *v = &ma->vcpu[0];
	struct kvm_sregs sregs;
	struct kvm_vcpu_events ev;
	struct snap_runopts o;
	struct bytes f;
	char msg[256];
	uint32_t x;

	rnd_machine(ma, mode, 2, false);
	/* rnd_vcpu() may have drawn fewer than three. */
	free(v->msrs);
	v->msrs = calloc(3, sizeof(*v->msrs));
	TEST_ASSERT(v->msrs);
	v->nr_msrs = 3;
	v->msrs[0].index = 1;
	v->msrs[1].index = 2;
	v->msrs[2].index = 3;

	/* The memory half alone is not a whole VM. */
	f = whole_file(vm, NULL);
	TEST_ASSERT_EQ(load(f.p, f.len, mb, msg, sizeof(msg)), -EBADMSG);
	TEST_ASSERT(strstr(msg, "no RUNOPTS section"));
	b_free(&f);

	/* Cross-section agreement. */
	o = ma->opts;
	ma->opts.nr_vcpus = 3;
	expect_refused(vm, ma, -EBADMSG, "2 VCPU sections for the 3 vCPUs");
	ma->opts = o;
	ma->opts.mode = !mode;
	ma->opts.flags = 0;
	expect_refused(vm, ma, -EBADMSG, "RUNOPTS says conversion mode");
	ma->opts = o;
	ma->vcpu[1].index = 5;
	expect_refused(vm, ma, -EBADMSG, "vCPU index 5 in the section of vCPU 1");
	ma->vcpu[1].index = 1;

	/* RUNOPTS values. */
	ma->opts.layout = 2;
	expect_refused(vm, ma, -EBADMSG, "memory layout 2");
	ma->opts = o;
	ma->opts.ram_size = 4097;
	expect_refused(vm, ma, -EBADMSG, "not a non-zero multiple of 4 KiB");
	ma->opts = o;
	ma->opts.implicit = 7;
	expect_refused(vm, ma, -EBADMSG, "implicit policy 7");
	ma->opts = o;
	ma->opts.flags = 0x10;
	expect_refused(vm, ma, -EBADMSG, "unknown flags 0x10");
	ma->opts = o;
	if (mode == GMEM_MODE_IN_PLACE) {
		ma->opts.flags = SNAP_RUNOPT_DMA_EXTERNAL;
		expect_refused(vm, ma, -EBADMSG, "with in-place conversion");
		ma->opts = o;
	}
	expect_poked(vm, ma, SNAP_SEC_RUNOPTS, 12, 0, "0 vCPUs");
	expect_poked(vm, ma, SNAP_SEC_RUNOPTS, 12, 65, "65 vCPUs");
	expect_poked(vm, ma, SNAP_SEC_RUNOPTS, 28, 1, "reserved field");

	/* CLOCK and DMADEV. */
	expect_poked(vm, ma, SNAP_SEC_CLOCK, 9, 1, "flags or reserved");
	expect_poked(vm, ma, SNAP_SEC_DMADEV, 16, 4, "STATUS 4");
	expect_poked(vm, ma, SNAP_SEC_DMADEV, 28, 1, "reserved field");
	ma->dma.nr_pins = 2;
	ma->dma.pins[1].len = 0;
	expect_refused(vm, ma, -EBADMSG, "pin 1");
	ma->dma.pins[1].len = SNAP_DMA_MAX_LEN + 1;
	expect_refused(vm, ma, -EBADMSG, "pin 1");
	ma->dma.pins[1].addr = UINT64_MAX - 4095;
	ma->dma.pins[1].len = 4096;
	expect_refused(vm, ma, -EBADMSG, "wrapping");
	ma->dma.pins[1].addr = 0;
	expect_poked(vm, ma, SNAP_SEC_DMADEV, 24, 3, "3 pins in");

	/* VCPU: the head. */
	expect_poked(vm, ma, SNAP_SEC_VCPU, 4, 2, "unknown flags 0x2");
	expect_poked(vm, ma, SNAP_SEC_VCPU, 20, 1, "reserved field");
	expect_poked(vm, ma, SNAP_SEC_VCPU, 8, 9, "MP state 9");
	expect_poked(vm, ma, SNAP_SEC_VCPU, 0, 64, "vCPU index 64");
	x = v->xsave_size;
	v->xsave_size = 4000;
	expect_refused(vm, ma, -EBADMSG, "XSAVE size 4000");
	v->xsave_size = x;
	expect_poked(vm, ma, SNAP_SEC_VCPU, 12, (uint8_t)(x + 4), "XSAVE size and MSR count make");
	expect_poked(vm, ma, SNAP_SEC_VCPU, 16, 4, "XSAVE size and MSR count make");
	expect_poked(vm, ma, SNAP_SEC_VCPU, 18, 1, "MSRs (at most 1024)");
	/* MSRs. */
	v->msrs[2].index = 2;
	expect_refused(vm, ma, -EBADMSG, "not strictly increasing");
	v->msrs[2].index = 3;
	expect_poked(vm, ma, SNAP_SEC_VCPU,
		     SNAP_VCPU_FIXED + x + SNAP_MSR_SIZE + 4, 1,
		     "MSR entry 1: reserved");
	/* regs, sregs, xcrs, events. */
	v->regs.rflags = 1ULL << 22;
	expect_refused(vm, ma, -EBADMSG, "RFLAGS");
	v->regs.rflags = 2;
	sregs = v->sregs;
	v->sregs.ss.dpl = 4;
	expect_refused(vm, ma, -EBADMSG, "segment ss: DPL above 3");
	v->sregs = sregs;
	v->sregs.tr.type = 16;
	expect_refused(vm, ma, -EBADMSG, "segment tr: type above 15");
	v->sregs = sregs;
	v->sregs.cs.l = 2;
	expect_refused(vm, ma, -EBADMSG, "segment cs: a one-bit field");
	v->sregs = sregs;
	v->sregs.ldt.padding = 1;
	expect_refused(vm, ma, -EBADMSG, "segment ldt: padding");
	v->sregs = sregs;
	v->sregs.gdt.padding[2] = 1;
	expect_refused(vm, ma, -EBADMSG, "GDT or IDT padding");
	v->sregs = sregs;
	v->sregs.cr8 = 16;
	expect_refused(vm, ma, -EBADMSG, "CR8");
	v->sregs = sregs;
	memset(v->sregs.interrupt_bitmap, 0, sizeof(v->sregs.interrupt_bitmap));
	v->sregs.interrupt_bitmap[0] = 3;
	expect_refused(vm, ma, -EBADMSG, "2 interrupts pending");
	v->sregs = sregs;
	v->xcrs.nr_xcrs = 17;
	expect_refused(vm, ma, -EBADMSG, "17 XCRs");
	memset(&v->xcrs, 0, sizeof(v->xcrs));
	v->xcrs.nr_xcrs = 1;
	v->xcrs.xcrs[3].value = 1;
	expect_refused(vm, ma, -EBADMSG, "xcrs: entry 3");
	v->xcrs.xcrs[3].value = 0;
	v->xcrs.flags = 1;
	expect_refused(vm, ma, -EBADMSG, "xcrs: flags or padding");
	v->xcrs.flags = 0;
	ev = v->events;
	v->events.flags = 0x40;
	expect_refused(vm, ma, -EBADMSG, "events: unknown flags");
	v->events = ev;
	v->events.exception.nr = 32;
	expect_refused(vm, ma, -EBADMSG, "exception vector above 31");
	v->events = ev;
	v->events.interrupt.shadow = 4;
	expect_refused(vm, ma, -EBADMSG, "an interrupt field");
	v->events = ev;
	v->events.nmi.pad = 1;
	expect_refused(vm, ma, -EBADMSG, "an NMI field");
	v->events = ev;
	v->events.smi.latched_init = 2;
	expect_refused(vm, ma, -EBADMSG, "an SMI or triple-fault field");
	v->events = ev;
	v->events.reserved[25] = 1;
	expect_refused(vm, ma, -EBADMSG, "reserved bytes");
	v->events = ev;
	snap_machine_free(ma);
}

/* A required section of a newer format, and a newer version. */
static void newer(struct gmem_vm *vm, enum gmem_mode mode)
{
	struct bytes f;
	struct snap_reader r;
	struct snap_src src;
	char msg[256];
	size_t off;

	rnd_machine(ma, mode, 1, false);
	f = whole_file(vm, ma);
	snap_src_mem(&src, f.p, f.len);
	TEST_ASSERT_EQ(snap_reader_open(&r, &src, msg, sizeof(msg)), 0);
	off = (size_t)snap_reader_find(&r, SNAP_SEC_CLOCK, 0)->off;
	snap_reader_close(&r);
	snap_put_le32(f.p + off, 0x12);		/* unknown, not OPTIONAL */
	snap_reseal(f.p, f.len);
	TEST_ASSERT_EQ(load(f.p, f.len, mb, msg, sizeof(msg)), -EPROTO);
	TEST_ASSERT(strstr(msg, "0x12"));
	snap_put_le32(f.p + off + 4, SNAP_SEC_OPTIONAL);
	snap_reseal(f.p, f.len);
	/* Skipped: then CLOCK is missing. */
	TEST_ASSERT_EQ(load(f.p, f.len, mb, msg, sizeof(msg)), -EBADMSG);
	TEST_ASSERT(strstr(msg, "no CLOCK section"));
	snap_put_le32(f.p + 8, 2);
	TEST_ASSERT_EQ(load(f.p, f.len, mb, msg, sizeof(msg)), -EPROTO);
	TEST_ASSERT(strstr(msg, "version 2"));
	memcpy(f.p, "ELF", 3);
	TEST_ASSERT_EQ(load(f.p, f.len, mb, msg, sizeof(msg)), -EINVAL);
	b_free(&f);
	snap_machine_free(ma);
}

/* Small whole-VM files, resealed by the fuzzer (flags byte 1). */
static void write_seeds(const char *dir)
{
	enum gmem_mode mode;
	struct gmem_vm *vm;
	struct model mod;
	struct bytes f;
	char path[512];
	FILE *out;

	for (mode = GMEM_MODE_DISCARD; mode <= GMEM_MODE_IN_PLACE; mode++) {
		vm = small_vm(&mod, mode);
		rnd_machine(ma, mode, 2, false);
		ma->vcpu[0].xsave_size = SNAP_XSAVE_LEGACY;
		ma->vcpu[1].xsave_size = SNAP_XSAVE_LEGACY;
		f = whole_file(vm, ma);
		snprintf(path, sizeof(path), "%s/whole-%s", dir,
			 gmem_mode_name(mode));
		out = fopen(path, "w");
		TEST_ASSERT(out);
		TEST_ASSERT(fputc(1, out) == 1);
		TEST_ASSERT(fwrite(f.p, 1, f.len, out) == f.len);
		TEST_ASSERT(fclose(out) == 0);
		b_free(&f);
		snap_machine_free(ma);
		gmem_destroy(vm);
		model_free(&mod);
	}
}

/* @f into DIR/NAME. */
static void put_file(const char *dir, const char *name, const struct bytes *f)
{
	char path[512];
	FILE *out;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	out = fopen(path, "w");
	TEST_ASSERT(out);
	TEST_ASSERT(fwrite(f->p, 1, f->len, out) == f->len);
	TEST_ASSERT(fclose(out) == 0);
}

/*
 * What `gmvm run --memory 16M` would save (one flat region, discard, one
 * vCPU), and variants whose sections are each well formed but that
 * disagree with gmvm's own rules: for `gmvm restore` without KVM.
 */
static void write_gmvm_files(const char *dir)
{
	struct gmem_region_config rc = GMEM_INIT(struct gmem_region_config,
		.gpa = 0, .len = 16 * MiB, .private_fd = -1, .shared_fd = -1);
	struct gmem_config cfg = base_config(0);
	struct creator c = { .own_shared = true };
	struct gmem_vm *vm;
	struct bytes f;
	uint8_t page[PG];

	cfg.mode = GMEM_MODE_DISCARD;
	cfg.initial_state = GMEM_PRIVATE;
	cfg.max_gpa = 16 * MiB;
	cfg.regions = &rc;
	cfg.nr_regions = 1;
	TEST_ASSERT_EQ(create_cb(&c, &cfg, &vm), 0);
	memset(page, 0x5a, sizeof(page));
	TEST_ASSERT_EQ(gmem_access(vm, 1 * MiB, page, PG, true, GMEM_PRIVATE),
		       0);
	TEST_ASSERT_EQ(gmem_convert(vm, 2 * MiB, 64 * KiB, GMEM_SHARED), 16);
	rnd_machine(ma, GMEM_MODE_DISCARD, 1, false);
	ma->opts.ram_size = 16 * MiB;
	ma->opts.layout = 0;
	ma->opts.flags = 0;
	ma->dma.nr_pins = 1;
	ma->dma.pins[0].addr = 2 * MiB;
	ma->dma.pins[0].len = 4096;
	f = whole_file(vm, ma);
	put_file(dir, "good.snap", &f);
	b_free(&f);
	f = whole_file(vm, NULL);
	put_file(dir, "memory-only.snap", &f);
	b_free(&f);
	ma->dma.pins[0].addr = 16 * MiB;
	f = whole_file(vm, ma);
	put_file(dir, "pin-outside.snap", &f);
	b_free(&f);
	ma->dma.pins[0].addr = 2 * MiB;
	ma->opts.ram_size = 32 * MiB;
	f = whole_file(vm, ma);
	put_file(dir, "other-layout.snap", &f);
	b_free(&f);
	ma->opts.ram_size = 16 * MiB;
	ma->opts.flags = SNAP_RUNOPT_INIT_SHARED;
	f = whole_file(vm, ma);
	put_file(dir, "init-shared.snap", &f);
	b_free(&f);
	snap_machine_free(ma);
	gmem_destroy(vm);
}

int main(int argc, char **argv)
{
	enum gmem_mode mode;
	struct gmem_vm *vm;
	struct model mod;
	struct bytes f;
	double t0;

	snap_fixture_init("test_snapshot_machine");
	ma = calloc(1, sizeof(*ma));
	mb = calloc(1, sizeof(*mb));
	TEST_ASSERT(ma && mb);
	if (argc == 3 && !strcmp(argv[1], "--seeds")) {
		write_seeds(argv[2]);
		goto out;
	}
	if (argc == 3 && !strcmp(argv[1], "--gmvm")) {
		write_gmvm_files(argv[2]);
		goto out;
	}
	t0 = now_s();
	for (mode = GMEM_MODE_DISCARD; mode <= GMEM_MODE_IN_PLACE; mode++) {
		vm = small_vm(&mod, mode);
		round_trips(vm, mode, mode == GMEM_MODE_DISCARD ? 40 : 10);
		saved_by_path(vm, mode);
		t0 = lap(t0, "round trips");
		rnd_machine(ma, mode, 2, false);
		f = whole_file(vm, ma);
		snap_machine_free(ma);
		printf("%s: whole-VM file of %zu bytes\n",
		       gmem_mode_name(mode), f.len);
		if (mode == GMEM_MODE_DISCARD) {
			truncations(&f);
			t0 = lap(t0, "truncations");
		}
		corruptions(vm, &f, mode == GMEM_MODE_DISCARD ? 3000 : 500);
		t0 = lap(t0, "corruptions");
		b_free(&f);
		handmade(vm, mode);
		newer(vm, mode);
		gmem_destroy(vm);
		model_free(&mod);
	}
	printf("all passed\n");
out:
	free(ma);
	free(mb);
	snap_fixture_fini();
	return T_EXIT_PASS;
}
