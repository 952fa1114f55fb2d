/* SPDX-License-Identifier: MIT */
/*
 * The DMA mapper: a listener that keeps a DMA backend's mappings equal to
 * the reachable (shared and plugged) pages with as few mappings as the
 * backend allows.
 *
 * Why: QEMU maps one IOMMU entry per 4 KiB shared page because VFIO type1
 * cannot unmap part of a mapping, so a 16 GiB guest needs 4,194,304 entries
 * (the default limit is 65,535).  Here the number of mappings follows the
 * number of runs, not of pages.
 *
 * State: @mapped, a range_map with value 1 for each page the listener was
 * told is reachable (populate) and 0 otherwise (discard).  The mappings are
 * a pure function of it, the layout:
 *  - exact layout (the backend has cut and merge): the maximal runs of
 *    mapped pages;
 *  - blocks layout (map and unmap only, VFIO type1 semantics): the maximal
 *    runs clipped at naturally aligned blocks of block_size bytes.
 *
 * Invariants (checked by gmem_dma_mapper_validate()):
 *  1. @mapped is a valid map; @live is the number of mappings of the
 *     layout of @mapped;
 *  2. the backend holds exactly the layout: every op the mapper issues
 *     turns the old layout into the new one, and a backend that reports
 *     its mappings (report) reports exactly their union;
 *  3. the mapper never maps over a live mapping and names only mappings of
 *     the layout (or pieces of one, to cut).
 *
 * How a change of X = [offset, offset + len) is applied (populate sets X,
 * discard clears it).  Only mappings that intersect or touch X can change;
 * they are collected in the window around X, clipped to the block (the
 * whole RAM in the exact layout):
 *  - exact, populate: map X, then merge it with the mappings it touches
 *    into one; discard: cut X out of the mapping that holds it (or unmap
 *    that mapping if X is all of it).  A page that stays reachable is
 *    never unmapped, not even for a moment (cut and merge are atomic by
 *    contract).
 *  - blocks, per block K that X touches: unmap the old mappings of K that
 *    change, then map the new ones.  Without partial unmap this is the
 *    only way to split a mapping; the pages of K that stay reachable are
 *    briefly unmapped between the two, and nothing outside K ever is.
 *    That is the strategy: a split or merge costs at most one block's
 *    mappings and bounds the window to block_size bytes, while a fully
 *    reachable block is one mapping (16 GiB at 2 MiB blocks: 8192, not
 *    4,194,304).  The window is invisible to a backend that runs its ops
 *    and its DMA under one lock (ours do); for a hardware IOMMU, choose
 *    block_size = 4 KiB to close it, at QEMU's mapping count.
 *
 * Refusal: a discard without GMEM_DISCARD_FORCED may be refused by unmap or
 * cut (-EAGAIN: pinned).  The ops already done for that discard are undone
 * (mapped again, merged again) and the discard fails with nothing changed.
 * A forced discard ignores op errors: the pages are gone either way.  In
 * the blocks layout a pin holds its whole mapping: a change that must
 * remap it (even a populate next to it, to merge) fails with -EAGAIN until
 * the pin goes, since without partial unmap there is no other way.
 *
 * Locking: m->lock serialises every op call and @mapped.  libgmem calls a
 * listener concurrently for disjoint ranges, but two disjoint ranges can
 * share a mapping (a merge or cut touches its neighbours), so ops run one
 * at a time.  Order: libgmem's range lock, then (for audits) vm->lock, then
 * m->lock; ops never call back into libgmem.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "dma_mapper.h"
#include "internal.h"

#define DEFAULT_BLOCK_SIZE (2ULL << 20)

/* An undo step failed: remember the first error for mapper_change(). */
static void undo_failed(struct gmem_dma_mapper *m, int err)
{
	if (!m->undo_err)
		m->undo_err = err ? err : -EIO;
}

/* ---- the layout ----------------------------------------------------------- */

