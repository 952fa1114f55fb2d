/* SPDX-License-Identifier: MIT */
/*
 * gmem_dma_mapper_validate(): the DMA mapper checked against itself and
 * against its backend.  The mapper's record of reachable pages must be a
 * valid range map, its live-mapping count must equal the layout that
 * record implies (dma_mapper.c: exact or blocks), and a backend that can
 * report its mappings must hold exactly that layout - reality, not the
 * mapper's own bookkeeping, which is what gmem_audit() relies on.
 *
 * Locking: vm->lock then m->lock (dma_mapper.c's order); vm->lock is
 * dropped before the backend's report callback, m->lock is held across it
 * so that no op changes the mappings meanwhile.
 */
#include <stdlib.h>

#include "dma_mapper.h"
#include "internal.h"
#include "violation.h"

static int push_reported(void *arg, uint64_t iova, uint64_t len)
{
	struct ivals *a = arg;

	if (!len || iova % GMEM_PAGE_SIZE || len % GMEM_PAGE_SIZE)
		return -EINVAL;
	return ivals_push(a, iova / GMEM_PAGE_SIZE,
			  (iova + len) / GMEM_PAGE_SIZE);
}

int gmem_dma_mapper_validate(struct gmem_dma_mapper *m, char *msg,
			     size_t msg_len)
{
	struct ivals lay = { 0 }, rep = { 0 };
	size_t i;
	int err;

	if (msg && msg_len)
		msg[0] = '\0';
	pthread_mutex_lock(&m->vm->lock);
	pthread_mutex_lock(&m->lock);
	err = gmem_range_map_validate(m->mapped, msg, msg_len);
	if (!err)
		err = gmem_dma_layout_all(m, &lay);
	/* The backend's report is a callback: no vm->lock across it. */
	pthread_mutex_unlock(&m->vm->lock);
	if (!err && lay.nr != m->st.live)
		err = gmem_violation(msg, msg_len,
				     "DMA mapper counts %llu live mappings but its layout has %zu",
				     (unsigned long long)m->st.live, lay.nr);
	if (!err && m->ops->report) {
		err = m->ops->report(m->data, push_reported, &rep);
		if (err > 0)
			err = -EIO;
		if (!err && ivals_union(&rep))
			err = gmem_violation(msg, msg_len,
					     "DMA backend reports overlapping mappings");
		if (!err && ivals_union(&lay))
			err = gmem_violation(msg, msg_len,
					     "DMA mapper layout overlaps itself");
		for (i = 0; !err && i < lay.nr && i < rep.nr; i++)
			if (lay.v[i].start != rep.v[i].start ||
			    lay.v[i].end != rep.v[i].end)
				break;
		if (!err && (i < lay.nr || i < rep.nr)) {
			struct ival want = i < lay.nr ? lay.v[i] :
							(struct ival){ 0, 0 };
			struct ival got = i < rep.nr ? rep.v[i] :
						       (struct ival){ 0, 0 };

			err = gmem_violation(msg, msg_len,
					     "DMA backend maps [%#llx, %#llx) where the mapper has [%#llx, %#llx) (range %zu of the union)",
					     (unsigned long long)pg2b(got.start),
					     (unsigned long long)pg2b(got.end),
					     (unsigned long long)pg2b(want.start),
					     (unsigned long long)pg2b(want.end), i);
		}
	}
	pthread_mutex_unlock(&m->lock);
	free(lay.v);
	free(rep.v);
	return err;
}
