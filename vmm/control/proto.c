/* SPDX-License-Identifier: MIT */
/*
 * The control protocol without the socket: framing, request checking and
 * dispatch, replies (proto.h; docs/CONTROL.md is the contract).
 *
 * Everything here works on bytes a socket peer sent, so it never trusts a
 * length or a name: lines are bounded by CTL_MAX_LINE, requests go through
 * the strict parser (json.c), a command sees only the members it declared,
 * of the types it declared, and every name echoed in a reason is clipped.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"

/* ---- framing ------------------------------------------------------------ */

/* Drop the line last returned. */
static void framer_compact(struct ctl_framer *f)
{
	if (!f->consumed)
		return;
	f->len -= f->consumed;
	memmove(f->buf, f->buf + f->consumed, f->len);
	f->consumed = 0;
}

char *ctl_framer_room(struct ctl_framer *f, size_t *room)
{
	framer_compact(f);
	/* A full buffer without a newline was turned into TOO_LONG by
	 * ctl_framer_next(), which emptied it: there is always room. */
	*room = sizeof(f->buf) - f->len;
	return f->buf + f->len;
}

void ctl_framer_filled(struct ctl_framer *f, size_t n)
{
	f->len += n;
}

enum ctl_frame ctl_framer_next(struct ctl_framer *f, const char **line,
			       size_t *len)
{
	char *nl;

	framer_compact(f);
	for (;;) {
		nl = memchr(f->buf, '\n', f->len);
		if (!nl)
			break;
		if (f->skipping) {
			/* The end of an oversized line: drop it. */
			f->consumed = (size_t)(nl - f->buf) + 1;
			f->skipping = false;
			framer_compact(f);
			continue;
		}
		*line = f->buf;
		*len = (size_t)(nl - f->buf);
		f->consumed = *len + 1;
		return CTL_FRAME_LINE;
	}
	if (f->skipping) {
		f->len = 0;
		return CTL_FRAME_NONE;
	}
	if (f->len == sizeof(f->buf)) {
		f->len = 0;
		f->skipping = true;
		return CTL_FRAME_TOO_LONG;
	}
	return CTL_FRAME_NONE;
}

bool ctl_framer_partial(const struct ctl_framer *f)
{
	return f->skipping || f->len > f->consumed;
}

/* ---- replies ------------------------------------------------------------ */

/* Start a reply of either kind: nothing of an earlier one is kept. */
static void reply_reset(struct ctl_reply *r, bool error)
{
	r->b.len = 0;
	r->b.oom = false;
	r->error = error;
}

static void reply_key(struct ctl_reply *r, const char *key)
{
	ctl_buf_puts(&r->b, ", ");
	ctl_json_put_string(&r->b, key);
	ctl_buf_puts(&r->b, ": ");
}

void ctl_reply_ok(struct ctl_reply *r)
{
	reply_reset(r, false);
	ctl_buf_puts(&r->b, "{\"ok\": true");
}

void ctl_reply_bool(struct ctl_reply *r, const char *key, bool v)
{
	reply_key(r, key);
	ctl_buf_puts(&r->b, v ? "true" : "false");
}

void ctl_reply_string(struct ctl_reply *r, const char *key, const char *s)
{
	reply_key(r, key);
	ctl_json_put_string(&r->b, s);
}

void ctl_reply_raw(struct ctl_reply *r, const char *key, const char *json,
		   size_t len)
{
	reply_key(r, key);
	ctl_buf_add(&r->b, json, len);
}

void ctl_reply_error(struct ctl_reply *r, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply_reset(r, true);
	ctl_buf_puts(&r->b, "{\"error\": ");
	ctl_json_put_string(&r->b, msg);
}

const char *ctl_reply_line(struct ctl_reply *r, size_t *len)
{
	static const char oom[] = "{\"error\": \"out of memory\"}\n";
	size_t n;

	ctl_buf_puts(&r->b, "}\n");
	n = r->b.len;
	r->b.len = 0;
	if (r->b.oom) {
		r->b.oom = false;
		*len = sizeof(oom) - 1;
		return oom;
	}
	*len = n;
	return r->b.p;
}

void ctl_reply_free(struct ctl_reply *r)
{
	ctl_buf_free(&r->b);
}

/* ---- commands ----------------------------------------------------------- */

