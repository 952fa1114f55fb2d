/* SPDX-License-Identifier: MIT */
/*
 * What the live migration tests share: see migrate_fixture.h.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migrate_fixture.h"

void mig_fixture_init(const char *name)
{
	struct mig_track_caps c;

	snap_fixture_init(name);
	if (mig_track_probe(-1, &c))
		test_skip("no dirty tracker on this host: %s", c.uffd_why);
	printf("dirty tracking: %s (uffd-wp: %s; soft-dirty: %s)\n",
	       mig_track_name(c.kinds), c.uffd_why, c.soft_dirty_why);
}

/* ---- the destination ----------------------------------------------------- */

static void *dest_main(void *arg)
{
	struct dest *d = arg;

	d->err = mig_receive(d->fd, &d->o, &d->vm, d->msg, sizeof(d->msg));
	return NULL;
}

static void dest_begin(struct dest *d, int fd, uint32_t flags, int err,
		       int timeout_ms)
{
	static unsigned int dests;

	memset(d, 0, sizeof(*d));
	d->c.fail_err = err;
	d->fd = fd;
	d->base = base_config(flags);
	d->c.own_shared = true;
	d->o.restore.base = &d->base;
	d->o.restore.create = create_cb;
	d->o.restore.create_data = &d->c;
	d->o.timeout_ms = timeout_ms;
	/* Every other destination takes the path a guest_memfd backing
	 * takes (content through the views). */
	d->o.through_views = dests++ & 1;
	TEST_ASSERT_EQ(pthread_create(&d->th, NULL, dest_main, d), 0);
}

void dest_start(struct dest *d, int fd, uint32_t flags)
{
	dest_begin(d, fd, flags, 0, 20000);
}

void dest_start_refusing(struct dest *d, int fd, uint32_t flags, int err)
{
	dest_begin(d, fd, flags, err, 20000);
}

void dest_start_timeout(struct dest *d, int fd, uint32_t flags,
			int timeout_ms)
{
	dest_begin(d, fd, flags, 0, timeout_ms);
}

int dest_join(struct dest *d)
{
	TEST_ASSERT_EQ(pthread_join(d->th, NULL), 0);
	return d->err;
}

void sock_pair(int sv[2])
{
	TEST_ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
		       0);
}

/* ---- the guest's stand-in ---------------------------------------------- */

void pattern_fill(uint8_t *p, size_t len, uint32_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

static uint64_t lrand(uint64_t *s, uint64_t n)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return n ? *s % n : 0;
}

static bool in_dev(const struct load *l, uint64_t gpa, uint64_t len)
{
	return l->dev_len && gpa < l->dev_gpa + l->dev_len &&
	       gpa + len > l->dev_gpa;
}

/* Park while a stop is asked; false once the threads must end. */
static bool checkpoint(struct load *l)
{
	if (__atomic_load_n(&l->quit, __ATOMIC_ACQUIRE))
		return false;
	if (!__atomic_load_n(&l->pause_req, __ATOMIC_ACQUIRE))
		return true;
	__atomic_add_fetch(&l->parked, 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(&l->pause_req, __ATOMIC_ACQUIRE) &&
	       !__atomic_load_n(&l->quit, __ATOMIC_ACQUIRE))
		usleep(200);
	__atomic_sub_fetch(&l->parked, 1, __ATOMIC_ACQ_REL);
	return !__atomic_load_n(&l->quit, __ATOMIC_ACQUIRE);
}

static uint64_t random_page(struct load *l, uint64_t *s)
{
	const struct rgn *r = &l->m->r[lrand(s, l->m->nr)];

	return r->gpa + lrand(s, r->len / PG) * PG;
}

struct worker {
	struct load *l;
	unsigned int id;
};

static struct worker workers[8];

