/* SPDX-License-Identifier: MIT */
/*
 * The DMA mapper's backend ops for the device process (dma_remote_ops):
 * map, unmap, cut and merge are forwarded over the transport and return
 * only after the device's ack, so a conversion to private completes only
 * after the device has unmapped.  Each op is first checked against a
 * mirror (a strict swiommu holding what the device was told), which counts
 * mapper violations without trusting the device and stands in for the
 * device's mappings in report() once it is dead.
 *
 * report() does not ask the device: it reads where the process really maps
 * the shared backing, from /proc/PID/maps (util/proc_maps.h), so that an
 * audit checks reality, not what the device claims.
 *
 * Locking: every op holds c->lock for its whole request (dma_remote_int.h);
 * the mirror's lock is a leaf below it.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "../gmvm.h"
#include "dma_remote_int.h"
#include "proc_maps.h"
#include "vec.h"

static int mirror_apply(struct dma_remote *c, const struct dmadev_msg *m,
			unsigned int flags)
{
	switch (m->type) {
	case DMADEV_MAP:
		return swiommu_map(&c->mirror, m->a, m->b, flags);
	case DMADEV_UNMAP:
		return swiommu_unmap(&c->mirror, m->a, m->b, flags);
	case DMADEV_CUT:
		return swiommu_cut(&c->mirror, m->a, m->b, m->c, m->d, flags);
	default:
		return swiommu_merge(&c->mirror, m->a, m->b, flags);
	}
}

/*
 * Check in the mirror (a violation is not forwarded), forward, commit in
 * the mirror what the device did (or what the mapper will believe: a
 * forced unmap/cut is done whatever the device says).
 */
