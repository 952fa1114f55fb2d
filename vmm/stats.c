/* SPDX-License-Identifier: MIT */
/*
 * --stats: what the run did, printed on stdout after the guest's output
 * (so that `make run` ends with the table), as text or one JSON object.
 *
 * Sources: the vCPUs' own counters (summed here, after every vCPU thread
 * has been joined, or, for the control socket, while every vCPU is
 * paused: either way without locking), libgmem's gmem_get_stats() and
 * gmem_backing_resident(), and each device's own section (its stats
 * hook, after the VM's lines).
 *
 * What is printed is the table vm_fields[] (stats.h says how a table reads):
 * one entry per value, for both formats, so a counter is added in one
 * place and text and JSON cannot drift apart.
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

struct stats_out {
	FILE *f;
	bool json;
	bool line_open;		/* text: a line is being printed */
	bool item_first;	/* text: no list item on this line yet */
	unsigned int depth;	/* JSON: objects open */
	bool first[8];		/* JSON: nothing yet at this depth */
};

struct stats_all {
	struct vm *vm;
	struct vcpu_stats v;
	struct gmem_stats g;
	int64_t alloc_gmem;
	int64_t alloc_shared;
	uint64_t p50;
	uint64_t p99;
	double seconds;
	/* The run's configuration, as printed. */
	uint64_t vcpus;
	uint64_t ram_size;	/* bytes of RAM, not the top of RAM */
	uint64_t ram_regions;
	const char *ram_layout;
	const char *vcpus_plural;
	const char *mode;
	const char *implicit;
	const char *hypercall;
	const char *reclaim;
	const char *in_place_note;
	bool busy;		/* a MAP_GPA_RANGE was refused */
};

static void gather(struct vm *vm, struct stats_all *s)
{
	unsigned int i, k;
	uint64_t end;

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
		s->v.hc_nomem += v->hc_nomem;
		s->v.batch_calls += v->batch_calls;
		s->v.batch_entries += v->batch_entries;
		s->v.batch_pages += v->batch_pages;
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
	s->p50 = hist_quantile(s->v.hc_hist, 0.50);
	s->p99 = hist_quantile(s->v.hc_hist, 0.99);
	/* While the guest runs (the control socket's stats): so far. */
	end = vm->t_end ? vm->t_end : now_ns();
	if (vm->t_start && end > vm->t_start)
		s->seconds = (double)(end - vm->t_start) / 1e9;

	s->vm = vm;
	s->vcpus = vm->nr_vcpus;
	s->vcpus_plural = vm->nr_vcpus > 1 ? "s" : "";
	s->ram_size = vm->ram.bytes;
	s->ram_regions = vm->ram.nr;
	s->ram_layout = ram_layout_name(vm->cfg->layout);
	s->mode = gmem_mode_name(vm->cfg->mode);
	s->implicit = vm->cfg->implicit == IMPLICIT_DENY ? "deny" : "convert";
	s->hypercall = vm->vmcall ? "vmcall" : "doorbell";
	s->reclaim = vm->cfg->deferred_reclaim ? "deferred" : "sync";
	s->in_place_note = vm->cfg->mode == GMEM_MODE_IN_PLACE ?
			   " (in-place: the same backing)" : "";
	s->busy = s->v.convert_busy != 0;
}

static double mib(uint64_t bytes)
{
	return (double)bytes / (1024.0 * 1024.0);
}

/* ---- the printer of every table ------------------------------------------ */

/* JSON: the separator before a value or object at the current depth. */
static void json_sep(struct stats_out *o)
{
	if (!o->first[o->depth])
		fputs(", ", o->f);
	o->first[o->depth] = false;
}

