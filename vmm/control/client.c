/* SPDX-License-Identifier: MIT */
/*
 * `gmvm ctl PATH COMMAND [ARGS...]`: the control socket's client.  It
 * turns the command line into one request (docs/CONTROL.md), sends it,
 * prints the one reply line on stdout and exits by what it says.
 *
 * Exit status: 0 a success reply, 1 an error reply, 2 a usage error,
 * 125 no reply at all (cannot connect, the connection broke, no reply
 * within REPLY_TIMEOUT_S, or a reply that is not one).  `gmvm run` and
 * `gmvm caps` say 125 for a bad command line too, because their 0..123
 * belong to the guest; here 125 already means "nothing was answered", so a
 * usage error has a status of its own, 2, as is usual.
 *
 * The client trusts the server no more than the server trusts it: the
 * server must run as this user or root (SO_PEERCRED), and its reply must
 * be one line of at most MAX_REPLY bytes that starts like a reply.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "../gmvm.h"
#include "json.h"

#define CTL_EXIT_OK 0
#define CTL_EXIT_ERROR_REPLY 1
#define CTL_EXIT_USAGE 2
#define CTL_EXIT_NO_REPLY GM_EXIT_HOST_ERROR

/* A pause waits up to 10 s for the vCPUs (commands.c): room for that. */
#define REPLY_TIMEOUT_S 30
/* A migration's reply comes when it is over: rounds of the whole guest. */
#define MIGRATE_REPLY_TIMEOUT_S 600
#define MAX_REPLY (1 << 20)

static const char usage_ctl[] =
	"usage: gmvm ctl PATH COMMAND [ARGS...]\n"
	"\n"
	"Send one request to the control socket PATH of a running\n"
	"`gmvm run --control PATH` and print its reply, one JSON line, on\n"
	"stdout (docs/CONTROL.md describes the protocol).\n"
	"\n"
	"commands:\n"
	"  stats                    the run's statistics so far, as --stats=json\n"
	"  pause                    stop every vCPU at an instruction boundary\n"
	"  resume                   let them run again\n"
	"  quit                     stop the VM as SIGTERM does (status 143,\n"
	"                           --stats and the final audit as usual)\n"
	"  snapshot FILE [--stop]   write the whole VM to the new file FILE\n"
	"                           (vCPUs paused meanwhile; `gmvm restore FILE`\n"
	"                           runs it on); --stop: then stop the VM as\n"
	"                           quit does (status 143)\n"
	"  migrate unix:SOCKET      move the VM live to `gmvm run --incoming\n"
	"                           unix:SOCKET` (docs/MIGRATION.md): on success\n"
	"                           {\"ok\": true, \"moved\": true, ...} and this VM\n"
	"                           exits 0; on failure an error reply and the VM\n"
	"                           runs on.  Meanwhile every other request\n"
	"                           is answered {\"error\": \"busy: ...\"}; the\n"
	"                           reply may take up to 600 s\n"
	"\n"
	"exit status:\n"
	"  0    the reply is a success: {\"ok\": true, ...}\n"
	"  1    the reply is an error: {\"error\": \"REASON\"}\n"
	"  2    usage error\n"
	"  125  no reply: cannot connect, the connection broke, or no reply\n"
	"       within 30 s (600 s for migrate; one line on stderr says which)\n";

/* The commands, and how their words become the request's members. */
static const struct {
	const char *name;
	const char *arg;	/* member of the one positional word, or NULL */
	const char *flag;	/* --FLAG: a true boolean member FLAG, or NULL */
	const char *syntax;
} ctl_cmds[] = {
	{ "stats", NULL, NULL, "stats" },
	{ "pause", NULL, NULL, "pause" },
	{ "resume", NULL, NULL, "resume" },
	{ "quit", NULL, NULL, "quit" },
	{ "snapshot", "path", "stop", "snapshot FILE [--stop]" },
	{ "migrate", "uri", NULL, "migrate unix:SOCKET" },
};

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gmvm_err("ctl: %s", msg);
	return CTL_EXIT_USAGE;
}