/*
 * The clipping unit around @page: its region (exact layout) or its block
 * clipped to its region (blocks layout), so that no mapping ever spans two
 * regions.  The caller holds a range of the VM (a listener callback) or
 * vm->lock, so the region array is stable.
 */
static struct ival unit_of(const struct gmem_dma_mapper *m, uint64_t page)
{
	const struct gmem_region *r = gmem_region_of(m->vm, page);
	struct ival u = { page, page + 1 };

	if (!r)		/* a hole: only ever asked of mapped pages */
		return u;
	u.start = r->first;
	u.end = r->first + r->npages;
	if (!m->exact) {
		uint64_t b = page - page % m->block_pages;

		if (b > u.start)
			u.start = b;
		if (b + m->block_pages < u.end)
			u.end = b + m->block_pages;
	}
	return u;
}

struct collect {
	struct ivals *out;
	struct ival unit;
	const struct gmem_dma_mapper *m;
	int err;
};

static int collect_mapped(void *arg, uint64_t start, uint64_t npages,
			  uint8_t value)
{
	struct collect *c = arg;
	uint64_t rs, rn, s, e;

	if (!value)
		return 0;
	/* The walk clips runs to the window: widen to the whole run, then
	 * clip to the unit. */
	gmem_range_map_get(c->m->mapped, start, &rs, &rn);
	s = rs > c->unit.start ? rs : c->unit.start;
	e = rs + rn < c->unit.end ? rs + rn : c->unit.end;
	(void)npages;
	c->err = ivals_push(c->out, s, e);
	return c->err ? 1 : 0;
}

/*
 * The mappings of unit @u that intersect or touch [x0, x1) (pages), in
 * order, as the layout has them now.
 */
static int mappings_near(const struct gmem_dma_mapper *m, struct ival u,
			 uint64_t x0, uint64_t x1, struct ivals *out)
{
	struct collect c = { .out = out, .unit = u, .m = m };
	uint64_t w0 = x0 > u.start ? x0 - 1 : u.start;
	uint64_t w1 = x1 < u.end ? x1 + 1 : u.end;

	out->nr = 0;
	gmem_range_map_for_each(m->mapped, w0, w1 - w0, collect_mapped, &c);
	return c.err;
}

/* Count or list every mapping of the layout (validate, for_each). */
int gmem_dma_layout_all(const struct gmem_dma_mapper *m, struct ivals *out)
{
	uint64_t p = 0, rs, rn;
	int err;

	out->nr = 0;
	while (p < m->npages) {
		uint8_t v = gmem_range_map_get(m->mapped, p, &rs, &rn);
		uint64_t end = rs + rn;

		if (v) {
			/* Clip the run at every unit boundary in it. */
			while (p < end) {
				struct ival u = unit_of(m, p);
				uint64_t e = end < u.end ? end : u.end;

				err = ivals_push(out, p, e);
				if (err)
					return err;
				p = e;
			}
		}
		p = end;
	}
	return 0;
}

/* ---- backend calls -------------------------------------------------------- */

static int op_map(struct gmem_dma_mapper *m, uint64_t s, uint64_t e)
{
	int err = m->ops->map(m->data, pg2b(s), pg2b(e - s));

	if (err)
		return err < 0 ? err : -EIO;
	m->st.maps++;
	m->st.live++;
	return 0;
}

static int op_unmap(struct gmem_dma_mapper *m, uint64_t s, uint64_t e,
		    unsigned int flags)
{
	int err = m->ops->unmap(m->data, pg2b(s), pg2b(e - s), flags);

	if (err && !(flags & GMEM_DISCARD_FORCED))
		return err < 0 ? err : -EIO;
	m->st.unmaps++;
	m->st.live--;
	return 0;
}

/* Cut [s, e) out of mapping @mi. */
static int op_cut(struct gmem_dma_mapper *m, struct ival mi, uint64_t s,
		  uint64_t e, unsigned int flags)
{
	int err = m->ops->cut(m->data, pg2b(mi.start), pg2b(mi.end - mi.start),
			      pg2b(s), pg2b(e - s), flags);

	if (err && !(flags & GMEM_DISCARD_FORCED))
		return err < 0 ? err : -EIO;
	m->st.cuts++;
	m->st.splits++;
	if (mi.start < s && e < mi.end)
		m->st.live++;	/* one mapping became two */
	return 0;
}

