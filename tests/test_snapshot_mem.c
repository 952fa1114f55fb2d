/* SPDX-License-Identifier: MIT */
/*
 * Memory snapshots (vmm/snapshot/, docs/SNAPSHOT.md), without KVM:
 *  - round trips: for discard (also with deferred reclaim) and in-place
 *    mode, a VM of several regions (one hot-plugged, two adjacent, VMM
 *    shared fds at offsets) goes through hundreds of random conversions,
 *    batches, plugs, unplugs and pattern writes against a per-page model;
 *    it is saved, restored into a new VM and compared with the model and
 *    the original (maps, content, residency per page and per backing,
 *    the audit, snap_mem_verify), then changed again, saved again, ... so
 *    restored VMs are snapshotted and restored too; the two files of one
 *    state are equal byte for byte and record for record; files written
 *    with SEEK_DATA and with mincore are the same file; the file is at
 *    most 1.05x the resident bytes + 1 MiB;
 *  - a 16 GiB VM with a few MiB resident: a small file, timed;
 *  - refusals: every truncation of a small snapshot (as is, and with the
 *    header made to agree), thousands of random single-byte corruptions
 *    (as is: all refused; resealed: refused, or restored exactly as the
 *    changed file says), a wrong magic, a future version, flags, a section
 *    claiming 2^63 bytes, and hand-made files breaking each rule of the
 *    format — each refused with its errno and a message naming the
 *    problem, and no VM left behind (live memslots, fds; ASan for leaks);
 *  - restores that fail late (creation, backings not empty, a listener
 *    refusing a conversion) leave no VM;
 *  - writes that fail at every possible call, and a real EFBIG, return
 *    -errno and leave neither PATH.tmp nor a changed PATH; so does a VM
 *    changed during its save (-EAGAIN);
 *  - CRC32C: the check value, hardware and table paths agree.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"
#include "crc32c.h"
#include "format.h"
#include "mem_image.h"
#include "snapshot.h"

#define PG GMEM_PAGE_SIZE
#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define ULL(x) ((unsigned long long)(x))
#define MAX_REGIONS 8

static int vm_fd = -1;
static uint64_t rng;
static char dir[64];
/* Residency is compared per page with the model unless shmem may hand
 * out huge pages (then only restored against original). */
static bool exact_residency = true;

/* ---- VMs: slots counted, backings made here -------------------------------- */

static long live_slots;

static int count_slot(void *data, const struct gmem_slot *s)
{
	__atomic_add_fetch(&live_slots, s->len ? 1 : -1, __ATOMIC_RELAXED);
	return 0;
}

static long slots_now(void)
{
	return __atomic_load_n(&live_slots, __ATOMIC_RELAXED);
}

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

static int veto_populate(void *data, uint64_t gpa, uint64_t len)
{
	return -ENOMEM;
}

static int accept_discard(void *data, uint64_t gpa, uint64_t len,
			  unsigned int flags)
{
	return 0;
}

static const struct gmem_listener_ops veto_ops = {
	.size = sizeof(veto_ops),
	.populate = veto_populate,
	.discard = accept_discard,
};

/* How create_cb() makes a VM (restore calls it with the file's config). */
struct creator {
	bool own_shared;	/* discard: one VMM memfd, region at offset gpa */
	int fail_err;		/* fail creation with this */
	bool dirty;		/* write a page before restore sees the VM */
	bool veto;		/* a listener that refuses every populate */
	int created;
};