/* FILE as the server must read it: relative to this, the caller's, cwd. */
static int absolute(const char *path, char *buf, size_t size)
{
	size_t n;

	if (path[0] == '/')
		return snprintf(buf, size, "%s", path) < (int)size ? 0 : -1;
	if (!getcwd(buf, size))
		return -1;
	n = strlen(buf);
	return snprintf(buf + n, size - n, "/%s", path) < (int)(size - n) ?
	       0 : -1;
}

/* The request for @argv[0..argc) (COMMAND [ARGS...]) into @req. */
static int build_request(int argc, char **argv, struct ctl_buf *req)
{
	const char *arg = NULL, *name = argv[0];
	char path[PATH_MAX];
	bool flag = false;
	unsigned int k;
	int i;

	for (k = 0; k < ARRAY_SIZE(ctl_cmds); k++)
		if (!strcmp(ctl_cmds[k].name, name))
			break;
	if (k == ARRAY_SIZE(ctl_cmds))
		return usage("unknown command '%s' (commands: stats, pause, resume, quit, snapshot, migrate; see gmvm ctl --help)",
			     name);
	for (i = 1; i < argc; i++) {
		const char *w = argv[i];

		if (w[0] == '-' && w[1] == '-' && w[2]) {
			if (!ctl_cmds[k].flag || strcmp(w + 2, ctl_cmds[k].flag))
				return usage("%s: unknown option '%s' (usage: gmvm ctl PATH %s)",
					     name, w, ctl_cmds[k].syntax);
			flag = true;
		} else if (ctl_cmds[k].arg && !arg) {
			arg = w;
		} else {
			return usage("%s: unexpected argument '%s' (usage: gmvm ctl PATH %s)",
				     name, w, ctl_cmds[k].syntax);
		}
	}
	if (ctl_cmds[k].arg && (!arg || !arg[0]))
		return usage("%s: missing argument (usage: gmvm ctl PATH %s)",
			     name, ctl_cmds[k].syntax);
	if (arg && !strcmp(name, "migrate") &&
	    (strncmp(arg, "unix:", 5) || !arg[5]))
		return usage("migrate: '%s' is not unix:SOCKET", arg);
	if (arg && !strcmp(name, "snapshot")) {
		if (absolute(arg, path, sizeof(path)))
			return usage("snapshot: the path of '%s' is too long",
				     arg);
		arg = path;
	}
	if (arg && !ctl_json_utf8_valid(arg))
		return usage("%s: '%s' is not valid UTF-8 (requests are JSON text)",
			     name, arg);

	ctl_buf_puts(req, "{\"cmd\": ");
	ctl_json_put_string(req, name);
	if (arg) {
		ctl_buf_puts(req, ", ");
		ctl_json_put_string(req, ctl_cmds[k].arg);
		ctl_buf_puts(req, ": ");
		ctl_json_put_string(req, arg);
	}
	if (flag) {
		ctl_buf_puts(req, ", ");
		ctl_json_put_string(req, ctl_cmds[k].flag);
		ctl_buf_puts(req, ": true");
	}
	ctl_buf_puts(req, "}\n");
	if (req->oom) {
		gmvm_err("ctl: out of memory");
		return CTL_EXIT_NO_REPLY;
	}
	return 0;
}

