/* SPDX-License-Identifier: MIT */
/*
 * Live migration of a VM's memory (docs/MIGRATION.md): what gmvm's
 * `run --incoming` and `ctl SRC migrate` call.  Only libgmem's public
 * header and the snapshot module are used, so any libgmem VM with the
 * emulated backend can be sent and received.
 *
 * Source: mig_send() tracks dirty pages (track.h), sends the memory in
 * rounds while the guest runs (pre-copy), then asks the VMM to stop the
 * world and sends the last round, the VMM's own sections and END, and
 * waits for the destination's acknowledgement.  Destination:
 * mig_receive() builds the VM from the first round (as a snapshot
 * restore does), applies every later round, and acknowledges.
 *
 * Every function returns 0 or -errno and says why in the caller's
 * message buffer; nothing prints or exits.
 */
#ifndef GMVM_MIGRATE_MIGRATE_H
#define GMVM_MIGRATE_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "gmem/gmem.h"
#include "../snapshot/snapshot.h"
#include "track.h"

struct mig_out;

struct mig_send_opts {
	enum gmem_state initial_state;	/* gmem_config.initial_state */
	struct mig_track_opts track;	/* KVM VM and memslots, if any */
	enum snap_find find;		/* round 0's residency walk */
	/* Pre-copy ends after a round (other than round 0) that had at
	 * most @converged_bytes to send (0: 64 MiB), or after @max_rounds
	 * rounds (0: 30). */
	uint64_t converged_bytes;
	unsigned int max_rounds;
	/* Each section's deadline (timeout_ms per started 16 MiB of it,
	 * stream.h), and the wait for the ACK: a destination that stops
	 * reading, or reads a trickle, fails the migration (<= 0: 30 s). */
	int timeout_ms;
	/*
	 * Stop the world (vCPUs paused, devices quiet) before the last
	 * round, and start it again if the migration fails after that.
	 * NULL: the caller guarantees nothing changes (tests).
	 */
	int (*stop)(void *data);
	void (*resume)(void *data);
	/*
	 * Pages devices may write behind this process's back (the DMA
	 * device process maps the shared backing itself): call @fn for each
	 * range a device has mapped (gmem_dma_mapper_for_each() does).
	 * They are sent again in every round and in the last one.
	 */
	int (*device_ranges)(void *data,
			     int (*fn)(void *arg, uint64_t gpa, uint64_t len),
			     void *arg);
	/* Append the VMM's sections (types 0x10-0x3f, mig_out_section())
	 * after the last round, the world stopped.  NULL: none. */
	int (*final_sections)(void *data, struct mig_out *out);
	/*
	 * Asked before each pre-copy round and each DATA section of one:
	 * true ends the migration with -ECANCELED (the VM is stopping, so
	 * nobody should wait for rounds to converge).  NULL: never.
	 */
	bool (*cancelled)(void *data);
	void *data;
	/* Tests: called at the start of each round (0, 1, ...) with the
	 * number of pages to send.  NULL: none. */
	void (*on_round)(void *data, unsigned int round, uint64_t pages);
};

struct mig_stats {
	const char *tracker;		/* mig_track_name() */
	unsigned int rounds;		/* pre-copy rounds + the last one */
	uint64_t bytes;			/* the whole stream */
	uint64_t data_bytes;		/* page content */
	uint64_t hole_pages;		/* sent as holes */
	uint64_t last_round_pages;	/* sent with the world stopped */
	double total_s, downtime_s;	/* downtime: stop() to the ack */
};

/*
 * Send @vm over @fd (a connected socket).  0: the destination has the VM
 * and acknowledged it: the caller says the VM moved and exits without
 * resuming.  -errno: the migration failed (the stream broke, the
 * destination refused or died, a timeout, a change libgmem refused) and
 * @vm is as before it started: tracking removed, the world resumed if it
 * was stopped, nothing lost.  A destination that refused the VM (a
 * negative ACK) makes its errno the return.  -EBUSY if the regions changed meanwhile;
 * -EOPNOTSUPP for a native backend or a host without a sound tracker.
 */
int mig_send(struct gmem_vm *vm, int fd, const struct mig_send_opts *o,
	     struct mig_stats *st, char *msg, size_t msg_len);

struct mig_recv_opts {
	/*
	 * How the VM is built from the first IMAGE: as a snapshot restore
	 * builds it (base config, create callback; its regions' fds -1).
	 */
	struct snap_restore_opts restore;
	/* Each section's deadline: timeout_ms per started 16 MiB of it
	 * from when it is waited for (stream.h), so a source that goes
	 * quiet or trickles is refused; <= 0: forever. */
	int timeout_ms;
	/* Write content through the views (gmem_access()) even where the
	 * backing takes pwrite(): what a guest_memfd backing gets; tests
	 * use it to run that path on memfds. */
	bool through_views;
	/* The VMM's sections after the last round.  NULL: an unknown
	 * non-optional one is refused (-EPROTO). */
	int (*section)(void *data, uint32_t type, uint32_t flags,
		       const void *p, size_t len);
	/* After END, before the ACK, with @section_data: 0, or an error
	 * that refuses the migration (the source is told and runs on), e.g.
	 * a section the VMM needs never came.  NULL: none. */
	int (*before_ack)(void *data);
	void *section_data;
};

/*
 * Receive a VM from @fd.  0 and *out the VM (maps, content and holes
 * exactly the source's at its last round) after acknowledging it.  On
 * any failure no VM is left, the source is told (a negative ACK, best
 * effort) and @fd is shut down, so a source still sending fails at once:
 * -EBADMSG a damaged, truncated or inconsistent stream, -EINVAL not a
 * migration stream, -EPROTO a newer one, -ETIMEDOUT, or what creating or
 * changing the VM returned.
 */
int mig_receive(int fd, const struct mig_recv_opts *o, struct gmem_vm **out,
		char *msg, size_t msg_len);

#endif
