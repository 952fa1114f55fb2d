/* SPDX-License-Identifier: MIT */
/*
 * Snapshots of a VM's memory: what gmvm's snapshot and restore commands
 * call (docs/SNAPSHOT.md describes the file).  Only libgmem's public
 * header is used, so any libgmem VM can be saved and restored.
 *
 * Saved: the memory configuration (mode, initial state, max GPA), the
 * regions, the page-state and plug maps as runs, and each backing's
 * resident pages with their content (never-touched, unplugged and
 * punched memory costs nothing).  vCPU, device and run-option state are
 * further sections of the same file, in machine.h.
 *
 * Every function returns 0 (or a count) or -errno and says why in the
 * caller's message buffer; nothing prints or exits.
 */
#ifndef GMVM_SNAPSHOT_SNAPSHOT_H
#define GMVM_SNAPSHOT_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "gmem/gmem.h"

struct snap_io;
struct snap_machine;
struct snap_msg;
struct snap_reader;
struct snap_writer;

/* How resident pages of a backing are found. */
enum snap_find {
	/*
	 * lseek(SEEK_DATA/SEEK_HOLE) on the backing's fd where the file
	 * supports it (memfd/shmem: it also sees pages swapped out), else
	 * mincore() on the view that maps it (guest_memfd, which cannot
	 * seek and whose pages are never swapped).
	 */
	SNAP_FIND_AUTO = 0,
	SNAP_FIND_SEEK = 1,	/* lseek only: -ESPIPE where it cannot */
	SNAP_FIND_MINCORE = 2,	/* mincore only */
};

struct snap_save_opts {
	/*
	 * The VM's initial state (gmem_config.initial_state): libgmem does
	 * not report it, and a region hot-plugged after a restore must
	 * start in it as it would have before.
	 */
	enum gmem_state initial_state;
	enum snap_find find;
	const struct snap_io *io;	/* NULL: pwrite() (tests: a sink) */

	/* snap_save_file() only: */
	bool no_replace;	/* -EEXIST rather than replace a PATH that
				 * appeared meanwhile (snap_file.no_replace) */
	/*
	 * Called once PATH.tmp exists, before a byte is written, so that a
	 * path that cannot be written fails before this is asked for
	 * anything (gmvm gathers vCPU state from KVM here); its failure
	 * leaves nothing.  NULL: none.
	 */
	int (*prepare)(void *data, struct snap_msg *m);
	void *prepare_data;
	/* Written after the memory sections (vCPUs, devices, run options:
	 * machine.h); NULL: a memory-only snapshot. */
	const struct snap_machine *machine;
};

struct snap_save_stats {
	uint64_t file_bytes;		/* the whole file */
	uint64_t data_bytes;		/* page content saved */
	uint64_t data_records;		/* extents of it */
	uint64_t state_runs;
	uint64_t unplugged_runs;
};

/*
 * Write the memory sections (CONFIG, REGIONS, STATE, PLUG, DATA) of @vm
 * to @w, between snap_writer_init() and snap_writer_finish(), so that a
 * caller can add sections of its own (vCPUs, devices).  The caller holds
 * off every change of the VM's memory meanwhile (vCPUs paused, devices
 * quiet); a page-state or plug change during the save is detected and
 * fails it with -EAGAIN.  Deferred punches are drained first.
 * -EOPNOTSUPP on a native backend (private memory is not readable).
 * @st may be NULL; file_bytes is filled by snap_save_file().  On
 * failure the writer fails from then on too (snap_writer_finish()
 * included), so no half-written section becomes a file.
 */
int snap_mem_save(struct gmem_vm *vm, struct snap_writer *w,
		  const struct snap_save_opts *o, struct snap_save_stats *st);