/* Merge the @n mappings tiling [s, e) into one. */
static int op_merge(struct gmem_dma_mapper *m, uint64_t s, uint64_t e,
		    size_t n)
{
	int err = m->ops->merge(m->data, pg2b(s), pg2b(e - s));

	if (err)
		return err < 0 ? err : -EIO;
	m->st.merges++;
	m->st.live -= n - 1;
	return 0;
}

/* ---- exact layout ----------------------------------------------------- */

static int exact_populate(struct gmem_dma_mapper *m, uint64_t x0, uint64_t x1,
			  struct ivals *old)
{
	uint64_t s = x0, e = x1;
	size_t i, n = 1;
	int err;

	for (i = 0; i < old->nr; i++)
		if (old->v[i].start < x1 && old->v[i].end > x0)
			return -EEXIST;	/* already mapped: not ours to map */
	err = op_map(m, x0, x1);
	if (err)
		return err;
	/* The mappings that touch X join it. */
	for (i = 0; i < old->nr; i++) {
		if (old->v[i].start < s)
			s = old->v[i].start;
		if (old->v[i].end > e)
			e = old->v[i].end;
		n++;
	}
	if (n > 1) {
		err = op_merge(m, s, e, n);
		if (err) {
			op_unmap(m, x0, x1, GMEM_DISCARD_FORCED);
			return err;
		}
	}
	return 0;
}

/* Put back what the first @done pieces of a refused discard removed. */
static void exact_undo(struct gmem_dma_mapper *m, uint64_t x0, uint64_t x1,
		       const struct ivals *old, size_t done)
{
	size_t i;

	for (i = 0; i < done; i++) {
		struct ival mi = old->v[i];
		uint64_t s = mi.start > x0 ? mi.start : x0;
		uint64_t e = mi.end < x1 ? mi.end : x1;

		int err = op_map(m, s, e);

		if (err) {
			undo_failed(m, err);
			continue;
		}
		if (s == mi.start && e == mi.end)
			continue;
		/* Rejoin the piece with what the cut left around it. */
		err = op_merge(m, mi.start, mi.end,
			       1 + (mi.start < s) + (e < mi.end));
		if (err)
			undo_failed(m, err);
		else
			m->st.splits--;
	}
}

static int exact_discard(struct gmem_dma_mapper *m, uint64_t x0, uint64_t x1,
			 struct ivals *old, unsigned int flags)
{
	size_t i;
	int err;

	for (i = 0; i < old->nr; i++) {
		struct ival mi = old->v[i];
		uint64_t s = mi.start > x0 ? mi.start : x0;
		uint64_t e = mi.end < x1 ? mi.end : x1;

		if (s >= e)
			continue;	/* only touches X */
		if (s == mi.start && e == mi.end)
			err = op_unmap(m, s, e, flags);
		else
			err = op_cut(m, mi, s, e, flags);
		if (err) {
			exact_undo(m, x0, x1, old, i);
			return err;
		}
	}
	return 0;
}

/* ---- blocks layout ---------------------------------------------------- */

static bool ival_in(const struct ivals *a, struct ival x)
{
	size_t i;

	for (i = 0; i < a->nr; i++)
		if (a->v[i].start == x.start && a->v[i].end == x.end)
			return true;
	return false;
}

/*
 * The mappings of one block after X∩block is set (@set) or cleared, from
 * the mappings near X before.
 */
