/* SPDX-License-Identifier: MIT */
/*
 * gmvm's side of the out-of-process DMA test device (--dmatest=external):
 * start the device process, forward the DMA mapper's ops and the guest's
 * DMA commands to it (dma_protocol.h), notice its death, stop it.
 *
 *   dma_remote.c          the transport (one request, one ack), DMA
 *                         commands, start and stop of the process
 *   dma_remote_ops.c      the mapper's backend ops, checked against a
 *                         mirror, and report() from /proc/PID/maps
 *   dma_remote_monitor.c  the death monitor
 *
 * The struct and the functions the three share are in dma_remote_int.h.
 */
#ifndef GMVM_DMA_REMOTE_H
#define GMVM_DMA_REMOTE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <gmem/gmem.h>

#include "dma_protocol.h"
#include "swiommu.h"

struct dma_remote;

/*
 * Start the device process on the shared backing @mem_fd, whose bytes
 * from @mem_offset on hold guest RAM [0, ram_size), GPA g at @mem_offset +
 * g, @ram_size being the top of RAM (holes included) (fork + exec of
 * /proc/self/exe dma-device) and say hello.  @on_death(@arg) is called
 * once, from the monitor thread, after the death line was printed, if the
 * process dies before dma_remote_stop().  Prints its own error.
 */
int dma_remote_start(int mem_fd, uint64_t mem_offset, uint64_t ram_size,
		     void (*on_death)(void *arg), void *arg,
		     struct dma_remote **out);

/* The mapper's backend: data is the struct dma_remote. */
extern const struct gmem_dma_ops dma_remote_ops;

/*
 * Run a DMA command (already validated) in the device: its STATUS
 * (GM_DMA_*), and *@result for CHECKSUM.  GM_DMA_FAULT once it is dead.
 */
int dma_remote_command(struct dma_remote *c, uint32_t cmd, uint64_t addr,
		       uint64_t len, uint8_t pattern, uint32_t *result);

pid_t dma_remote_pid(const struct dma_remote *c);
bool dma_remote_died(struct dma_remote *c);

/* gmvm's mirror of what the device was told (its violation counters). */
void dma_remote_get_stats(struct dma_remote *c, struct swiommu_stats *st,
			  uint64_t *device_refused);

/*
 * Stop watching for death (an on_death in progress completes first).
 * Call before tearing down the mapper, so that no death handler runs
 * concurrently with it.
 */
void dma_remote_stop_monitor(struct dma_remote *c);

/*
 * At teardown, after the mapper is gone: 0 if the device (if alive) holds
 * no mapping, -EUCLEAN with a message printed otherwise.
 */
int dma_remote_check_empty(struct dma_remote *c);

/*
 * Tell the device to exit and reap it (killing it if it does not exit
 * within the timeout), then free everything.  -EUCLEAN (message printed)
 * if a live device did not exit cleanly.
 */
int dma_remote_stop(struct dma_remote *c);

#endif /* GMVM_DMA_REMOTE_H */
