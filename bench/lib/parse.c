/* SPDX-License-Identifier: MIT */
/*
 * The output of the benchmark guests (guest/bench/bench.h): lines
 * "@ TAG v1 v2 ...", the values in hex, among whatever else gmvm prints.
 * The guests print numbers only, as cheaply as they can; names, units and
 * medians are the host's business.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

const char *bench_find_tag(const char *from, const char *tag)
{
	size_t n = strlen(tag);
	const char *p = from;

	while ((p = strstr(p, "@ ")) != NULL) {
		if ((p == from || p[-1] == '\n') && !strncmp(p + 2, tag, n) &&
		    (p[2 + n] == ' ' || p[2 + n] == '\n'))
			return p + 2 + n;
		p += 2;
	}
	return NULL;
}

int bench_parse_hex(const char *p, uint64_t *v, int max)
{
	int n = 0;

	while (n < max) {
		char *end;

		while (*p == ' ')
			p++;
		if (*p == '\n' || !*p)
			break;
		v[n] = strtoull(p, &end, 16);
		if (end == p)
			break;
		n++;
		p = end;
	}
	return n;
}

int bench_tag_median_us(const char *from, const char *tag, double *us)
{
	uint64_t v[BENCH_MAX_SAMPLES];
	const char *p = bench_find_tag(from, tag);
	int n;

	if (!p || (n = bench_parse_hex(p, v, BENCH_MAX_SAMPLES)) < 1)
		return 0;
	*us = bench_cycles_us(bench_median_u64(v, n));
	return n;
}

bool bench_find_keyed(const char *out, const char *tag, uint64_t key,
		      uint64_t *v, int n)
{
	const char *p = out;

	while ((p = bench_find_tag(p, tag)) != NULL)
		if (bench_parse_hex(p, v, n) == n && v[0] == key)
			return true;
	return false;
}