static void text_value(struct stats_out *o, const struct stat_field *e,
		       const void *v)
{
	uint64_t u = 0;
	int64_t i = 0;

	if (e->kind == STAT_I64_MIB)
		memcpy(&i, v, sizeof(i));
	else if (e->kind != STAT_STR && e->kind != STAT_BOOL &&
		 e->kind != STAT_INT && e->kind != STAT_SECONDS)
		memcpy(&u, v, sizeof(u));
	fputs(e->pre, o->f);
	switch (e->kind) {
	case STAT_U64: fprintf(o->f, "%llu", (unsigned long long)u); break;
	case STAT_HEX: fprintf(o->f, "%#llx", (unsigned long long)u); break;
	case STAT_MIB: fprintf(o->f, "%.1f", mib(u)); break;
	case STAT_PAGES_MIB: fprintf(o->f, "%.1f", mib(u * SZ_4K)); break;
	case STAT_US: fprintf(o->f, "%.1f", (double)u / 1e3); break;
	case STAT_I64_MIB:
		fprintf(o->f, "%.1f", i < 0 ? -1.0 : mib((uint64_t)i));
		break;
	case STAT_SECONDS: fprintf(o->f, "%.3f", *(const double *)v); break;
	case STAT_STR: fputs(*(const char *const *)v, o->f); break;
	case STAT_BOOL: fputs(*(const bool *)v ? "yes" : "no", o->f); break;
	case STAT_INT: fprintf(o->f, "%d", *(const int *)v); break;
	default: break;
	}
	fputs(e->post, o->f);
}

static void json_value(struct stats_out *o, const struct stat_field *e,
		       const void *v)
{
	switch (e->kind) {
	case STAT_I64_MIB:
		fprintf(o->f, "%lld", (long long)*(const int64_t *)v);
		break;
	case STAT_SECONDS: fprintf(o->f, "%.6f", *(const double *)v); break;
	case STAT_STR: fprintf(o->f, "\"%s\"", *(const char *const *)v); break;
	case STAT_BOOL:
		fputs(*(const bool *)v ? "true" : "false", o->f);
		break;
	case STAT_INT: fprintf(o->f, "%d", *(const int *)v); break;
	default:
		fprintf(o->f, "%llu",
			(unsigned long long)*(const uint64_t *)v);
		break;
	}
}

void stats_emit(struct stats_out *o, const struct stat_field *t, size_t n,
		const void *src)
{
	const char *base = src;
	size_t k;

	for (k = 0; k < n; k++) {
		const struct stat_field *e = &t[k];
		bool shown = !e->has_when || *(const bool *)(base + e->when);

		switch (e->kind) {
		case STAT_LINE:
			if (o->json)
				break;
			if (o->line_open)
				fputc('\n', o->f);
			fputs(e->pre, o->f);
			o->line_open = true;
			o->item_first = true;
			break;
		case STAT_OBJ:
			if (!o->json)
				break;
			json_sep(o);
			fprintf(o->f, "\"%s\": {", e->json);
			o->first[++o->depth] = true;
			break;
		case STAT_END:
			if (!o->json)
				break;
			fputc('}', o->f);
			o->depth--;
			break;
		case STAT_CUSTOM:
			e->custom(o, src);
			break;
		default:
			if (!o->json) {
				if (e->pre && shown)
					text_value(o, e, base + e->off);
				break;
			}
			if (!e->json || (!shown && !e->null_otherwise))
				break;
			json_sep(o);
			fprintf(o->f, "\"%s\": ", e->json);
			if (shown)
				json_value(o, e, base + e->off);
			else
				fputs("null", o->f);
			break;
		}
	}
}

void stats_list_item(struct stats_out *o, const char *text,
		     const char *json, uint64_t v)
{
	if (o->json) {
		json_sep(o);
		fprintf(o->f, "\"%s\": %llu", json, (unsigned long long)v);
	} else {
		fprintf(o->f, "%s%s %llu", o->item_first ? "" : ", ", text,
			(unsigned long long)v);
		o->item_first = false;
	}
}

/* ---- the VM's table ------------------------------------------------------ */

static void exits_items(struct stats_out *o, const void *src)
{
	const struct stats_all *s = src;
	unsigned int k;

	for (k = 0; k < STATS_NR_EXIT_REASONS; k++) {
		const char *name = k == STATS_NR_EXIT_REASONS - 1 ? "other" :
				   exit_reason_name(k);

		if (s->v.exits[k])
			stats_list_item(o, name, name, s->v.exits[k]);
	}
	stats_list_item(o, "EINTR", "EINTR", s->v.exits_intr);
	stats_list_item(o, "memory fault", "memory_fault",
			s->v.exits_memory_fault);
}

