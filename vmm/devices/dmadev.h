/* SPDX-License-Identifier: MIT */
/*
 * The out-of-process DMA test device (--dmatest=external): the protocol
 * between gmvm and the device process, gmvm's side of it (dmadev.c) and
 * the device process itself (dmadev_proc.c, `gmvm dma-device`).
 *
 * Transport: one AF_UNIX SOCK_SEQPACKET socketpair.  The device process
 * holds only its end (as fd DMADEV_FD) and stdin/stdout/stderr: no
 * guest_memfd, no /dev/kvm, no VM fd.  Every message is one struct
 * dmadev_msg and gets exactly one struct dmadev_ack with the same type and
 * seq, in order; gmvm sends the next message only after the ack (10 s at
 * most, then the device is killed).
 *
 *   HELLO  a = ram_size, b = the file offset of IOVA 0 (page aligned), with
 *          the shared backing's fd (SCM_RIGHTS); the device reserves
 *          ram_size bytes PROT_NONE and answers v0 = the reservation's
 *          address (IOVA x is mapped at v0 + x, from file offset b + x)
 *   MAP    a = iova, b = len: mmap the backing at [iova, iova + len)
 *   UNMAP  a = iova, b = len, flags: put the PROT_NONE placeholder back
 *   CUT    a = m_iova, b = m_len, c = iova, d = len, flags: placeholder
 *          over [iova, iova + len), inside the mapping [m_iova, +m_len)
 *   MERGE  a = iova, b = len: one mmap over the tiling mappings
 *   DMA    flags = CMD (FILL, CHECKSUM, PIN, UNPIN), a = addr, b = len,
 *          c = pattern; v0 = STATUS, v1 = RESULT
 *   STATE  v0 = mappings, v1 = pins
 *   BYE    the device answers, unmaps everything and exits 0
 *
 * err is 0 or -errno: -EINVAL a request a correct mapper never makes (the
 * device's table is a strict swiommu), -EAGAIN an UNMAP/CUT without
 * GMEM_DISCARD_FORCED of a pinned range (v0 = its first pinned page), -EBADMSG/-EPROTO a malformed or
 * out-of-order message, or the -errno of a failed mmap.  The device
 * validates everything it receives and answers a bad message with an
 * error, never by crashing.
 */
#ifndef GMVM_DMADEV_H
#define GMVM_DMADEV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <gmem/gmem.h>

#include "swiommu.h"

#define DMADEV_FD 3			/* the device's socket */
#define DMADEV_ACK_TIMEOUT_MS 10000	/* then gmvm kills the device */

enum dmadev_type {
	DMADEV_HELLO = 1,
	DMADEV_MAP = 2,
	DMADEV_UNMAP = 3,
	DMADEV_CUT = 4,
	DMADEV_MERGE = 5,
	DMADEV_DMA = 6,
	DMADEV_STATE = 7,
	DMADEV_BYE = 8,
};

struct dmadev_msg {
	uint32_t type;
	uint32_t flags;
	uint64_t seq;
	uint64_t a, b, c, d;
};

struct dmadev_ack {
	uint32_t type;
	int32_t err;
	uint64_t seq;
	uint64_t v0, v1;
};

_Static_assert(sizeof(struct dmadev_msg) == 48, "dmadev_msg");
_Static_assert(sizeof(struct dmadev_ack) == 32, "dmadev_ack");

/* ---- gmvm's side (dmadev.c) ---------------------------------------------- */

struct dmadev;

/*
 * Start the device process on the shared backing @mem_fd, whose bytes
 * from @mem_offset on hold guest RAM [0, ram_size) (fork + exec of
 * /proc/self/exe dma-device) and say hello.  @on_death(@arg) is called
 * once, from the monitor thread, after the death line was printed, if the
 * process dies before dmadev_stop().  Prints its own error.
 */
int dmadev_start(int mem_fd, uint64_t mem_offset, uint64_t ram_size,
		 void (*on_death)(void *arg), void *arg, struct dmadev **out);

/* The mapper's backend: data is the struct dmadev. */
extern const struct gmem_dma_ops dmadev_dma_ops;

/*
 * Run a DMA command (already validated) in the device: its STATUS
 * (GM_DMA_*), and *@result for CHECKSUM.  GM_DMA_FAULT once it is dead.
 */
int dmadev_command(struct dmadev *c, uint32_t cmd, uint64_t addr,
		   uint64_t len, uint8_t pattern, uint32_t *result);

pid_t dmadev_pid(const struct dmadev *c);
bool dmadev_died(struct dmadev *c);

/* gmvm's mirror of what the device was told (its violation counters). */
void dmadev_get_stats(struct dmadev *c, struct swiommu_stats *st,
		      uint64_t *device_refused);

/*
 * Stop watching for death (an on_death in progress completes first).
 * Call before tearing down the mapper, so that no death handler runs
 * concurrently with it.
 */
void dmadev_stop_monitor(struct dmadev *c);

/*
 * At teardown, after the mapper is gone: 0 if the device (if alive) holds
 * no mapping, -EUCLEAN with a message printed otherwise.
 */
int dmadev_check_empty(struct dmadev *c);

/*
 * Tell the device to exit and reap it (killing it if it does not exit
 * within the timeout), then free everything.  -EUCLEAN (message printed)
 * if a live device did not exit cleanly.
 */
int dmadev_stop(struct dmadev *c);

/* ---- the device process (dmadev_proc.c) ------------------------------- */

/* `gmvm dma-device`: internal, started by gmvm itself. */
int dmadev_main(int argc, char **argv);

#endif /* GMVM_DMADEV_H */
