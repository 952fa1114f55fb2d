/* SPDX-License-Identifier: MIT */
/*
 * Guest TSC cycles to time.  The benchmark guests time themselves with
 * their TSC; the host converts cycles with its own TSC rate, calibrated
 * here against CLOCK_MONOTONIC_RAW.  That is only right if the guest TSC
 * is the host TSC, so every gmvm run is checked for it: each TSC value the
 * guest reports must lie between the host TSC read right before the spawn
 * and right after the exit.  That rules out the per-VM TSC offset KVM
 * normally applies (a guest TSC would then start near 0), and with host
 * TSC values around 10^13 it bounds a rate difference by the tightest
 * bracket's width over its value (bench_tsc_report() prints it).
 */
#include <x86intrin.h>

#include "bench.h"

static double tsc_per_ns;
static unsigned int tsc_runs, tsc_bad;
static double tsc_rate_bound = 1;	/* min (h1 - h0) / h0 over checks */

/* lfence first: the read must not move before what it times. */
uint64_t bench_rdtsc(void)
{
	_mm_lfence();
	return __rdtsc();
}

void bench_tsc_calibrate(void)
{
	double n0 = bench_mono_raw_ns(), n1;
	uint64_t c0 = bench_rdtsc(), c1;

	do {
		n1 = bench_mono_raw_ns();
	} while (n1 - n0 < 2e8);
	c1 = bench_rdtsc();
	tsc_per_ns = (double)(c1 - c0) / (n1 - n0);
}

double bench_tsc_per_ns(void)
{
	return tsc_per_ns;
}

double bench_cycles_us(double cycles)
{
	return cycles / tsc_per_ns / 1e3;
}

void bench_tsc_check(const struct bench_run *r, uint64_t guest_tsc)
{
	tsc_runs++;
	if ((double)(r->h1 - r->h0) / (double)r->h0 < tsc_rate_bound)
		tsc_rate_bound = (double)(r->h1 - r->h0) / (double)r->h0;
	if (guest_tsc <= r->h0 || guest_tsc >= r->h1) {
		tsc_bad++;
		bench_fail("guest TSC %#llx outside the host bracket [%#llx, %#llx]: the guest TSC is not the host TSC here, cycle conversions are wrong",
			   (unsigned long long)guest_tsc,
			   (unsigned long long)r->h0, (unsigned long long)r->h1);
	}
}

bool bench_tsc_bracket(const struct bench_run *r)
{
	uint64_t first, last;
	const char *p;

	if (!(p = bench_find_tag(r->out, "tsc")) ||
	    bench_parse_hex(p, &first, 1) != 1 ||
	    !(p = bench_find_tag(p, "tsc")) ||
	    bench_parse_hex(p, &last, 1) != 1 ||
	    !bench_find_tag(r->out, "done"))
		return false;
	bench_tsc_check(r, first);
	bench_tsc_check(r, last);
	return true;
}

void bench_tsc_report(void)
{
	printf("Guest TSC cycles are converted at the host TSC rate, %.2f MHz (calibrated against CLOCK_MONOTONIC_RAW over 200 ms). The guest TSC is the host TSC here: in %u of %u checks a TSC value reported by a guest lay between the host TSC read right before gmvm was spawned and right after it exited",
	       tsc_per_ns * 1e3, tsc_runs - tsc_bad, tsc_runs);
	if (tsc_bad || !tsc_runs)
		printf(" (**not all: cycle figures are not trustworthy**).\n\n");
	else
		printf("; so the guest TSC has no offset (KVM's usual per-VM offset would make it start near 0), and its rate is the host's within %.0e (the tightest bracket's width over its value).\n\n",
		       tsc_rate_bound);
}