static int make_memfd(uint64_t size)
{
	int fd = memfd_create("snap-test", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int create_cb(void *data, const struct gmem_config *in,
		     struct gmem_vm **out)
{
	struct gmem_region_config rc[MAX_REGIONS];
	struct creator *c = data;
	struct gmem_config cfg = *in;
	uint64_t total = 0;
	int shared = -1, err = 0;
	unsigned int i;

	if (c && c->fail_err)
		return c->fail_err;
	/* A file may describe anything: refuse what a test host cannot
	 * back instead of failing the test. */
	if (in->nr_regions > MAX_REGIONS)
		return -E2BIG;
	for (i = 0; i < in->nr_regions; i++)
		total += in->regions[i].len;
	if (total > 32 * GiB)
		return -E2BIG;
	if (c && c->own_shared && in->mode == GMEM_MODE_DISCARD) {
		shared = make_memfd(in->max_gpa);
		if (shared < 0)
			return shared;
	}
	for (i = 0; i < in->nr_regions; i++) {
		rc[i] = in->regions[i];
		if (vm_fd < 0) {
			rc[i].private_fd = make_memfd(rc[i].len);
			if (rc[i].private_fd < 0 && !err)
				err = rc[i].private_fd;
		}
		if (shared >= 0) {
			rc[i].shared_fd = shared;
			rc[i].shared_offset = rc[i].gpa;
		}
	}
	cfg.regions = rc;
	if (!err)
		err = gmem_create(&cfg, out);
	for (i = 0; i < in->nr_regions; i++)
		if (rc[i].private_fd >= 0)
			close(rc[i].private_fd);
	if (shared >= 0)
		close(shared);
	if (err)
		return err;
	if (c)
		c->created++;
	if (c && c->dirty) {
		uint8_t page[PG];
		int st = gmem_state_at(*out, rc[0].gpa, NULL, NULL);

		memset(page, 0x5a, sizeof(page));
		TEST_ASSERT_EQ(gmem_access(*out, rc[0].gpa, page, PG, true,
					   (enum gmem_state)st), 0);
	}
	if (c && c->veto) {
		struct gmem_listener *l;

		TEST_ASSERT_EQ(gmem_listener_register(*out, &veto_ops, NULL,
						      &l), 0);
	}
	return 0;
}

static struct gmem_config base_config(uint32_t flags)
{
	struct gmem_config cfg = GMEM_INIT(struct gmem_config,
		.vm_fd = vm_fd, .flags = flags, .set_slot = count_slot);

	if (vm_fd >= 0) {
		enum gmem_layout layout;

		TEST_ASSERT_EQ(gmem_probe_gating(&layout), 0);
		cfg.layout = layout;
	}
	return cfg;
}

/* ---- the model ----------------------------------------------------------- */

struct rgn {
	uint64_t gpa, len;
};

struct model {
	enum gmem_mode mode;
	enum gmem_state initial;
	uint64_t max_gpa, npages;
	struct rgn r[MAX_REGIONS];
	unsigned int nr;
	uint8_t *state, *plugged;
	uint8_t *res[2];	/* per backing (in-place: res[0] only) */
	uint32_t *seed;		/* content: 0 zeros, else pattern(seed) */
};

static void model_init(struct model *m, enum gmem_mode mode,
		       enum gmem_state initial, uint64_t max_gpa)
{
	memset(m, 0, sizeof(*m));
	m->mode = mode;
	m->initial = initial;
	m->max_gpa = max_gpa;
	m->npages = max_gpa / PG;
	m->state = malloc(m->npages);
	m->plugged = malloc(m->npages);
	m->res[0] = calloc(m->npages, 1);
	m->res[1] = calloc(m->npages, 1);
	m->seed = calloc(m->npages, sizeof(*m->seed));
	TEST_ASSERT(m->state && m->plugged && m->res[0] && m->res[1] &&
		    m->seed);
	memset(m->state, initial, m->npages);
	memset(m->plugged, 1, m->npages);
}

static void model_free(struct model *m)
{
	free(m->state);
	free(m->plugged);
	free(m->res[0]);
	free(m->res[1]);
	free(m->seed);
}

static void model_add_region(struct model *m, uint64_t gpa, uint64_t len)
{
	TEST_ASSERT(m->nr < MAX_REGIONS);
	m->r[m->nr].gpa = gpa;
	m->r[m->nr].len = len;
	m->nr++;
}

/* The backing that holds page @p's memory in its current state. */
static int backing_of(const struct model *m, uint64_t p)
{
	return m->mode == GMEM_MODE_IN_PLACE ? 0 : m->state[p];
}

static uint64_t resident_bytes(const struct model *m)
{
	uint64_t p, n = 0;

	for (p = 0; p < m->npages; p++)
		n += m->res[0][p] + m->res[1][p];
	return n * PG;
}

/* Content of a page: a pattern no two (seed, gpa) share. */
static void pattern(uint8_t *buf, uint32_t seed, uint64_t gpa)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL ^ gpa, i;

	if (!seed) {
		memset(buf, 0, PG);
		return;
	}
	for (i = 0; i < PG; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + i, &x, 8);
	}
}

/* ---- random changes, checked against the model ------------------------------ */

static uint64_t rnd(uint64_t n)
{
	return n ? test_rand(&rng) % n : 0;
}

/* A random range of whole pages inside one region. */
static void pick_range(const struct model *m, uint64_t max_pages,
		       uint64_t *gpa, uint64_t *len)
{
	const struct rgn *r = &m->r[rnd(m->nr)];
	uint64_t first = rnd(r->len / PG), n;

	n = 1 + rnd(max_pages);
	if (n > r->len / PG - first)
		n = r->len / PG - first;
	*gpa = r->gpa + first * PG;
	*len = n * PG;
}

static uint64_t expect_convert(struct model *m, uint64_t gpa, uint64_t len,
			       enum gmem_state to)
{
	uint64_t p, changed = 0;

	for (p = gpa / PG; p < (gpa + len) / PG; p++) {
		if (m->state[p] == to)
			continue;
		changed++;
		if (m->mode == GMEM_MODE_DISCARD && m->plugged[p]) {
			/* The old memory is punched; it reads zeros now. */
			m->res[m->state[p]][p] = 0;
			m->seed[p] = 0;
		}
		m->state[p] = to;
	}
	return changed;
}

static void op_convert(struct gmem_vm *vm, struct model *m)
{
	enum gmem_state to = (enum gmem_state)rnd(2);
	uint64_t gpa, len, want;

	pick_range(m, 64, &gpa, &len);
	want = expect_convert(m, gpa, len, to);
	TEST_ASSERT_EQ(gmem_convert(vm, gpa, len, to), want);
}