static int block_new_layout(const struct ivals *old, uint64_t x0, uint64_t x1,
			    bool set, struct ivals *out)
{
	uint64_t s = x0, e = x1;
	size_t i;
	int err = 0;

	out->nr = 0;
	if (set) {
		for (i = 0; i < old->nr; i++) {
			if (old->v[i].start < s)
				s = old->v[i].start;
			if (old->v[i].end > e)
				e = old->v[i].end;
		}
		return ivals_push(out, s, e);
	}
	for (i = 0; i < old->nr && !err; i++) {
		if (old->v[i].start < x0)
			err = ivals_push(out, old->v[i].start,
					 old->v[i].end < x0 ? old->v[i].end :
							      x0);
		if (!err && old->v[i].end > x1)
			err = ivals_push(out, old->v[i].start > x1 ?
						   old->v[i].start : x1,
					 old->v[i].end);
	}
	return err;
}

/*
 * Turn block mappings @old into @new: unmap what goes, then map what
 * comes.  On failure everything done is undone.
 */
static int block_apply(struct gmem_dma_mapper *m, const struct ivals *old,
		       const struct ivals *new, unsigned int flags)
{
	size_t i, j, k;
	int err = 0;

	for (i = 0; i < old->nr; i++) {
		if (ival_in(new, old->v[i]))
			continue;
		err = op_unmap(m, old->v[i].start, old->v[i].end, flags);
		if (err)
			goto err_unmapped;
	}
	for (j = 0; j < new->nr; j++) {
		if (ival_in(old, new->v[j]))
			continue;
		err = op_map(m, new->v[j].start, new->v[j].end);
		if (err)
			goto err_mapped;
	}
	return 0;

err_mapped:
	for (k = 0; k < j; k++)
		if (!ival_in(old, new->v[k]))
			op_unmap(m, new->v[k].start, new->v[k].end,
				 GMEM_DISCARD_FORCED);
err_unmapped:
	for (k = 0; k < i; k++) {
		int uerr;

		if (ival_in(new, old->v[k]))
			continue;
		uerr = op_map(m, old->v[k].start, old->v[k].end);
		if (uerr)
			undo_failed(m, uerr);
	}
	return err;
}

/* Count what a block change did, for the splits/merges counters. */
static void block_count(struct gmem_dma_mapper *m, const struct ivals *old,
			bool set, uint64_t x0, uint64_t x1)
{
	size_t i;

	for (i = 0; i < old->nr; i++) {
		bool hit = old->v[i].start < x1 && old->v[i].end > x0;

		if (set)
			m->st.merges++;	/* joined the new range */
		else if (hit && (old->v[i].start < x0 || old->v[i].end > x1))
			m->st.splits++;	/* lost a part, kept the rest */
	}
}

/* ---- one change ----------------------------------------------------------- */

/*
 * Apply populate (@set) or discard of [x0, x1) (pages).  Returns 0 or
 * -errno with nothing changed (a forced discard always succeeds); or, if
 * undoing the part already done failed too, -EIO with the memory marked
 * broken (gmem_mark_broken()): the backend then holds mappings the mapper
 * cannot vouch for, and saying "nothing changed" would be a lie.
 */