static void port_exits_items(struct stats_out *o, const void *src)
{
	const struct stats_all *s = src;
	const struct vm *vm = s->vm;
	unsigned int k;

	for (k = 0; k < vm->nr_ports && k < ARRAY_SIZE(s->v.port_exits); k++)
		stats_list_item(o, vm->ports[k].name, vm->ports[k].name,
				s->v.port_exits[k]);
}

#define F(kind, pre, post, json, member) \
	{ kind, pre, post, json, offsetof(struct stats_all, member) }
#define LINE(label) { STAT_LINE, label }
#define OBJ(name) { .kind = STAT_OBJ, .json = name }
#define END { .kind = STAT_END }
#define CUSTOM(fn) { .kind = STAT_CUSTOM, .custom = fn }

/*
 * The conversions are the one group whose formats are ordered differently:
 * text has a line per direction (explicit and implicit on each), JSON an
 * object per kind (both directions in each).  So each of their values has
 * a text-only entry (CONV_TEXT, one direction) and a JSON-only one
 * (CONV_JSON, one kind).
 */
#define CONV_TEXT(dir, to)						\
	F(STAT_U64, dir ": explicit ", "", NULL, v.explicit_conv[to]),	\
	F(STAT_U64, " (", " pages)", NULL, v.explicit_pages[to]),	\
	F(STAT_U64, ", implicit ", "", NULL, v.implicit_conv[to]),	\
	F(STAT_U64, " (", " pages)", NULL, v.implicit_pages[to])
#define CONV_JSON(kind, conv, pages)					\
	OBJ(kind),							\
	F(STAT_U64, NULL, NULL, "to_private", conv[GMEM_PRIVATE]),	\
	F(STAT_U64, NULL, NULL, "to_private_pages", pages[GMEM_PRIVATE]), \
	F(STAT_U64, NULL, NULL, "to_shared", conv[GMEM_SHARED]),	\
	F(STAT_U64, NULL, NULL, "to_shared_pages", pages[GMEM_SHARED]),	\
	END