static const char *type_name(enum ctl_json_type t)
{
	switch (t) {
	case CTL_JSON_STRING: return "a string";
	case CTL_JSON_NUMBER: return "a number";
	case CTL_JSON_BOOL: return "true or false";
	}
	return "?";
}

/* "a, b, c": the names of @cmds, or of @c's arguments, for a reason. */
static void list_names(char *buf, size_t size, const struct ctl_command *cmds,
		       size_t n, const struct ctl_command *c)
{
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; c ? i < CTL_MAX_ARGS && c->args[i].name : i < n; i++) {
		int w = snprintf(buf + off, size - off, "%s%s", i ? ", " : "",
				 c ? c->args[i].name : cmds[i].name);

		if (w < 0 || (size_t)w >= size - off)
			break;
		off += (size_t)w;
	}
}

/* Every member a declared argument of its type, every required one given. */
static bool check_args(const struct ctl_command *c,
		       const struct ctl_json_object *req, struct ctl_reply *r)
{
	char clip[64], names[128];
	unsigned int i, k;

	for (i = 0; i < req->n; i++) {
		const struct ctl_json_member *m = &req->m[i];

		if (!strcmp(m->name, "cmd"))
			continue;
		for (k = 0; k < CTL_MAX_ARGS && c->args[k].name; k++)
			if (!strcmp(c->args[k].name, m->name))
				break;
		if (k == CTL_MAX_ARGS || !c->args[k].name) {
			list_names(names, sizeof(names), NULL, 0, c);
			ctl_reply_error(r, "%s: unknown argument '%s' (%s%s)",
					c->name,
					ctl_json_clip(m->name, 40, clip,
						      sizeof(clip)),
					names[0] ? "it takes: " :
						   "it takes no arguments",
					names);
			return false;
		}
		if (m->type != c->args[k].type) {
			ctl_reply_error(r, "%s: '%s' must be %s", c->name,
					m->name, type_name(c->args[k].type));
			return false;
		}
	}
	for (k = 0; k < CTL_MAX_ARGS && c->args[k].name; k++) {
		if (c->args[k].required && !ctl_json_get(req, c->args[k].name)) {
			ctl_reply_error(r, "%s: '%s' (%s) is required", c->name,
					c->args[k].name,
					type_name(c->args[k].type));
			return false;
		}
	}
	return true;
}

const struct ctl_command *ctl_prepare(const struct ctl_command *cmds, size_t n,
				      const char *line, size_t len,
				      struct ctl_json_object *req,
				      struct ctl_reply *r)
{
	const struct ctl_json_member *cmd;
	char why[256], clip[64], names[256];
	size_t i;

	if (ctl_json_parse(line, len, req, why, sizeof(why))) {
		ctl_reply_error(r, "malformed request: %s", why);
		return NULL;
	}
	cmd = ctl_json_get(req, "cmd");
	if (!cmd) {
		ctl_reply_error(r, "no \"cmd\" member: a request names its command, as in {\"cmd\": \"stats\"}");
		return NULL;
	}
	if (cmd->type != CTL_JSON_STRING) {
		ctl_reply_error(r, "\"cmd\" must be a string");
		return NULL;
	}
	for (i = 0; i < n; i++)
		if (!strcmp(cmds[i].name, cmd->str))
			break;
	if (i == n) {
		list_names(names, sizeof(names), cmds, n, NULL);
		ctl_reply_error(r, "unknown command '%s' (commands: %s)",
				ctl_json_clip(cmd->str, 40, clip, sizeof(clip)),
				names);
		return NULL;
	}
	if (!check_args(&cmds[i], req, r))
		return NULL;
	return &cmds[i];
}

void ctl_run(const struct ctl_command *c, void *ctx,
	     const struct ctl_json_object *req, struct ctl_reply *r)
{
	reply_reset(r, false);
	c->run(ctx, req, r);
	if (!r->b.len && !r->b.oom)
		ctl_reply_error(r, "internal error: %s gave no reply", c->name);
}

void ctl_handle(const struct ctl_command *cmds, size_t n, void *ctx,
		const char *line, size_t len, struct ctl_reply *r)
{
	struct ctl_json_object req;
	const struct ctl_command *c = ctl_prepare(cmds, n, line, len, &req, r);

	if (c)
		ctl_run(c, ctx, &req, r);
}