static int mapper_change(struct gmem_dma_mapper *m, uint64_t x0, uint64_t x1,
			 bool set, unsigned int flags)
{
	struct ivals old = { 0 }, new = { 0 };
	uint64_t p, done = x0;
	int64_t ret;
	int err = 0, undo_err;

	pthread_mutex_lock(&m->lock);
	for (p = x0; p < x1 && !err; p = done) {
		struct ival u = unit_of(m, p);
		uint64_t s = p, e = x1 < u.end ? x1 : u.end;

		err = mappings_near(m, u, s, e, &old);
		if (err)
			break;
		/*
		 * Reserve the bookkeeping before the backend op: an op that
		 * succeeded must be recorded, or after a rollback the backend
		 * would hold a mapping the mapper does not know (and never
		 * undoes).  gmem_range_map_set cannot fail while the
		 * reservation is held.
		 */
		ret = gmem_fault_check(m->vm, GMEM_FAULT_ALLOC);
		if (!ret)
			ret = gmem_range_map_reserve(m->mapped);
		if (ret) {
			err = (int)ret;
			break;
		}
		if (m->exact && set) {
			err = exact_populate(m, s, e, &old);
		} else if (m->exact) {
			err = exact_discard(m, s, e, &old, flags);
		} else {
			err = block_new_layout(&old, s, e, set, &new);
			if (!err)
				err = block_apply(m, &old, &new, flags);
			if (!err)
				block_count(m, &old, set, s, e);
		}
		if (err) {
			gmem_range_map_unreserve(m->mapped);
			break;
		}
		ret = gmem_range_map_set(m->mapped, s, e - s, set, NULL, NULL);
		gmem_range_map_unreserve(m->mapped);
		assert(ret >= 0);
		done = e;
	}
	if (err && done > x0) {
		/* Undo the finished units: the opposite change, forced. */
		uint64_t q, qdone;

		for (q = x0; q < done; q = qdone) {
			struct ival u = unit_of(m, q);
			uint64_t s = q, e = done < u.end ? done : u.end;
			int uerr;

			qdone = e;
			uerr = mappings_near(m, u, s, e, &old);
			if (uerr) {
				undo_failed(m, uerr);
				continue;
			}
			if (m->exact && set)
				exact_discard(m, s, e, &old,
					      GMEM_DISCARD_FORCED);
			else if (m->exact)
				uerr = exact_populate(m, s, e, &old);
			else if (!(uerr = block_new_layout(&old, s, e, !set,
							   &new)))
				uerr = block_apply(m, &old, &new,
						   GMEM_DISCARD_FORCED);
			if (uerr)
				undo_failed(m, uerr);
			uerr = gmem_range_map_reserve(m->mapped);
			if (uerr) {
				undo_failed(m, uerr);
				continue;
			}
			gmem_range_map_set(m->mapped, s, e - s, !set, NULL, NULL);
			gmem_range_map_unreserve(m->mapped);
		}
	}
	if (err) {
		if (err == -EAGAIN)
			m->st.refused++;
	} else if (m->st.live > m->st.max_live) {
		m->st.max_live = m->st.live;
	}
	undo_err = m->undo_err;
	m->undo_err = 0;
	pthread_mutex_unlock(&m->lock);
	free(old.v);
	free(new.v);
	if (undo_err) {
		gmem_mark_broken(m->vm, "DMA mapper: undoing a failed %s of [%#llx, %#llx) failed (%d), so the DMA backend's mappings no longer match the pages' states",
				 set ? "map" : "unmap",
				 (unsigned long long)(x0 * GMEM_PAGE_SIZE),
				 (unsigned long long)(x1 * GMEM_PAGE_SIZE),
				 undo_err);
		return -EIO;
	}
	return err;
}

static int mapper_populate(void *data, uint64_t offset, uint64_t len)
{
	struct gmem_dma_mapper *m = data;

	return mapper_change(m, offset / GMEM_PAGE_SIZE,
			     (offset + len) / GMEM_PAGE_SIZE, true, 0);
}

static int mapper_discard(void *data, uint64_t offset, uint64_t len,
			  unsigned int flags)
{
	struct gmem_dma_mapper *m = data;

	return mapper_change(m, offset / GMEM_PAGE_SIZE,
			     (offset + len) / GMEM_PAGE_SIZE, false, flags);
}

/*
 * For gmem_audit(): only what the backend really holds.  A backend that
 * cannot report is not compared with the mapper's own bookkeeping (that
 * would compare the mapper with itself): the audit then checks the
 * mapper's invariants only (gmem_dma_mapper_validate()).
 */
static int mapper_report(void *data,
			 int (*fn)(void *arg, uint64_t gpa, uint64_t len),
			 void *arg)
{
	struct gmem_dma_mapper *m = data;

	return m->ops->report(m->data, fn, arg);
}

static int mapper_validate(void *data, char *msg, size_t msg_len)
{
	return gmem_dma_mapper_validate(data, msg, msg_len);
}

static const struct gmem_listener_ops mapper_listener_ops = {
	.size = sizeof(struct gmem_listener_ops),
	.populate = mapper_populate,
	.discard = mapper_discard,
	.report = mapper_report,
};