static int mapping_op(struct dma_remote *c, struct dmadev_msg *m)
{
	bool forced = m->flags & GMEM_DISCARD_FORCED;
	struct dmadev_ack ack;
	int ret;

	pthread_mutex_lock(&c->lock);
	/* The mirror has no pins: the device holds them. */
	ret = mirror_apply(c, m, SWIOMMU_CHECK | GMEM_DISCARD_FORCED);
	if (ret)
		goto out;
	if (dma_remote_rpc(c, m, -1, &ack) == 0) {
		ret = ack.err;
		if (ret == -EINVAL)
			c->device_refused++;
		if (ret == -EAGAIN && (m->type == DMADEV_MAP ||
				       m->type == DMADEV_MERGE || forced))
			ret = -EIO;	/* only a discard may be busy */
		else if (ret == -EAGAIN)
			/* The device's first pinned page, to the conversion
			 * that asked (this is its thread). */
			gmem_report_busy(ack.v0);
	}
	/* else dead: a no-op that succeeds */
	if (!ret || (forced && (m->type == DMADEV_UNMAP ||
				m->type == DMADEV_CUT)))
		mirror_apply(c, m, GMEM_DISCARD_FORCED);
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static int op_map(void *data, uint64_t iova, uint64_t len)
{
	struct dmadev_msg m = { .type = DMADEV_MAP, .a = iova, .b = len };

	return mapping_op(data, &m);
}

static int op_unmap(void *data, uint64_t iova, uint64_t len,
		    unsigned int flags)
{
	struct dmadev_msg m = {
		.type = DMADEV_UNMAP,
		.flags = flags & GMEM_DISCARD_FORCED,
		.a = iova,
		.b = len,
	};

	return mapping_op(data, &m);
}

static int op_cut(void *data, uint64_t m_iova, uint64_t m_len, uint64_t iova,
		  uint64_t len, unsigned int flags)
{
	struct dmadev_msg m = {
		.type = DMADEV_CUT,
		.flags = flags & GMEM_DISCARD_FORCED,
		.a = m_iova,
		.b = m_len,
		.c = iova,
		.d = len,
	};

	return mapping_op(data, &m);
}

static int op_merge(void *data, uint64_t iova, uint64_t len)
{
	struct dmadev_msg m = { .type = DMADEV_MERGE, .a = iova, .b = len };

	return mapping_op(data, &m);
}

/* ---- report: the device's real mappings, from /proc/PID/maps ------------- */

struct ranges {
	struct swiommu_range *v;
	size_t nr, cap;
};

/* Append, joining a range that touches the previous one. */
static int ranges_push(struct ranges *r, uint64_t start, uint64_t end)
{
	if (r->nr && r->v[r->nr - 1].end == start) {
		r->v[r->nr - 1].end = end;
		return 0;
	}
	if (vec_reserve((void **)&r->v, &r->cap, r->nr, sizeof(*r->v)))
		return -ENOMEM;
	r->v[r->nr].start = start;
	r->v[r->nr].end = end;
	r->nr++;
	return 0;
}

static int report_problem(struct dma_remote *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Record (and print, the first time) a report() problem: -EUCLEAN. */
static int report_problem(struct dma_remote *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->report_err[0]) {
		va_start(ap, fmt);
		vsnprintf(c->report_err, sizeof(c->report_err), fmt, ap);
		va_end(ap);
		gmvm_err("DMA device process (pid %d): %s", (int)c->pid,
			 c->report_err);
	}
	return -EUCLEAN;
}

struct maps_scan {
	struct dma_remote *c;
	struct ranges r;	/* where it maps the shared backing, joined */
};

/* One mapping of the device process: keep it if it is the shared backing. */
static int maps_entry(const struct proc_map *m, void *arg)
{
	struct maps_scan *scan = arg;
	struct dma_remote *c = scan->c;
	uint64_t iova;

	if (m->major != c->mem_major || m->minor != c->mem_minor ||
	    m->inode != c->mem_ino)
		return 0;	/* not the shared backing */
	if (m->start >= m->end || m->start < c->base ||
	    m->end - c->base > c->ram_size)
		return report_problem(c, "maps the shared backing at %#llx-%#llx, outside its reservation for guest RAM",
				      (unsigned long long)m->start,
				      (unsigned long long)m->end);
	iova = m->start - c->base;
	if (m->offset != c->mem_offset + iova)
		return report_problem(c, "maps the shared backing at IOVA %#llx with file offset %#llx: a DMA there would reach other guest pages",
				      (unsigned long long)iova,
				      (unsigned long long)m->offset);
	if (m->perms[3] != 's')
		return report_problem(c, "maps the shared backing at IOVA %#llx privately (copy-on-write): its DMA would not reach the guest",
				      (unsigned long long)iova);
	return ranges_push(&scan->r, iova, m->end - c->base);
}

static bool exited(const struct dma_remote *c)
{
	struct pollfd p = { .fd = c->pidfd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

static int op_report(void *data,
		     int (*fn)(void *arg, uint64_t iova, uint64_t len),
		     void *arg)
{
	struct dma_remote *c = data;
	struct maps_scan scan = { .c = data };
	struct ranges *r = &scan.r;
	size_t i;
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = c->dead ? -EPIPE : proc_maps_for_each(c->pid, maps_entry, &scan);
	if (!c->dead && exited(c))
		dma_remote_kill_locked(c, NULL);	/* it died while we read */
	if (c->dead) {
		/* Its mappings went with it: what it was told stands in
		 * until the mapper is destroyed. */
		pthread_mutex_unlock(&c->lock);
		free(r->v);
		return swiommu_report(&c->mirror, fn, arg);
	}
	pthread_mutex_unlock(&c->lock);
	for (i = 0; !ret && i < r->nr; i++)
		ret = fn(arg, r->v[i].start, r->v[i].end - r->v[i].start);
	free(r->v);
	return ret;
}

const struct gmem_dma_ops dma_remote_ops = {
	.size = sizeof(struct gmem_dma_ops),
	.map = op_map,
	.unmap = op_unmap,
	.cut = op_cut,
	.merge = op_merge,
	.report = op_report,
};