static void *writer_main(void *arg)
{
	struct worker *w = arg;
	struct load *l = w->l;
	uint64_t s = l->seed + w->id * 7919 + 1, gpa, idx;
	uint8_t buf[PG];
	uint32_t seed;
	int st;

	while (checkpoint(l)) {
		gpa = random_page(l, &s);
		idx = gpa / PG;
		if (idx % l->writers != w->id || in_dev(l, gpa, PG))
			continue;
		st = gmem_state_at(l->vm, gpa, NULL, NULL);
		if (st < 0)
			continue;
		seed = (uint32_t)lrand(&s, 1u << 30) + 1;
		pattern_fill(buf, PG, seed);
		if (gmem_access(l->vm, gpa, buf, PG, true,
				(enum gmem_state)st) == 0) {
			__atomic_store_n(&l->last_seed[idx], seed,
					 __ATOMIC_RELEASE);
			__atomic_add_fetch(&l->writes, 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

static void *converter_main(void *arg)
{
	struct load *l = arg;
	uint64_t s = l->seed ^ 0xc0ffee, gpa, len, end;
	const struct rgn *r;

	while (checkpoint(l)) {
		r = &l->m->r[lrand(&s, l->m->nr)];
		gpa = r->gpa + lrand(&s, r->len / PG) * PG;
		len = (1 + lrand(&s, 8)) * PG;
		end = r->gpa + r->len;
		if (gpa + len > end)
			len = end - gpa;
		if (in_dev(l, gpa, len))
			continue;
		if (lrand(&s, 3))
			gmem_convert(l->vm, gpa, len,
				     (enum gmem_state)lrand(&s, 2));
		else
			gmem_set_plugged(l->vm, gpa, len, lrand(&s, 2));
		__atomic_add_fetch(&l->changes, 1, __ATOMIC_RELAXED);
		usleep(100);
	}
	return NULL;
}

static void *device_main(void *arg)
{
	struct load *l = arg;
	uint64_t s = l->seed ^ 0xdeadbeef, off;

	while (checkpoint(l)) {
		off = lrand(&s, l->dev_len / PG) * PG;
		pattern_fill(l->dev_map + off, PG,
			     (uint32_t)lrand(&s, 1u << 30) + 1);
		usleep(50);
	}
	return NULL;
}

/* The device maps the shared backing of its range itself: the tracker
 * on this process's views never sees its writes. */
static void map_device(struct load *l)
{
	struct gmem_region_info ri = { .size = sizeof(ri) };
	const struct rgn *r = &l->m->r[0];
	int fd;
	uint64_t off;

	l->dev_gpa = r->gpa + r->len / 2;
	l->dev_len = 16 * PG;
	TEST_ASSERT(gmem_convert(l->vm, l->dev_gpa, l->dev_len,
				 GMEM_SHARED) >= 0);
	TEST_ASSERT(gmem_set_plugged(l->vm, l->dev_gpa, l->dev_len, true) >= 0);
	TEST_ASSERT_EQ(gmem_region_find(l->vm, l->dev_gpa, &ri), 0);
	fd = ri.shared_fd;
	off = (l->m->mode == GMEM_MODE_DISCARD ? ri.shared_offset :
						 ri.private_offset) +
	      (l->dev_gpa - ri.gpa);
	l->dev_map = mmap(NULL, l->dev_len, PROT_READ | PROT_WRITE, MAP_SHARED,
			  fd, (off_t)off);
	TEST_ASSERT(l->dev_map != MAP_FAILED);
}

void load_start(struct load *l, struct gmem_vm *vm, const struct model *m,
		unsigned int writers, bool convert, bool device,
		bool device_thread)
{
	uint8_t buf[PG];
	uint64_t s, gpa, i;
	int st;

	memset(l, 0, sizeof(*l));
	l->vm = vm;
	l->m = m;
	l->writers = writers;
	l->convert = convert;
	l->device = device;
	l->seed = rnd(1ULL << 40) + 1;
	l->last_seed = calloc(m->npages, sizeof(*l->last_seed));
	TEST_ASSERT(l->last_seed);
	s = l->seed;
	if (device)
		map_device(l);
	/* Some content to begin with: a quarter of the pages. */
	for (i = 0; i < m->npages / 4; i++) {
		gpa = random_page(l, &s);
		st = gmem_state_at(vm, gpa, NULL, NULL);
		if (st < 0 || in_dev(l, gpa, PG))
			continue;
		l->last_seed[gpa / PG] = (uint32_t)lrand(&s, 1u << 30) + 1;
		pattern_fill(buf, PG, l->last_seed[gpa / PG]);
		TEST_ASSERT_EQ(gmem_access(vm, gpa, buf, PG, true,
					   (enum gmem_state)st), 0);
	}
	for (i = 0; i < writers; i++) {
		workers[i] = (struct worker){ l, (unsigned int)i };
		TEST_ASSERT_EQ(pthread_create(&l->th[l->nth++], NULL,
					      writer_main, &workers[i]), 0);
	}
	if (convert)
		TEST_ASSERT_EQ(pthread_create(&l->th[l->nth++], NULL,
					      converter_main, l), 0);
	if (device && device_thread)
		TEST_ASSERT_EQ(pthread_create(&l->th[l->nth++], NULL,
					      device_main, l), 0);
}

int load_stop(void *data)
{
	struct load *l = data;

	__atomic_store_n(&l->pause_req, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&l->parked, __ATOMIC_ACQUIRE) < (int)l->nth)
		usleep(100);
	return 0;
}

void load_resume(void *data)
{
	struct load *l = data;

	__atomic_store_n(&l->pause_req, 0, __ATOMIC_RELEASE);
}

int load_device_ranges(void *data,
		       int (*fn)(void *arg, uint64_t gpa, uint64_t len),
		       void *arg)
{
	struct load *l = data;

	return l->dev_len ? fn(arg, l->dev_gpa, l->dev_len) : 0;
}

void load_end(struct load *l)
{
	unsigned int i;

	__atomic_store_n(&l->quit, 1, __ATOMIC_RELEASE);
	for (i = 0; i < l->nth; i++)
		TEST_ASSERT_EQ(pthread_join(l->th[i], NULL), 0);
	l->nth = 0;
	if (l->dev_map)
		munmap(l->dev_map, l->dev_len);
	l->dev_map = NULL;
	free(l->last_seed);
	l->last_seed = NULL;
}

void load_check_written(const struct load *l)
{
	uint8_t want[PG], got[PG];
	uint64_t i;
	int st;

	for (i = 0; i < l->m->npages; i++) {
		if (!l->last_seed[i])
			continue;
		st = gmem_state_at(l->vm, i * PG, NULL, NULL);
		TEST_ASSERT(st >= 0);
		pattern_fill(want, PG, l->last_seed[i]);
		TEST_ASSERT_EQ(gmem_access(l->vm, i * PG, got, PG, false,
					   (enum gmem_state)st), 0);
		if (memcmp(want, got, PG))
			TEST_FAIL("page %#llx lost its last write",
				  ULL(i * PG));
	}
}

/* ---- checks ------------------------------------------------------------- */

void check_audit(struct gmem_vm *vm, const char *who)
{
	char msg[512];
	int err = gmem_audit(vm, msg, sizeof(msg));

	if (err)
		TEST_FAIL("audit of the %s: %d %s", who, err, msg);
}

int compare_vms(struct gmem_vm *src, struct gmem_vm *dst,
		enum gmem_state initial, char *msg, size_t len)
{
	struct snap_save_opts so = { .initial_state = initial };
	struct snap_reader r;
	struct snap_src sr;
	char path[256];
	int err, fd;

	path_in_dir(path, sizeof(path), "source.snap");
	err = snap_save_file(src, path, &so, NULL, msg, len);
	if (err)
		TEST_FAIL("saving the source: %d %s", err, msg);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	TEST_ASSERT(fd >= 0);
	TEST_ASSERT_EQ(snap_src_fd(&sr, fd), 0);
	TEST_ASSERT_EQ(snap_reader_open(&r, &sr, msg, len), 0);
	err = snap_mem_verify(dst, &r, SNAP_FIND_AUTO);
	snap_reader_close(&r);
	close(fd);
	unlink(path);
	return err;
}

void check_same(struct gmem_vm *src, struct gmem_vm *dst,
		enum gmem_state initial)
{
	char msg[512] = "";
	int err;

	check_audit(src, "source");
	check_audit(dst, "destination");
	err = compare_vms(src, dst, initial, msg, sizeof(msg));
	if (err)
		TEST_FAIL("the destination is not the source: %d %s", err,
			  msg);
}

void check_untracked(struct gmem_vm *vm)
{
	struct gmem_region_info ri = { .size = sizeof(ri) };
	int n = gmem_region_count(vm), i, fd, v;
	uint64_t e, p;
	uint8_t *base;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	TEST_ASSERT(fd >= 0);
	for (i = 0; i < n; i++) {
		TEST_ASSERT_EQ(gmem_region_get(vm, (unsigned int)i, &ri), 0);
		for (v = 0; v < 2; v++) {
			base = v ? ri.shared_addr : ri.private_addr;
			for (p = 0; base && p < ri.len; p += PG) {
				TEST_ASSERT(pread(fd, &e, 8, (off_t)(((uintptr_t)base + p) / PG * 8)) == 8);
				if (e & (1ULL << 57))
					TEST_FAIL("GPA %#llx is still write-"
						  "protected in a view after "
						  "the migration",
						  ULL(ri.gpa + p));
			}
		}
	}
	close(fd);
}
