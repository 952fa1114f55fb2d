/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the control protocol (vmm/control/json.c, proto.c) with what a
 * socket peer may send: any bytes, in any pieces.
 *
 * Input: byte 0 says in what pieces the rest reaches the framer (1..63
 * bytes each, or as much as fits); then every line it gives goes through
 * ctl_handle() against a table shaped like gmvm's (commands with no
 * argument, a required string and an optional bool, one required string,
 * one optional number), whose commands check that they got only what they
 * declared and echo it back.  Checked:
 *  - the framer against a model: the lines are exactly the input's
 *    newline-ended pieces of at most CTL_MAX_LINE - 1 bytes, and each
 *    longer piece is one TOO_LONG, whatever the piece sizes;
 *  - every reply is one line, {"ok": true...} or {"error": "..."}, and
 *    (when short enough) a JSON object the parser itself accepts, valid
 *    UTF-8 included: an error reply has exactly one member, a string;
 *  - the whole input parsed as one request: an accepted object, written
 *    back with the writer, parses to the same members.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_vm.h"
#include "../vmm/control/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_args(const struct ctl_command *c,
		       const struct ctl_json_object *req)
{
	unsigned int i, k;

	for (i = 0; i < req->n; i++) {
		if (!strcmp(req->m[i].name, "cmd")) {
			FUZZ_ASSERT(req->m[i].type == CTL_JSON_STRING &&
				    !strcmp(req->m[i].str, c->name));
			continue;
		}
		for (k = 0; k < CTL_MAX_ARGS && c->args[k].name; k++)
			if (!strcmp(c->args[k].name, req->m[i].name))
				break;
		FUZZ_ASSERT(k < CTL_MAX_ARGS && c->args[k].name);
		FUZZ_ASSERT(req->m[i].type == c->args[k].type);
	}
	for (k = 0; k < CTL_MAX_ARGS && c->args[k].name; k++)
		FUZZ_ASSERT(!c->args[k].required ||
			    ctl_json_get(req, c->args[k].name));
}

static void cmd_echo(void *ctx, const struct ctl_json_object *req,
		     struct ctl_reply *r);

static const struct ctl_command cmds[] = {
	{ "stats", { { NULL } }, cmd_echo },
	{ "snapshot", { { "path", CTL_JSON_STRING, true },
			{ "stop", CTL_JSON_BOOL, false } }, cmd_echo },
	{ "migrate", { { "uri", CTL_JSON_STRING, true } }, cmd_echo },
	{ "n", { { "n", CTL_JSON_NUMBER, false } }, cmd_echo },
};

/* Checks its request, then echoes every argument back (or refuses). */
static void cmd_echo(void *ctx, const struct ctl_json_object *req,
		     struct ctl_reply *r)
{
	const struct ctl_command *c = NULL;
	unsigned int i;

	for (i = 0; i < 4; i++)
		if (!strcmp(cmds[i].name, ctl_json_get(req, "cmd")->str))
			c = &cmds[i];
	FUZZ_ASSERT(c);
	check_args(c, req);
	if (req->n % 4 == 3) {
		ctl_reply_error(r, "%s: refused with \"%s\"", c->name,
				req->m[0].name);
		return;
	}
	ctl_reply_ok(r);
	for (i = 0; i < req->n; i++) {
		const struct ctl_json_member *m = &req->m[i];

		if (m->type == CTL_JSON_STRING)
			ctl_reply_string(r, m->name, m->str);
		else if (m->type == CTL_JSON_BOOL)
			ctl_reply_bool(r, m->name, m->b);
		else
			ctl_reply_raw(r, m->name, m->str, strlen(m->str));
	}
}

static struct ctl_reply reply;
static struct ctl_json_object obj, again;

static void check_reply(void)
{
	char why[256];
	size_t len;
	const char *line = ctl_reply_line(&reply, &len);

	FUZZ_ASSERT(len >= 3 && line[len - 1] == '\n');
	FUZZ_ASSERT(memchr(line, '\n', len) == line + len - 1);
	FUZZ_ASSERT(!memchr(line, '\0', len));
	FUZZ_ASSERT(!strncmp(line, "{\"ok\": true", 11) ||
		    !strncmp(line, "{\"error\": \"", 11));
	if (len - 1 > CTL_JSON_MAX_TEXT)
		return;
	if (ctl_json_parse(line, len - 1, &obj, why, sizeof(why)))
		fuzz_fail("reply does not parse (%s): %.*s", why, (int)len,
			  line);
	if (line[2] == 'e')
		FUZZ_ASSERT(obj.n == 1 && obj.m[0].type == CTL_JSON_STRING);
	else
		FUZZ_ASSERT(obj.m[0].type == CTL_JSON_BOOL && obj.m[0].b);
}

