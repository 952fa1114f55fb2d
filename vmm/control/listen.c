/* SPDX-License-Identifier: MIT */
/*
 * A listening unix socket at a path (listen.h): the control socket's and
 * `gmvm run --incoming`'s.  Mode 0600: the umask is set around bind(),
 * then the file is checked, and fixed with chmod() where a default ACL
 * won over the umask.  An existing path is replaced only if it is a
 * socket nobody listens on (a gmvm that died left it), never a file or a
 * live socket.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listen.h"

int ctl_set_why(char *why, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -err;
}

static int socket_addr(const char *path, struct sockaddr_un *sa,
		       char *why, size_t why_len)
{
	size_t n = strlen(path);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!n)
		return ctl_set_why(why, why_len, EINVAL, "the socket path is empty");
	if (n >= sizeof(sa->sun_path))
		return ctl_set_why(why, why_len, ENAMETOOLONG,
			       "too long for a unix socket path (%zu bytes, at most %zu)",
			       n, sizeof(sa->sun_path) - 1);
	memcpy(sa->sun_path, path, n);
	return 0;
}

/*
 * Make way for the socket: nothing there, or a stale socket (connect()
 * refused: nobody listens) removed.  Anything else stays and is refused.
 */
static int clear_path(const struct sockaddr_un *sa, char *why, size_t why_len)
{
	struct stat st;
	int fd, err;

	if (lstat(sa->sun_path, &st)) {
		if (errno == ENOENT)
			return 0;
		return ctl_set_why(why, why_len, errno, "cannot check it: %s",
			       strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		return ctl_set_why(why, why_len, EEXIST,
			       "exists and is not a socket; refusing to replace it");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ctl_set_why(why, why_len, errno, "socket: %s",
			       strerror(errno));
	err = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) ? errno : 0;
	close(fd);
	/* EAGAIN: a listener whose backlog is full is a listener. */
	if (!err || err == EAGAIN || err == EINPROGRESS)
		return ctl_set_why(why, why_len, EADDRINUSE,
			       "another process is listening on this socket (a gmvm running with it?)");
	if (err != ECONNREFUSED)
		return ctl_set_why(why, why_len, err,
			       "a socket that cannot be checked (connect: %s); refusing to replace it",
			       strerror(err));
	if (unlink(sa->sun_path) && errno != ENOENT)
		return ctl_set_why(why, why_len, errno,
			       "cannot remove the stale socket there: %s",
			       strerror(errno));
	return 0;
}

/* The socket file bind() made: ours, a socket, mode 0600. */
static int check_socket_file(struct ctl_listener *s, char *why, size_t why_len)
{
	struct stat st;

	if (lstat(s->path, &st))
		return ctl_set_why(why, why_len, errno,
			       "checking the socket after bind: %s",
			       strerror(errno));
	if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid())
		return ctl_set_why(why, why_len, EPERM,
			       "the path changed under bind(): not our socket");
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	if ((st.st_mode & 07777) == 0600)
		return 0;
	/* A default ACL on the directory takes precedence over the umask. */
	if (chmod(s->path, 0600) || lstat(s->path, &st) ||
	    st.st_ino != s->ino || (st.st_mode & 07777) != 0600)
		return ctl_set_why(why, why_len, EPERM,
			       "the socket's mode is %04o and cannot be made 0600",
			       (unsigned int)(st.st_mode & 07777));
	return 0;
}

int ctl_listen(struct ctl_listener *l, const char *path, int backlog,
	       char *why, size_t why_len)
{
	struct sockaddr_un sa;
	mode_t old;
	int ret;

	memset(l, 0, sizeof(*l));
	l->fd = -1;
	ret = socket_addr(path, &sa, why, why_len);
	if (ret)
		return ret;
	l->path = strdup(path);
	if (!l->path)
		return ctl_set_why(why, why_len, ENOMEM, "out of memory");
	ret = clear_path(&sa, why, why_len);
	if (ret)
		goto err;
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		ret = ctl_set_why(why, why_len, errno, "socket: %s",
				  strerror(errno));
		goto err;
	}
	old = umask(0177);
	ret = bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) ? errno : 0;
	umask(old);
	if (ret) {
		ret = ctl_set_why(why, why_len, ret, "bind: %s", strerror(ret));
		goto err;
	}
	ret = check_socket_file(l, why, why_len);
	if (ret)
		goto err;
	if (listen(l->fd, backlog)) {
		ret = ctl_set_why(why, why_len, errno, "listen: %s",
				  strerror(errno));
		goto err;
	}
	return 0;

err:
	ctl_listen_close(l);
	return ret;
}

void ctl_listen_close(struct ctl_listener *l)
{
	struct stat st;

	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	/* Only the socket created here: not what someone put there since. */
	if (l->ino && l->path && !lstat(l->path, &st) && st.st_dev == l->dev &&
	    st.st_ino == l->ino)
		unlink(l->path);
	l->ino = 0;
	free(l->path);
	l->path = NULL;
}
