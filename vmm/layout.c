/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM layouts (layout.h): flat and pc, and the one range check every
 * guest-controlled range goes through.
 *
 * Pure functions of their arguments: no state, nothing printed, so that
 * tests/test_layout.c can check them table by table without KVM.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "layout.h"

#define PAGE_MASK 0xfffULL

int ram_layout_from_ranges(struct ram_layout *l, const struct ram_range *r,
			   unsigned int nr)
{
	unsigned int i;

	if (nr == 0 || nr > RAM_MAX_RANGES)
		return -EINVAL;
	memset(l, 0, sizeof(*l));
	for (i = 0; i < nr; i++) {
		if (!r[i].len || (r[i].gpa & PAGE_MASK) ||
		    (r[i].len & PAGE_MASK) || r[i].gpa + r[i].len < r[i].gpa)
			return -EINVAL;
		/* A gap between ranges, so that a range never merges with
		 * its neighbour (libgmem keeps regions apart anyway). */
		if (i && r[i].gpa <= r[i - 1].gpa + r[i - 1].len)
			return -EINVAL;
		l->range[i] = r[i];
		l->bytes += r[i].len;
	}
	l->nr = nr;
	l->top = r[nr - 1].gpa + r[nr - 1].len;
	return 0;
}

int ram_layout_compute(enum ram_layout_kind kind, uint64_t size,
		       struct ram_layout *out)
{
	struct ram_range r[RAM_MAX_RANGES];
	unsigned int nr = 1;

	if (!size || (size & PAGE_MASK))
		return -EINVAL;
	r[0].gpa = 0;
	r[0].len = size;
	switch (kind) {
	case RAM_LAYOUT_FLAT:
		break;
	case RAM_LAYOUT_PC:
		if (size <= RAM_PC_HOLE_START)
			break;
		/* What does not fit below the hole goes above it. */
		if (size - RAM_PC_HOLE_START > UINT64_MAX - RAM_PC_HOLE_END)
			return -ERANGE;
		r[0].len = RAM_PC_HOLE_START;
		r[1].gpa = RAM_PC_HOLE_END;
		r[1].len = size - RAM_PC_HOLE_START;
		nr = 2;
		break;
	default:
		return -EINVAL;
	}
	return ram_layout_from_ranges(out, r, nr);
}

const struct ram_range *ram_layout_find(const struct ram_layout *l,
					uint64_t gpa)
{
	unsigned int i;

	for (i = 0; i < l->nr; i++)
		if (gpa >= l->range[i].gpa &&
		    gpa - l->range[i].gpa < l->range[i].len)
			return &l->range[i];
	return NULL;
}

bool ram_layout_contains(const struct ram_layout *l, uint64_t gpa,
			 uint64_t len)
{
	const struct ram_range *r;

	if (!len || gpa + len < gpa)
		return false;
	r = ram_layout_find(l, gpa);
	return r && len <= r->len - (gpa - r->gpa);
}

void ram_layout_describe(const struct ram_layout *l, char *buf, size_t len)
{
	size_t off = 0;
	unsigned int i;

	if (len)
		buf[0] = '\0';
	for (i = 0; i < l->nr && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s[%#llx, %#llx)",
					i ? " " : "",
					(unsigned long long)l->range[i].gpa,
					(unsigned long long)(l->range[i].gpa +
							     l->range[i].len));
}

static const char *const kind_names[] = {
	[RAM_LAYOUT_FLAT] = "flat",
	[RAM_LAYOUT_PC] = "pc",
};

const char *ram_layout_name(enum ram_layout_kind kind)
{
	if ((unsigned int)kind >= sizeof(kind_names) / sizeof(kind_names[0]))
		return "unknown";
	return kind_names[kind];
}
