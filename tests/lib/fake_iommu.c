/* SPDX-License-Identifier: MIT */
/* The strict fake DMA backend: see fake_iommu.h. */
#include "fake_iommu.h"
#include "vec.h"

#define PG 4096ULL

static void violation(struct fake *f, const char *what, uint64_t a,
		      uint64_t b)
{
	if (!f->why[0])
		snprintf(f->why, sizeof(f->why), "%s [%#llx, %#llx)", what,
			 (unsigned long long)a, (unsigned long long)b);
}

/* Index of the mapping exactly [s, e), or -1. */
static long find_exact(struct fake *f, uint64_t s, uint64_t e)
{
	size_t i;

	for (i = 0; i < f->nr; i++)
		if (f->v[i].s == s && f->v[i].e == e)
			return (long)i;
	return -1;
}

static long find_holding(struct fake *f, uint64_t s, uint64_t e)
{
	size_t i;

	for (i = 0; i < f->nr; i++)
		if (f->v[i].s <= s && e <= f->v[i].e)
			return (long)i;
	return -1;
}

static void add(struct fake *f, uint64_t s, uint64_t e)
{
	size_t i;

	TEST_ASSERT(!vec_reserve((void **)&f->v, &f->cap, f->nr,
				 sizeof(*f->v)));
	for (i = f->nr; i > 0 && f->v[i - 1].s > s; i--)
		f->v[i] = f->v[i - 1];
	f->v[i].s = s;
	f->v[i].e = e;
	f->nr++;
}

static void del(struct fake *f, size_t i)
{
	memmove(&f->v[i], &f->v[i + 1], (f->nr - i - 1) * sizeof(*f->v));
	f->nr--;
}

/* Is a page of [s, e) pinned?  Names the first one to libgmem, as a
 * refusing backend should (gmem_report_busy()). */
static bool pinned(struct fake *f, uint64_t s, uint64_t e)
{
	uint64_t p;

	for (p = s / PG; p < e / PG; p++)
		if (f->pinned[p]) {
			gmem_report_busy(p * PG);
			return true;
		}
	return false;
}

/* A page of [s, e) leaves the device: it must be allowed to. */
static void check_window(struct fake *f, uint64_t s, uint64_t e)
{
	uint64_t lo = f->x0, hi = f->x1;

	if (f->block) {
		lo = lo / f->block * f->block;
		hi = (hi + f->block - 1) / f->block * f->block;
	}
	if (s < lo || e > hi)
		violation(f, "unmapped outside the converting range", s, e);
}

/*
 * Take [s, e) of mapping @i away (unmap: all of it; cut: a part, the caller
 * adds the rest back): -EAGAIN if a page of [s, e) is pinned and the
 * discard is not forced, else [s, e) is checked against the window and
 * the mapping deleted.
 */
static int take(struct fake *f, size_t i, uint64_t s, uint64_t e,
		unsigned int flags)
{
	if (!(flags & GMEM_DISCARD_FORCED) && pinned(f, s, e))
		return -EAGAIN;
	check_window(f, s, e);
	del(f, i);
	return 0;
}

int fake_map(void *data, uint64_t iova, uint64_t len)
{
	struct fake *f = data;
	size_t i;
	int err = 0;

	pthread_mutex_lock(&f->lock);
	f->calls++;
	if (f->fail_map_nth && --f->fail_map_nth == 0) {
		err = f->fail_err;
		/* Sticky: this map and every later one fail. */
		if (f->fail_map_sticky)
			f->fail_map_nth = 1;
		goto out;
	}
	for (i = 0; i < f->nr; i++)
		if (f->v[i].s < iova + len && f->v[i].e > iova)
			violation(f, "map over a live mapping", iova,
				  iova + len);
	add(f, iova, iova + len);
out:
	pthread_mutex_unlock(&f->lock);
	return err;
}

static int fake_unmap(void *data, uint64_t iova, uint64_t len,
		      unsigned int flags)
{
	struct fake *f = data;
	long i;
	int err = 0;

	pthread_mutex_lock(&f->lock);
	f->calls++;
	i = find_exact(f, iova, iova + len);
	if (i < 0)
		violation(f, "unmap of no live mapping", iova, iova + len);
	else
		err = take(f, (size_t)i, iova, iova + len, flags);
	pthread_mutex_unlock(&f->lock);
	return err;
}

static int fake_cut(void *data, uint64_t m_iova, uint64_t m_len,
		    uint64_t iova, uint64_t len, unsigned int flags)
{
	struct fake *f = data;
	uint64_t ms = m_iova, me = m_iova + m_len;
	long i;
	int err = 0;

	pthread_mutex_lock(&f->lock);
	f->calls++;
	i = find_exact(f, ms, me);
	if (i < 0 || iova < ms || iova + len > me || !len ||
	    (iova == ms && iova + len == me)) {
		violation(f, "bad cut", iova, iova + len);
	} else {
		err = take(f, (size_t)i, iova, iova + len, flags);
		if (!err && ms < iova)
			add(f, ms, iova);
		if (!err && iova + len < me)
			add(f, iova + len, me);
	}
	pthread_mutex_unlock(&f->lock);
	return err;
}

static int fake_merge(void *data, uint64_t iova, uint64_t len)
{
	struct fake *f = data;
	uint64_t p = iova;
	size_t n = 0;
	long i;

	pthread_mutex_lock(&f->lock);
	f->calls++;
	/* The live mappings must tile [iova, iova + len) exactly. */
	while (p < iova + len) {
		for (i = 0; i < (long)f->nr && f->v[i].s != p; i++)
			;
		if (i == (long)f->nr || f->v[i].e > iova + len) {
			violation(f, "merge that does not tile", iova,
				  iova + len);
			goto out;
		}
		p = f->v[i].e;
		n++;
	}
	if (n < 2)
		violation(f, "merge of a single mapping", iova, iova + len);
	for (p = iova; p < iova + len;) {
		i = find_holding(f, p, p + PG);
		p = f->v[i].e;
		del(f, (size_t)i);
	}
	add(f, iova, iova + len);
out:
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static int fake_report(void *data,
		       int (*fn)(void *arg, uint64_t offset, uint64_t len),
		       void *arg)
{
	struct fake *f = data;
	size_t i;
	int err = 0;

	pthread_mutex_lock(&f->lock);
	for (i = 0; i < f->nr && !err; i++)
		err = fn(arg, f->v[i].s, f->v[i].e - f->v[i].s);
	pthread_mutex_unlock(&f->lock);
	return err;
}

const struct gmem_dma_ops fake_exact_ops = {
	.size = sizeof(struct gmem_dma_ops),
	.map = fake_map, .unmap = fake_unmap, .cut = fake_cut,
	.merge = fake_merge, .report = fake_report,
};

const struct gmem_dma_ops fake_type1_ops = {
	.size = sizeof(struct gmem_dma_ops),
	.map = fake_map, .unmap = fake_unmap, .report = fake_report,
};

void fake_init(struct fake *f, uint64_t ram, uint64_t block)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	f->block = block;
	f->pinned = calloc(ram / PG, 1);
	f->x0 = 0;
	f->x1 = ram;
	TEST_ASSERT(f->pinned);
}

void fake_free(struct fake *f)
{
	free(f->v);
	free(f->pinned);
	pthread_mutex_destroy(&f->lock);
}

void check_backend(struct fake *f)
{
	if (f->why[0])
		TEST_FAIL("backend: %s", f->why);
}