/* A batch of disjoint entries: one per region at most. */
static void op_batch(struct gmem_vm *vm, struct model *m)
{
	struct gmem_batch_entry e[MAX_REGIONS];
	uint64_t want = 0;
	unsigned int i;

	for (i = 0; i < m->nr; i++) {
		uint64_t first = rnd(m->r[i].len / PG / 2);

		e[i].gpa = m->r[i].gpa + first * PG;
		e[i].len = (1 + rnd(16)) * PG;
		e[i].to = (uint32_t)rnd(2);
		e[i].flags = 0;
		want += expect_convert(m, e[i].gpa, e[i].len,
				       (enum gmem_state)e[i].to);
	}
	TEST_ASSERT_EQ(gmem_convert_batch(vm, e, m->nr, NULL, NULL), want);
}

/* Across the boundary of the two adjacent regions (r[1], r[2]). */
static void op_convert_across(struct gmem_vm *vm, struct model *m)
{
	uint64_t at = m->r[2].gpa, gpa = at - (1 + rnd(8)) * PG;
	uint64_t len = at - gpa + (1 + rnd(8)) * PG, want;
	enum gmem_state to = (enum gmem_state)rnd(2);

	want = expect_convert(m, gpa, len, to);
	TEST_ASSERT_EQ(gmem_convert(vm, gpa, len, to), want);
}

static void op_plug(struct gmem_vm *vm, struct model *m)
{
	bool plug = rnd(3) == 0;	/* unplug twice as often */
	uint64_t gpa, len, p, want = 0;

	pick_range(m, 32, &gpa, &len);
	for (p = gpa / PG; p < (gpa + len) / PG; p++) {
		if (m->plugged[p] == plug)
			continue;
		want++;
		m->plugged[p] = plug;
		/* Unplugged memory is punched from every backing; plugged
		 * back it reads zeros. */
		m->res[0][p] = m->res[1][p] = 0;
		m->seed[p] = 0;
	}
	TEST_ASSERT_EQ(gmem_set_plugged(vm, gpa, len, plug), want);
}

/* Whole pages of one state, plugged, through that state's view. */
static void op_write(struct gmem_vm *vm, struct model *m)
{
	uint64_t gpa, len, p, first, n = 0;
	uint32_t seed = rnd(8) ? (uint32_t)(1 + rnd(1u << 30)) : 0;
	uint8_t *buf;
	int st;

	pick_range(m, 16, &gpa, &len);
	first = gpa / PG;
	if (!m->plugged[first])
		return;
	st = m->state[first];
	for (p = first; p < (gpa + len) / PG && m->plugged[p] &&
	     m->state[p] == st; p++)
		n++;
	buf = malloc(n * PG);
	TEST_ASSERT(buf);
	for (p = 0; p < n; p++)
		pattern(buf + p * PG, seed, (first + p) * PG);
	TEST_ASSERT_EQ(gmem_access(vm, gpa, buf, n * PG, true,
				   (enum gmem_state)st), 0);
	for (p = first; p < first + n; p++) {
		m->res[backing_of(m, p)][p] = 1;
		m->seed[p] = seed;
	}
	free(buf);
}

static void random_ops(struct gmem_vm *vm, struct model *m, unsigned int n)
{
	while (n--) {
		switch (rnd(10)) {
		case 0: case 1: case 2:
			op_convert(vm, m);
			break;
		case 3:
			op_batch(vm, m);
			break;
		case 4:
			op_convert_across(vm, m);
			break;
		case 5: case 6:
			op_plug(vm, m);
			break;
		default:
			op_write(vm, m);
			break;
		}
	}
}

/* ---- comparing a VM with the model ------------------------------------------- */

struct ext_check {
	const struct model *m;
	uint64_t pages;
};

static int check_extent(void *arg, const struct gmem_extent *e)
{
	struct ext_check *c = arg;
	uint64_t p;

	for (p = e->gpa / PG; p < (e->gpa + e->len) / PG; p++) {
		if (c->m->state[p] != e->state || c->m->plugged[p] != e->plugged)
			TEST_FAIL("page %#llx: %s %s, the model says %s %s",
				  ULL(p * PG), gmem_state_name(e->state),
				  e->plugged ? "plugged" : "unplugged",
				  gmem_state_name(c->m->state[p]),
				  c->m->plugged[p] ? "plugged" : "unplugged");
		c->pages++;
	}
	return 0;
}

/* mincore() of a backing over region @i, one byte per page. */
static void residency(struct gmem_vm *vm, unsigned int i, int backing,
		      unsigned char *vec)
{
	struct gmem_region_info ri = { .size = sizeof(ri) };
	void *addr;

	TEST_ASSERT_EQ(gmem_region_get(vm, i, &ri), 0);
	addr = backing ? ri.shared_addr : ri.private_addr;
	TEST_ASSERT(addr);
	TEST_ASSERT_EQ(mincore(addr, ri.len, vec), 0);
}

static void check_vm(struct gmem_vm *vm, const struct model *m,
		     struct gmem_vm *orig)
{
	struct ext_check c = { .m = m };
	uint8_t want[PG], got[PG];
	unsigned char *vec, *ovec;
	uint64_t p, total[2] = { 0, 0 };
	unsigned int i, b, nb = m->mode == GMEM_MODE_IN_PLACE ? 1 : 2;

