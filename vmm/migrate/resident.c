/* SPDX-License-Identifier: MIT */
/*
 * Resident pages of a small range: see resident.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "resident.h"

#define PG GMEM_PAGE_SIZE
#define CHUNK 512		/* pages per mincore() call */

/* A page mincore() calls absent: still data in the file (swapped out)? */
static bool seek_data(int fd, uint64_t off)
{
	off_t ret = lseek(fd, (off_t)off, SEEK_DATA);

	return ret >= 0 && (uint64_t)ret < off + PG;
}

int mig_resident_range(const struct gmem_region_info *ri,
		       enum gmem_backing_id id, uint64_t start, uint64_t end,
		       int (*fn)(void *arg, uint64_t start, uint64_t end),
		       void *arg, struct snap_msg *m)
{
	bool shared = id == GMEM_BACKING_SHARED;
	uint8_t *view = shared ? ri->shared_addr : ri->private_addr;
	uint64_t off = shared ? ri->shared_offset : ri->private_offset;
	int fd = shared ? ri->shared_fd : ri->private_fd;
	unsigned char vec[CHUNK];
	uint64_t gpa, n, i, run = 0;
	bool in_run = false, res;
	int err = 0;

	if (!view)
		return snap_err(m, -EPERM, "backing %d of region %#llx is not "
				"mapped", id, (unsigned long long)ri->gpa);
	for (gpa = start; !err && gpa < end; gpa += n * PG) {
		n = (end - gpa) / PG < CHUNK ? (end - gpa) / PG : CHUNK;
		if (mincore(view + (gpa - ri->gpa), n * PG, vec) < 0)
			return snap_err(m, -errno, "mincore at %#llx: %s",
					(unsigned long long)gpa,
					strerror(errno));
		for (i = 0; !err && i < n; i++) {
			res = (vec[i] & 1) ||
			      seek_data(fd, off + (gpa - ri->gpa) + i * PG);
			if (res && !in_run)
				run = gpa + i * PG;
			else if (!res && in_run)
				err = fn(arg, run, gpa + i * PG);
			in_run = res;
		}
	}
	if (!err && in_run)
		err = fn(arg, run, end);
	return err;
}
