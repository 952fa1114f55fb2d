/* SPDX-License-Identifier: MIT */
/*
 * The control socket's server (server.h): one thread, poll(), a bounded
 * number of clients, each with its own input framer and output buffer.
 *
 * Nothing a peer does can block the VM or another client:
 *  - every socket is non-blocking; the thread waits only in poll();
 *  - a client that sends nothing, or a byte at a time, only holds its slot
 *    (at most max_clients, then a newcomer is told so and closed);
 *  - a line without a newline within CTL_MAX_LINE bytes gets an error
 *    reply and is dropped (proto.c's framer); its memory is bounded;
 *  - a client that does not read its replies: its next request is not
 *    read until its reply is sent (one reply buffered per client), so its
 *    memory is bounded too and the others are served meanwhile;
 *  - requests of one client are answered in order, one line each.
 * Commands run on this thread, one at a time; a command that waits (a
 * pause waits for the vCPUs, bounded by commands.c) delays the other
 * clients' replies by that long, never the VM.  A command marked as a job
 * (ctl_command.job: migrate, which takes as long as the stream does) runs
 * on a worker thread instead; until it has replied, every other request
 * gets a "busy" error at once (after the usual checks: a malformed one is
 * still told so), its own client's next requests wait for its reply, and
 * closing the server waits for the job.  Still one command at a time.
 *
 * Security: the socket is created with mode 0600 (umask around bind(),
 * then checked, fixed with chmod() where a default ACL won over the umask);
 * an existing path is replaced only if it is a socket nobody listens on;
 * each accepted peer's credentials (SO_PEERCRED) must be the owner's uid
 * or root, others get one error line and are closed before anything they
 * send is read.
 *
 * Threads and locks: the server has no lock.  Its clients, buffers and the
 * listening socket belong to its thread; the config is read-only; the
 * thread that closes the server only writes the wake eventfd and joins.
 * A job's worker reads job.req and fills job.reply, which the server
 * thread leaves alone from pthread_create() until it has joined the
 * worker (after the worker wrote job.done_fd).
 * The server holds nothing while a command runs, so the commands' own
 * locks (commands.c: gate_lock through pause.c, stop_lock through
 * vm_stop()) keep the order gmvm.h gives, and no vCPU thread ever waits
 * for the server except while the VM is paused, which only a resume, a
 * stop, or a failed pause (commands.c) ends.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../gmvm.h"
#include "listen.h"
#include "server.h"

/* After an accept() failure such as EMFILE: try again this much later. */
#define ACCEPT_BACKOFF_MS 100
/* Connections accepted per round, so that clients are served meanwhile. */
#define ACCEPT_BATCH 16

struct client {
	int fd;			/* -1: a free slot */
	bool eof;		/* the peer sent its last byte */
	bool waiting;		/* for its job's reply: not polled */
	struct ctl_framer in;
	struct ctl_buf out;	/* the reply being sent */
	size_t out_off;		/* of it, sent */
};

struct ctl_server {
	struct ctl_server_config cfg;
	char *path;
	struct ctl_listener lis;	/* the socket and its file */
	int listen_fd;
	int wake_fd;
	pthread_t thread;
	bool started;
	uint64_t accept_again;	/* ns: 0, or when to accept again */
	struct ctl_reply reply;
	struct ctl_json_object *req;	/* the request being checked */
	struct client *clients;
	struct pollfd *pfd;	/* wake, listen, job, then a client each */
	unsigned int *map;	/* pfd index -> client */
	struct {
		bool running;
		struct client *c;		/* whose request it is */
		const struct ctl_command *cmd;
		struct ctl_json_object *req;	/* the worker's */
		struct ctl_reply reply;		/* the worker's */
		pthread_t thread;
		int done_fd;			/* the worker's last word */
	} job;
};

/* pfd[]: the wake eventfd, the listening socket, the job's done_fd. */
#define PFD_FIXED 3

