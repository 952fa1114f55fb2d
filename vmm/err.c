/* SPDX-License-Identifier: MIT */
/*
 * gmvm's one way of saying what went wrong: a line on stderr that starts
 * with "gmvm: ", optionally followed by what the problem is about ("PATH: "
 * for an image, "dma-device: " for the device process).
 *
 * Every message of gmvm itself goes through here so that a test (or a
 * user's grep) can tell gmvm's lines from the guest's output, which goes to
 * stdout.  stderr is unbuffered: each piece is written as it is printed,
 * as it always was, so nothing is lost if gmvm dies right after.
 */
#include <stdarg.h>
#include <stdio.h>

#include "gmvm.h"

void gmvm_verr(const char *about, const char *fmt, va_list ap)
{
	fputs("gmvm: ", stderr);
	if (about)
		fprintf(stderr, "%s: ", about);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void gmvm_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	gmvm_verr(NULL, fmt, ap);
	va_end(ap);
}

void gmvm_err_about(const char *about, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	gmvm_verr(about, fmt, ap);
	va_end(ap);
}