	/* Deferred punches still queued would look like memory. */
	TEST_ASSERT_EQ(gmem_reclaim_drain(vm), 0);
	if (orig)
		TEST_ASSERT_EQ(gmem_reclaim_drain(orig), 0);
	TEST_ASSERT_EQ(gmem_region_count(vm), m->nr);
	TEST_ASSERT_EQ(gmem_max_gpa(vm), m->max_gpa);
	TEST_ASSERT_EQ(gmem_get_mode(vm), m->mode);
	for (i = 0; i < m->nr; i++)
		TEST_ASSERT_EQ(gmem_for_each_extent(vm, m->r[i].gpa,
						    m->r[i].len, check_extent,
						    &c), 0);
	vec = malloc(m->npages);
	ovec = malloc(m->npages);
	TEST_ASSERT(vec && ovec);
	for (i = 0; i < m->nr; i++) {
		uint64_t first = m->r[i].gpa / PG, n = m->r[i].len / PG;

		for (b = 0; b < nb; b++) {
			residency(vm, i, (int)b, vec);
			if (orig) {
				residency(orig, i, (int)b, ovec);
				if (memcmp(vec, ovec, n))
					TEST_FAIL("region %u backing %u: "
						  "residency differs from the "
						  "original", i, b);
			}
			for (p = 0; p < n; p++) {
				bool res = vec[p] & 1;

				total[b] += res;
				if (exact_residency &&
				    res != m->res[b][first + p])
					TEST_FAIL("page %#llx: %s in backing "
						  "%u, the model says %s",
						  ULL((first + p) * PG),
						  res ? "resident" : "a hole", b,
						  m->res[b][first + p] ?
							"resident" : "a hole");
			}
		}
		/* Content of what the model has resident (reading a hole
		 * would fault memory in). */
		for (p = first; p < first + n; p++) {
			if (!m->res[backing_of(m, p)][p])
				continue;
			TEST_ASSERT(m->plugged[p]);
			TEST_ASSERT_EQ(gmem_access(vm, p * PG, got, PG, false,
						   (enum gmem_state)m->state[p]),
				       0);
			pattern(want, m->seed[p], p * PG);
			if (memcmp(want, got, PG))
				TEST_FAIL("page %#llx: content differs from "
					  "the model", ULL(p * PG));
		}
	}
	TEST_ASSERT_EQ(gmem_backing_resident(vm, GMEM_BACKING_PRIVATE),
		       total[0] * PG);
	if (nb == 2)
		TEST_ASSERT_EQ(gmem_backing_resident(vm, GMEM_BACKING_SHARED),
			       total[1] * PG);
	free(vec);
	free(ovec);
	test_audit(vm);
}

/* ---- files -------------------------------------------------------------- */

struct bytes {
	uint8_t *p;
	size_t len, cap;
};

