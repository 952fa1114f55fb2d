/* SPDX-License-Identifier: MIT */
/*
 * --stats: what the run did, printed on stdout after the guest's output
 * (so that `make run` ends with the table), as text or one JSON object.
 *
 * Sources: the vCPUs' own counters (summed here, after every vCPU thread
 * has been joined, so no locking), libgmem's gmem_get_stats() and
 * gmem_backing_resident(), and the DMA device (where it runs and its DMA
 * mapper's counters, the last ones if the mapper went with a dead device).
 * Hypercall latency is measured host-side from KVM_RUN's return to the
 * next KVM_RUN of the same vCPU, into a fixed log2 histogram with 8 sub-buckets per power of two;
 * a percentile is the upper bound of its bucket (at most 12.5% high).
 */
#include <stdio.h>
#include <string.h>

#include "gmvm.h"
#include "devices/devices.h"

static unsigned int hist_bucket(uint64_t v)
{
	unsigned int msb;

	if (v < 8)
		return (unsigned int)v;
	msb = 63 - (unsigned int)__builtin_clzll(v);
	return 8 + (msb - 3) * STATS_HIST_SUB +
	       (unsigned int)((v >> (msb - 3)) & 7);
}

/* The largest value that falls into bucket @b. */
static uint64_t hist_upper(unsigned int b)
{
	unsigned int shift, sub;

	if (b < 8)
		return b;
	shift = (b - 8) / STATS_HIST_SUB;	/* msb - 3 */
	sub = (b - 8) % STATS_HIST_SUB;
	if (shift >= 60 && sub == 7)
		return UINT64_MAX;
	return ((uint64_t)(9 + sub) << shift) - 1;
}

void stats_hist_record(uint64_t *hist, uint64_t ns)
{
	hist[hist_bucket(ns)]++;
}

static uint64_t hist_quantile(const uint64_t *hist, double q)
{
	uint64_t total = 0, target, seen = 0;
	unsigned int b;

	for (b = 0; b < STATS_HIST_BUCKETS; b++)
		total += hist[b];
	if (!total)
		return 0;
	target = (uint64_t)(q * (double)total);
	if ((double)target < q * (double)total)
		target++;
	if (target == 0)
		target = 1;
	for (b = 0; b < STATS_HIST_BUCKETS; b++) {
		seen += hist[b];
		if (seen >= target)
			return hist_upper(b);
	}
	return hist_upper(STATS_HIST_BUCKETS - 1);
}

struct stats_all {
	struct vcpu_stats v;
	struct gmem_stats g;
	struct dmatest_stats d;
	int64_t alloc_gmem;
	int64_t alloc_shared;
	uint64_t p50;
	uint64_t p99;
	double seconds;
};

static void gather(struct vm *vm, struct stats_all *s)
{
	unsigned int i, k;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < vm->nr_vcpus; i++) {
		const struct vcpu_stats *v = &vm->vcpus[i].stats;

		s->v.runs += v->runs;
		for (k = 0; k < STATS_NR_EXIT_REASONS; k++)
			s->v.exits[k] += v->exits[k];
		s->v.exits_intr += v->exits_intr;
		s->v.exits_memory_fault += v->exits_memory_fault;
		for (k = 0; k < ARRAY_SIZE(v->port_exits); k++)
			s->v.port_exits[k] += v->port_exits[k];
		s->v.hypercalls += v->hypercalls;
		s->v.hypercalls_failed += v->hypercalls_failed;
		for (k = 0; k < 2; k++) {
			s->v.explicit_conv[k] += v->explicit_conv[k];
			s->v.explicit_pages[k] += v->explicit_pages[k];
			s->v.implicit_conv[k] += v->implicit_conv[k];
			s->v.implicit_pages[k] += v->implicit_pages[k];
		}
		s->v.implicit_raced += v->implicit_raced;
		for (k = 0; k < STATS_HIST_BUCKETS; k++)
			s->v.hc_hist[k] += v->hc_hist[k];
		s->v.convert_busy += v->convert_busy;
		if (v->convert_busy && v->busy_last_ns >= s->v.busy_last_ns) {
			s->v.busy_last_ns = v->busy_last_ns;
			s->v.busy_last_gpa = v->busy_last_gpa;
		}
	}
	s->g.size = sizeof(s->g);
	gmem_get_stats(vm->gmem, &s->g);	/* only fails for size 0 */
	s->alloc_gmem = gmem_backing_resident(vm->gmem, GMEM_BACKING_PRIVATE);
	s->alloc_shared = gmem_backing_resident(vm->gmem,
						GMEM_BACKING_SHARED);
	dmatest_get_stats(vm, &s->d);
	s->p50 = hist_quantile(s->v.hc_hist, 0.50);
	s->p99 = hist_quantile(s->v.hc_hist, 0.99);
	if (vm->t_end > vm->t_start)
		s->seconds = (double)(vm->t_end - vm->t_start) / 1e9;
}

