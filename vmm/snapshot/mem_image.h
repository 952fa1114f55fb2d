/* SPDX-License-Identifier: MIT */
/*
 * The memory part of a snapshot as data (inside vmm/snapshot/ only): the
 * configuration, regions, page-state and plug maps of a VM or a file, the
 * DATA record walker, and where a backing holds memory.
 *
 * An image that snap_image_read() accepted, or that snap_image_from_vm()
 * built, keeps these invariants, on which the cursor and the DATA walker
 * rely without checking again:
 *  - regions are sorted, disjoint, page aligned, non-empty, inside
 *    [0, max_gpa), at most SNAP_MAX_REGIONS;
 *  - runs are sorted and tile every region exactly, never crossing a
 *    region's end, and two neighbours in one region differ in state;
 *  - unplugged ranges are sorted, disjoint, each inside one region, and
 *    two in one region never touch.
 * All in bytes (the file counts pages in npages fields).
 */
#ifndef GMVM_SNAPSHOT_MEM_IMAGE_H
#define GMVM_SNAPSHOT_MEM_IMAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "format.h"
#include "ivals.h"
#include "snapshot.h"

/* What a reader accepts (docs/SNAPSHOT.md): far above any real VM, low
 * enough that no check overflows and no allocation is absurd. */
#define SNAP_MAX_REGIONS 4096
#define SNAP_MAX_GPA (1ULL << 52)		/* x86's physical limit */
#define SNAP_META_MAX (256ULL << 20)		/* one STATE or PLUG payload */

/* Fixed payload sizes of format version 1. */
#define SNAP_CONFIG_SIZE 24
#define SNAP_REGION_SIZE 16
#define SNAP_RUN_SIZE 24
#define SNAP_PLUG_SIZE 16
#define SNAP_DATA_HEAD_SIZE 8
#define SNAP_RECORD_SIZE 16

struct snap_run {
	uint64_t start, end;
	enum gmem_state state;
};

struct snap_mem_image {
	enum gmem_mode mode;
	enum gmem_state initial;
	uint64_t max_gpa;
	struct ivals regions;
	struct snap_run *runs;
	size_t nr_runs, cap_runs;
	struct ivals unplugged;
};

void snap_image_free(struct snap_mem_image *img);

/*
 * The image of @vm now (@initial is the caller's: libgmem does not report
 * it).  -errno with @m on failure.
 */
int snap_image_from_vm(struct gmem_vm *vm, enum gmem_state initial,
		       struct snap_mem_image *img, struct snap_msg *m);

/*
 * [gpa, gpa + len) as [*start, *end) if page aligned, non-empty and below
 * SNAP_MAX_GPA (so no later sum overflows), else why not.
 */
const char *snap_decode_range(uint64_t gpa, uint64_t len, uint64_t *start,
			      uint64_t *end);

/* CONFIG, REGIONS, STATE and PLUG of @img. */
int snap_image_write(struct snap_writer *w, const struct snap_mem_image *img);

/*
 * Parse and check CONFIG, REGIONS, STATE and PLUG of @r, then the record
 * headers of every DATA section: -EBADMSG (or -EFBIG, -ENOMEM) with a
 * message on the first problem, and then @img is empty.
 */
int snap_image_read(struct snap_reader *r, struct snap_mem_image *img);

/* Index of the first interval where @a and @b differ, SIZE_MAX if equal. */
size_t snap_ivals_diff(const struct ivals *a, const struct ivals *b);

/*
 * Is @b what @a is (initial state aside)?  0, or -EUCLEAN with the first
 * difference in @m, @a_name and @b_name saying which is which.
 */
int snap_image_compare(const struct snap_mem_image *a,
		       const struct snap_mem_image *b, const char *a_name,
		       const char *b_name, struct snap_msg *m);

/* ---- DATA ---------------------------------------------------------------- */

