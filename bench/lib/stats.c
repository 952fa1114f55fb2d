/* SPDX-License-Identifier: MIT */
/*
 * Clocks and medians.  Every figure the benchmarks print is a median (or
 * the best of several medians): one slow sample, from anything else the
 * machine does, does not move it.
 */
#include <stdlib.h>
#include <time.h>

#include "bench.h"

static double clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

double bench_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

/* In us from the start, not ns / 1e3: a double keeps sub-ns precision. */
double bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Not slewed by NTP: the TSC is calibrated against it. */
double bench_mono_raw_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC_RAW);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

double bench_median_u64(const uint64_t *v, int n)
{
	double d[BENCH_MAX_SAMPLES];
	int i;

	for (i = 0; i < n; i++)
		d[i] = (double)v[i];
	return bench_median(d, n);
}
