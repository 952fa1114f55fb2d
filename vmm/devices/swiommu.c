/* SPDX-License-Identifier: MIT */
/*
 * swiommu: the DMA test device's own IOMMU, one mapping per shared run.
 *
 * Invariants (under s->lock):
 *  - maps[0..nr_maps) is sorted by start, every range is non-empty and
 *    page aligned, and no two ranges overlap or touch (touching ranges are
 *    merged), so the number of mappings equals the number of shared runs
 *    when the notifications are right;
 *  - pins[0..nr_pins) hold ranges that were fully mapped when pinned, and
 *    a discard intersecting one (page granular) is refused, so a pinned
 *    page stays mapped until it is unpinned;
 *  - unmap_seq grows with every unmap that removed something, so a reader
 *    that saw a range mapped at sequence n and sees n again knows nothing
 *    was unmapped in between.
 *
 * The lock is a leaf: nothing here calls out while holding it, except
 * swiommu_report(), whose callback is libgmem's audit comparator.
 *
 * Complexity: lookup is a binary search; map and unmap move the tail of
 * the array (O(n) in the number of mappings), which is fine for the few
 * thousand runs tests make.  A tree would be the next step.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../gmvm.h"
#include "swiommu.h"

int swiommu_init(struct swiommu *s)
{
	memset(s, 0, sizeof(*s));
	return -pthread_mutex_init(&s->lock, NULL);
}

void swiommu_destroy(struct swiommu *s)
{
	pthread_mutex_destroy(&s->lock);
	free(s->maps);
	s->maps = NULL;
}

/* Index of the first mapping whose end is >= @addr (touching counts). */
static unsigned int first_reaching(const struct swiommu *s, uint64_t addr)
{
	unsigned int lo = 0, hi = s->nr_maps;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (s->maps[mid].end < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int reserve(struct swiommu *s, unsigned int extra)
{
	unsigned int cap;
	void *p;

	if (s->nr_maps + extra <= s->cap_maps)
		return 0;
	cap = s->cap_maps ? s->cap_maps * 2 : 16;
	while (cap < s->nr_maps + extra)
		cap *= 2;
	p = realloc(s->maps, cap * sizeof(*s->maps));
	if (!p)
		return -ENOMEM;
	s->maps = p;
	s->cap_maps = cap;
	return 0;
}

int swiommu_map(struct swiommu *s, uint64_t start, uint64_t len)
{
	uint64_t end = start + len;
	unsigned int i, j;
	int ret;

	if (!len || end < start)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	ret = reserve(s, 1);
	if (ret)
		goto out;
	s->nr_map_calls++;
	i = first_reaching(s, start);
	/* Ranges i..j-1 overlap or touch [start, end): merge them. */
	for (j = i; j < s->nr_maps && s->maps[j].start <= end; j++) {
		if (s->maps[j].start < end && s->maps[j].end > start)
			s->map_overlaps++;
		if (s->maps[j].start < start)
			start = s->maps[j].start;
		if (s->maps[j].end > end)
			end = s->maps[j].end;
	}
	if (j == i) {
		memmove(&s->maps[i + 1], &s->maps[i],
			(s->nr_maps - i) * sizeof(*s->maps));
		s->nr_maps++;
	} else if (j > i + 1) {
		memmove(&s->maps[i + 1], &s->maps[j],
			(s->nr_maps - j) * sizeof(*s->maps));
		s->nr_maps -= j - i - 1;
	}
	s->maps[i].start = start;
	s->maps[i].end = end;
	if (s->nr_maps > s->max_maps)
		s->max_maps = s->nr_maps;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static bool intersects_page(const struct swiommu_range *r, uint64_t start,
			    uint64_t end)
{
	uint64_t rs = ALIGN_DOWN(r->start, SZ_4K);
	uint64_t re = ALIGN_UP(r->end, SZ_4K);

	return rs < end && re > start;
}

static bool pinned(const struct swiommu *s, uint64_t start, uint64_t end)
{
	unsigned int k;

	for (k = 0; k < s->nr_pins; k++)
		if (intersects_page(&s->pins[k], start, end))
			return true;
	return false;
}

int swiommu_unmap(struct swiommu *s, uint64_t start, uint64_t len)
{
	uint64_t end = start + len, covered = 0;
	unsigned int i, j, k, nr_new = 0;
	struct swiommu_range keep[2];
	int ret = 0;

	if (!len || end < start)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	if (!s->tearing_down && pinned(s, start, end)) {
		s->nr_refused++;
		ret = -EAGAIN;
		goto out;
	}
	/* A split can leave one more mapping than before. */
	ret = reserve(s, 1);
	if (ret)
		goto out;
	s->nr_unmap_calls++;
	/* First mapping that ends after start (strictly: touching is no
	 * intersection here). */
	i = first_reaching(s, start);
	if (i < s->nr_maps && s->maps[i].end == start)
		i++;
	for (j = i; j < s->nr_maps && s->maps[j].start < end; j++) {
		uint64_t a = s->maps[j].start > start ? s->maps[j].start : start;
		uint64_t b = s->maps[j].end < end ? s->maps[j].end : end;

		covered += b - a;
	}
	if (j > i) {
		if (s->maps[i].start < start) {
			keep[nr_new].start = s->maps[i].start;
			keep[nr_new++].end = start;
		}
		if (s->maps[j - 1].end > end) {
			keep[nr_new].start = end;
			keep[nr_new++].end = s->maps[j - 1].end;
		}
		/* Replace maps[i..j) by keep[0..nr_new). */
		memmove(&s->maps[i + nr_new], &s->maps[j],
			(s->nr_maps - j) * sizeof(*s->maps));
		for (k = 0; k < nr_new; k++)
			s->maps[i + k] = keep[k];
		s->nr_maps = s->nr_maps - (j - i) + nr_new;
		if (s->nr_maps > s->max_maps)
			s->max_maps = s->nr_maps;
	}
	if (covered != len)
		s->unmap_holes++;
	if (covered)
		s->unmap_seq++;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static bool is_mapped_locked(const struct swiommu *s, uint64_t start,
			     uint64_t len)
{
	uint64_t a = ALIGN_DOWN(start, SZ_4K);
	uint64_t b = ALIGN_UP(start + len, SZ_4K);
	unsigned int i;

	if (!len || start + len < start)
		return false;
	i = first_reaching(s, a);
	if (i < s->nr_maps && s->maps[i].end == a)
		i++;
	/* Mappings never touch, so a mapped range lies in one of them. */
	return i < s->nr_maps && s->maps[i].start <= a && s->maps[i].end >= b;
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

uint64_t swiommu_unmap_seq(struct swiommu *s)
{
	uint64_t seq;

	pthread_mutex_lock(&s->lock);
	seq = s->unmap_seq;
	pthread_mutex_unlock(&s->lock);
	return seq;
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

int swiommu_report(struct swiommu *s,
		   int (*fn)(void *arg, uint64_t offset, uint64_t len),
		   void *arg)
{
	unsigned int i;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nr_maps && !ret; i++)
		ret = fn(arg, s->maps[i].start,
			 s->maps[i].end - s->maps[i].start);
	pthread_mutex_unlock(&s->lock);
	return ret;
}