/* DATA sections a mode has: discard two (private, shared), in-place one. */
unsigned int snap_data_sections(enum gmem_mode mode);
/* The backing of the @idx-th DATA section. */
enum gmem_backing_id snap_data_backing(enum gmem_mode mode, unsigned int idx);
/* The pages a backing serves: in discard mode those of its state;
 * in-place every plugged page (-1). */
int snap_backing_state(enum gmem_mode mode, enum gmem_backing_id id);

/* Walks an image's runs and unplugged ranges at increasing addresses. */
struct snap_cursor {
	const struct snap_mem_image *img;
	size_t run, plug;
};

static inline void snap_cursor_init(struct snap_cursor *c,
				    const struct snap_mem_image *img)
{
	c->img = img;
	c->run = c->plug = 0;
}

/*
 * The longest piece [gpa, ret) of [gpa, end) of one state and one plug
 * value.  @gpa must lie in a region, and never be below the @gpa of an
 * earlier call on the same cursor.
 */
uint64_t snap_cursor_piece(struct snap_cursor *c, uint64_t gpa, uint64_t end,
			   enum gmem_state *state, bool *plugged);

struct snap_data_ops {
	/* Each record, after all its pages were checked. */
	int (*record)(void *arg, uint64_t gpa, uint64_t len);
	/*
	 * The record's content, in pieces of one state (the view to use),
	 * at most SNAP_READ_CHUNK bytes each.  NULL: the content is not
	 * read, only the record headers are checked.  Non-NULL: the
	 * payload's checksum is computed again as it is read (the file may
	 * have changed since snap_reader_open()) and compared at the end.
	 */
	int (*content)(void *arg, uint64_t gpa, const void *buf, size_t len,
		       enum gmem_state view);
};

/*
 * Walk the records of the @idx-th DATA section, checking each: page
 * aligned, non-empty, sorted and disjoint, inside one region, every page
 * plugged and (discard mode) in the state of the section's backing.
 */
int snap_data_walk(struct snap_reader *r, const struct snap_mem_image *img,
		   unsigned int idx, const struct snap_data_ops *ops,
		   void *arg);
/*
 * The same walk over section @s, whose head must name @backing: for a
 * reader that holds DATA sections one at a time (a migration stream).
 */
int snap_data_walk_section(struct snap_reader *r, const struct snap_section *s,
			   const struct snap_mem_image *img,
			   enum gmem_backing_id backing,
			   const struct snap_data_ops *ops, void *arg);

/* ---- content into a VM being built -------------------------------------- */

/*
 * Writes DATA content into a VM nobody else changes yet (a restore's, a
 * migration destination's) whose pages the DATA walker checked (plugged,
 * in the piece's state): pwrite() into the backing that serves them where
 * it takes it, else gmem_access() through that state's view (mem_write.c
 * says why).  @through_views: the view from the start (tests run that
 * path on memfds; it is what a guest_memfd backing gets).
 */
struct snap_content_writer {
	struct gmem_vm *vm;
	struct gmem_region_info ri;	/* the last piece's region (size 0:
					   none yet) */
	bool via_view[2];		/* per state: its backing refused
					   pwrite(), or through_views */
};

void snap_content_writer_init(struct snap_content_writer *w,
			      struct gmem_vm *vm, bool through_views);
/* 0 or -errno. */
int snap_content_write(struct snap_content_writer *w, uint64_t gpa,
		       const void *buf, size_t len, enum gmem_state view);

/* ---- where memory is ----------------------------------------------------- */

/*
 * Call @fn for each maximal range [start, end) (GPAs, page aligned, in
 * order) of region @ri whose memory in backing @id is resident.  In-place
 * mode has one backing: pass GMEM_BACKING_PRIVATE.
 */
int snap_resident_walk(const struct gmem_region_info *ri,
		       enum gmem_backing_id id, enum snap_find how,
		       int (*fn)(void *arg, uint64_t start, uint64_t end),
		       void *arg, struct snap_msg *m);

#endif
