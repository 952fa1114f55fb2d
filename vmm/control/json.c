/* SPDX-License-Identifier: MIT */
/*
 * The control protocol's JSON: a strict parser of one flat object and a
 * writer of JSON strings (json.h says what is accepted).
 *
 * The parser is a recursive-descent reader of exactly the grammar a
 * request needs, so that anything else is refused with a reason rather
 * than half-understood: a request is
 *
 *	ws '{' ws [ member ( ws ',' ws member )* ] ws '}' ws
 *	member = string ws ':' ws ( string | number | true | false )
 *
 * with RFC 8259's string and number syntax.  Strings are decoded into
 * obj->text as C strings, so \u0000 is refused (it would cut them short),
 * as are unpaired surrogates and invalid UTF-8: every string handed on is
 * valid UTF-8 and may be echoed in a reply.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vec.h"
#include "json.h"

struct parser {
	const unsigned char *p;
	size_t len;
	size_t pos;
	struct ctl_json_object *obj;
	size_t out;		/* bytes used in obj->text */
	char *why;
	size_t why_len;
};

static int fail_at(struct parser *ps, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The reason, "at byte N: ..." (N from 1), and -EINVAL. */
static int fail_at(struct parser *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(ps->why, ps->why_len, "at byte %zu: ", ps->pos + 1);
	if (n < 0 || (size_t)n >= ps->why_len)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(ps->why + n, ps->why_len - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* A byte for a message: 'c' if printable ASCII, else its value. */
static const char *byte_name(unsigned char c, char buf[16])
{
	if (c >= 0x20 && c < 0x7f && c != '\'')
		snprintf(buf, 16, "'%c'", c);
	else
		snprintf(buf, 16, "byte 0x%02x", c);
	return buf;
}

/*
 * The length of the valid UTF-8 sequence of a non-ASCII character at @p
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF),
 * or 0.
 */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (left < n || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

bool ctl_json_utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s), n;

	while (left) {
		n = *p < 0x80 ? 1 : utf8_seq(p, left);
		if (!n)
			return false;
		p += n;
		left -= n;
	}
	return true;
}

const char *ctl_json_clip(const char *s, size_t max, char *buf, size_t size)
{
	size_t n = strlen(s);

	if (size < max + 4)
		max = size > 4 ? size - 4 : 0;
	if (n <= max) {
		memcpy(buf, s, n + 1);
		return buf;
	}
	n = max;
	/* Back off to the start of a character. */
	while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	memcpy(buf, s, n);
	memcpy(buf + n, "...", 4);
	return buf;
}

static void skip_ws(struct parser *ps)
{
	while (ps->pos < ps->len) {
		unsigned char c = ps->p[ps->pos];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		ps->pos++;
	}
}

/* Append to obj->text; the input bounds it, so this cannot overflow. */
static void emit(struct parser *ps, const void *s, size_t n)
{
	if (ps->out + n > sizeof(ps->obj->text)) {
		/* Unreachable: decoding never lengthens a string. */
		abort();
	}
	memcpy(ps->obj->text + ps->out, s, n);
	ps->out += n;
}

static int hex4(struct parser *ps, unsigned int *v)
{
	unsigned int i, d;

	*v = 0;
	for (i = 0; i < 4; i++) {
		unsigned char c;

		if (ps->pos >= ps->len)
			return fail_at(ps, "unexpected end inside a \\u escape");
		c = ps->p[ps->pos];
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return fail_at(ps, "a \\u escape needs four hex digits");
		*v = *v << 4 | d;
		ps->pos++;
	}
	return 0;
}

/* After "\u": one character, a surrogate pair as one, as UTF-8. */
static int unicode_escape(struct parser *ps)
{
	unsigned int cp, lo;
	unsigned char u[4];
	size_t at = ps->pos - 2;
	int ret;

	ret = hex4(ps, &cp);
	if (ret)
		return ret;
	if (cp >= 0xdc00 && cp <= 0xdfff) {
		ps->pos = at;
		return fail_at(ps, "\\u%04x is a lone low surrogate", cp);
	}
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (ps->pos + 2 > ps->len || ps->p[ps->pos] != '\\' ||
		    ps->p[ps->pos + 1] != 'u') {
			ps->pos = at;
			return fail_at(ps, "\\u%04x is a high surrogate without its low one",
				       cp);
		}
		ps->pos += 2;
		ret = hex4(ps, &lo);
		if (ret)
			return ret;
		if (lo < 0xdc00 || lo > 0xdfff) {
			ps->pos = at;
			return fail_at(ps, "\\u%04x is a high surrogate without its low one",
				       cp);
		}
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (cp == 0) {
		ps->pos = at;
		return fail_at(ps, "\\u0000 is not accepted (strings may not hold NUL)");
	}
	if (cp < 0x80) {
		u[0] = (unsigned char)cp;
		emit(ps, u, 1);
	} else if (cp < 0x800) {
		u[0] = (unsigned char)(0xc0 | cp >> 6);
		u[1] = (unsigned char)(0x80 | (cp & 0x3f));
		emit(ps, u, 2);
	} else if (cp < 0x10000) {
		u[0] = (unsigned char)(0xe0 | cp >> 12);
		u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (unsigned char)(0x80 | (cp & 0x3f));
		emit(ps, u, 3);
	} else {
		u[0] = (unsigned char)(0xf0 | cp >> 18);
		u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (unsigned char)(0x80 | (cp & 0x3f));
		emit(ps, u, 4);
	}
	return 0;
}

/* At a '"': the decoded string, NUL-terminated, in obj->text. */
static int parse_string(struct parser *ps, const char **out)
{
	static const char esc_in[] = "\"\\/bfnrt", esc_out[] = "\"\\/\b\f\n\r\t";
	size_t start = ps->out;
	char nb[16];
	int ret;

	ps->pos++;	/* the opening quote */
	for (;;) {
		unsigned char c;
		const char *e;
		size_t n;

		if (ps->pos >= ps->len)
			return fail_at(ps, "unexpected end inside a string");
		c = ps->p[ps->pos];
		if (c == '"') {
			ps->pos++;
			break;
		}
		if (c < 0x20)
			return fail_at(ps, "control character 0x%02x inside a string (escape it)",
				       c);
		if (c >= 0x80) {
			n = utf8_seq(ps->p + ps->pos, ps->len - ps->pos);
			if (!n)
				return fail_at(ps, "invalid UTF-8 inside a string");
			emit(ps, ps->p + ps->pos, n);
			ps->pos += n;
			continue;
		}
		if (c != '\\') {
			emit(ps, &c, 1);
			ps->pos++;
			continue;
		}
		if (ps->pos + 1 >= ps->len) {
			ps->pos++;
			return fail_at(ps, "unexpected end inside a string");
		}
		c = ps->p[ps->pos + 1];
		ps->pos += 2;
		if (c == 'u') {
			ret = unicode_escape(ps);
			if (ret)
				return ret;
			continue;
		}
		e = c ? strchr(esc_in, c) : NULL;
		if (!e) {
			ps->pos -= 2;
			return fail_at(ps, "invalid escape: backslash, then %s",
				       byte_name(c, nb));
		}
		emit(ps, &esc_out[e - esc_in], 1);
	}
	emit(ps, "", 1);
	*out = ps->obj->text + start;
	return 0;
}

static bool is_digit(struct parser *ps)
{
	return ps->pos < ps->len && ps->p[ps->pos] >= '0' &&
	       ps->p[ps->pos] <= '9';
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, as text and value. */
static int parse_number(struct parser *ps, struct ctl_json_member *m)
{
	size_t start = ps->pos;
	char *text;

	if (ps->p[ps->pos] == '-')
		ps->pos++;
	if (!is_digit(ps))
		return fail_at(ps, "invalid number: a digit must follow '-'");
	if (ps->p[ps->pos] == '0') {
		ps->pos++;
		if (is_digit(ps))
			return fail_at(ps, "invalid number: no leading zeros");
	} else {
		while (is_digit(ps))
			ps->pos++;
	}
	if (ps->pos < ps->len && ps->p[ps->pos] == '.') {
		ps->pos++;
		if (!is_digit(ps))
			return fail_at(ps, "invalid number: a digit must follow '.'");
		while (is_digit(ps))
			ps->pos++;
	}
	if (ps->pos < ps->len &&
	    (ps->p[ps->pos] == 'e' || ps->p[ps->pos] == 'E')) {
		ps->pos++;
		if (ps->pos < ps->len &&
		    (ps->p[ps->pos] == '+' || ps->p[ps->pos] == '-'))
			ps->pos++;
		if (!is_digit(ps))
			return fail_at(ps, "invalid number: a digit must follow the exponent");
		while (is_digit(ps))
			ps->pos++;
	}
	text = ps->obj->text + ps->out;
	emit(ps, ps->p + start, ps->pos - start);
	emit(ps, "", 1);
	m->str = text;
	m->num = strtod(text, NULL);
	if (!isfinite(m->num)) {
		ps->pos = start;
		return fail_at(ps, "number out of range");
	}
	return 0;
}

static bool literal(struct parser *ps, const char *word)
{
	size_t n = strlen(word);

	if (ps->len - ps->pos < n || memcmp(ps->p + ps->pos, word, n))
		return false;
	ps->pos += n;
	return true;
}

static int parse_value(struct parser *ps, struct ctl_json_member *m)
{
	char clip[64], nb[16];
	const char *name = ctl_json_clip(m->name, 40, clip, sizeof(clip));
	unsigned char c;

	if (ps->pos >= ps->len)
		return fail_at(ps, "unexpected end: member '%s' has no value",
			       name);
	c = ps->p[ps->pos];
	switch (c) {
	case '"':
		m->type = CTL_JSON_STRING;
		return parse_string(ps, &m->str);
	case '{':
		return fail_at(ps, "member '%s': nested objects are not accepted",
			       name);
	case '[':
		return fail_at(ps, "member '%s': arrays are not accepted",
			       name);
	case 't':
	case 'f':
		m->type = CTL_JSON_BOOL;
		m->b = c == 't';
		if (literal(ps, m->b ? "true" : "false"))
			return 0;
		return fail_at(ps, "member '%s': invalid literal (true or false?)",
			       name);
	case 'n':
		if (literal(ps, "null")) {
			ps->pos -= 4;
			return fail_at(ps, "member '%s': null is not accepted",
				       name);
		}
		return fail_at(ps, "member '%s': invalid literal", name);
	default:
		if (c == '-' || (c >= '0' && c <= '9')) {
			m->type = CTL_JSON_NUMBER;
			return parse_number(ps, m);
		}
		break;
	}
	return fail_at(ps, "member '%s': %s does not start a value (a string, number, true or false)",
		       name, byte_name(c, nb));
}

static int parse_member(struct parser *ps)
{
	struct ctl_json_object *obj = ps->obj;
	struct ctl_json_member *m;
	size_t at = ps->pos;
	char clip[64];
	unsigned int i;
	int ret;

	if (obj->n == CTL_JSON_MAX_MEMBERS)
		return fail_at(ps, "more than %d members", CTL_JSON_MAX_MEMBERS);
	m = &obj->m[obj->n];
	memset(m, 0, sizeof(*m));
	ret = parse_string(ps, &m->name);
	if (ret)
		return ret;
	for (i = 0; i < obj->n; i++) {
		if (!strcmp(obj->m[i].name, m->name)) {
			ps->pos = at;
			return fail_at(ps, "member '%s' appears twice",
				       ctl_json_clip(m->name, 40, clip,
						     sizeof(clip)));
		}
	}
	skip_ws(ps);
	if (ps->pos >= ps->len || ps->p[ps->pos] != ':')
		return fail_at(ps, "expected ':' after the member name '%s'",
			       ctl_json_clip(m->name, 40, clip, sizeof(clip)));
	ps->pos++;
	skip_ws(ps);
	ret = parse_value(ps, m);
	if (ret)
		return ret;
	obj->n++;
	return 0;
}

int ctl_json_parse(const char *in, size_t len, struct ctl_json_object *obj,
		   char *why, size_t why_len)
{
	struct parser ps = {
		.p = (const unsigned char *)in,
		.len = len,
		.obj = obj,
		.why = why,
		.why_len = why_len,
	};
	char nb[16];
	int ret;

	obj->n = 0;
	if (len > CTL_JSON_MAX_TEXT) {
		snprintf(why, why_len, "longer than %d bytes", CTL_JSON_MAX_TEXT);
		return -EINVAL;
	}
	skip_ws(&ps);
	if (ps.pos == len) {
		snprintf(why, why_len, "empty request (a request is one JSON object: {\"cmd\": ...})");
		return -EINVAL;
	}
	if (ps.p[ps.pos] != '{')
		return fail_at(&ps, "%s: a request is one JSON object ({\"cmd\": ...})",
			       byte_name(ps.p[ps.pos], nb));
	ps.pos++;
	skip_ws(&ps);
	if (ps.pos < len && ps.p[ps.pos] == '}') {
		ps.pos++;
	} else {
		for (;;) {
			if (ps.pos >= len)
				return fail_at(&ps, "unexpected end: the object is not closed");
			if (ps.p[ps.pos] != '"')
				return fail_at(&ps, "%s: expected a member name (a string)",
					       byte_name(ps.p[ps.pos], nb));
			ret = parse_member(&ps);
			if (ret)
				return ret;
			skip_ws(&ps);
			if (ps.pos >= len)
				return fail_at(&ps, "unexpected end: the object is not closed");
			if (ps.p[ps.pos] == '}') {
				ps.pos++;
				break;
			}
			if (ps.p[ps.pos] != ',')
				return fail_at(&ps, "%s: expected ',' or '}' after a member",
					       byte_name(ps.p[ps.pos], nb));
			ps.pos++;
			skip_ws(&ps);
		}
	}
	skip_ws(&ps);
	if (ps.pos != len)
		return fail_at(&ps, "%s after the object: a request is one object",
			       byte_name(ps.p[ps.pos], nb));
	return 0;
}

const struct ctl_json_member *ctl_json_get(const struct ctl_json_object *obj,
					   const char *name)
{
	unsigned int i;

	for (i = 0; i < obj->n; i++)
		if (!strcmp(obj->m[i].name, name))
			return &obj->m[i];
	return NULL;
}

/* ---- writing ------------------------------------------------------------ */

void ctl_buf_add(struct ctl_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	/* Room for index len + n: the bytes and a NUL after them. */
	if (vec_reserve((void **)&b->p, &b->cap, b->len + n, 1)) {
		b->oom = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void ctl_buf_puts(struct ctl_buf *b, const char *s)
{
	ctl_buf_add(b, s, strlen(s));
}

void ctl_buf_free(struct ctl_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void ctl_json_put_string(struct ctl_buf *b, const char *s)
{
	const char *run = s;

	ctl_buf_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		ctl_buf_add(b, run, (size_t)(s - run));
		run = s + 1;
		switch (c) {
		case '"': ctl_buf_puts(b, "\\\""); break;
		case '\\': ctl_buf_puts(b, "\\\\"); break;
		case '\n': ctl_buf_puts(b, "\\n"); break;
		case '\r': ctl_buf_puts(b, "\\r"); break;
		case '\t': ctl_buf_puts(b, "\\t"); break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			ctl_buf_puts(b, esc);
			break;
		}
	}
	ctl_buf_add(b, run, (size_t)(s - run));
	ctl_buf_add(b, "\"", 1);
}
