/* SPDX-License-Identifier: MIT */
/*
 * The control protocol (docs/CONTROL.md) as pure functions, no socket:
 * framing a byte stream into request lines, checking a request against a
 * table of commands and calling the one it names, and building the reply
 * line.  The server (server.c) and the fuzzer drive these; gmvm's own
 * commands are in commands.c.
 */
#ifndef GMVM_CONTROL_PROTO_H
#define GMVM_CONTROL_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "json.h"

/* The longest request line, its newline included. */
#define CTL_MAX_LINE 4096

/* ---- framing ------------------------------------------------------------ */

/*
 * One connection's input: bytes go in at ctl_framer_room(), complete lines
 * come out of ctl_framer_next().  A line that has no newline within
 * CTL_MAX_LINE bytes is reported once (CTL_FRAME_TOO_LONG) and dropped up
 * to and including its newline, whenever that comes; the lines after it
 * are served as usual.
 */
struct ctl_framer {
	char buf[CTL_MAX_LINE];
	size_t len;		/* bytes in buf */
	size_t consumed;	/* of them, the line last returned */
	bool skipping;		/* dropping an oversized line */
};

enum ctl_frame {
	CTL_FRAME_NONE,		/* no complete line yet */
	CTL_FRAME_LINE,		/* a line (without its newline) */
	CTL_FRAME_TOO_LONG,	/* a line longer than CTL_MAX_LINE began */
};

/* Where the next bytes go and how many fit (never 0). */
char *ctl_framer_room(struct ctl_framer *f, size_t *room);
/* @n bytes were written at the room. */
void ctl_framer_filled(struct ctl_framer *f, size_t n);
/* The next line, valid until the next call on @f. */
enum ctl_frame ctl_framer_next(struct ctl_framer *f, const char **line,
			       size_t *len);
/* Are there bytes of a line that has not ended? */
bool ctl_framer_partial(const struct ctl_framer *f);

/* ---- replies ------------------------------------------------------------ */

/*
 * A reply is one JSON object on one line: {"ok": true, MEMBERS...} or
 * {"error": "REASON"}.  A command calls ctl_reply_ok() and adds members,
 * or calls ctl_reply_error() (which replaces anything added before).
 */
struct ctl_reply {
	struct ctl_buf b;
	bool error;
};

void ctl_reply_ok(struct ctl_reply *r);
void ctl_reply_bool(struct ctl_reply *r, const char *key, bool v);
void ctl_reply_string(struct ctl_reply *r, const char *key, const char *s);
/* @json: a JSON value gmvm made (not a peer), @len bytes. */
void ctl_reply_raw(struct ctl_reply *r, const char *key, const char *json,
		   size_t len);
void ctl_reply_error(struct ctl_reply *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * The reply as a line ending in '\n' (and its length), to send; an
 * allocation failure on the way gives a fixed error line.  Empties @r for
 * the next reply (the line stays valid until then).
 */
const char *ctl_reply_line(struct ctl_reply *r, size_t *len);
void ctl_reply_free(struct ctl_reply *r);

/* ---- commands ----------------------------------------------------------- */

/* An argument a command takes: a member of the request besides "cmd". */
struct ctl_arg {
	const char *name;
	enum ctl_json_type type;
	bool required;
};

#define CTL_MAX_ARGS 4

struct ctl_command {
	const char *name;
	struct ctl_arg args[CTL_MAX_ARGS];	/* up to the first NULL name */
	/*
	 * Fill @r.  @req holds only members of args[], of their types, and
	 * every required one.  Runs on the server's thread (a job: on a
	 * worker thread).
	 */
	void (*run)(void *ctx, const struct ctl_json_object *req,
		    struct ctl_reply *r);
	/*
	 * A long command (migrate): the server runs it on a worker thread
	 * of its own and goes on serving; until it has replied, every other
	 * request, from any client, is answered with a "busy" error and
	 * its own client's next requests wait.  So still one command at a
	 * time, and nobody is left without an answer meanwhile.
	 */
	bool job;
};

/*
 * One request line (without its newline): parse it, check it against
 * @cmds[@n], run the command it names with @ctx, or say why not in @r.
 */
void ctl_handle(const struct ctl_command *cmds, size_t n, void *ctx,
		const char *line, size_t len, struct ctl_reply *r);

/*
 * ctl_handle() in two steps, for a server that runs a command elsewhere:
 * ctl_prepare() parses and checks the line into @req (which the command
 * reads, so it must live until ctl_run() returns) and returns the command
 * it names, or NULL with the reason in @r; ctl_run() runs it.
 */
const struct ctl_command *ctl_prepare(const struct ctl_command *cmds, size_t n,
				      const char *line, size_t len,
				      struct ctl_json_object *req,
				      struct ctl_reply *r);
void ctl_run(const struct ctl_command *c, void *ctx,
	     const struct ctl_json_object *req, struct ctl_reply *r);

#endif /* GMVM_CONTROL_PROTO_H */
