/* SPDX-License-Identifier: MIT */
/*
 * Assertions and a reproducible PRNG shared by the range map's tests.
 * A failed assertion prints "FILE:LINE: FAIL: message", then the test's
 * own context (fail_context(), which each test defines: seed, phase,
 * operation; it ends the line) and exits 1.
 */
#ifndef GMEM_RANGE_MAP_EXPECT_H
#define GMEM_RANGE_MAP_EXPECT_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "range_map.h"

void fail_context(void);

static inline __attribute__((noreturn, format(printf, 3, 4)))
void fail_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d: FAIL: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fail_context();
	exit(1);
}

#define FAIL(...) fail_at(__FILE__, __LINE__, __VA_ARGS__)

#define EXPECT(cond)							\
	do {								\
		if (!(cond))						\
			FAIL("expected %s", #cond);			\
	} while (0)

#define EXPECT_EQ(actual, expected)					\
	do {								\
		unsigned long long a_ = (actual), e_ = (expected);	\
		if (a_ != e_)						\
			FAIL("%s is %llu, expected %s = %llu",		\
			     #actual, a_, #expected, e_);		\
	} while (0)

#define EXPECT_EQ_S(actual, expected)					\
	do {								\
		long long a_ = (actual), e_ = (expected);		\
		if (a_ != e_)						\
			FAIL("%s is %lld, expected %s = %lld",		\
			     #actual, a_, #expected, e_);		\
	} while (0)

#define EXPECT_VALID(map)						\
	do {								\
		char msg_[256] = "";					\
		int ret_ = gmem_range_map_validate((map), msg_, sizeof(msg_)); \
		if (ret_)						\
			FAIL("gmem_range_map_validate: %d: %s", ret_, msg_);	\
	} while (0)

/* splitmix64, reproducible from the seed each test prints. */
static uint64_t rng_state;

static inline uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n), n >= 1. */
static inline uint64_t rnd_below(uint64_t n)
{
	return rnd() % n;
}

#endif /* GMEM_RANGE_MAP_EXPECT_H */
