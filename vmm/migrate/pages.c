/* SPDX-License-Identifier: MIT */
/*
 * A set of guest pages as per-region bitmaps: see pages.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gmem/gmem.h"
#include "pages.h"

#define PG GMEM_PAGE_SIZE

static size_t words(uint64_t npages)
{
	return (size_t)((npages + 63) / 64);
}

int mig_pages_init(struct mig_pages *s, const struct ivals *regions)
{
	size_t i;

	s->nr = regions->nr;
	s->r = calloc(s->nr ? s->nr : 1, sizeof(*s->r));
	if (!s->r)
		return -ENOMEM;
	for (i = 0; i < s->nr; i++) {
		s->r[i].gpa = regions->v[i].start;
		s->r[i].npages = (regions->v[i].end - regions->v[i].start) / PG;
		s->r[i].bits = calloc(words(s->r[i].npages), 8);
		if (!s->r[i].bits) {
			mig_pages_free(s);
			return -ENOMEM;
		}
	}
	return 0;
}

void mig_pages_free(struct mig_pages *s)
{
	size_t i;

	for (i = 0; s->r && i < s->nr; i++)
		free(s->r[i].bits);
	free(s->r);
	s->r = NULL;
	s->nr = 0;
}

static void set_bits(uint64_t *b, uint64_t first, uint64_t n)
{
	uint64_t i = first, end = first + n;

	for (; i < end && (i & 63); i++)
		b[i / 64] |= 1ULL << (i & 63);
	for (; i + 64 <= end; i += 64)
		b[i / 64] = ~0ULL;
	for (; i < end; i++)
		b[i / 64] |= 1ULL << (i & 63);
}

void mig_pages_add(struct mig_pages *s, uint64_t gpa, uint64_t len)
{
	uint64_t end = gpa + len, a, z, rend;
	size_t i;

	if (end < gpa)
		end = UINT64_MAX;
	for (i = 0; i < s->nr; i++) {
		rend = s->r[i].gpa + s->r[i].npages * PG;
		a = gpa > s->r[i].gpa ? gpa : s->r[i].gpa;
		z = end < rend ? end : rend;
		if (a >= z)
			continue;
		a = (a - s->r[i].gpa) / PG;
		z = (z - s->r[i].gpa + PG - 1) / PG;
		set_bits(s->r[i].bits, a, z - a);
	}
}

void mig_pages_move(struct mig_pages *to, struct mig_pages *from)
{
	size_t i, w;

	for (i = 0; i < to->nr && i < from->nr; i++)
		for (w = 0; w < words(to->r[i].npages); w++) {
			to->r[i].bits[w] |= from->r[i].bits[w];
			from->r[i].bits[w] = 0;
		}
}

uint64_t mig_pages_count(const struct mig_pages *s)
{
	uint64_t n = 0;
	size_t i, w;

	for (i = 0; i < s->nr; i++)
		for (w = 0; w < words(s->r[i].npages); w++)
			n += (uint64_t)__builtin_popcountll(s->r[i].bits[w]);
	return n;
}

/* The first page at or after @p whose bit is @want, or @n. */
static uint64_t find(const uint64_t *b, uint64_t p, uint64_t n, bool want)
{
	uint64_t w;

	while (p < n) {
		w = b[p / 64] ^ (want ? 0 : ~0ULL);
		w &= ~0ULL << (p & 63);
		if (w)
			return p - (p & 63) + (uint64_t)__builtin_ctzll(w) < n ?
			       p - (p & 63) + (uint64_t)__builtin_ctzll(w) : n;
		p = (p | 63) + 1;
	}
	return n;
}

int mig_pages_for_each(const struct mig_pages *s,
		       int (*fn)(void *arg, uint64_t start, uint64_t end),
		       void *arg)
{
	uint64_t p, q, n;
	size_t i;
	int err;

	for (i = 0; i < s->nr; i++) {
		n = s->r[i].npages;
		for (p = find(s->r[i].bits, 0, n, true); p < n;
		     p = find(s->r[i].bits, q, n, true)) {
			q = find(s->r[i].bits, p, n, false);
			err = fn(arg, s->r[i].gpa + p * PG, s->r[i].gpa + q * PG);
			if (err)
				return err;
		}
	}
	return 0;
}

void mig_pages_clear(struct mig_pages *s)
{
	size_t i;

	for (i = 0; i < s->nr; i++)
		memset(s->r[i].bits, 0, words(s->r[i].npages) * 8);
}
