/* SPDX-License-Identifier: MIT */
/*
 * Inside gmvm's side of the DMA device process: the state that the
 * transport (dma_remote.c), the mapper ops (dma_remote_ops.c) and the
 * death monitor (dma_remote_monitor.c) share.  Nothing else includes this.
 *
 * Locking: c->lock serialises the socket (one request in flight), seq,
 * dead and why; it is a leaf for libgmem (ops are called under the
 * mapper's lock; DMA commands under the device register lock) except that
 * report() reads /proc/PID/maps under it.  The mirror has its own leaf
 * lock.  pid, pidfd, mem_* and base are written before the monitor starts
 * and read-only afterwards; reaped, ws and death_reported belong to the
 * monitor until it is joined, then to dma_remote_stop().
 */
#ifndef GMVM_DMA_REMOTE_INT_H
#define GMVM_DMA_REMOTE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dma_remote.h"

struct dma_remote {
	pthread_mutex_t lock;	/* sock, seq, dead, why, report_err */
	int sock;
	uint64_t seq;
	bool dead;
	char why[128];		/* why gmvm killed it, if it did */
	char report_err[256];	/* the first report() problem */

	pid_t pid;
	int pidfd;
	int stop_fd;		/* eventfd: stop the monitor */
	pthread_t monitor;
	bool monitor_running;
	void (*on_death)(void *arg);
	void *arg;

	uint64_t ram_size;
	uint64_t mem_offset;	/* the backing's file offset of IOVA 0 */
	uint64_t base;		/* the device's address of IOVA 0 */
	unsigned int mem_major, mem_minor;
	uint64_t mem_ino;

	struct swiommu mirror;
	uint64_t device_refused;	/* -EINVAL from the device for ops
					   the mirror accepted */

	bool reaped;
	int ws;			/* wait status, once reaped */
	bool death_reported;
};

/* dma_remote.c: the transport. */

/* Mark dead (saying @why, if gmvm decided it) and SIGKILL, c->lock held. */
void dma_remote_kill_locked(struct dma_remote *c, const char *why);
/*
 * One request and its ack, with c->lock held; @fd (if >= 0) rides along.
 * 0 with *ack filled, or -EPIPE: the device is dead (or now killed).
 */
int dma_remote_rpc(struct dma_remote *c, struct dmadev_msg *m, int fd,
		   struct dmadev_ack *ack);

/* dma_remote_monitor.c: death. */

/* How the process ended (once reaped), for a message. */
void dma_remote_describe_end(const struct dma_remote *c, char *buf,
			     size_t len);
/* Mark dead and reap (monitor, or dma_remote_stop() after the join). */
void dma_remote_reap(struct dma_remote *c);
/* Print the death line, once. */
void dma_remote_report_death(struct dma_remote *c);
/* The monitor thread: started by dma_remote_start(). */
void *dma_remote_monitor(void *arg);

#endif /* GMVM_DMA_REMOTE_INT_H */