static double mib(uint64_t bytes)
{
	return (double)bytes / (1024.0 * 1024.0);
}

static void print_text(struct vm *vm, const struct stats_all *s)
{
	static const char *const to[2] = { "to private", "to shared" };
	unsigned int k;
	const char *sep;
	FILE *f = stdout;

	fprintf(f, "--- gmvm stats ---\n");
	fprintf(f, "run:          %u vCPU%s, %.1f MiB RAM, %s conversion, implicit %s, hypercalls by %s, %.3f s\n",
		vm->nr_vcpus, vm->nr_vcpus > 1 ? "s" : "", mib(vm->ram_size),
		gmem_mode_name(vm->cfg->mode),
		vm->cfg->implicit == IMPLICIT_DENY ? "deny" : "convert",
		vm->vmcall ? "vmcall" : "doorbell", s->seconds);
	fprintf(f, "pages:        %llu private (%.1f MiB), %llu shared (%.1f MiB), %llu of them unplugged, %llu runs, state map %llu bytes\n",
		(unsigned long long)s->g.pages_private,
		mib(s->g.pages_private * SZ_4K),
		(unsigned long long)s->g.pages_shared,
		mib(s->g.pages_shared * SZ_4K),
		(unsigned long long)s->g.pages_unplugged,
		(unsigned long long)s->g.nr_runs,
		(unsigned long long)s->g.map_bytes);
	fprintf(f, "KVM_RUN:      %llu calls\n", (unsigned long long)s->v.runs);
	fprintf(f, "exits:        ");
	sep = "";
	for (k = 0; k < STATS_NR_EXIT_REASONS; k++) {
		if (!s->v.exits[k])
			continue;
		fprintf(f, "%s%s %llu", sep,
			k == STATS_NR_EXIT_REASONS - 1 ? "other" :
			exit_reason_name(k),
			(unsigned long long)s->v.exits[k]);
		sep = ", ";
	}
	fprintf(f, "%sEINTR %llu, memory fault %llu\n", sep,
		(unsigned long long)s->v.exits_intr,
		(unsigned long long)s->v.exits_memory_fault);
	fprintf(f, "port exits:   ");
	for (k = 0; k < vm->nr_ports && k < ARRAY_SIZE(s->v.port_exits); k++)
		fprintf(f, "%s%s %llu", k ? ", " : "", vm->ports[k].name,
			(unsigned long long)s->v.port_exits[k]);
	fprintf(f, "\n");
	for (k = 0; k < 2; k++)
		fprintf(f, "%-14s%s: explicit %llu (%llu pages), implicit %llu (%llu pages)\n",
			k ? "" : "conversions:", to[k],
			(unsigned long long)s->v.explicit_conv[k],
			(unsigned long long)s->v.explicit_pages[k],
			(unsigned long long)s->v.implicit_conv[k],
			(unsigned long long)s->v.implicit_pages[k]);
	fprintf(f, "%-14swrong-view exits that found the page already in the view used (a conversion raced them): %llu\n",
		"", (unsigned long long)s->v.implicit_raced);
	fprintf(f, "libgmem:      to private %llu (%llu pages), to shared %llu (%llu pages), failed %llu, discarded %.1f MiB; plugs %llu, unplugs %llu\n",
		(unsigned long long)s->g.conversions_to_private,
		(unsigned long long)s->g.pages_to_private,
		(unsigned long long)s->g.conversions_to_shared,
		(unsigned long long)s->g.pages_to_shared,
		(unsigned long long)s->g.conversions_failed,
		mib(s->g.bytes_discarded),
		(unsigned long long)s->g.plugs,
		(unsigned long long)s->g.unplugs);
	fprintf(f, "reclaim:      %s, %.1f MiB pending, %llu deferred punches done by a converting thread\n",
		vm->cfg->deferred_reclaim ? "deferred" : "sync",
		mib(s->g.reclaim_pending_bytes),
		(unsigned long long)s->g.reclaim_sync_punches);
	fprintf(f, "backing now:  guest_memfd %.1f MiB, shared %.1f MiB%s\n",
		s->alloc_gmem < 0 ? -1.0 : mib((uint64_t)s->alloc_gmem),
		s->alloc_shared < 0 ? -1.0 : mib((uint64_t)s->alloc_shared),
		vm->cfg->mode == GMEM_MODE_IN_PLACE ?
		" (in-place: the same backing)" : "");
	fprintf(f, "hypercalls:   %llu (%llu failed), latency p50 %.1f us, p99 %.1f us (host side, exit to re-entry)\n",
		(unsigned long long)s->v.hypercalls,
		(unsigned long long)s->v.hypercalls_failed,
		(double)s->p50 / 1e3, (double)s->p99 / 1e3);
	if (s->v.convert_busy)
		fprintf(f, "busy:         %llu MAP_GPA_RANGE refused (-EAGAIN: a page in use), last busy GPA %#llx; libgmem counts %llu busy conversions\n",
			(unsigned long long)s->v.convert_busy,
			(unsigned long long)s->v.busy_last_gpa,
			(unsigned long long)s->g.conversions_busy);
	else
		fprintf(f, "busy:         0 MAP_GPA_RANGE refused; libgmem counts %llu busy conversions\n",
			(unsigned long long)s->g.conversions_busy);
	fprintf(f, "dma device:   fill %llu, checksum %llu, pin %llu, unpin %llu, unknown %llu; fault %llu, bad %llu, no resources %llu, bad accesses %llu, %.1f MiB moved\n",
		(unsigned long long)s->d.commands[1],
		(unsigned long long)s->d.commands[2],
		(unsigned long long)s->d.commands[3],
		(unsigned long long)s->d.commands[4],
		(unsigned long long)s->d.commands[0],
		(unsigned long long)s->d.faults,
		(unsigned long long)s->d.bad,
		(unsigned long long)s->d.no_resources,
		(unsigned long long)s->d.bad_accesses, mib(s->d.bytes));
	if (s->d.external)
		fprintf(f, "dma backend:  external, device process pid %d, died %s\n",
			s->d.pid, s->d.died ? "yes" : "no");
	else
		fprintf(f, "dma backend:  internal (gmvm's software IOMMU)\n");
	fprintf(f, "dma mapper:   %llu live mappings (max %llu), %llu maps, %llu unmaps, %llu cuts, %llu merges, %llu splits, %llu refused (pinned)%s\n",
		(unsigned long long)s->d.dma.live,
		(unsigned long long)s->d.dma.max_live,
		(unsigned long long)s->d.dma.maps,
		(unsigned long long)s->d.dma.unmaps,
		(unsigned long long)s->d.dma.cuts,
		(unsigned long long)s->d.dma.merges,
		(unsigned long long)s->d.dma.splits,
		(unsigned long long)s->d.dma.refused,
		s->d.died ? " (when the device died)" : "");
}