int ctl_server_open(const struct ctl_server_config *cfg,
		    struct ctl_server **out, char *why, size_t why_len)
{
	struct ctl_server *s;
	unsigned int i;
	int ret;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return ctl_set_why(why, why_len, ENOMEM, "out of memory");
	s->cfg = *cfg;
	if (!s->cfg.max_clients)
		s->cfg.max_clients = CTL_MAX_CLIENTS;
	s->listen_fd = -1;
	s->lis.fd = -1;
	s->wake_fd = -1;
	s->job.done_fd = -1;
	s->path = strdup(cfg->path);
	s->clients = calloc(s->cfg.max_clients, sizeof(*s->clients));
	s->pfd = calloc(s->cfg.max_clients + PFD_FIXED, sizeof(*s->pfd));
	s->map = calloc(s->cfg.max_clients + PFD_FIXED, sizeof(*s->map));
	s->req = malloc(sizeof(*s->req));
	s->job.req = malloc(sizeof(*s->job.req));
	if (!s->path || !s->clients || !s->pfd || !s->map || !s->req ||
	    !s->job.req) {
		ret = ctl_set_why(why, why_len, ENOMEM, "out of memory");
		goto err;
	}
	for (i = 0; i < s->cfg.max_clients; i++)
		s->clients[i].fd = -1;
	s->cfg.path = s->path;

	ret = ctl_listen(&s->lis, cfg->path, (int)s->cfg.max_clients, why,
			 why_len);
	if (ret)
		goto err;
	s->listen_fd = s->lis.fd;
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->job.done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0 || s->job.done_fd < 0) {
		ret = ctl_set_why(why, why_len, errno, "eventfd: %s",
			      strerror(errno));
		goto err;
	}
	*out = s;
	return 0;

err:
	ctl_server_close(s);
	return ret;
}

/* ---- the server thread -------------------------------------------------- */

static bool output_pending(const struct client *c)
{
	return c->out_off < c->out.len;
}