static void b_put(struct bytes *b, const void *p, size_t n)
{
	while (b->len + n > b->cap) {
		b->cap = b->cap ? 2 * b->cap : 4096;
		b->p = realloc(b->p, b->cap);
		TEST_ASSERT(b->p);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

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

static void b_free(struct bytes *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static struct bytes read_file(const char *path)
{
	struct bytes b = { 0 };
	uint8_t buf[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	TEST_ASSERT(fd >= 0);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		b_put(&b, buf, (size_t)n);
	TEST_ASSERT(n == 0);
	close(fd);
	return b;
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static void path_in_dir(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static void save(struct gmem_vm *vm, const struct model *m, const char *path,
		 enum snap_find find, struct snap_save_stats *st)
{
	struct snap_save_opts o = { .initial_state = m->initial, .find = find };
	char msg[256];
	int err = snap_mem_save_file(vm, path, &o, st, msg, sizeof(msg));

	if (err)
		TEST_FAIL("save %s: %s (%s)", path, msg, strerror(-err));
}

static void verify(struct gmem_vm *vm, const char *path)
{
	struct snap_reader r;
	struct snap_src src;
	char msg[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC), err;

	TEST_ASSERT(fd >= 0);
	TEST_ASSERT_EQ(snap_src_fd(&src, fd), 0);
	err = snap_reader_open(&r, &src, msg, sizeof(msg));
	if (!err) {
		err = snap_mem_verify(vm, &r, SNAP_FIND_AUTO);
		snap_reader_close(&r);
	}
	close(fd);
	if (err)
		TEST_FAIL("verify against %s: %s (%s)", path, msg,
			  strerror(-err));
}

static struct gmem_vm *restore(const char *path, struct creator *c,
			       uint32_t flags)
{
	struct gmem_config base = base_config(flags);
	struct snap_restore_opts o = {
		.base = &base, .create = create_cb, .create_data = c,
	};
	struct gmem_vm *vm = NULL;
	char msg[256];
	int err = snap_mem_restore_file(path, &o, &vm, msg, sizeof(msg));

	if (err)
		TEST_FAIL("restore %s: %s (%s)", path, msg, strerror(-err));
	return vm;
}

/* ---- a file's meaning, for comparing two files ------------------------------- */

struct record {
	uint64_t gpa, len;
	uint32_t crc;
};

struct meaning {
	struct snap_mem_image img;
	struct record *rec[2];
	size_t nr[2], cap[2];
	unsigned int cur;
	uint32_t crc;
};

static int mean_content(void *arg, uint64_t gpa, const void *buf, size_t len,
			enum gmem_state view)
{
	struct meaning *m = arg;

	m->crc = crc32c(m->crc, buf, len);
	return 0;
}

static int mean_record(void *arg, uint64_t gpa, uint64_t len)
{
	struct meaning *m = arg;
	unsigned int i = m->cur;

	TEST_ASSERT_EQ(vec_reserve((void **)&m->rec[i], &m->cap[i], m->nr[i],
				   sizeof(struct record)), 0);
	m->rec[i][m->nr[i]].gpa = gpa;
	m->rec[i][m->nr[i]].len = len;
	m->rec[i][m->nr[i]].crc = m->crc;
	m->nr[i]++;
	m->crc = 0;
	return 0;
}

static void meaning_of(const struct bytes *f, struct meaning *m)
{
	static const struct snap_data_ops ops = {
		.record = mean_record, .content = mean_content,
	};
	struct snap_reader r;
	struct snap_src src;
	char msg[256];
	unsigned int i;

	memset(m, 0, sizeof(*m));
	snap_src_mem(&src, f->p, f->len);
	if (snap_reader_open(&r, &src, msg, sizeof(msg)) ||
	    snap_image_read(&r, &m->img))
		TEST_FAIL("reading a saved file: %s", msg);
	for (i = 0; i < snap_data_sections(m->img.mode); i++) {
		m->cur = i;
		if (snap_data_walk(&r, &m->img, i, &ops, m))
			TEST_FAIL("DATA %u of a saved file: %s", i, msg);
	}
	snap_reader_close(&r);
}

static void meaning_free(struct meaning *m)
{
	snap_image_free(&m->img);
	free(m->rec[0]);
	free(m->rec[1]);
}

/* Same configuration, maps and records (content by CRC). */
static void expect_same_meaning(const struct bytes *a, const struct bytes *b)
{
	struct meaning x, y;
	struct snap_msg msg;
	char why[256];
	unsigned int i;
	size_t k;

	meaning_of(a, &x);
	meaning_of(b, &y);
	snap_msg_init(&msg, why, sizeof(why));
	if (snap_image_compare(&x.img, &y.img, "first", "second", &msg))
		TEST_FAIL("two snapshots of one state: %s", why);
	TEST_ASSERT_EQ(x.img.initial, y.img.initial);
	for (i = 0; i < 2; i++) {
		TEST_ASSERT_EQ(x.nr[i], y.nr[i]);
		for (k = 0; k < x.nr[i]; k++) {
			TEST_ASSERT_EQ(x.rec[i][k].gpa, y.rec[i][k].gpa);
			TEST_ASSERT_EQ(x.rec[i][k].len, y.rec[i][k].len);
			TEST_ASSERT_EQ(x.rec[i][k].crc, y.rec[i][k].crc);
		}
	}
	meaning_free(&x);
	meaning_free(&y);
}

static void expect_same_bytes(const char *p1, const char *p2)
{
	struct bytes a = read_file(p1), b = read_file(p2);

	if (a.len != b.len || memcmp(a.p, b.p, a.len))
		TEST_FAIL("%s (%zu bytes) and %s (%zu bytes) differ", p1,
			  a.len, p2, b.len);
	expect_same_meaning(&a, &b);
	b_free(&a);
	b_free(&b);
}

/* ---- round trips -------------------------------------------------------- */

static struct gmem_vm *create_model_vm(struct model *m, uint32_t flags,
				       struct creator *c)
{
	struct gmem_region_config rc[2];
	struct gmem_config cfg = base_config(flags);
	struct gmem_vm *vm;
	/* Hot-plugged: at the end of region 1, and further up. */
	static const struct rgn hot[2] = {
		{ 8 * MiB, 1 * MiB }, { 12 * MiB, 2 * MiB },
	};
	struct gmem_region_config add;
	int shared = -1;
	unsigned int i;

	/* [0, 4M) and [6M, 8M) + [8M, 9M) (adjacent), then [12M, 14M)
	 * hot-plugged, in a 16 MiB space. */
	model_add_region(m, 0, 4 * MiB);
	model_add_region(m, 6 * MiB, 2 * MiB);
	model_add_region(m, 8 * MiB, 1 * MiB);
	rc[0] = GMEM_INIT(struct gmem_region_config, .gpa = 0,
			  .len = 4 * MiB, .private_fd = -1, .shared_fd = -1);
	rc[1] = GMEM_INIT(struct gmem_region_config, .gpa = 6 * MiB,
			  .len = 2 * MiB, .private_fd = -1, .shared_fd = -1);
	cfg.mode = m->mode;
	cfg.initial_state = m->initial;
	cfg.max_gpa = m->max_gpa;
	cfg.regions = rc;
	cfg.nr_regions = 2;
	TEST_ASSERT_EQ(create_cb(c, &cfg, &vm), 0);
	/* Hot-plug: one adjacent to region 1, one further up; the VMM's
	 * own shared memfd at an offset in discard mode. */
	if (m->mode == GMEM_MODE_DISCARD)
		shared = test_memfd(4 * MiB);
	for (i = 0; i < 2; i++) {
		add = GMEM_INIT(struct gmem_region_config, .gpa = hot[i].gpa,
				.len = hot[i].len, .shared_fd = shared,
				.shared_offset = shared >= 0 ? hot[i].len : 0,
				.private_fd = vm_fd < 0 ? test_memfd(hot[i].len) :
							  -1);
		TEST_ASSERT_EQ(gmem_region_add(vm, &add), 0);
		if (add.private_fd >= 0)
			close(add.private_fd);
	}
	model_add_region(m, hot[1].gpa, hot[1].len);
	if (shared >= 0)
		close(shared);
	return vm;
}

static void round_trips(enum gmem_mode mode, enum gmem_state initial,
			uint32_t flags, const char *name)
{
	struct creator c = { .own_shared = true };
	struct snap_save_stats st;
	struct gmem_vm *vm, *vm2;
	char a[128], a_tmp[160], b[128], x[128];
	struct model m;
	unsigned int round;
	double ratio = 0;

	model_init(&m, mode, initial, 16 * MiB);
	vm = create_model_vm(&m, flags, &c);
	path_in_dir(a, sizeof(a), "a.snap");
	snprintf(a_tmp, sizeof(a_tmp), "%s.tmp", a);
	path_in_dir(b, sizeof(b), "b.snap");
	path_in_dir(x, sizeof(x), "x.snap");
	for (round = 0; round < 3; round++) {
		random_ops(vm, &m, 300);
		check_vm(vm, &m, NULL);
		save(vm, &m, a, SNAP_FIND_AUTO, &st);
		TEST_ASSERT(exists(a) && !exists(a_tmp));
		/* The bound the issue sets: 1.05x resident + 1 MiB. */
		if (st.file_bytes * 100 > resident_bytes(&m) * 105 + 100 * MiB)
			TEST_FAIL("%s: %llu bytes for %llu resident", name,
				  ULL(st.file_bytes), ULL(resident_bytes(&m)));
		if (exact_residency)
			TEST_ASSERT_EQ(st.data_bytes, resident_bytes(&m));
		if (resident_bytes(&m))
			ratio = (double)st.file_bytes / (double)resident_bytes(&m);
		verify(vm, a);
		/* Both ways of finding memory give the same file. */
		save(vm, &m, x, SNAP_FIND_MINCORE, NULL);
		expect_same_bytes(a, x);
		if (vm_fd < 0) {
			save(vm, &m, x, SNAP_FIND_SEEK, NULL);
			expect_same_bytes(a, x);
		}
		vm2 = restore(a, &c, flags);
		check_vm(vm2, &m, vm);
		verify(vm2, a);
		/* A restored VM saves to the same file. */
		save(vm2, &m, b, SNAP_FIND_AUTO, NULL);
		expect_same_bytes(a, b);
		gmem_destroy(vm);
		vm = vm2;	/* the next round changes the restored VM */
	}
	printf("%s: 3 rounds of 300 changes, last file %llu bytes for %llu "
	       "resident (%.3fx), %llu runs, %llu unplugged runs, %llu "
	       "records\n", name, ULL(st.file_bytes), ULL(resident_bytes(&m)),
	       ratio, ULL(st.state_runs), ULL(st.unplugged_runs),
	       ULL(st.data_records));
	gmem_destroy(vm);
	model_free(&m);
	TEST_ASSERT_EQ(slots_now(), 0);
	unlink(a);
	unlink(b);
	unlink(x);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 16 GiB of guest memory, a few MiB of it resident. */
static void sparse_16g(void)
{
	struct snap_save_opts o = { .initial_state = GMEM_PRIVATE };
	struct gmem_region_config rc = GMEM_INIT(struct gmem_region_config,
		.gpa = 0, .len = 16 * GiB, .private_fd = -1, .shared_fd = -1);
	struct gmem_config cfg = base_config(0);
	struct creator c = { 0 };
	struct snap_save_stats st;
	struct gmem_vm *vm, *vm2;
	uint64_t resident, i;
	uint8_t buf[16 * KiB];
	char path[128], msg[256];
	double t0, t_save, t_restore;

	cfg.regions = &rc;
	cfg.nr_regions = 1;
	TEST_ASSERT_EQ(create_cb(&c, &cfg, &vm), 0);
	for (i = 0; i < 256; i++) {
		uint64_t gpa = (i * 61 % 256) * (64 * MiB) + i * PG;

		memset(buf, (int)i + 1, sizeof(buf));
		TEST_ASSERT_EQ(gmem_access(vm, gpa, buf, sizeof(buf), true,
					   GMEM_PRIVATE), 0);
	}
	TEST_ASSERT(gmem_convert(vm, 1 * GiB, 1 * GiB, GMEM_SHARED) > 0);
	for (i = 0; i < 64; i++) {
		memset(buf, 0xc0 ^ (int)i, sizeof(buf));
		TEST_ASSERT_EQ(gmem_access(vm, 1 * GiB + i * 16 * MiB, buf,
					   sizeof(buf), true, GMEM_SHARED), 0);
	}
	TEST_ASSERT(gmem_set_plugged(vm, 8 * GiB, 2 * GiB, false) > 0);
	resident = (uint64_t)gmem_backing_resident(vm, GMEM_BACKING_PRIVATE) +
		   (uint64_t)gmem_backing_resident(vm, GMEM_BACKING_SHARED);
	path_in_dir(path, sizeof(path), "16g.snap");
	t0 = now_s();
	TEST_ASSERT_EQ(snap_mem_save_file(vm, path, &o, &st, msg, sizeof(msg)),
		       0);
	t_save = now_s() - t0;
	if (st.file_bytes * 100 > resident * 105 + 100 * MiB)
		TEST_FAIL("16 GiB sparse: %llu bytes for %llu resident",
			  ULL(st.file_bytes), ULL(resident));
	TEST_ASSERT_EQ(st.data_bytes, resident);
	t0 = now_s();
	vm2 = restore(path, &c, 0);
	t_restore = now_s() - t0;
	verify(vm2, path);
	TEST_ASSERT_EQ(gmem_backing_resident(vm2, GMEM_BACKING_PRIVATE),
		       gmem_backing_resident(vm, GMEM_BACKING_PRIVATE));
	TEST_ASSERT_EQ(gmem_backing_resident(vm2, GMEM_BACKING_SHARED),
		       gmem_backing_resident(vm, GMEM_BACKING_SHARED));
	test_audit(vm2);
	printf("16 GiB sparse: %llu resident bytes -> %llu-byte file "
	       "(%.4fx, %llu bytes over), saved in %.3f s, restored in "
	       "%.3f s\n", ULL(resident), ULL(st.file_bytes),
	       (double)st.file_bytes / (double)resident,
	       ULL(st.file_bytes - resident), t_save, t_restore);
	gmem_destroy(vm2);
	gmem_destroy(vm);
	unlink(path);
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

/* ---- writes that fail -------------------------------------------------------- */

struct failing_io {
	unsigned int calls, fail_at;
	int err;
	/* Or: change the VM at the first write, as a caller that did not
	 * hold off changes would. */
	struct gmem_vm *change;
	uint64_t change_gpa;
	bool change_plug;
};

static int failing_write(void *data, int fd, const void *buf, size_t len,
			 uint64_t off)
{
	struct failing_io *f = data;
	ssize_t n;

	if (++f->calls == f->fail_at)
		return f->err;
	if (f->change && f->calls == 1)
		TEST_ASSERT(f->change_plug ?
			    gmem_set_plugged(f->change, f->change_gpa, 64 * KiB,
					     false) == 16 :
			    gmem_convert(f->change, f->change_gpa, 64 * KiB,
					 GMEM_SHARED) == 16);
	n = pwrite(fd, buf, len, (off_t)off);
	TEST_ASSERT(n == (ssize_t)len);
	return 0;
}

static void write_failures(void)
{
	struct failing_io fio = { 0 };
	struct snap_io io = { .write_at = failing_write, .data = &fio };
	struct snap_save_opts o = { .initial_state = GMEM_PRIVATE, .io = &io };
	struct creator c = { .own_shared = true };
	struct gmem_vm *vm;
	struct bytes before, after;
	char path[128], tmp[160], msg[256];
	unsigned int n, failed = 0;
	struct rlimit old, lim;
	struct model m;
	uint8_t *buf;
	int err;

	/* 3 MiB of content: several flushes, section headers completed
	 * after they were written. */
	model_init(&m, GMEM_MODE_DISCARD, GMEM_PRIVATE, 16 * MiB);
	vm = create_model_vm(&m, 0, &c);
	buf = malloc(3 * MiB);
	TEST_ASSERT(buf);
	memset(buf, 0x3c, 3 * MiB);
	TEST_ASSERT_EQ(gmem_access(vm, 0, buf, 2 * MiB, true, GMEM_PRIVATE), 0);
	TEST_ASSERT(gmem_convert(vm, 6 * MiB, 2 * MiB, GMEM_SHARED) > 0);
	TEST_ASSERT_EQ(gmem_access(vm, 6 * MiB, buf, 1 * MiB, true,
				   GMEM_SHARED), 0);
	free(buf);
	path_in_dir(path, sizeof(path), "w.snap");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	/* An older snapshot at PATH must survive every failure. */
	save(vm, &m, path, SNAP_FIND_AUTO, NULL);
	TEST_ASSERT(gmem_set_plugged(vm, 0, 64 * KiB, false) > 0);
	before = read_file(path);
	for (n = 1;; n++) {
		fio.calls = 0;
		fio.fail_at = n;
		fio.err = n % 2 ? -ENOSPC : -EIO;
		err = snap_mem_save_file(vm, path, &o, NULL, msg, sizeof(msg));
		if (!err)
			break;
		failed++;
		TEST_ASSERT_EQ(err, fio.err);
		TEST_ASSERT(strstr(msg, strerror(-fio.err)));
		TEST_ASSERT(!exists(tmp));
		after = read_file(path);
		TEST_ASSERT(after.len == before.len &&
			    !memcmp(after.p, before.p, after.len));
		b_free(&after);
	}
	TEST_ASSERT(failed >= 5);
	TEST_ASSERT(fio.calls == n - 1);
	verify(vm, path);
	b_free(&before);
	before = read_file(path);

	/* The VM changes during the save: a page about to be read changed
	 * state, or the maps differ at the end.  Either way -EAGAIN, no
	 * file. */
	fio.fail_at = 0;
	fio.change = vm;
	for (n = 0; n < 2; n++) {
		fio.calls = 0;
		fio.change_plug = n;
		fio.change_gpa = n ? 12 * MiB : 2 * MiB - 64 * KiB;
		err = snap_mem_save_file(vm, path, &o, NULL, msg, sizeof(msg));
		TEST_ASSERT_EQ(err, -EAGAIN);
		TEST_ASSERT(strstr(msg, n ? "memory changed while being saved" :
					    "changed state while being saved"));
		TEST_ASSERT(!exists(tmp));
	}
	fio.change = NULL;
	TEST_ASSERT_EQ(gmem_convert(vm, 2 * MiB - 64 * KiB, 64 * KiB,
				    GMEM_PRIVATE), 16);
	TEST_ASSERT_EQ(gmem_set_plugged(vm, 12 * MiB, 64 * KiB, true), 16);

	/* A real failure of the kernel's: the file size limit (EFBIG from
	 * pwrite, after a short write). */
	TEST_ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1 * MiB + 12345;
	signal(SIGXFSZ, SIG_IGN);
	TEST_ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
	o.io = NULL;
	err = snap_mem_save_file(vm, path, &o, NULL, msg, sizeof(msg));
	TEST_ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
	TEST_ASSERT_EQ(err, -EFBIG);
	TEST_ASSERT(strstr(msg, "writing"));
	TEST_ASSERT(!exists(tmp));
	after = read_file(path);
	TEST_ASSERT(after.len == before.len &&
		    !memcmp(after.p, before.p, after.len));
	b_free(&after);
	b_free(&before);
	printf("write failures: each of the %u writes failed once (ENOSPC, "
	       "EIO), and EFBIG at the file size limit: -errno, no %s, the "
	       "old file intact\n", failed, tmp);
	unlink(path);
	gmem_destroy(vm);
	model_free(&m);
}

/* ---- CRC32C ------------------------------------------------------------ */

static void crc(void)
{
	uint8_t buf[4096 + 16];
	unsigned int i;

	TEST_ASSERT_EQ(crc32c(0, "123456789", 9), 0xe3069283);
	TEST_ASSERT_EQ(crc32c_sw(0, "123456789", 9), 0xe3069283);
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rnd(256);
	for (i = 0; i < 2000; i++) {
		size_t off = rnd(16), len = rnd(4096), cut = rnd(len + 1);
		uint32_t whole = crc32c(0, buf + off, len);

		TEST_ASSERT_EQ(whole, crc32c_sw(0, buf + off, len));
		/* In two pieces: the same CRC. */
		TEST_ASSERT_EQ(crc32c(crc32c(0, buf + off, cut),
				      buf + off + cut, len - cut), whole);
	}
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
 * `test_snapshot_mem --seeds DIR` writes fuzz/corpus/fuzz_snapshot/: small
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

/* Where the time goes (make check's budget): seconds since @t0. */
static double lap(double t0, const char *what)
{
	double t = now_s();

	printf("  %s: %.2f s\n", what, t - t0);
	return t;
}

int main(int argc, char **argv)
{
	double t0;
	char *shmem_thp;
	struct bytes f;
	FILE *thp;

	rng = test_seed("SNAPSHOT_SEED", 0x5eed);
	if (test_backend() != GMEM_BACKEND_EMULATED)
		test_skip("snapshots read private memory from the host, which "
			  "only the emulated backend allows (save: -EOPNOTSUPP)");
	vm_fd = test_create_vm();
	thp = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r");
	if (thp) {
		char line[128] = "";

		if (fgets(line, sizeof(line), thp)) {
			shmem_thp = strchr(line, '[');
			exact_residency = !shmem_thp ||
					  !strncmp(shmem_thp, "[never]", 7) ||
					  !strncmp(shmem_thp, "[deny]", 6) ||
					  !strncmp(shmem_thp, "[advise]", 8);
		}
		fclose(thp);
	}
	snprintf(dir, sizeof(dir), "/tmp/test_snapshot_mem.XXXXXX");
	TEST_ASSERT(mkdtemp(dir));
	if (argc == 3 && !strcmp(argv[1], "--seeds")) {
		write_seeds(argv[2]);
		rmdir(dir);
		return T_EXIT_PASS;
	}

	t0 = now_s();
	crc();
	round_trips(GMEM_MODE_DISCARD, GMEM_PRIVATE, 0, "discard");
	round_trips(GMEM_MODE_DISCARD, GMEM_SHARED,
		    GMEM_CONFIG_DEFERRED_RECLAIM, "discard, deferred reclaim");
	round_trips(GMEM_MODE_IN_PLACE, GMEM_SHARED, 0, "in-place");
	round_trips(GMEM_MODE_IN_PLACE, GMEM_PRIVATE, 0, "in-place, private");
	t0 = lap(t0, "round trips");
	sparse_16g();
	t0 = lap(t0, "16 GiB");

	f = small_snapshot(GMEM_MODE_DISCARD);
	printf("small snapshot: %zu bytes\n", f.len);
	truncations(&f);
	t0 = lap(t0, "truncations");
	corruptions(&f, 4000);
	late_failures(&f);
	b_free(&f);
	f = small_snapshot(GMEM_MODE_IN_PLACE);
	corruptions(&f, 1000);
	b_free(&f);
	t0 = lap(t0, "corruptions");
	handmade_payloads();
	handmade_framing();
	write_failures();
	lap(t0, "hand-made files, write failures");

	TEST_ASSERT_EQ(slots_now(), 0);
	rmdir(dir);
	if (vm_fd >= 0)
		close(vm_fd);
	printf("all passed\n");
	return T_EXIT_PASS;
}
