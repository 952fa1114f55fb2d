/* SPDX-License-Identifier: MIT */
/*
 * Content into a VM being built (a restore's, a migration destination's):
 * the one way both write it (mem_image.h, snap_content_writer).
 *
 * pwrite() into the backing that serves the pages' state where the
 * backing takes it (a memfd): the kernel copies into its page cache,
 * where a copy through the host view takes one page fault per new page,
 * which on a host where faults are dear (a PVM guest) was most of a
 * restore's and a migration's time (bench/results.md).  A backing without
 * write() (a guest_memfd) is written through its state's view with
 * gmem_access() instead, from then on for that state.
 *
 * Why writing around libgmem is safe here: nobody else converts or
 * plugs this VM yet, and the DATA walker checked that every page of a
 * piece is plugged and in @view's state, so the pages are the ones
 * gmem_access() would write, in the backing it would write them to
 * (discard: private pages in the private backing, shared ones in the
 * shared; in-place: the one backing, which gmem_region_info names as
 * both fds).
 */
#include <errno.h>
#include <string.h>

#include "mem_image.h"

void snap_content_writer_init(struct snap_content_writer *w,
			      struct gmem_vm *vm, bool through_views)
{
	memset(w, 0, sizeof(*w));
	w->vm = vm;
	w->via_view[GMEM_PRIVATE] = w->via_view[GMEM_SHARED] = through_views;
}

/* 1 if the backing takes no pwrite() (not a failure), else 0 or -errno. */
static int write_backing(struct snap_content_writer *w, uint64_t gpa,
			 const uint8_t *buf, size_t len, enum gmem_state view)
{
	struct gmem_region_info *ri = &w->ri;
	uint64_t off;
	int fd, err;

	if (!ri->size || gpa < ri->gpa || gpa - ri->gpa >= ri->len) {
		ri->size = sizeof(*ri);
		err = gmem_region_find(w->vm, gpa, ri);
		if (err) {
			ri->size = 0;
			return err;
		}
	}
	/* The DATA walker keeps a piece inside one region; a caller that
	 * did not must not pwrite() into the next one. */
	if (len > ri->len - (gpa - ri->gpa))
		return -EINVAL;
	fd = view == GMEM_SHARED ? ri->shared_fd : ri->private_fd;
	off = (view == GMEM_SHARED ? ri->shared_offset : ri->private_offset) +
	      (gpa - ri->gpa);
	err = snap_pwrite_all(fd, buf, len, off);
	/* The fd takes no write() (or not this one): not a failure of the
	 * memory, which the view may still write. */
	if (err == -EINVAL || err == -EOPNOTSUPP || err == -EBADF ||
	    err == -ENODEV || err == -EPERM || err == -EACCES)
		return 1;
	return err;
}

int snap_content_write(struct snap_content_writer *w, uint64_t gpa,
		       const void *buf, size_t len, enum gmem_state view)
{
	int err = 1;

	if (!w->via_view[view])
		err = write_backing(w, gpa, buf, len, view);
	/* Refused: this state's view from now on, this piece whole (any
	 * part pwrite() did write is written again with the same bytes). */
	if (err == 1) {
		w->via_view[view] = true;
		/* gmem_access() only reads @buf when writing guest memory. */
		err = gmem_access(w->vm, gpa, (void *)buf, len, true, view);
	}
	return err;
}
