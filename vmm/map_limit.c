/* SPDX-License-Identifier: MIT */
/*
 * The host's mapping limit, in runs (map_limit.h).  An estimate, and said
 * to be one: the process gains mappings after it is taken (each vCPU's
 * kvm_run and thread stack, the guest's views), and other processes have
 * limits of their own (the external DMA device maps each shared run once
 * in its process).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "map_limit.h"
#include "proc_maps.h"

long map_limit_runs(long max_map_count, long mappings)
{
	if (max_map_count <= mappings)
		return 0;
	return (max_map_count - mappings) / MAP_VMAS_PER_RUN;
}

/* The kernel lists the vsyscall gate (a kernel address) but does not
 * count it against vm.max_map_count. */
static int count_one(const struct proc_map *m, void *arg)
{
	if (m->start < 1ULL << 63)
		(*(long *)arg)++;
	return 0;
}

int map_limit_read(struct map_limit *l)
{
	long limit, n = 0;
	FILE *f;
	int ret;

	f = fopen("/proc/sys/vm/max_map_count", "re");
	if (!f)
		return -errno;
	ret = fscanf(f, "%ld", &limit);
	fclose(f);
	if (ret != 1 || limit <= 0)
		return -EIO;
	ret = proc_maps_for_each(0, count_one, &n);
	if (ret)
		return ret < 0 ? ret : -EIO;
	l->max_map_count = limit;
	l->mappings = n;
	l->runs = map_limit_runs(limit, n);
	return 0;
}