/*
 * A whole snapshot at @path: PATH.tmp created, o->prepare() called, the
 * memory sections and o->machine's written, the file synced and renamed
 * to PATH.  The one sequence behind gmvm's snapshot command, the tests'
 * memory snapshots and bench_snapshot's timing of gmvm's path.
 * On any failure (-ENOSPC and every other -errno) nothing is left at
 * PATH.tmp and PATH is as it was; the one exception is a failure to sync
 * the directory after the rename, where PATH is the new, complete file
 * but may not survive a crash (st->file_bytes is set from the moment the
 * file was whole, so a caller can tell that case).
 */
int snap_save_file(struct gmem_vm *vm, const char *path,
		   const struct snap_save_opts *o, struct snap_save_stats *st,
		   char *msg, size_t msg_len);

struct snap_restore_opts {
	/*
	 * What the file does not say: vm_fd, backend, layout, flags,
	 * set_slot, platform hooks, shared_base...  Its mode, initial_state,
	 * max_gpa, regions and nr_regions are replaced by the file's.
	 */
	const struct gmem_config *base;
	/*
	 * Creates the VM from the config the file describes (its regions'
	 * fds are -1 and offsets 0: a VMM that owns its backings, or runs
	 * without KVM, puts its own in).  NULL: gmem_create().
	 */
	int (*create)(void *data, const struct gmem_config *cfg,
		      struct gmem_vm **out);
	void *create_data;
	enum snap_find find;
	/* Content through the views (gmem_access()) even where the backing
	 * takes pwrite(): what a guest_memfd backing gets; tests use it to
	 * run that path on memfds. */
	bool through_views;
};

/*
 * Restore memory from the snapshot @r (opened with snap_reader_open(),
 * which checked its framing): every memory section is checked first
 * (runs inside and covering the regions, sorted, values in range, DATA
 * extents page aligned, inside a region and in pages their backing
 * serves), then a new VM is created from the file's configuration, its
 * backings must be empty, and page states, plugs and content are applied.
 * On success *out is the VM: page-state and plug maps equal the file's,
 * each saved page holds its content, every other page is a hole.  On any
 * failure no VM is left (the new one is destroyed) and -errno says why:
 * -EBADMSG a damaged file (also one that changed while being restored),
 * -EPROTO a newer format, -ENOTEMPTY backings that already held memory,
 * or what creating or changing the VM returned.
 */
int snap_mem_restore(struct snap_reader *r, const struct snap_restore_opts *o,
		     struct gmem_vm **out);
/*
 * In discard mode the shared backing's content is written on a thread of
 * its own when its DATA section has at least this many bytes (4 MiB:
 * below that a thread costs more than it saves).  Tests set 0 so that
 * every restore takes that path.
 */
extern uint64_t snap_restore_side_min;

/* What snap_mem_check() found: the memory a restore will create. */
struct snap_mem_info {
	enum gmem_mode mode;
	enum gmem_state initial_state;
	uint64_t max_gpa;
	unsigned int nr_regions;	/* all of them */
	struct { uint64_t gpa, len; } region[8];	/* the first 8 */
};

/*
 * Every check snap_mem_restore() makes of @r's memory sections before it
 * creates anything (maps, regions, DATA record headers), and nothing
 * else: so that a caller can refuse a damaged file before it opens KVM,
 * and compare the memory it describes (@info, may be NULL) with its own
 * expectations.  0, or -EBADMSG/-EPROTO/-EFBIG/-ENOMEM with the message
 * in @r.
 */
int snap_mem_check(struct snap_reader *r, struct snap_mem_info *info);

/* snap_reader_open() on @path, then snap_mem_restore(). */
int snap_mem_restore_file(const char *path, const struct snap_restore_opts *o,
			  struct gmem_vm **out, char *msg, size_t msg_len);

/*
 * Does @vm hold exactly what @r describes: mode, max GPA, regions,
 * page-state and plug maps, each DATA page's content, and no other
 * resident page in any backing?  0, or -EUCLEAN naming the first
 * difference (a restored VM against its file, a VM against the snapshot
 * just taken of it).  The initial state is not compared (libgmem does not
 * report it).
 */
int snap_mem_verify(struct gmem_vm *vm, struct snap_reader *r,
		    enum snap_find find);

#endif
