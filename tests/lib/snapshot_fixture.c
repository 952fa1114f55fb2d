/* SPDX-License-Identifier: MIT */
/*
 * What the memory snapshot tests share: see snapshot_fixture.h.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapshot_fixture.h"

int vm_fd = -1;
static uint64_t rng;
static char dir[64];

void snap_fixture_init(const char *name)
{
	rng = test_seed("SNAPSHOT_SEED", 0x5eed);
	if (test_backend() != GMEM_BACKEND_EMULATED)
		test_skip("snapshots read private memory from the host, which "
			  "only the emulated backend allows (save: -EOPNOTSUPP)");
	vm_fd = test_create_vm();
	snprintf(dir, sizeof(dir), "/tmp/%s.XXXXXX", name);
	TEST_ASSERT(mkdtemp(dir));
}

void snap_fixture_fini(void)
{
	TEST_ASSERT_EQ(slots_now(), 0);
	rmdir(dir);
	if (vm_fd >= 0)
		close(vm_fd);
	vm_fd = -1;
}

uint64_t rnd(uint64_t n)
{
	return n ? test_rand(&rng) % n : 0;
}

/* ---- VMs: slots counted, backings made here -------------------------------- */

static long live_slots;

static int count_slot(void *data, const struct gmem_slot *s)
{
	__atomic_add_fetch(&live_slots, s->len ? 1 : -1, __ATOMIC_RELAXED);
	return 0;
}

long slots_now(void)
{
	return __atomic_load_n(&live_slots, __ATOMIC_RELAXED);
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

int create_cb(void *data, const struct gmem_config *in, struct gmem_vm **out)
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

struct gmem_config base_config(uint32_t flags)
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

void model_init(struct model *m, enum gmem_mode mode,
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

void model_free(struct model *m)
{
	free(m->state);
	free(m->plugged);
	free(m->res[0]);
	free(m->res[1]);
	free(m->seed);
}

void model_add_region(struct model *m, uint64_t gpa, uint64_t len)
{
	TEST_ASSERT(m->nr < MAX_REGIONS);
	m->r[m->nr].gpa = gpa;
	m->r[m->nr].len = len;
	m->nr++;
}

struct gmem_vm *create_model_vm(struct model *m, uint32_t flags,
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

/* ---- files -------------------------------------------------------------- */

void b_put(struct bytes *b, const void *p, size_t n)
{
	while (b->len + n > b->cap) {
		b->cap = b->cap ? 2 * b->cap : 4096;
		b->p = realloc(b->p, b->cap);
		TEST_ASSERT(b->p);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

void b_free(struct bytes *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

struct bytes read_file(const char *path)
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

bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

void path_in_dir(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

void save(struct gmem_vm *vm, const struct model *m, const char *path,
	  enum snap_find find, struct snap_save_stats *st)
{
	struct snap_save_opts o = { .initial_state = m->initial, .find = find };
	char msg[256];
	int err = snap_save_file(vm, path, &o, st, msg, sizeof(msg));

	if (err)
		TEST_FAIL("save %s: %s (%s)", path, msg, strerror(-err));
}

void verify(struct gmem_vm *vm, const char *path)
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

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double lap(double t0, const char *what)
{
	double t = now_s();

	printf("  %s: %.2f s\n", what, t - t0);
	return t;
}
