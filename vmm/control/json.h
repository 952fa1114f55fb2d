/* SPDX-License-Identifier: MIT */
/*
 * The JSON of the control protocol (docs/CONTROL.md), and nothing more: a
 * strict parser of what a request may be, one object whose members are
 * strings, numbers or booleans, and the writer of JSON strings for the
 * replies and the client's requests.
 *
 * Everything the parser reads is untrusted (a socket peer wrote it): it
 * never allocates, never reads past @len, and refuses anything outside
 * that subset of RFC 8259 with one reason that says where and what.
 */
#ifndef GMVM_CONTROL_JSON_H
#define GMVM_CONTROL_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* The longest text ctl_json_parse() takes, and the most members. */
#define CTL_JSON_MAX_TEXT 4096
#define CTL_JSON_MAX_MEMBERS 16

enum ctl_json_type {
	CTL_JSON_STRING,
	CTL_JSON_NUMBER,
	CTL_JSON_BOOL,
};

struct ctl_json_member {
	const char *name;	/* decoded, NUL-terminated, valid UTF-8 */
	enum ctl_json_type type;
	const char *str;	/* STRING: decoded, no NUL inside, valid
				   UTF-8; NUMBER: its text as written */
	double num;		/* NUMBER: its value (finite) */
	bool b;			/* BOOL */
};

/*
 * A parsed object.  Names and strings live in @text (decoding never
 * lengthens a string, so the input's size is room enough).
 */
struct ctl_json_object {
	unsigned int n;
	struct ctl_json_member m[CTL_JSON_MAX_MEMBERS];
	char text[CTL_JSON_MAX_TEXT + 1];
};

/*
 * Parse @len bytes at @in as one object (whitespace around it allowed):
 * 0, or -EINVAL with the reason in @why ("at byte N: ..." where it has a
 * place; N counts from 1).  Duplicate names, nested objects, arrays, null,
 * invalid UTF-8, control characters and \u0000 are refused.
 */
int ctl_json_parse(const char *in, size_t len, struct ctl_json_object *obj,
		   char *why, size_t why_len);

/* The member named @name, or NULL. */
const struct ctl_json_member *ctl_json_get(const struct ctl_json_object *obj,
					   const char *name);

/* Is @s (NUL-terminated) valid UTF-8? */
bool ctl_json_utf8_valid(const char *s);

/*
 * @s shortened for a message: at most @max bytes of it, cut at a character
 * boundary, with "..." after a cut; written to @buf of @size > max + 3.
 */
const char *ctl_json_clip(const char *s, size_t max, char *buf, size_t size);

/* A growing text buffer; an allocation failure is remembered in oom. */
struct ctl_buf {
	char *p;	/* NUL-terminated when not NULL */
	size_t len;
	size_t cap;
	bool oom;
};

void ctl_buf_add(struct ctl_buf *b, const char *s, size_t n);
void ctl_buf_puts(struct ctl_buf *b, const char *s);
void ctl_buf_free(struct ctl_buf *b);

/* @s as a JSON string, quotes included (@s is valid UTF-8). */
void ctl_json_put_string(struct ctl_buf *b, const char *s);

#endif /* GMVM_CONTROL_JSON_H */
