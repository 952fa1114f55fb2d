/* SPDX-License-Identifier: MIT */
/*
 * The control protocol as pure functions (vmm/control/json.c, proto.c),
 * no socket, no KVM:
 *  - the strict JSON parser: what a request may be, and every kind of
 *    refusal with its reason and position;
 *  - the JSON string writer: escapes, and parse(write(s)) == s for every
 *    byte value;
 *  - clipping names for messages at character boundaries;
 *  - the framer: lines split however the bytes arrive, an oversized line
 *    reported once and dropped up to its newline;
 *  - request checking and dispatch against a table, and the exact reply
 *    lines, each one flat object on one line.
 * The server loop is tests/test_control.c.
 */
#include "test_util.h"
#include "../vmm/control/proto.h"

static struct ctl_json_object obj;
static char why[256];

static int parse(const char *s)
{
	return ctl_json_parse(s, strlen(s), &obj, why, sizeof(why));
}

static void expect_ok(const char *s)
{
	if (parse(s))
		TEST_FAIL("'%s' refused: %s", s, why);
}

/* Refused, the reason containing @reason. */
static void expect_bad_n(const char *s, size_t len, const char *reason)
{
	if (!ctl_json_parse(s, len, &obj, why, sizeof(why)))
		TEST_FAIL("'%.*s' accepted", (int)len, s);
	if (!strstr(why, reason))
		TEST_FAIL("'%.*s': reason '%s' lacks '%s'", (int)len, s, why,
			  reason);
}

static void expect_bad(const char *s, const char *reason)
{
	expect_bad_n(s, strlen(s), reason);
}

