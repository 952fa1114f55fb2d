/* SPDX-License-Identifier: MIT */
/*
 * Where a backing holds memory, so that a snapshot saves resident pages
 * only: never-touched, unplugged and punched memory costs nothing.
 *
 * Two ways, because no one works on every backing:
 *  - lseek(SEEK_DATA/SEEK_HOLE) on the backing's fd (gmem_region_info
 *    gives libgmem's dup and the offset).  On a memfd it also counts pages
 *    that were swapped out, which mincore() would miss and the snapshot
 *    would then lose.  It moves the file offset the fd shares with its
 *    dups; libgmem and gmvm only use positioned I/O and mmap on backings.
 *  - mincore() on the view that maps the backing (the region's
 *    private_addr or shared_addr): what gmem_backing_resident() and the
 *    audit use, and the only way on a guest_memfd, which cannot seek.
 *    mincore() reports pages of a PROT_NONE mapping too, so a gated view
 *    serves.  guest_memfd pages are never swapped, so nothing is missed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mem_image.h"

#define PG GMEM_PAGE_SIZE
#define MINCORE_CHUNK (1ULL << 18)	/* pages per call: a 256 KiB vector */

struct where {
	int fd;
	uint64_t off;		/* of the region in the file */
	uint8_t *addr;		/* of the region in its view */
	const char *name;
};

static void backing_of(const struct gmem_region_info *ri,
		       enum gmem_backing_id id, struct where *w)
{
	if (id == GMEM_BACKING_SHARED) {
		w->fd = ri->shared_fd;
		w->off = ri->shared_offset;
		w->addr = ri->shared_addr;
		w->name = "shared";
	} else {
		w->fd = ri->private_fd;
		w->off = ri->private_offset;
		w->addr = ri->private_addr;
		w->name = "private";
	}
}

/* 1: the fd cannot seek for data (AUTO falls back to mincore). */
static int walk_seek(const struct gmem_region_info *ri, const struct where *w,
		     int (*fn)(void *, uint64_t, uint64_t), void *arg,
		     struct snap_msg *m)
{
	uint64_t pos = w->off, end = w->off + ri->len, d, h;
	off_t ret;
	int err;

	while (pos < end) {
		ret = lseek(w->fd, (off_t)pos, SEEK_DATA);
		if (ret < 0 && errno == ENXIO)
			return 0;	/* no data from pos to the end */
		if (ret < 0 && pos == w->off &&
		    (errno == ESPIPE || errno == EINVAL || errno == EOPNOTSUPP))
			return 1;
		if (ret < 0)
			goto fail;
		d = (uint64_t)ret & ~(PG - 1);
		if (d >= end)
			return 0;
		ret = lseek(w->fd, (off_t)d, SEEK_HOLE);
		if (ret < 0)
			goto fail;
		h = ((uint64_t)ret + PG - 1) & ~(PG - 1);
		if (h > end)
			h = end;
		err = fn(arg, ri->gpa + (d - w->off), ri->gpa + (h - w->off));
		if (err)
			return err;
		pos = h;
	}
	return 0;
fail:
	err = -errno;
	return snap_err(m, err, "%s backing of region %#llx: lseek: %s",
			w->name, (unsigned long long)ri->gpa, strerror(-err));
}

static int walk_mincore(const struct gmem_region_info *ri,
			const struct where *w,
			int (*fn)(void *, uint64_t, uint64_t), void *arg,
			struct snap_msg *m)
{
	uint64_t npages = ri->len / PG, done, n, i, run = 0;
	bool in_run = false;
	unsigned char *vec;
	int err = 0;

	if (!w->addr)
		return snap_err(m, -EPERM, "%s backing of region %#llx is not "
				"mapped: no way to find its memory",
				w->name, (unsigned long long)ri->gpa);
	vec = malloc(MINCORE_CHUNK);
	if (!vec)
		return snap_err(m, -ENOMEM, "no memory");
	for (done = 0; !err && done < npages; done += n) {
		n = npages - done < MINCORE_CHUNK ? npages - done :
						    MINCORE_CHUNK;
		if (mincore(w->addr + done * PG, n * PG, vec) < 0) {
			err = snap_err(m, -errno, "%s backing of region %#llx: "
				       "mincore: %s", w->name,
				       (unsigned long long)ri->gpa,
				       strerror(errno));
			break;
		}
		for (i = 0; !err && i < n; i++) {
			bool res = vec[i] & 1;

			if (res && !in_run)
				run = done + i;
			else if (!res && in_run)
				err = fn(arg, ri->gpa + run * PG,
					 ri->gpa + (done + i) * PG);
			in_run = res;
		}
	}
	if (!err && in_run)
		err = fn(arg, ri->gpa + run * PG, ri->gpa + npages * PG);
	free(vec);
	return err;
}

int snap_resident_walk(const struct gmem_region_info *ri,
		       enum gmem_backing_id id, enum snap_find how,
		       int (*fn)(void *arg, uint64_t start, uint64_t end),
		       void *arg, struct snap_msg *m)
{
	struct where w;
	int err;

	backing_of(ri, id, &w);
	if (how == SNAP_FIND_MINCORE)
		return walk_mincore(ri, &w, fn, arg, m);
	err = walk_seek(ri, &w, fn, arg, m);
	if (err != 1)
		return err;
	if (how == SNAP_FIND_SEEK)
		return snap_err(m, -ESPIPE, "%s backing of region %#llx "
				"cannot seek for data", w.name,
				(unsigned long long)ri->gpa);
	return walk_mincore(ri, &w, fn, arg, m);
}