static void print_json(struct vm *vm, const struct stats_all *s)
{
	FILE *f = stdout;
	unsigned int k;
	const char *sep;

	fprintf(f, "{\"vcpus\": %u, \"ram_size\": %llu, \"mode\": \"%s\", \"implicit\": \"%s\", \"hypercall\": \"%s\", \"seconds\": %.6f",
		vm->nr_vcpus, (unsigned long long)vm->ram_size,
		gmem_mode_name(vm->cfg->mode),
		vm->cfg->implicit == IMPLICIT_DENY ? "deny" : "convert",
		vm->vmcall ? "vmcall" : "doorbell", s->seconds);
	fprintf(f, ", \"pages\": {\"private\": %llu, \"shared\": %llu, \"unplugged\": %llu, \"runs\": %llu, \"map_bytes\": %llu}",
		(unsigned long long)s->g.pages_private,
		(unsigned long long)s->g.pages_shared,
		(unsigned long long)s->g.pages_unplugged,
		(unsigned long long)s->g.nr_runs,
		(unsigned long long)s->g.map_bytes);
	fprintf(f, ", \"kvm_runs\": %llu", (unsigned long long)s->v.runs);
	fprintf(f, ", \"exits\": {");
	sep = "";
	for (k = 0; k < STATS_NR_EXIT_REASONS; k++) {
		if (!s->v.exits[k])
			continue;
		fprintf(f, "%s\"%s\": %llu", sep,
			k == STATS_NR_EXIT_REASONS - 1 ? "other" :
			exit_reason_name(k),
			(unsigned long long)s->v.exits[k]);
		sep = ", ";
	}
	fprintf(f, "%s\"EINTR\": %llu, \"memory_fault\": %llu}", sep,
		(unsigned long long)s->v.exits_intr,
		(unsigned long long)s->v.exits_memory_fault);
	fprintf(f, ", \"port_exits\": {");
	for (k = 0; k < vm->nr_ports && k < ARRAY_SIZE(s->v.port_exits); k++)
		fprintf(f, "%s\"%s\": %llu", k ? ", " : "", vm->ports[k].name,
			(unsigned long long)s->v.port_exits[k]);
	fprintf(f, "}");
	fprintf(f, ", \"conversions\": {\"explicit\": {\"to_private\": %llu, \"to_private_pages\": %llu, \"to_shared\": %llu, \"to_shared_pages\": %llu}, \"implicit\": {\"to_private\": %llu, \"to_private_pages\": %llu, \"to_shared\": %llu, \"to_shared_pages\": %llu}, \"implicit_raced\": %llu}",
		(unsigned long long)s->v.explicit_conv[GMEM_PRIVATE],
		(unsigned long long)s->v.explicit_pages[GMEM_PRIVATE],
		(unsigned long long)s->v.explicit_conv[GMEM_SHARED],
		(unsigned long long)s->v.explicit_pages[GMEM_SHARED],
		(unsigned long long)s->v.implicit_conv[GMEM_PRIVATE],
		(unsigned long long)s->v.implicit_pages[GMEM_PRIVATE],
		(unsigned long long)s->v.implicit_conv[GMEM_SHARED],
		(unsigned long long)s->v.implicit_pages[GMEM_SHARED],
		(unsigned long long)s->v.implicit_raced);
	fprintf(f, ", \"libgmem\": {\"conversions_to_private\": %llu, \"pages_to_private\": %llu, \"conversions_to_shared\": %llu, \"pages_to_shared\": %llu, \"conversions_failed\": %llu, \"bytes_discarded\": %llu, \"plugs\": %llu, \"unplugs\": %llu, \"reclaim_pending_bytes\": %llu, \"reclaim_sync_punches\": %llu}",
		(unsigned long long)s->g.conversions_to_private,
		(unsigned long long)s->g.pages_to_private,
		(unsigned long long)s->g.conversions_to_shared,
		(unsigned long long)s->g.pages_to_shared,
		(unsigned long long)s->g.conversions_failed,
		(unsigned long long)s->g.bytes_discarded,
		(unsigned long long)s->g.plugs,
		(unsigned long long)s->g.unplugs,
		(unsigned long long)s->g.reclaim_pending_bytes,
		(unsigned long long)s->g.reclaim_sync_punches);
	fprintf(f, ", \"backing_allocated\": {\"guest_memfd\": %lld, \"shared\": %lld}",
		(long long)s->alloc_gmem, (long long)s->alloc_shared);
	fprintf(f, ", \"hypercalls\": {\"count\": %llu, \"failed\": %llu, \"latency_ns_p50\": %llu, \"latency_ns_p99\": %llu}",
		(unsigned long long)s->v.hypercalls,
		(unsigned long long)s->v.hypercalls_failed,
		(unsigned long long)s->p50, (unsigned long long)s->p99);
	fprintf(f, ", \"busy\": {\"count\": %llu, \"last_gpa\": ",
		(unsigned long long)s->v.convert_busy);
	if (s->v.convert_busy)
		fprintf(f, "%llu", (unsigned long long)s->v.busy_last_gpa);
	else
		fprintf(f, "null");
	fprintf(f, ", \"libgmem_conversions_busy\": %llu}",
		(unsigned long long)s->g.conversions_busy);
	fprintf(f, ", \"dma\": {\"fill\": %llu, \"checksum\": %llu, \"pin\": %llu, \"unpin\": %llu, \"unknown\": %llu, \"fault\": %llu, \"bad\": %llu, \"no_resources\": %llu, \"bad_accesses\": %llu, \"bytes\": %llu",
		(unsigned long long)s->d.commands[1],
		(unsigned long long)s->d.commands[2],
		(unsigned long long)s->d.commands[3],
		(unsigned long long)s->d.commands[4],
		(unsigned long long)s->d.commands[0],
		(unsigned long long)s->d.faults,
		(unsigned long long)s->d.bad,
		(unsigned long long)s->d.no_resources,
		(unsigned long long)s->d.bad_accesses,
		(unsigned long long)s->d.bytes);
	fprintf(f, ", \"backend\": \"%s\"",
		s->d.external ? "external" : "internal");
	if (s->d.external)
		fprintf(f, ", \"pid\": %d, \"died\": %s", s->d.pid,
			s->d.died ? "true" : "false");
	fprintf(f, ", \"mapper\": {\"live\": %llu, \"max_live\": %llu, \"maps\": %llu, \"unmaps\": %llu, \"cuts\": %llu, \"merges\": %llu, \"splits\": %llu, \"refused\": %llu}}",
		(unsigned long long)s->d.dma.live,
		(unsigned long long)s->d.dma.max_live,
		(unsigned long long)s->d.dma.maps,
		(unsigned long long)s->d.dma.unmaps,
		(unsigned long long)s->d.dma.cuts,
		(unsigned long long)s->d.dma.merges,
		(unsigned long long)s->d.dma.splits,
		(unsigned long long)s->d.dma.refused);
	fprintf(f, "}\n");
}

void stats_print(struct vm *vm)
{
	struct stats_all s;

	if (vm->cfg->stats == STATS_NONE)
		return;
	gather(vm, &s);
	if (vm->cfg->stats == STATS_JSON)
		print_json(vm, &s);
	else
		print_text(vm, &s);
	fflush(stdout);
}