/* Send what the socket takes now: 0, or -1 if the connection is gone. */
static int client_flush(struct client *c)
{
	while (output_pending(c)) {
		ssize_t n = send(c->fd, c->out.p + c->out_off,
				 c->out.len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		c->out_off += (size_t)n;
	}
	c->out.len = 0;
	c->out_off = 0;
	return 0;
}

static int client_send(struct client *c, struct ctl_reply *r)
{
	size_t len;
	const char *line = ctl_reply_line(r, &len);

	ctl_buf_add(&c->out, line, len);
	if (c->out.oom) {
		/* No room for the reply: the client cannot be answered. */
		return -1;
	}
	return client_flush(c);
}

static void *job_main(void *arg)
{
	struct ctl_server *s = arg;

	ctl_run(s->job.cmd, s->cfg.ctx, s->job.req, &s->job.reply);
	/* Adding 1 to an eventfd read back to 0 cannot fail. */
	eventfd_write(s->job.done_fd, 1);
	return NULL;
}

/* Run @cmd, whose request is in s->req, as @c's job: 0 or -errno. */
static int job_start(struct ctl_server *s, struct client *c,
		     const struct ctl_command *cmd)
{
	struct ctl_json_object *req = s->job.req;
	int ret;

	/* The checked request becomes the worker's, the spare ours. */
	s->job.req = s->req;
	s->req = req;
	s->job.cmd = cmd;
	ret = pthread_create(&s->job.thread, NULL, job_main, s);
	if (ret)
		return -ret;
	s->job.running = true;
	s->job.c = c;
	c->waiting = true;
	return 0;
}

/*
 * One request line: its reply into s->reply, or false when it started a
 * job (the reply comes when the job ends).
 */
static bool handle_line(struct ctl_server *s, struct client *c,
			const char *line, size_t len)
{
	const struct ctl_command *cmd;
	int ret;

	cmd = ctl_prepare(s->cfg.cmds, s->cfg.nr_cmds, line, len, s->req,
			  &s->reply);
	if (!cmd)
		return true;
	if (s->job.running) {
		ctl_reply_error(&s->reply,
				"busy: %s is running (commands run one at a time); %s was not run: send it again once %s has replied",
				s->job.cmd->name, cmd->name, s->job.cmd->name);
		return true;
	}
	if (!cmd->job) {
		ctl_run(cmd, s->cfg.ctx, s->req, &s->reply);
		return true;
	}
	ret = job_start(s, c, cmd);
	if (!ret)
		return false;
	ctl_reply_error(&s->reply, "%s: cannot start it: %s", cmd->name,
			strerror(-ret));
	return true;
}

/* Answer the complete lines received, while replies go out at once. */
static int client_serve(struct ctl_server *s, struct client *c)
{
	const char *line;
	size_t len;

	while (!output_pending(c) && !c->waiting) {
		switch (ctl_framer_next(&c->in, &line, &len)) {
		case CTL_FRAME_NONE:
			return 0;
		case CTL_FRAME_TOO_LONG:
			ctl_reply_error(&s->reply,
					"request too long: no newline within %d bytes (the line is dropped up to its newline)",
					CTL_MAX_LINE);
			break;
		case CTL_FRAME_LINE:
			if (!handle_line(s, c, line, len))
				return 0;
			break;
		}
		if (client_send(c, &s->reply))
			return -1;
	}
	return 0;
}

/* One recv(): 0, or -1 if the connection is gone or broken. */
static int client_read(struct client *c)
{
	size_t room;
	char *p = ctl_framer_room(&c->in, &room);
	ssize_t n;

	do
		n = recv(c->fd, p, room, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	if (n == 0)
		c->eof = true;
	else
		ctl_framer_filled(&c->in, (size_t)n);
	return 0;
}

static void client_close(struct client *c)
{
	close(c->fd);
	c->fd = -1;
	c->eof = false;
	c->waiting = false;
	c->out.len = 0;
	c->out.oom = false;	/* the slot's next client starts afresh */
	c->out_off = 0;
	memset(&c->in, 0, sizeof(c->in));
}

/*
 * After poll() said @revents: read, answer, send.  Closed when the
 * connection breaks, or at the peer's EOF once every complete line it
 * sent is answered (a line it cut short is dropped); one waiting for its
 * job's reply stays until job_end() has sent it.
 */
static void client_event(struct ctl_server *s, struct client *c, short revents)
{
	if ((revents & POLLOUT && client_flush(c)) ||
	    (revents & (POLLIN | POLLHUP | POLLERR) && !output_pending(c) &&
	     !c->eof && client_read(c)) ||
	    client_serve(s, c) ||
	    (c->eof && !output_pending(c) && !c->waiting))
		client_close(c);
}

/*
 * The job's worker is done (or about to be: the server is closing): join
 * it, send its reply, and, unless @closing, serve what its client sent
 * meanwhile (which may start its next job: a closing server must not).
 */
static void job_end(struct ctl_server *s, bool closing)
{
	struct client *c = s->job.c;
	eventfd_t v;

	pthread_join(s->job.thread, NULL);
	/* Empty the eventfd for the next job: the worker wrote it before it
	 * returned, so it holds 1. */
	(void)eventfd_read(s->job.done_fd, &v);
	s->job.running = false;
	s->job.c = NULL;
	c->waiting = false;
	if (client_send(c, &s->job.reply) ||
	    (!closing && client_serve(s, c)) ||
	    (c->eof && !output_pending(c) && !c->waiting))
		client_close(c);
}

/* One error line, without waiting, then close: a refused connection. */
static void refuse(struct ctl_server *s, int fd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void refuse(struct ctl_server *s, int fd, const char *fmt, ...)
{
	const char *line;
	char msg[256];
	va_list ap;
	size_t len;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctl_reply_error(&s->reply, "%s", msg);
	line = ctl_reply_line(&s->reply, &len);
	/* A fresh socket's buffer takes a short line whole. */
	if (send(fd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* The peer is gone already: nothing to tell it. */
	}
	close(fd);
}

static void accept_clients(struct ctl_server *s)
{
	unsigned int k, i;

	for (k = 0; k < ACCEPT_BATCH; k++) {
		struct ucred cred;
		socklen_t clen = sizeof(cred);
		int fd;

		fd = accept4(s->listen_fd, NULL, NULL,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				s->accept_again = now_ns() +
						  ACCEPT_BACKOFF_MS * 1000000ULL;
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen)) {
			close(fd);
			continue;
		}
		if (cred.uid != s->cfg.owner && cred.uid != 0) {
			refuse(s, fd, "permission denied: uid %u may not use this control socket (only its owner and root may)",
			       (unsigned int)cred.uid);
			continue;
		}
		for (i = 0; i < s->cfg.max_clients; i++)
			if (s->clients[i].fd < 0)
				break;
		if (i == s->cfg.max_clients) {
			refuse(s, fd, "too many clients: this control socket serves at most %u at once",
			       s->cfg.max_clients);
			continue;
		}
		s->clients[i].fd = fd;
	}
}

static void *server_thread(void *arg)
{
	struct ctl_server *s = arg;
	unsigned int i;

	for (;;) {
		struct pollfd *pfd = s->pfd;
		unsigned int n = 0;
		int timeout = -1, r;

		pfd[n++] = (struct pollfd){ .fd = s->wake_fd, .events = POLLIN };
		if (s->accept_again) {
			uint64_t now = now_ns();

			if (now >= s->accept_again)
				s->accept_again = 0;
			else
				timeout = (int)((s->accept_again - now) /
						1000000ULL) + 1;
		}
		pfd[n++] = (struct pollfd){
			.fd = s->accept_again ? -1 : s->listen_fd,
			.events = POLLIN,
		};
		pfd[n++] = (struct pollfd){
			.fd = s->job.running ? s->job.done_fd : -1,
			.events = POLLIN,
		};
		for (i = 0; i < s->cfg.max_clients; i++) {
			struct client *c = &s->clients[i];

			/* A waiting client's hang-up is found when its
			 * reply is sent; polling it would spin on POLLHUP. */
			if (c->fd < 0 || c->waiting)
				continue;
			s->map[n] = i;
			pfd[n++] = (struct pollfd){
				.fd = c->fd,
				.events = output_pending(c) ? POLLOUT :
					  c->eof ? 0 : POLLIN,
			};
		}
		r = poll(pfd, n, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			gmvm_err("control socket %s: poll: %s; it answers no more requests",
				 s->path, strerror(errno));
			break;
		}
		if (pfd[0].revents)
			break;
		/* The job's end first: a request that came in the same round
		 * runs, rather than being told busy. */
		if (pfd[2].revents)
			job_end(s, false);
		for (i = PFD_FIXED; i < n; i++)
			if (pfd[i].revents && s->clients[s->map[i]].fd >= 0)
				client_event(s, &s->clients[s->map[i]],
					     pfd[i].revents);
		if (pfd[1].revents)
			accept_clients(s);
	}
	/* Stopping: a job is waited for (its reply goes out like the rest);
	 * replies that fit go out, the rest is lost. */
	if (s->job.running)
		job_end(s, true);
	for (i = 0; i < s->cfg.max_clients; i++) {
		if (s->clients[i].fd < 0)
			continue;
		client_flush(&s->clients[i]);
		client_close(&s->clients[i]);
	}
	return NULL;
}

int ctl_server_start(struct ctl_server *s)
{
	int ret = pthread_create(&s->thread, NULL, server_thread, s);

	if (ret)
		return -ret;
	s->started = true;
	return 0;
}

void ctl_server_close(struct ctl_server *s)
{
	unsigned int i;

	if (!s)
		return;
	if (s->started) {
		/* Adding 1 to a fresh eventfd cannot fail. */
		eventfd_write(s->wake_fd, 1);
		pthread_join(s->thread, NULL);
	}
	ctl_listen_close(&s->lis);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	if (s->job.done_fd >= 0)
		close(s->job.done_fd);
	for (i = 0; s->clients && i < s->cfg.max_clients; i++) {
		if (s->clients[i].fd >= 0)
			close(s->clients[i].fd);
		ctl_buf_free(&s->clients[i].out);
	}
	ctl_reply_free(&s->reply);
	ctl_reply_free(&s->job.reply);
	free(s->req);
	free(s->job.req);
	free(s->clients);
	free(s->pfd);
	free(s->map);
	free(s->path);
	free(s);
}