static const struct stat_field vm_fields[] = {
	LINE("run:          "),
	F(STAT_U64, "", " vCPU", "vcpus", vcpus),
	F(STAT_STR, "", "", NULL, vcpus_plural),
	F(STAT_MIB, ", ", " MiB RAM", "ram_size", ram_size),
	F(STAT_STR, " (", " layout", "layout", ram_layout),
	F(STAT_U64, ", regions ", ")", "regions", ram_regions),
	F(STAT_STR, ", ", " conversion", "mode", mode),
	F(STAT_STR, ", implicit ", "", "implicit", implicit),
	F(STAT_STR, ", hypercalls by ", "", "hypercall", hypercall),
	F(STAT_SECONDS, ", ", " s", "seconds", seconds),

	LINE("pages:        "),
	OBJ("pages"),
	F(STAT_U64, "", " private", "private", g.pages_private),
	F(STAT_PAGES_MIB, " (", " MiB)", NULL, g.pages_private),
	F(STAT_U64, ", ", " shared", "shared", g.pages_shared),
	F(STAT_PAGES_MIB, " (", " MiB)", NULL, g.pages_shared),
	F(STAT_U64, ", ", " of them unplugged", "unplugged",
	  g.pages_unplugged),
	F(STAT_U64, ", ", " runs", "runs", g.nr_runs),
	F(STAT_U64, ", state map ", " bytes", "map_bytes", g.map_bytes),
	END,

	LINE("KVM_RUN:      "),
	F(STAT_U64, "", " calls", "kvm_runs", v.runs),

	LINE("exits:        "),
	OBJ("exits"),
	CUSTOM(exits_items),
	END,

	LINE("port exits:   "),
	OBJ("port_exits"),
	CUSTOM(port_exits_items),
	END,

	LINE("conversions:  "),
	CONV_TEXT("to private", GMEM_PRIVATE),
	LINE("              "),
	CONV_TEXT("to shared", GMEM_SHARED),
	LINE("              "),
	OBJ("conversions"),
	CONV_JSON("explicit", v.explicit_conv, v.explicit_pages),
	CONV_JSON("implicit", v.implicit_conv, v.implicit_pages),
	F(STAT_U64,
	  "wrong-view exits that found the page already in the view used (a conversion raced them): ",
	  "", "implicit_raced", v.implicit_raced),
	END,

	LINE("libgmem:      "),
	OBJ("libgmem"),
	F(STAT_U64, "to private ", "", "conversions_to_private",
	  g.conversions_to_private),
	F(STAT_U64, " (", " pages)", "pages_to_private", g.pages_to_private),
	F(STAT_U64, ", to shared ", "", "conversions_to_shared",
	  g.conversions_to_shared),
	F(STAT_U64, " (", " pages)", "pages_to_shared", g.pages_to_shared),
	F(STAT_U64, ", failed ", "", "conversions_failed",
	  g.conversions_failed),
	F(STAT_MIB, ", discarded ", " MiB", "bytes_discarded",
	  g.bytes_discarded),
	F(STAT_U64, "; plugs ", "", "plugs", g.plugs),
	F(STAT_U64, ", unplugs ", "", "unplugs", g.unplugs),
	LINE("reclaim:      "),
	F(STAT_STR, "", "", NULL, reclaim),
	F(STAT_MIB, ", ", " MiB pending", "reclaim_pending_bytes",
	  g.reclaim_pending_bytes),
	F(STAT_U64, ", ", " deferred punches done by a converting thread",
	  "reclaim_sync_punches", g.reclaim_sync_punches),
	END,

	LINE("backing now:  "),
	OBJ("backing_allocated"),
	F(STAT_I64_MIB, "guest_memfd ", " MiB", "guest_memfd", alloc_gmem),
	F(STAT_I64_MIB, ", shared ", " MiB", "shared", alloc_shared),
	F(STAT_STR, "", "", NULL, in_place_note),
	END,

	LINE("hypercalls:   "),
	OBJ("hypercalls"),
	F(STAT_U64, "", "", "count", v.hypercalls),
	F(STAT_U64, " (", " failed", "failed", v.hypercalls_failed),
	F(STAT_U64, ", ", " of them -12: no memory, the host's mapping limit)",
	  "nomem", v.hc_nomem),
	F(STAT_US, ", latency p50 ", " us", "latency_ns_p50", p50),
	F(STAT_US, ", p99 ", " us (host side, exit to re-entry)",
	  "latency_ns_p99", p99),
	END,

	LINE("batches:      "),
	OBJ("batch"),
	F(STAT_U64, "", " CONVERT_BATCH calls", "calls", v.batch_calls),
	F(STAT_U64, "; those that succeeded applied ", " entries", "entries",
	  v.batch_entries),
	F(STAT_U64, " and changed ", " pages", "pages", v.batch_pages),
	END,

	LINE("busy:         "),
	OBJ("busy"),
	F(STAT_U64, "", " MAP_GPA_RANGE or CONVERT_BATCH refused", "count",
	  v.convert_busy),
	{ STAT_HEX, " (-EAGAIN: a page in use), last busy GPA ", "",
	  "last_gpa", offsetof(struct stats_all, v.busy_last_gpa),
	  .has_when = true, .null_otherwise = true,
	  .when = offsetof(struct stats_all, busy) },
	F(STAT_U64, "; libgmem counts ", " busy conversions",
	  "libgmem_conversions_busy", g.conversions_busy),
	END,
};

void stats_write(struct vm *vm, FILE *f, bool json)
{
	struct stats_out o = { .f = f, .json = json };
	struct stats_all s;

	gather(vm, &s);
	o.first[0] = true;
	fputs(o.json ? "{" : "--- gmvm stats ---\n", o.f);
	stats_emit(&o, vm_fields, ARRAY_SIZE(vm_fields), &s);
	devices_stats(vm, &o);
	fputs(o.json ? "}\n" : o.line_open ? "\n" : "", o.f);
	fflush(f);
}

void stats_print(struct vm *vm)
{
	if (vm->cfg->stats != STATS_NONE)
		stats_write(vm, stdout, vm->cfg->stats == STATS_JSON);
}
