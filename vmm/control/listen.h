/* SPDX-License-Identifier: MIT */
/*
 * A listening unix socket at a path, made by the rules of the control
 * socket (docs/CONTROL.md): mode 0600, and an existing path replaced only
 * if it is a stale socket.  The control server (server.c) and `gmvm run
 * --incoming` (incoming.c) both listen this way.
 */
#ifndef GMVM_CONTROL_LISTEN_H
#define GMVM_CONTROL_LISTEN_H

#include <stddef.h>
#include <sys/types.h>

struct ctl_listener {
	int fd;			/* -1: none */
	char *path;
	dev_t dev;		/* the socket file bind() made */
	ino_t ino;		/* 0: none made (nothing to remove) */
};

/*
 * Listen on @path (backlog @backlog, the socket non-blocking and
 * close-on-exec).  0, or -errno with the reason in @why and nothing left.
 * Sets and restores the umask: call it before other threads create files.
 */
int ctl_listen(struct ctl_listener *l, const char *path, int backlog,
	       char *why, size_t why_len);

/* Close it and remove its file if it is still the one made.  Idempotent. */
void ctl_listen_close(struct ctl_listener *l);

/* vsnprintf() into @why and return -@err: the failures' one line. */
int ctl_set_why(char *why, size_t len, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif /* GMVM_CONTROL_LISTEN_H */
