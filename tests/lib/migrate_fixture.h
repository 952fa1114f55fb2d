/* SPDX-License-Identifier: MIT */
/*
 * What the live migration tests share (test_migrate_roundtrip,
 * test_migrate_fail, test_migrate_refuse; vmm/migrate/ and
 * docs/MIGRATION.md are what they test), on top of the snapshot
 * fixture's VMs and files, without KVM:
 *  - a destination: mig_receive() in a thread on one end of a socketpair;
 *  - a guest's stand-in: writer threads writing patterns through the
 *    host views (gmem_access()), a thread converting and plugging
 *    through libgmem, a "device" writing the shared backing through its
 *    own mapping (as the DMA device process does), all of which the
 *    migration's stop()/resume() park and release;
 *  - the check that a destination is exactly its source (the source's
 *    snapshot verified against the destination, both audited).
 * Skips (77) where this host offers no dirty tracker.
 */
#ifndef GMEM_MIGRATE_FIXTURE_H
#define GMEM_MIGRATE_FIXTURE_H

#include <pthread.h>

#include "snapshot_fixture.h"
#include "migrate.h"
#include "stream.h"

/* snap_fixture_init(), and skip without a dirty tracker. */
void mig_fixture_init(const char *name);

/* ---- the destination ----------------------------------------------------- */

struct dest {
	pthread_t th;
	int fd;
	struct gmem_config base;
	struct creator c;
	struct mig_recv_opts o;
	struct gmem_vm *vm;
	int err;
	char msg[512];
};

/* Receive on @fd in a thread (the destination's own VM config: @flags). */
void dest_start(struct dest *d, int fd, uint32_t flags);
/* The same, but creating the VM fails with @err. */
void dest_start_refusing(struct dest *d, int fd, uint32_t flags, int err);
/* dest_start() with the stream's deadline @timeout_ms (else 20 s). */
void dest_start_timeout(struct dest *d, int fd, uint32_t flags,
			int timeout_ms);
/* Wait for it: its mig_receive()'s return. */
int dest_join(struct dest *d);

/* A connected pair: [0] the source's end, [1] the destination's. */
void sock_pair(int sv[2]);

/* ---- the guest's stand-in ---------------------------------------------- */

struct load {
	struct gmem_vm *vm;
	const struct model *m;
	bool convert;		/* the converter thread runs */
	bool device;		/* the device writes its range */
	unsigned int writers;
	uint64_t dev_gpa, dev_len;	/* shared, plugged, never converted */
	uint8_t *dev_map;
	/* per page: the last seed its writer wrote (writer i owns pages
	 * with index % writers == i; 0: never written) */
	uint32_t *last_seed;
	pthread_t th[8];
	unsigned int nth;
	int pause_req, parked, quit;
	uint64_t writes, changes;
	uint64_t seed;
};

/* Fill @vm with content and start the threads: @writers writers, the
 * converter if @convert, a device range if @device (written by a thread
 * if @device_thread, else only by the test through dev_map). */
void load_start(struct load *l, struct gmem_vm *vm, const struct model *m,
		unsigned int writers, bool convert, bool device,
		bool device_thread);
/* Park every thread (the migration's stop()) / release them (resume()). */
int load_stop(void *data);
void load_resume(void *data);
/* The device's range, for mig_send_opts.device_ranges. */
int load_device_ranges(void *data,
		       int (*fn)(void *arg, uint64_t gpa, uint64_t len),
		       void *arg);
/* End the threads (parked or not) and unmap the device. */
void load_end(struct load *l);
/* Every page a writer wrote holds its last pattern (no converter). */
void load_check_written(const struct load *l);

/* ---- checks ------------------------------------------------------------- */

/* @dst is exactly @src (maps, content, holes), both pass the audit. */
void check_same(struct gmem_vm *src, struct gmem_vm *dst,
		enum gmem_state initial);
/* Is @dst exactly @src?  0, or snap_mem_verify()'s -EUCLEAN and why. */
int compare_vms(struct gmem_vm *src, struct gmem_vm *dst,
		enum gmem_state initial, char *msg, size_t len);
/* Fail unless gmem_audit(@vm) passes. */
void check_audit(struct gmem_vm *vm, const char *who);
/* No page of @vm's views is still write-protected by userfaultfd
 * (pagemap bit 57): the tracking is gone. */
void check_untracked(struct gmem_vm *vm);

void pattern_fill(uint8_t *p, size_t len, uint32_t seed);

#endif
