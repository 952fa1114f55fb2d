/* SPDX-License-Identifier: MIT */
/*
 * gmvm's side of the out-of-process DMA test device (--dmatest=external;
 * the protocol is in dma_protocol.h, the device in dma_process.c): the
 * transport, the DMA commands, and starting and stopping the process.
 * The mapper's ops are in dma_remote_ops.c, the death monitor in
 * dma_remote_monitor.c.
 *
 * gmvm starts the device with fork + exec of /proc/self/exe dma-device.
 * The child keeps only its socket end (at fd DMADEV_FD, everything above
 * it closed before exec; every fd gmvm opens is O_CLOEXEC as well) and
 * stdin/stdout/stderr, and dies with gmvm (PR_SET_PDEATHSIG).  HELLO
 * hands it the shared backing's fd and nothing else.
 *
 * Death: an op or command that finds the socket closed, times out
 * (DMADEV_ACK_TIMEOUT_MS) or gets a malformed ack marks the device dead and
 * kills it (SIGKILL through the pidfd: no pid reuse race).  A monitor
 * thread polls the pidfd; when the process ends it reaps it, prints one
 * line, and calls on_death (which destroys the mapper: never from inside a
 * mapper callback, since that takes libgmem's whole-RAM range lock).  Once
 * dead, ops succeed without doing anything (the mirror still follows the
 * mapper), DMA commands fail with GM_DMA_FAULT, and report() reports the
 * mirror, so audits stay consistent until the mapper is gone.
 *
 * Locking: see dma_remote_int.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../gmvm.h"
#include "dma_remote_int.h"

/* ---- transport ----------------------------------------------------------- */

void dma_remote_kill_locked(struct dma_remote *c, const char *why)
{
	if (why && !c->why[0])
		snprintf(c->why, sizeof(c->why), "%s", why);
	c->dead = true;
	if (!c->reaped)
		pidfd_send_signal(c->pidfd, SIGKILL, NULL, 0);
}

static uint64_t ms_left(uint64_t deadline)
{
	uint64_t now = now_ns();

	return now >= deadline ? 0 : (deadline - now + 999999) / 1000000;
}

int dma_remote_rpc(struct dma_remote *c, struct dmadev_msg *m, int fd,
		   struct dmadev_ack *ack)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	uint64_t deadline;
	ssize_t n;

	if (c->dead)
		return -EPIPE;
	m->seq = ++c->seq;
	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do {
		n = sendmsg(c->sock, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*m)) {
		dma_remote_kill_locked(c, NULL);	/* EPIPE: it is gone */
		return -EPIPE;
	}
	deadline = now_ns() + DMADEV_ACK_TIMEOUT_MS * 1000000ULL;
	for (;;) {
		struct pollfd p = { .fd = c->sock, .events = POLLIN };
		int r = poll(&p, 1, (int)ms_left(deadline));

		if (r < 0 && errno == EINTR)
			continue;	/* a vCPU kick */
		if (r == 0) {
			dma_remote_kill_locked(c, "it did not answer within 10 s");
			return -EPIPE;
		}
		if (r < 0) {
			dma_remote_kill_locked(c, "gmvm cannot poll its socket");
			return -EPIPE;
		}
		n = recv(c->sock, ack, sizeof(*ack), MSG_TRUNC | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		break;
	}
	if (n <= 0) {
		dma_remote_kill_locked(c, NULL);	/* EOF or reset: it died */
		return -EPIPE;
	}
	if (n != (ssize_t)sizeof(*ack) || ack->seq != m->seq ||
	    ack->type != m->type || ack->err > 0 || ack->err < -4095) {
		dma_remote_kill_locked(c, "it sent a malformed or unmatched reply");
		return -EPIPE;
	}
	return 0;
}

/* ---- DMA commands -------------------------------------------------------- */