static void test_parser_accepts(void)
{
	const struct ctl_json_member *m;
	char big[1024];
	size_t off;
	int i;

	expect_ok("{}");
	TEST_ASSERT_EQ(obj.n, 0);
	expect_ok(" \t{ \"cmd\" : \"stats\" }\r\n ");
	TEST_ASSERT_EQ(obj.n, 1);
	m = ctl_json_get(&obj, "cmd");
	TEST_ASSERT(m && m->type == CTL_JSON_STRING && !strcmp(m->str, "stats"));
	TEST_ASSERT(!ctl_json_get(&obj, "stats"));

	expect_ok("{\"a\":1,\"b\":-0.5e+3,\"c\":true,\"d\":false,\"e\":\"\",\"f\":0,\"g\":-0,\"h\":1E2}");
	TEST_ASSERT_EQ(obj.n, 8);
	TEST_ASSERT(obj.m[0].type == CTL_JSON_NUMBER && obj.m[0].num == 1);
	TEST_ASSERT(obj.m[1].num == -500 && !strcmp(obj.m[1].str, "-0.5e+3"));
	TEST_ASSERT(obj.m[2].type == CTL_JSON_BOOL && obj.m[2].b);
	TEST_ASSERT(obj.m[3].type == CTL_JSON_BOOL && !obj.m[3].b);
	TEST_ASSERT(obj.m[4].type == CTL_JSON_STRING && !obj.m[4].str[0]);
	TEST_ASSERT(obj.m[7].num == 100);

	/* Every escape, a surrogate pair, raw UTF-8. */
	expect_ok("{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20ac\\ud83d\\ude00\\u0041\",\"t\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}");
	TEST_ASSERT(!strcmp(obj.m[0].str,
			    "\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" "A"));
	TEST_ASSERT(!strcmp(obj.m[1].str, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
	/* Names are decoded too. */
	expect_ok("{\"\\u0063md\":\"x\"}");
	TEST_ASSERT(ctl_json_get(&obj, "cmd"));

	/* 16 members is the most. */
	off = (size_t)sprintf(big, "{");
	for (i = 0; i < CTL_JSON_MAX_MEMBERS; i++)
		off += (size_t)sprintf(big + off, "%s\"m%d\":%d", i ? "," : "",
				       i, i);
	sprintf(big + off, "}");
	expect_ok(big);
	TEST_ASSERT_EQ(obj.n, CTL_JSON_MAX_MEMBERS);
	TEST_ASSERT(ctl_json_get(&obj, "m15")->num == 15);
}

static void test_parser_refuses(void)
{
	char big[CTL_JSON_MAX_TEXT + 64];
	size_t off;
	int i;

	expect_bad("", "empty request");
	expect_bad(" \r\n\t", "empty request");
	expect_bad("[1]", "at byte 1: '[': a request is one JSON object");
	expect_bad("\"cmd\"", "a request is one JSON object");
	expect_bad("{", "unexpected end: the object is not closed");
	expect_bad("{\"a\":1", "unexpected end: the object is not closed");
	expect_bad("{\"a\"}", "at byte 5: expected ':' after the member name 'a'");
	expect_bad("{\"a\" 1}", "at byte 6: expected ':'");
	expect_bad("{\"a\":}", "at byte 6: member 'a': '}' does not start a value");
	expect_bad("{\"a\":", "member 'a' has no value");
	expect_bad("{\"a\":1,}", "at byte 8: '}': expected a member name");
	expect_bad("{,}", "expected a member name");
	expect_bad("{a:1}", "'a': expected a member name (a string)");
	expect_bad("{\"a\":1 \"b\":2}", "expected ',' or '}' after a member");
	expect_bad("{\"a\":{}}", "member 'a': nested objects are not accepted");
	expect_bad("{\"a\":[1]}", "member 'a': arrays are not accepted");
	expect_bad("{\"a\":null}", "member 'a': null is not accepted");
	expect_bad("{\"a\":tru}", "member 'a': invalid literal");
	expect_bad("{\"a\":nul}", "invalid literal");
	expect_bad("{\"a\":True}", "'T' does not start a value");
	expect_bad("{\"a\":01}", "no leading zeros");
	expect_bad("{\"a\":-}", "a digit must follow '-'");
	expect_bad("{\"a\":+1}", "'+' does not start a value");
	expect_bad("{\"a\":.5}", "does not start a value");
	expect_bad("{\"a\":1.}", "a digit must follow '.'");
	expect_bad("{\"a\":1e}", "a digit must follow the exponent");
	expect_bad("{\"a\":1e+}", "a digit must follow the exponent");
	expect_bad("{\"a\":1e999}", "number out of range");
	expect_bad("{\"a\":0x10}", "'x': expected ',' or '}'");
	expect_bad("{\"a\":\"\x01\"}", "control character 0x01 inside a string");
	expect_bad("{\"a\":\"x\ny\"}", "control character 0x0a");
	expect_bad("{\"a\":\"\\q\"}", "invalid escape: backslash, then 'q'");
	expect_bad("{\"a\":\"\\'\"}", "invalid escape: backslash, then byte 0x27");
	expect_bad("{\"a\":\"\\u12\"}", "four hex digits");
	expect_bad("{\"a\":\"\\u12", "unexpected end inside a \\u escape");
	expect_bad("{\"a\":\"\\u0000\"}", "\\u0000 is not accepted");
	expect_bad("{\"a\":\"\\udc00\"}", "\\udc00 is a lone low surrogate");
	expect_bad("{\"a\":\"\\ud800\"}", "\\ud800 is a high surrogate without its low one");
	expect_bad("{\"a\":\"\\ud800\\u0041\"}", "high surrogate without its low one");
	expect_bad("{\"a\":\"\\ud800\\ud800\"}", "high surrogate without its low one");
	expect_bad("{\"a\":\"\xff\"}", "invalid UTF-8");
	expect_bad("{\"a\":\"\xc0\x80\"}", "invalid UTF-8");	/* overlong */
	expect_bad("{\"a\":\"\xe0\x80\x80\"}", "invalid UTF-8");	/* overlong */
	expect_bad("{\"a\":\"\xed\xa0\x80\"}", "invalid UTF-8");	/* surrogate */
	expect_bad("{\"a\":\"\xf4\x90\x80\x80\"}", "invalid UTF-8");	/* > U+10FFFF */
	expect_bad("{\"a\":\"\xe2\x82\"}", "invalid UTF-8");	/* cut short */
	expect_bad("{\"a\":\"\xc3", "invalid UTF-8");
	expect_bad("{\"a\":\"abc", "unexpected end inside a string");
	expect_bad("{\"a\":\"abc\\", "unexpected end inside a string");
	expect_bad("{\"\xff\":1}", "invalid UTF-8");
	expect_bad("{\"a\":1,\"a\":2}", "at byte 8: member 'a' appears twice");
	expect_bad("{\"a\":1} x", "at byte 9: 'x' after the object");
	expect_bad("{\"a\":1}{}", "'{' after the object");
	expect_bad("\xef\xbb\xbf{}", "byte 0xef: a request is one JSON object");
	expect_bad_n("{\"a\":1\0}", 8, "at byte 7: byte 0x00: expected ','");
	expect_bad_n("{\"a\":\"x\0\"}", 9, "control character 0x00");

	off = (size_t)sprintf(big, "{");
	for (i = 0; i <= CTL_JSON_MAX_MEMBERS; i++)
		off += (size_t)sprintf(big + off, "%s\"m%d\":%d", i ? "," : "",
				       i, i);
	sprintf(big + off, "}");
	expect_bad(big, "more than 16 members");

	/* Longer than a request line may be. */
	memset(big, ' ', sizeof(big) - 1);
	big[0] = '{';
	big[CTL_JSON_MAX_TEXT] = '}';
	big[CTL_JSON_MAX_TEXT + 1] = '\0';
	expect_bad(big, "longer than 4096 bytes");
	big[CTL_JSON_MAX_TEXT] = '\0';
	big[CTL_JSON_MAX_TEXT - 1] = '}';
	expect_ok(big);

	/* A long name in a reason is clipped. */
	memset(big, 'n', 300);
	memcpy(big, "{\"", 2);
	memcpy(big + 300, "\":{}}", 6);
	expect_bad(big, "nnn...': nested objects");
	TEST_ASSERT(strlen(why) < 120);

	/* Strings longer than the input never fit: the worst case for the
	 * decoder's room is all of it in strings; it must take it. */
	off = (size_t)sprintf(big, "{\"");
	while (off < CTL_JSON_MAX_TEXT - 8)
		off += (size_t)sprintf(big + off, "\xf0\x9f\x98\x80");
	sprintf(big + off, "\":\"\"}");
	expect_ok(big);
}

static void test_writer(void)
{
	struct ctl_buf b = { 0 };
	char s[256], clip[64];
	int c;

	ctl_json_put_string(&b, "a\"b\\c\n\r\t\x01\x1f\x7f\xc3\xa9/");
	TEST_ASSERT(!strcmp(b.p, "\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u001f\x7f\xc3\xa9/\""));
	ctl_buf_free(&b);

	/* Every byte 1..127 survives a round trip. */
	for (c = 1; c < 128; c++)
		s[c - 1] = (char)c;
	s[127] = '\0';
	ctl_buf_puts(&b, "{\"k\": ");
	ctl_json_put_string(&b, s);
	ctl_buf_puts(&b, "}");
	TEST_ASSERT(!b.oom);
	expect_ok(b.p);
	TEST_ASSERT(!strcmp(obj.m[0].str, s));
	ctl_buf_free(&b);

	TEST_ASSERT(ctl_json_utf8_valid(""));
	TEST_ASSERT(ctl_json_utf8_valid("plain \xc3\xa9 \xf0\x9f\x98\x80"));
	TEST_ASSERT(!ctl_json_utf8_valid("\xc3"));
	TEST_ASSERT(!ctl_json_utf8_valid("\xed\xb0\x80"));
	TEST_ASSERT(!ctl_json_utf8_valid("a\x80"));

	TEST_ASSERT(!strcmp(ctl_json_clip("short", 40, clip, sizeof(clip)),
			    "short"));
	memset(s, 'x', 100);
	s[100] = '\0';
	ctl_json_clip(s, 40, clip, sizeof(clip));
	TEST_ASSERT_EQ(strlen(clip), 43);
	TEST_ASSERT(!strcmp(clip + 40, "..."));
	/* 2-byte characters from byte 1: byte 40 is inside one, cut before. */
	s[0] = 'a';
	for (c = 1; c < 99; c += 2) {
		s[c] = '\xc3';
		s[c + 1] = '\xa9';
	}
	s[99] = '\0';
	ctl_json_clip(s, 40, clip, sizeof(clip));
	TEST_ASSERT(ctl_json_utf8_valid(clip));
	TEST_ASSERT_EQ(strlen(clip), 39 + 3);
}

/* Feed @s to @f in pieces of @step bytes, collecting what comes out. */
static void frame(struct ctl_framer *f, const char *s, size_t len,
		  size_t step, char *out, size_t out_size)
{
	size_t off = 0, o = 0;

	out[0] = '\0';
	while (off < len) {
		size_t room, n;
		char *p = ctl_framer_room(f, &room);
		const char *line;
		size_t ll;
		enum ctl_frame k;

		TEST_ASSERT(room > 0);
		n = len - off < step ? len - off : step;
		if (n > room)
			n = room;
		memcpy(p, s + off, n);
		ctl_framer_filled(f, n);
		off += n;
		while ((k = ctl_framer_next(f, &line, &ll)) != CTL_FRAME_NONE) {
			if (k == CTL_FRAME_TOO_LONG)
				o += (size_t)snprintf(out + o, out_size - o, "[too long]");
			else
				o += (size_t)snprintf(out + o, out_size - o,
						      "[%.*s]", (int)ll, line);
			TEST_ASSERT(o < out_size);
		}
	}
}

static void test_framer(void)
{
	static char big[3 * CTL_MAX_LINE], out[CTL_MAX_LINE + 64];
	static struct ctl_framer f;
	const char *req = "{\"cmd\": \"x\"}\n\n{}\n";
	size_t step;

	for (step = 1; step <= strlen(req); step++) {
		memset(&f, 0, sizeof(f));
		frame(&f, req, strlen(req), step, out, sizeof(out));
		TEST_ASSERT(!strcmp(out, "[{\"cmd\": \"x\"}][][{}]"));
		TEST_ASSERT(!ctl_framer_partial(&f));
	}
	memset(&f, 0, sizeof(f));
	frame(&f, "{\"cmd", 5, 2, out, sizeof(out));
	TEST_ASSERT(!out[0] && ctl_framer_partial(&f));

	/* The longest line, 4096 bytes with its newline, is a line. */
	memset(&f, 0, sizeof(f));
	memset(big, 'a', CTL_MAX_LINE - 1);
	big[CTL_MAX_LINE - 1] = '\n';
	frame(&f, big, CTL_MAX_LINE, 1000, out, sizeof(out));
	TEST_ASSERT_EQ(strlen(out), CTL_MAX_LINE - 1 + 2);

	/* One more byte: too long, reported once, dropped to its newline,
	 * and the next line is served, whatever the pieces. */
	for (step = 1; step <= 2 * CTL_MAX_LINE; step = step * 3 + 1) {
		size_t n = 2 * CTL_MAX_LINE + 100;

		memset(&f, 0, sizeof(f));
		memset(big, 'b', n);
		memcpy(big + n, "\nok\n", 4);
		frame(&f, big, n + 4, step, out, sizeof(out));
		if (strcmp(out, "[too long][ok]"))
			TEST_FAIL("step %zu: %s", step, out);
		TEST_ASSERT(!ctl_framer_partial(&f));
	}
	/* Exactly CTL_MAX_LINE bytes without a newline: too long at once. */
	memset(&f, 0, sizeof(f));
	memset(big, 'c', CTL_MAX_LINE);
	frame(&f, big, CTL_MAX_LINE, CTL_MAX_LINE, out, sizeof(out));
	TEST_ASSERT(!strcmp(out, "[too long]"));
	TEST_ASSERT(ctl_framer_partial(&f));
	frame(&f, "\n{}\n", 4, 4, out, sizeof(out));
	TEST_ASSERT(!strcmp(out, "[{}]"));
}

/* ---- dispatch ------------------------------------------------------------ */

static int ran;

static void cmd_echo(void *ctx, const struct ctl_json_object *req,
		     struct ctl_reply *r)
{
	const struct ctl_json_member *flag = ctl_json_get(req, "flag");

	TEST_ASSERT(ctx == &ran);
	ran++;
	ctl_reply_ok(r);
	ctl_reply_string(r, "text", ctl_json_get(req, "text")->str);
	if (flag)
		ctl_reply_bool(r, "flag", flag->b);
	if (ctl_json_get(req, "n"))
		ctl_reply_raw(r, "n", ctl_json_get(req, "n")->str,
			      strlen(ctl_json_get(req, "n")->str));
}

static void cmd_none(void *ctx, const struct ctl_json_object *req,
		     struct ctl_reply *r)
{
	ran++;
	ctl_reply_ok(r);
}

static void cmd_silent(void *ctx, const struct ctl_json_object *req,
		       struct ctl_reply *r)
{
	ran++;
}

static void cmd_err(void *ctx, const struct ctl_json_object *req,
		    struct ctl_reply *r)
{
	ran++;
	ctl_reply_ok(r);
	ctl_reply_bool(r, "half", true);
	ctl_reply_error(r, "err: \"quoted\"\nand a newline");
}

static const struct ctl_command cmds[] = {
	{ "echo", { { "text", CTL_JSON_STRING, true },
		    { "n", CTL_JSON_NUMBER, false },
		    { "flag", CTL_JSON_BOOL, false } }, cmd_echo },
	{ "none", { { NULL } }, cmd_none },
	{ "silent", { { NULL } }, cmd_silent },
	{ "err", { { NULL } }, cmd_err },
};

static struct ctl_reply reply;

/* The reply to @req: exactly @want (a whole line), or starting with it. */
static void expect_reply(const char *req, const char *want, bool prefix)
{
	const char *line;
	size_t len;

	ctl_handle(cmds, sizeof(cmds) / sizeof(cmds[0]), &ran, req, strlen(req), &reply);
	line = ctl_reply_line(&reply, &len);
	TEST_ASSERT_EQ(strlen(line), len);
	TEST_ASSERT(len > 1 && line[len - 1] == '\n');
	TEST_ASSERT(memchr(line, '\n', len) == line + len - 1);
	if (prefix ? strncmp(line, want, strlen(want)) : strcmp(line, want))
		TEST_FAIL("%s -> %s, want %s%s", req, line, want,
			  prefix ? "..." : "");
	/* Every reply of this table is one flat object. */
	if (ctl_json_parse(line, len - 1, &obj, why, sizeof(why)))
		TEST_FAIL("reply %s does not parse: %s", line, why);
}

static void test_dispatch(void)
{
	char req[512];
	int before;

	expect_reply("{\"cmd\": \"none\"}", "{\"ok\": true}\n", false);
	expect_reply("{\"cmd\":\"echo\",\"text\":\"a\\\"b\\u00e9\",\"flag\":false,\"n\":-1.5}",
		     "{\"ok\": true, \"text\": \"a\\\"b\xc3\xa9\", \"flag\": false, \"n\": -1.5}\n",
		     false);
	before = ran;
	expect_reply("{\"cmd\": \"nope\"}",
		     "{\"error\": \"unknown command 'nope' (commands: echo, none, silent, err)\"}\n",
		     false);
	expect_reply("{}", "{\"error\": \"no \\\"cmd\\\" member: a request names its command, as in {\\\"cmd\\\": \\\"stats\\\"}\"}\n",
		     false);
	expect_reply("{\"cmd\": 1}", "{\"error\": \"\\\"cmd\\\" must be a string\"}\n",
		     false);
	expect_reply("{\"cmd\": \"none\", \"x\": 1}",
		     "{\"error\": \"none: unknown argument 'x' (it takes no arguments)\"}\n",
		     false);
	expect_reply("{\"cmd\": \"echo\", \"text\": \"\", \"x\": true}",
		     "{\"error\": \"echo: unknown argument 'x' (it takes: text, n, flag)\"}\n",
		     false);
	expect_reply("{\"cmd\": \"echo\", \"text\": 1}",
		     "{\"error\": \"echo: 'text' must be a string\"}\n", false);
	expect_reply("{\"cmd\": \"echo\", \"text\": \"\", \"flag\": \"yes\"}",
		     "{\"error\": \"echo: 'flag' must be true or false\"}\n",
		     false);
	expect_reply("{\"cmd\": \"echo\"}",
		     "{\"error\": \"echo: 'text' (a string) is required\"}\n",
		     false);
	expect_reply("{\"cmd\": \"echo\", \"text\": \"\", \"n\": 1, \"n\": 2}",
		     "{\"error\": \"malformed request: at byte 37: member 'n' appears twice\"}\n",
		     false);
	expect_reply("stats", "{\"error\": \"malformed request: at byte 1: 's': a request is one JSON object",
		     true);
	expect_reply("", "{\"error\": \"malformed request: empty request", true);
	TEST_ASSERT_EQ(ran, before);

	/* An unknown command's name is clipped in the reason. */
	snprintf(req, sizeof(req), "{\"cmd\": \"%0200d\"}", 7);
	expect_reply(req, "{\"error\": \"unknown command '0000000000000000000000000000000000000000...' (commands:",
		     true);
	/* A name with quotes and controls is escaped in the reason. */
	expect_reply("{\"cmd\": \"a\\\"\\n\\u0001\"}",
		     "{\"error\": \"unknown command 'a\\\"\\n\\u0001' (commands:",
		     true);

	expect_reply("{\"cmd\": \"silent\"}",
		     "{\"error\": \"internal error: silent gave no reply\"}\n",
		     false);
	/* An error replaces what the command had added. */
	expect_reply("{\"cmd\": \"err\"}",
		     "{\"error\": \"err: \\\"quoted\\\"\\nand a newline\"}\n",
		     false);
	TEST_ASSERT(reply.error);
	TEST_ASSERT_EQ(ran, before + 2);

	/* A raw value made by gmvm (stats) goes in as it is. */
	ctl_reply_ok(&reply);
	ctl_reply_raw(&reply, "stats", "{\"a\": {\"b\": 1}}", 15);
	TEST_ASSERT(!strcmp(ctl_reply_line(&reply, &(size_t){ 0 }),
			    "{\"ok\": true, \"stats\": {\"a\": {\"b\": 1}}}\n"));
	ctl_reply_free(&reply);
}

int main(void)
{
	test_parser_accepts();
	test_parser_refuses();
	test_writer();
	test_framer();
	test_dispatch();
	printf("control protocol: parser, writer, framer, dispatch: all passed\n");
	return 0;
}
