/* SPDX-License-Identifier: MIT */
/*
 * The control socket's server: a unix stream socket at a path, one thread
 * that serves the protocol of proto.h to a bounded number of clients.  It
 * knows no command: the caller gives the table (gmvm's is commands.c;
 * tests give their own).
 */
#ifndef GMVM_CONTROL_SERVER_H
#define GMVM_CONTROL_SERVER_H

#include <stddef.h>
#include <sys/types.h>

#include "proto.h"

/* Clients served at once; one more is told so and closed. */
#define CTL_MAX_CLIENTS 16

struct ctl_server_config {
	const char *path;
	const struct ctl_command *cmds;
	size_t nr_cmds;
	void *ctx;			/* passed to every command */
	uid_t owner;			/* peers of this uid (and root) are
					   served, others refused */
	unsigned int max_clients;	/* 0: CTL_MAX_CLIENTS */
};

struct ctl_server;

/*
 * Create the socket at cfg->path, mode 0600, listening; nobody is served
 * before ctl_server_start().  Refuses to replace anything but a stale
 * socket (one nobody listens on).  0, or -errno with the reason in @why.
 * Sets and restores the umask: call it before other threads create files.
 */
int ctl_server_open(const struct ctl_server_config *cfg,
		    struct ctl_server **out, char *why, size_t why_len);

/* Start the server thread: 0 or -errno. */
int ctl_server_start(struct ctl_server *s);

/*
 * Stop the thread (it sends what replies it can without waiting), close
 * every connection and the socket, and remove the socket's file if it is
 * still the one created.  NULL is fine.
 */
void ctl_server_close(struct ctl_server *s);

#endif /* GMVM_CONTROL_SERVER_H */
