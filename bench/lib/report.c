/* SPDX-License-Identifier: MIT */
/*
 * How a benchmark ends and says what went wrong.  A skip goes to stdout,
 * which run-bench.sh copies into bench/results.md (the table that is
 * missing says why); progress and failures go to stderr, which stays on
 * the terminal.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

#include "bench.h"

static int failures;

/* @prefix, the message, a newline: one printer for every kind. */
static void __attribute__((format(printf, 3, 0)))
say(FILE *f, const char *prefix, const char *fmt, va_list ap)
{
	fputs(prefix, f);
	vfprintf(f, fmt, ap);
	fputc('\n', f);
}

void bench_exit(int status, const char *fmt, ...)
{
	va_list ap;

	/* A skip's reason goes where the results are kept, run-bench.sh
	 * copies stdout into bench/results.md; a failure stays on stderr. */
	va_start(ap, fmt);
	if (status == BENCH_EXIT_SKIP)
		say(stdout, "skipped: ", fmt, ap);
	else
		say(stderr, "", fmt, ap);
	va_end(ap);
	exit(status);
}

/* "PROG: ": which of the benchmarks run-bench.sh runs in a row says it. */
void bench_note(bool failure, const char *fmt, ...)
{
	char prefix[64];
	va_list ap;

	snprintf(prefix, sizeof(prefix), "%s: ", program_invocation_short_name);
	va_start(ap, fmt);
	say(stderr, prefix, fmt, ap);
	va_end(ap);
	if (failure)
		failures++;
}

int bench_failures(void)
{
	return failures;
}

void bench_assert_eq(long long a, long long b, const char *what,
		     const char *file, int line)
{
	if (a != b)
		bench_die("FAIL %s:%d: %s: %lld (%#llx) != %lld (%#llx)", file,
			  line, what, a, (unsigned long long)a, b,
			  (unsigned long long)b);
}

const char *bench_goal_mark(bool met)
{
	return met ? "met" : "**missed**";
}
