/* SPDX-License-Identifier: MIT */
/*
 * swiommu: a strict software IOMMU, the backend of a libgmem DMA mapper in
 * its exact layout (map, unmap, cut, merge).
 *
 * Invariants (under s->lock):
 *  - the tree holds disjoint, non-empty, page-aligned ranges inside
 *    [0, limit), ordered by address; nr_maps counts them.  Mappings may
 *    touch (between a map and the merge that follows it), so "is this
 *    range mapped" walks touching successors;
 *  - every op is validated before anything changes, and a request a
 *    correct mapper never makes (a map over a live mapping, an unmap that
 *    is not exactly one live mapping, a cut that is not strictly inside
 *    one live mapping, a merge that does not exactly tile two or more
 *    adjacent live mappings, a bad range) changes nothing, is counted and
 *    fails with -EINVAL;
 *  - pins[0..nr_pins) hold ranges that were fully mapped when pinned; an
 *    unmap or cut without GMEM_DISCARD_FORCED whose removed range
 *    intersects one (page granular) is refused with -EAGAIN, so a pinned
 *    page stays mapped until it is unpinned; the refusal names the first
 *    pinned page of the range (gmem_report_busy(), busy_gpa);
 *  - unmap_seq grows with every unmap or cut, so a reader that saw a
 *    range mapped at sequence n and sees n again knows nothing was
 *    unmapped in between.
 *
 * Complexity: the mappings are a glibc tsearch tree (red-black) keyed by
 * range with an overlap comparator: any range overlapping the key compares
 * equal, which is a total order on disjoint ranges.  Lookup, map, unmap
 * and cut are O(log n); a merge of k tiles is O(k log n).  A guest can
 * make ~130k mappings (every other page of 1 GiB shared).
 *
 * The lock is a leaf: nothing here calls out while holding it, except
 * swiommu_report(), whose callback is libgmem's audit comparator.
 */
#include <errno.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swiommu.h"

#define PAGE GMEM_PAGE_SIZE

int swiommu_init(struct swiommu *s, uint64_t limit)
{
	memset(s, 0, sizeof(*s));
	s->limit = limit;
	return -pthread_mutex_init(&s->lock, NULL);
}

void swiommu_destroy(struct swiommu *s)
{
	tdestroy(s->root, free);
	s->root = NULL;
	pthread_mutex_destroy(&s->lock);
}

/* Overlapping ranges compare equal: a total order on disjoint ones. */
static int cmp_range(const void *a, const void *b)
{
	const struct swiommu_range *x = a, *y = b;

	if (x->end <= y->start)
		return -1;
	if (x->start >= y->end)
		return 1;
	return 0;
}

/* A mapping overlapping [start, end), or NULL. */
static struct swiommu_range *find(const struct swiommu *s, uint64_t start,
				  uint64_t end)
{
	struct swiommu_range key = { start, end };
	void *node = tfind(&key, &s->root, cmp_range);

	return node ? *(struct swiommu_range **)node : NULL;
}

/* The mapping holding address @addr, or NULL. */
static struct swiommu_range *holding(const struct swiommu *s, uint64_t addr)
{
	return find(s, addr, addr + 1);
}

static bool range_ok(const struct swiommu *s, uint64_t iova, uint64_t len)
{
	return len && !(iova % PAGE) && !(len % PAGE) && iova < s->limit &&
	       len <= s->limit - iova;
}

/* range_ok(), counting a bad range (a violation): 0 or -EINVAL. */
static int check_range(struct swiommu *s, uint64_t iova, uint64_t len)
{
	if (range_ok(s, iova, len))
		return 0;
	s->st.bad_ranges++;
	return -EINVAL;
}

static bool intersects_page(const struct swiommu_range *r, uint64_t start,
			    uint64_t end)
{
	uint64_t rs = r->start & ~(PAGE - 1);
	uint64_t re = (r->end + PAGE - 1) & ~(PAGE - 1);

	return rs < end && re > start;
}

/*
 * Does a pin hold a page of [start, end)?  Then *first is the first such
 * page (the lowest over all pins), which the refusal names.
 */
static bool pinned(const struct swiommu *s, uint64_t start, uint64_t end,
		   unsigned int flags, uint64_t *first)
{
	bool found = false;
	unsigned int k;

	if ((flags & GMEM_DISCARD_FORCED) || s->tearing_down)
		return false;
	for (k = 0; k < s->nr_pins; k++) {
		uint64_t ps = s->pins[k].start & ~(PAGE - 1);

		if (!intersects_page(&s->pins[k], start, end))
			continue;
		if (ps < start)
			ps = start;
		if (!found || ps < *first)
			*first = ps;
		found = true;
	}
	return found;
}

/*
 * Refuse an unmap/cut of a pinned range: name the first pinned page to
 * libgmem (gmem_report_busy(), for the conversion that asked, on this
 * thread) and keep it for swiommu_busy_gpa().  s->lock held.
 */
