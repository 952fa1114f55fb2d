/* SPDX-License-Identifier: MIT */
/*
 * The death monitor of the DMA device process: a thread that polls the
 * process's pidfd (and an eventfd that stops it).  When the process ends
 * it reaps it, prints one line, and calls on_death, which destroys the
 * mapper: that happens here and never from inside a mapper callback,
 * since destroying the mapper takes libgmem's whole-RAM range lock.
 *
 * reaped, ws and death_reported belong to the monitor until it is joined
 * (dma_remote_stop_monitor()), then to dma_remote_stop().
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../gmvm.h"
#include "dma_remote_int.h"

void dma_remote_describe_end(const struct dma_remote *c, char *buf,
			     size_t len)
{
	int ws = c->ws;

	if (WIFSIGNALED(ws))
		snprintf(buf, len, "killed by signal %d%s%s", WTERMSIG(ws),
			 c->why[0] ? " by gmvm: " : "", c->why);
	else if (WIFEXITED(ws))
		snprintf(buf, len, "exited with status %d%s%s",
			 WEXITSTATUS(ws), c->why[0] ? "; " : "", c->why);
	else
		snprintf(buf, len, "ended with wait status %#x", ws);
}

void dma_remote_reap(struct dma_remote *c)
{
	int ws = 0;

	pthread_mutex_lock(&c->lock);
	c->dead = true;
	pthread_mutex_unlock(&c->lock);
	while (waitpid(c->pid, &ws, 0) < 0 && errno == EINTR)
		;
	c->ws = ws;
	c->reaped = true;
}

void dma_remote_report_death(struct dma_remote *c)
{
	char how[256];

	if (c->death_reported)
		return;
	c->death_reported = true;
	pthread_mutex_lock(&c->lock);
	dma_remote_describe_end(c, how, sizeof(how));
	pthread_mutex_unlock(&c->lock);
	gmvm_err("DMA device process (pid %d) died (%s); its DMA mappings are dropped and DMA commands now fail with status 1",
		 (int)c->pid, how);
}

void *dma_remote_monitor(void *arg)
{
	struct dma_remote *c = arg;
	struct pollfd p[2] = {
		{ .fd = c->pidfd, .events = POLLIN },
		{ .fd = c->stop_fd, .events = POLLIN },
	};

	for (;;) {
		int r = poll(p, 2, -1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || p[1].revents)
			return NULL;
		if (p[0].revents)
			break;
	}
	dma_remote_reap(c);
	dma_remote_report_death(c);
	if (c->on_death)
		c->on_death(c->arg);
	return NULL;
}

void dma_remote_stop_monitor(struct dma_remote *c)
{
	uint64_t one = 1;

	if (!c->monitor_running)
		return;
	/* An eventfd write of 1 cannot fail (no overflow, no signal). */
	(void)!write(c->stop_fd, &one, sizeof(one));
	pthread_join(c->monitor, NULL);
	c->monitor_running = false;
}