static const struct gmem_listener_ops mapper_listener_ops_noreport = {
	.size = sizeof(struct gmem_listener_ops),
	.populate = mapper_populate,
	.discard = mapper_discard,
};

/* ---- API ------------------------------------------------------------------ */

int gmem_dma_mapper_create(struct gmem_vm *vm,
			   const struct gmem_dma_mapper_config *cfg_in,
			   struct gmem_dma_mapper **out)
{
	struct gmem_dma_mapper_config cfg;
	struct gmem_dma_mapper *m;
	uint64_t bs;
	int err;

	if (!vm || !cfg_in || !out)
		return -EINVAL;
	err = gmem_copy_in(&cfg, sizeof(cfg), cfg_in,
			   gmem_offsetofend(struct gmem_dma_mapper_config,
					    data));
	if (err)
		return err;
	bs = cfg.block_size ? cfg.block_size : DEFAULT_BLOCK_SIZE;
	if (bs < GMEM_PAGE_SIZE || (bs & (bs - 1)))
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	err = gmem_copy_in(&m->ops_copy, sizeof(m->ops_copy), cfg.ops,
			   gmem_offsetofend(struct gmem_dma_ops, unmap));
	if (err || !m->ops_copy.map || !m->ops_copy.unmap) {
		free(m);
		return err ? err : -EINVAL;
	}
	m->vm = vm;
	m->ops = &m->ops_copy;
	m->data = cfg.data;
	m->exact = m->ops->cut && m->ops->merge && !cfg.force_blocks;
	m->block_pages = bs / GMEM_PAGE_SIZE;
	m->npages = gmem_max_gpa(vm) / GMEM_PAGE_SIZE;
	err = -pthread_mutex_init(&m->lock, NULL);
	if (err)
		goto err_mapper;
	m->mapped = gmem_range_map_create(m->npages, 0);
	if (!m->mapped) {
		err = -ENOMEM;
		goto err_lock;
	}
	/* Replays the reachable runs: the mapper maps them now. */
	err = gmem_listener_register_internal(vm, m->ops->report ?
					      &mapper_listener_ops :
					      &mapper_listener_ops_noreport,
					      m, mapper_validate, &m->listener);
	if (err)
		goto err_map;
	*out = m;
	return 0;

err_map:
	gmem_range_map_destroy(m->mapped);
err_lock:
	pthread_mutex_destroy(&m->lock);
err_mapper:
	free(m);
	return err;
}

void gmem_dma_mapper_destroy(struct gmem_vm *vm, struct gmem_dma_mapper *m)
{
	if (!m)
		return;
	/* Replays a forced discard of every reachable run. */
	gmem_listener_unregister(vm, m->listener);
	gmem_range_map_destroy(m->mapped);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

int gmem_dma_mapper_get_stats(struct gmem_dma_mapper *m,
			      struct gmem_dma_stats *out)
{
	struct gmem_dma_stats st;

	pthread_mutex_lock(&m->lock);
	st = m->st;
	pthread_mutex_unlock(&m->lock);
	st.size = sizeof(st);
	return gmem_copy_out(out, &st, sizeof(st));
}

int gmem_dma_mapper_for_each(struct gmem_dma_mapper *m,
			     int (*fn)(void *arg, uint64_t iova, uint64_t len),
			     void *arg)
{
	struct ivals all = { 0 };
	size_t i;
	int err;

	if (!fn)
		return -EINVAL;
	/* Lock order: vm->lock, then m->lock (unit_of() reads regions). */
	pthread_mutex_lock(&m->vm->lock);
	pthread_mutex_lock(&m->lock);
	err = gmem_dma_layout_all(m, &all);
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_unlock(&m->vm->lock);
	for (i = 0; !err && i < all.nr; i++)
		err = fn(arg, pg2b(all.v[i].start),
			 pg2b(all.v[i].end - all.v[i].start));
	free(all.v);
	return err;
}