static int refuse_busy(struct swiommu *s, uint64_t first)
{
	s->st.refused++;
	s->busy_gpa = first;
	gmem_report_busy(first);
	return -EAGAIN;
}

static void count_live(struct swiommu *s, int64_t delta)
{
	s->st.nr_maps += (uint64_t)delta;
	if (s->st.nr_maps > s->st.max_maps)
		s->st.max_maps = s->st.nr_maps;
}

int swiommu_map(struct swiommu *s, uint64_t iova, uint64_t len,
		unsigned int flags)
{
	struct swiommu_range *r;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	ret = check_range(s, iova, len);
	if (ret)
		goto out;
	if (find(s, iova, iova + len)) {
		s->st.map_overlaps++;
		ret = -EINVAL;
		goto out;
	}
	if (flags & SWIOMMU_CHECK)
		goto out;
	r = malloc(sizeof(*r));
	if (!r) {
		ret = -ENOMEM;
		goto out;
	}
	r->start = iova;
	r->end = iova + len;
	if (!tsearch(r, &s->root, cmp_range)) {
		free(r);
		ret = -ENOMEM;
		goto out;
	}
	count_live(s, 1);
	s->st.map_calls++;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int swiommu_unmap(struct swiommu *s, uint64_t iova, uint64_t len,
		  unsigned int flags)
{
	struct swiommu_range *r;
	uint64_t busy = 0;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	ret = check_range(s, iova, len);
	if (ret)
		goto out;
	r = holding(s, iova);
	if (!r || r->start != iova || r->end != iova + len) {
		s->st.unmap_mismatches++;
		ret = -EINVAL;
		goto out;
	}
	if (pinned(s, iova, iova + len, flags, &busy)) {
		ret = refuse_busy(s, busy);
		goto out;
	}
	if (flags & SWIOMMU_CHECK)
		goto out;
	tdelete(r, &s->root, cmp_range);
	free(r);
	count_live(s, -1);
	s->st.unmap_calls++;
	s->unmap_seq++;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int swiommu_cut(struct swiommu *s, uint64_t m_iova, uint64_t m_len,
		uint64_t iova, uint64_t len, unsigned int flags)
{
	uint64_t end = iova + len, m_end = m_iova + m_len;
	struct swiommu_range *r, *right;
	uint64_t busy = 0;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	if (!range_ok(s, m_iova, m_len) || !range_ok(s, iova, len)) {
		s->st.bad_ranges++;
		ret = -EINVAL;
		goto out;
	}
	r = holding(s, m_iova);
	/* Strictly inside: cutting all of it is an unmap. */
	if (!r || r->start != m_iova || r->end != m_end || iova < m_iova ||
	    end > m_end || (iova == m_iova && end == m_end)) {
		s->st.cut_mismatches++;
		ret = -EINVAL;
		goto out;
	}
	if (pinned(s, iova, end, flags, &busy)) {
		ret = refuse_busy(s, busy);
		goto out;
	}
	if (flags & SWIOMMU_CHECK)
		goto out;
	if (iova > m_iova && end < m_end) {
		/* A hole in the middle: the right piece is a new mapping. */
		right = malloc(sizeof(*right));
		if (!right) {
			ret = -ENOMEM;
			goto out;
		}
		right->start = end;
		right->end = m_end;
		r->end = iova;	/* shrinking keeps the tree ordered */
		if (!tsearch(right, &s->root, cmp_range)) {
			r->end = m_end;
			free(right);
			ret = -ENOMEM;
			goto out;
		}
		count_live(s, 1);
	} else if (iova > m_iova) {
		r->end = iova;
	} else {
		r->start = end;
	}
	s->st.cut_calls++;
	s->unmap_seq++;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int swiommu_merge(struct swiommu *s, uint64_t iova, uint64_t len,
		  unsigned int flags)
{
	uint64_t end = iova + len, pos;
	struct swiommu_range *first, *cur;
	unsigned int n = 1;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	ret = check_range(s, iova, len);
	if (ret)
		goto out;
	first = holding(s, iova);
	cur = first;
	if (first && first->start == iova) {
		while (cur && cur->end < end) {
			struct swiommu_range *next = holding(s, cur->end);

			cur = next && next->start == cur->end ? next : NULL;
			n++;
		}
	}
	if (!first || first->start != iova || !cur || cur->end != end ||
	    n < 2) {
		s->st.merge_mismatches++;
		ret = -EINVAL;
		goto out;
	}
	if (flags & SWIOMMU_CHECK)
		goto out;
	/* Drop the tiles after the first, then grow it into their place. */
	for (pos = first->end; pos < end;) {
		cur = holding(s, pos);
		pos = cur->end;
		tdelete(cur, &s->root, cmp_range);
		free(cur);
	}
	first->end = end;
	count_live(s, -(int64_t)(n - 1));
	s->st.merge_calls++;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static bool is_mapped_locked(const struct swiommu *s, uint64_t start,
			     uint64_t len)
{
	uint64_t a = start & ~(PAGE - 1);
	uint64_t b = (start + len + PAGE - 1) & ~(PAGE - 1);
	struct swiommu_range *r;

	if (!len || start + len < start || b < a)
		return false;
	r = holding(s, a);
	/* Walk touching mappings (a map not yet merged with its
	 * neighbours). */
	while (r && r->end < b)
		r = holding(s, r->end);
	return r != NULL;
}

bool swiommu_is_mapped(struct swiommu *s, uint64_t start, uint64_t len,
		       uint64_t *seq)
{
	bool ret;

	pthread_mutex_lock(&s->lock);
	ret = is_mapped_locked(s, start, len);
	if (seq)
		*seq = s->unmap_seq;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* One field of @s, read under its lock. */
static uint64_t read_locked(struct swiommu *s, const uint64_t *field)
{
	uint64_t v;

	pthread_mutex_lock(&s->lock);
	v = *field;
	pthread_mutex_unlock(&s->lock);
	return v;
}

uint64_t swiommu_busy_gpa(struct swiommu *s)
{
	return read_locked(s, &s->busy_gpa);
}

uint64_t swiommu_unmap_seq(struct swiommu *s)
{
	return read_locked(s, &s->unmap_seq);
}

int swiommu_pin(struct swiommu *s, uint64_t start, uint64_t len)
{
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	if (!is_mapped_locked(s, start, len)) {
		ret = -EFAULT;
	} else if (s->nr_pins == SWIOMMU_MAX_PINS) {
		ret = -ENOSPC;
	} else {
		s->pins[s->nr_pins].start = start;
		s->pins[s->nr_pins].end = start + len;
		s->nr_pins++;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int swiommu_unpin(struct swiommu *s, uint64_t start, uint64_t len)
{
	int ret = -ENOENT;
	unsigned int k;

	pthread_mutex_lock(&s->lock);
	for (k = 0; k < s->nr_pins; k++) {
		if (s->pins[k].start == start &&
		    s->pins[k].end == start + len) {
			s->pins[k] = s->pins[--s->nr_pins];
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

void swiommu_teardown(struct swiommu *s)
{
	pthread_mutex_lock(&s->lock);
	s->nr_pins = 0;
	s->tearing_down = true;
	pthread_mutex_unlock(&s->lock);
}

struct walk {
	int (*fn)(void *arg, uint64_t iova, uint64_t len);
	void *arg;
	int ret;
};

static void walk_one(const void *nodep, VISIT which, void *closure)
{
	const struct swiommu_range *r;
	struct walk *w = closure;

	/* In order: an inner node after its left subtree, or a leaf. */
	if ((which != postorder && which != leaf) || w->ret)
		return;
	r = *(const struct swiommu_range *const *)nodep;
	w->ret = w->fn(w->arg, r->start, r->end - r->start);
}

int swiommu_report(struct swiommu *s,
		   int (*fn)(void *arg, uint64_t iova, uint64_t len),
		   void *arg)
{
	struct walk w = { .fn = fn, .arg = arg };

	pthread_mutex_lock(&s->lock);
	if (s->root)
		twalk_r(s->root, walk_one, &w);
	pthread_mutex_unlock(&s->lock);
	return w.ret;
}

void swiommu_get_stats(struct swiommu *s, struct swiommu_stats *st)
{
	pthread_mutex_lock(&s->lock);
	*st = s->st;
	pthread_mutex_unlock(&s->lock);
}

uint64_t swiommu_violations(const struct swiommu_stats *st)
{
	return st->bad_ranges + st->map_overlaps + st->unmap_mismatches +
	       st->cut_mismatches + st->merge_mismatches;
}

char *swiommu_describe(const struct swiommu_stats *st, char *buf, size_t len)
{
	const struct {
		uint64_t n;
		const char *what;
	} v[] = {
		{ st->bad_ranges, "empty, unaligned or out-of-range requests" },
		{ st->map_overlaps, "maps over a live mapping" },
		{ st->unmap_mismatches,
		  "unmaps not naming exactly one live mapping" },
		{ st->cut_mismatches, "cuts not strictly inside one live mapping" },
		{ st->merge_mismatches,
		  "merges not exactly tiling adjacent live mappings" },
	};
	size_t off = 0, i;

	if (len)
		buf[0] = '\0';
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		int n;

		if (!v[i].n || off >= len)
			continue;
		n = snprintf(buf + off, len - off, "%s%llu %s",
			     off ? ", " : "", (unsigned long long)v[i].n,
			     v[i].what);
		if (n > 0)
			off += (size_t)n;
	}
	return buf;
}