static int no_reply(const char *path, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int no_reply(const char *path, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gmvm_err("ctl: %s: %s", path, msg);
	return CTL_EXIT_NO_REPLY;
}

/* Connected to a server of this user (or root): 0 and *@fd, or a status. */
static int ctl_connect(const char *path, int timeout_s, int *fd)
{
	struct timeval tv = { .tv_sec = timeout_s };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int s;

	if (!path[0] || strlen(path) >= sizeof(sa.sun_path))
		return usage("'%s' cannot be a unix socket path (1 to %zu bytes)",
			     path, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path));
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return no_reply(path, "socket: %s", strerror(errno));
	/* Bounds connect() (a full backlog), send() and recv(). */
	if (setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv))) {
		close(s);
		return no_reply(path, "setsockopt: %s", strerror(errno));
	}
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
		int err = errno;

		close(s);
		return no_reply(path, "cannot connect: %s%s", strerror(err),
				err == ENOENT || err == ECONNREFUSED ?
				" (is a gmvm running with --control here?)" :
				"");
	}
	if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &clen)) {
		close(s);
		return no_reply(path, "SO_PEERCRED: %s", strerror(errno));
	}
	if (cred.uid != geteuid() && cred.uid != 0) {
		close(s);
		return no_reply(path, "served by uid %u, neither this user nor root: nothing sent",
				(unsigned int)cred.uid);
	}
	*fd = s;
	return 0;
}

/* Send @req and read one line into @reply: 0 or a status. */
static int exchange(const char *path, int fd, int timeout_s,
		    const struct ctl_buf *req, struct ctl_buf *reply)
{
	size_t off = 0;
	int send_err = 0;
	char buf[4096];

	while (off < req->len) {
		ssize_t n = send(fd, req->p + off, req->len - off,
				 MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* A refusal may be waiting to be read: read on. */
			send_err = errno;
			break;
		}
		off += (size_t)n;
	}
	for (;;) {
		char *nl;
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return no_reply(path, "no reply within %d s",
					timeout_s);
		if (n <= 0 && send_err)
			return no_reply(path, "sending the request: %s",
					strerror(send_err));
		if (n < 0)
			return no_reply(path, "receiving the reply: %s",
					strerror(errno));
		if (n == 0)
			return no_reply(path, reply->len ?
					"the connection closed in the middle of the reply" :
					"the connection closed without a reply");
		nl = memchr(buf, '\n', (size_t)n);
		ctl_buf_add(reply, buf, nl ? (size_t)(nl - buf) + 1 : (size_t)n);
		if (reply->oom)
			return no_reply(path, "out of memory for the reply");
		if (nl)
			return 0;
		if (reply->len > MAX_REPLY)
			return no_reply(path, "the reply is longer than %d bytes",
					MAX_REPLY);
	}
}

int ctl_main(int argc, char **argv)
{
	struct ctl_buf req = { 0 }, reply = { 0 };
	const char *path;
	int fd = -1, ret, timeout_s;

	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(usage_ctl, stdout);
		return 0;
	}
	if (argc >= 3 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help"))) {
		fputs(usage_ctl, stdout);
		return 0;
	}
	if (argc < 3)
		return usage("%s (usage: gmvm ctl PATH COMMAND [ARGS...])",
			     argc < 2 ? "no control socket given" :
					"no command given");
	path = argv[1];
	ret = build_request(argc - 2, argv + 2, &req);
	if (ret)
		goto out;
	timeout_s = strcmp(argv[2], "migrate") ? REPLY_TIMEOUT_S :
						 MIGRATE_REPLY_TIMEOUT_S;
	ret = ctl_connect(path, timeout_s, &fd);
	if (ret)
		goto out;
	ret = exchange(path, fd, timeout_s, &req, &reply);
	if (ret)
		goto out;
	if (!strncmp(reply.p, "{\"ok\": true", 11)) {
		ret = CTL_EXIT_OK;
	} else if (!strncmp(reply.p, "{\"error\": \"", 11)) {
		ret = CTL_EXIT_ERROR_REPLY;
	} else {
		ret = no_reply(path, "the reply is not a control reply (it starts neither {\"ok\": true nor {\"error\": \"...)");
		goto out;
	}
	if (strlen(reply.p) != reply.len) {
		ret = no_reply(path, "the reply holds a NUL byte");
		goto out;
	}
	fputs(reply.p, stdout);
	if (fflush(stdout)) {
		gmvm_err("ctl: writing the reply: %s", strerror(errno));
		ret = CTL_EXIT_NO_REPLY;
	}
out:
	if (fd >= 0)
		close(fd);
	ctl_buf_free(&req);
	ctl_buf_free(&reply);
	return ret;
}
