/* SPDX-License-Identifier: MIT */
/*
 * The IMAGE section's payload: a VM's maps (configuration, regions,
 * page-state and plug runs) as a complete snapshot document in memory
 * (docs/SNAPSHOT.md: header, CONFIG, REGIONS, STATE, PLUG, empty DATA
 * sections, END), so the snapshot module's writer and its strict reader
 * and checks are the migration's too, with no second encoding of maps.
 */
#ifndef GMVM_MIGRATE_IMAGE_H
#define GMVM_MIGRATE_IMAGE_H

#include "../snapshot/mem_image.h"

struct mig_buf {
	uint8_t *p;
	size_t len, cap;
};

/* A struct snap_io's write_at into the mig_buf @data, grown as needed:
 * a snapshot document written into memory. */
int mig_buf_write_at(void *data, int fd, const void *src, size_t len,
		     uint64_t off);

/* @img as a snapshot document in @b (emptied first). */
int mig_image_encode(const struct snap_mem_image *img, struct mig_buf *b,
		     struct snap_msg *m);
/*
 * The document in [p, p + len) as an image, every rule of a snapshot
 * file checked (-EBADMSG, -EPROTO, -EINVAL, -EFBIG with @m); a DATA
 * record in it is refused too: content travels in DATA sections.
 */
int mig_image_decode(const uint8_t *p, size_t len, struct snap_mem_image *img,
		     struct snap_msg *m);

#endif