/* The whole input as one request: written back, it reads the same. */
static void round_trip(const char *in, size_t len)
{
	struct ctl_buf b = { 0 };
	char why[256];
	unsigned int i;

	if (ctl_json_parse(in, len, &obj, why, sizeof(why)))
		return;
	ctl_buf_puts(&b, "{");
	for (i = 0; i < obj.n; i++) {
		const struct ctl_json_member *m = &obj.m[i];

		ctl_buf_puts(&b, i ? ", " : "");
		ctl_json_put_string(&b, m->name);
		ctl_buf_puts(&b, ": ");
		if (m->type == CTL_JSON_STRING)
			ctl_json_put_string(&b, m->str);
		else if (m->type == CTL_JSON_BOOL)
			ctl_buf_puts(&b, m->b ? "true" : "false");
		else
			ctl_buf_puts(&b, m->str);
	}
	ctl_buf_puts(&b, "}");
	FUZZ_ASSERT(!b.oom);
	/* Escaping may lengthen it past what a request may be. */
	if (b.len <= CTL_JSON_MAX_TEXT) {
		if (ctl_json_parse(b.p, b.len, &again, why, sizeof(why)))
			fuzz_fail("written back, it does not parse (%s): %s",
				  why, b.p);
		FUZZ_ASSERT(again.n == obj.n);
		for (i = 0; i < obj.n; i++) {
			FUZZ_ASSERT(!strcmp(again.m[i].name, obj.m[i].name));
			FUZZ_ASSERT(again.m[i].type == obj.m[i].type);
			if (obj.m[i].type == CTL_JSON_BOOL)
				FUZZ_ASSERT(again.m[i].b == obj.m[i].b);
			else
				FUZZ_ASSERT(!strcmp(again.m[i].str,
						    obj.m[i].str));
		}
	}
	ctl_buf_free(&b);
}

/* The model's next event from @in at *@pos: 1 line, 2 too long, 0 none. */
static int model_next(const char *in, size_t len, size_t *pos,
		      const char **line, size_t *ll)
{
	while (*pos < len) {
		const char *nl = memchr(in + *pos, '\n', len - *pos);
		size_t n = nl ? (size_t)(nl - (in + *pos)) : len - *pos;
		size_t start = *pos;

		*pos += n + (nl ? 1 : 0);
		if (n >= CTL_MAX_LINE)
			return 2;
		if (!nl)
			return 0;
		*line = in + start;
		*ll = n;
		return 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ctl_framer f;
	const char *in = (const char *)data + 1, *line, *want;
	size_t len, off = 0, mpos = 0, step, ll, wl;
	enum ctl_frame k;

	if (!size)
		return 0;
	len = size - 1;
	step = data[0] & 63;
	round_trip(in, len);

	memset(&f, 0, sizeof(f));
	while (off < len) {
		size_t room, n;
		char *p = ctl_framer_room(&f, &room);

		FUZZ_ASSERT(room > 0 && room <= CTL_MAX_LINE);
		n = step && step < room ? step : room;
		if (n > len - off)
			n = len - off;
		memcpy(p, in + off, n);
		ctl_framer_filled(&f, n);
		off += n;
		while ((k = ctl_framer_next(&f, &line, &ll)) != CTL_FRAME_NONE) {
			int m = model_next(in, len, &mpos, &want, &wl);

			if (k == CTL_FRAME_TOO_LONG) {
				FUZZ_ASSERT(m == 2);
				ctl_reply_error(&reply, "request too long");
			} else {
				FUZZ_ASSERT(m == 1 && ll == wl &&
					    !memcmp(line, want, ll));
				ctl_handle(cmds, 4, NULL, line, ll, &reply);
			}
			check_reply();
		}
	}
	/* Nothing the model has is left unsaid, but a last short piece. */
	FUZZ_ASSERT(model_next(in, len, &mpos, &want, &wl) == 0);
	FUZZ_ASSERT(mpos == len);
	return 0;
}