int dma_remote_command(struct dma_remote *c, uint32_t cmd, uint64_t addr,
		       uint64_t len, uint8_t pattern, uint32_t *result)
{
	struct dmadev_msg m = {
		.type = DMADEV_DMA,
		.flags = cmd,
		.a = addr,
		.b = len,
		.c = pattern,
	};
	struct dmadev_ack ack;
	int status = GM_DMA_FAULT;

	pthread_mutex_lock(&c->lock);
	if (dma_remote_rpc(c, &m, -1, &ack) == 0) {
		if (ack.err || ack.v0 > GM_DMA_NO_RESOURCES || ack.v1 > UINT32_MAX) {
			dma_remote_kill_locked(c, "it sent a malformed DMA result");
		} else {
			status = (int)ack.v0;
			*result = (uint32_t)ack.v1;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return status;
}

/* ---- life and death ------------------------------------------------------ */

pid_t dma_remote_pid(const struct dma_remote *c)
{
	return c->pid;
}

bool dma_remote_died(struct dma_remote *c)
{
	bool dead;

	pthread_mutex_lock(&c->lock);
	dead = c->dead;
	pthread_mutex_unlock(&c->lock);
	return dead;
}

void dma_remote_get_stats(struct dma_remote *c, struct swiommu_stats *st,
			  uint64_t *device_refused)
{
	swiommu_get_stats(&c->mirror, st);
	pthread_mutex_lock(&c->lock);
	*device_refused = c->device_refused;
	pthread_mutex_unlock(&c->lock);
}

int dma_remote_check_empty(struct dma_remote *c)
{
	struct dmadev_msg m = { .type = DMADEV_STATE };
	struct dmadev_ack ack;
	int ret = 0;

	pthread_mutex_lock(&c->lock);
	if (dma_remote_rpc(c, &m, -1, &ack) == 0 && (ack.err || ack.v0)) {
		gmvm_err("DMA device process (pid %d): after the DMA mapper was destroyed it still holds %llu mappings (%s)",
			 (int)c->pid, (unsigned long long)ack.v0,
			 ack.err ? strerror(-ack.err) : "not unmapped");
		ret = -EUCLEAN;
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* Wait up to the ack timeout for the process to end, then kill it. */
static void end_process(struct dma_remote *c)
{
	struct pollfd p = { .fd = c->pidfd, .events = POLLIN };
	uint64_t deadline = now_ns() + DMADEV_ACK_TIMEOUT_MS * 1000000ULL;
	int r;

	do {
		r = poll(&p, 1, (int)ms_left(deadline));
	} while (r < 0 && errno == EINTR);
	if (r <= 0) {
		pthread_mutex_lock(&c->lock);
		dma_remote_kill_locked(c, "it did not exit within 10 s of being told to");
		pthread_mutex_unlock(&c->lock);
	}
	dma_remote_reap(c);
}

static void free_remote(struct dma_remote *c)
{
	if (c->sock >= 0)
		close(c->sock);
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	swiommu_destroy(&c->mirror);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int dma_remote_stop(struct dma_remote *c)
{
	struct dmadev_msg m = { .type = DMADEV_BYE };
	struct dmadev_ack ack;
	bool bye = false;
	char how[256];
	int ret = 0;

	if (!c)
		return 0;
	dma_remote_stop_monitor(c);
	if (c->pid > 0 && !c->reaped) {
		pthread_mutex_lock(&c->lock);
		bye = dma_remote_rpc(c, &m, -1, &ack) == 0 && !ack.err;
		pthread_mutex_unlock(&c->lock);
		/* EOF tells it to go even if BYE did not get through. */
		close(c->sock);
		c->sock = -1;
		end_process(c);
		if (bye && !(WIFEXITED(c->ws) && WEXITSTATUS(c->ws) == 0)) {
			dma_remote_describe_end(c, how, sizeof(how));
			gmvm_err("DMA device process (pid %d) did not exit cleanly after being told to stop: %s",
				 (int)c->pid, how);
			c->death_reported = true;
			ret = -EUCLEAN;
		} else if (!bye) {
			dma_remote_report_death(c);	/* it died before */
		}
	} else if (c->reaped) {
		dma_remote_report_death(c);
	}
	free_remote(c);
	return ret;
}

/*
 * The child: make the socket fd DMADEV_FD, close everything else but
 * stdio, die with gmvm, exec.  Only async-signal-safe calls.
 *
 * The device ignores SIGINT and SIGTERM: a ^C at the terminal, or a
 * SIGTERM to the whole process group, reaches it together with gmvm, and
 * gmvm answers those by stopping the VM, auditing (the device's mappings
 * included) and then telling the device to exit (BYE).  A device that died
 * first would turn that clean stop into a device death.  It still ends
 * with gmvm whatever happens to gmvm (PR_SET_PDEATHSIG, and EOF on its
 * socket), and SIGKILL still ends it.  SIGPIPE stays ignored, as gmvm run
 * has it (signals.c): the device never needs it.
 */
static void __attribute__((noreturn)) child(int sock, pid_t parent)
{
	char arg0[] = "gmvm", arg1[] = "dma-device";
	char *argv[] = { arg0, arg1, NULL };
	struct sigaction ign;
	sigset_t none;

	if (sock == DMADEV_FD) {
		if (fcntl(sock, F_SETFD, 0))
			_exit(127);
	} else if (dup2(sock, DMADEV_FD) != DMADEV_FD) {
		_exit(127);
	}
	if (close_range(DMADEV_FD + 1, ~0U, 0))
		_exit(127);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
		_exit(127);
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	if (sigaction(SIGINT, &ign, NULL) || sigaction(SIGTERM, &ign, NULL) ||
	    sigaction(SIGPIPE, &ign, NULL))
		_exit(127);
	/* gmvm's threads run with the stop signals blocked (signals.c). */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execv("/proc/self/exe", argv);
	_exit(127);
}

int dma_remote_start(int mem_fd, uint64_t mem_offset, uint64_t ram_size,
		     void (*on_death)(void *arg), void *arg,
		     struct dma_remote **out)
{
	struct dmadev_msg m = {
		.type = DMADEV_HELLO,
		.a = ram_size,
		.b = mem_offset,
	};
	struct dmadev_ack ack;
	pid_t parent = getpid();
	const char *step;
	struct dma_remote *c;
	struct stat st;
	int sv[2], ret;
	char how[256];

	c = calloc(1, sizeof(*c));
	if (!c) {
		gmvm_err("DMA device process: out of memory");
		return -ENOMEM;
	}
	c->sock = c->pidfd = c->stop_fd = -1;
	c->pid = -1;
	c->ram_size = ram_size;
	c->mem_offset = mem_offset;
	c->on_death = on_death;
	c->arg = arg;
	ret = -pthread_mutex_init(&c->lock, NULL);
	if (!ret)
		ret = swiommu_init(&c->mirror, ram_size);
	if (ret) {
		gmvm_err("DMA device process: %s", strerror(-ret));
		free(c);
		return ret;
	}

	step = "fstat of the shared backing";
	if (fstat(mem_fd, &st))
		goto err_errno;
	c->mem_major = major(st.st_dev);
	c->mem_minor = minor(st.st_dev);
	c->mem_ino = st.st_ino;
	step = "eventfd";
	c->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (c->stop_fd < 0)
		goto err_errno;
	step = "socketpair";
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		goto err_errno;
	c->sock = sv[0];
	step = "fork";
	c->pid = fork();
	if (c->pid == 0)
		child(sv[1], parent);
	close(sv[1]);
	if (c->pid < 0)
		goto err_errno;
	step = "pidfd_open";
	c->pidfd = pidfd_open(c->pid, 0);
	if (c->pidfd < 0) {
		ret = -errno;
		kill(c->pid, SIGKILL);
		goto err_child;
	}

	pthread_mutex_lock(&c->lock);
	ret = dma_remote_rpc(c, &m, mem_fd, &ack);
	if (!ret && (ack.err || !ack.v0 || ack.v0 % GMEM_PAGE_SIZE)) {
		ret = ack.err ? ack.err : -EPROTO;
		dma_remote_kill_locked(c, NULL);
	}
	pthread_mutex_unlock(&c->lock);
	if (ret) {
		step = "hello";
		goto err_child;
	}
	c->base = ack.v0;

	ret = -pthread_create(&c->monitor, NULL, dma_remote_monitor, c);
	if (ret) {
		step = "starting its monitor thread";
		pthread_mutex_lock(&c->lock);
		dma_remote_kill_locked(c, NULL);
		pthread_mutex_unlock(&c->lock);
		goto err_child;
	}
	c->monitor_running = true;
	*out = c;
	return 0;

err_errno:
	ret = -errno;
	gmvm_err("starting the DMA device process: %s: %s", step,
		 strerror(-ret));
	free_remote(c);
	return ret;
err_child:
	dma_remote_reap(c);
	if (ret == -EPIPE) {
		dma_remote_describe_end(c, how, sizeof(how));
		gmvm_err("starting the DMA device process (pid %d): %s before it answered %s",
			 (int)c->pid, how, step);
	} else {
		gmvm_err("starting the DMA device process (pid %d): %s: %s",
			 (int)c->pid, step, strerror(-ret));
	}
	free_remote(c);
	return ret;
}
