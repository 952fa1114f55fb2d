/* SPDX-License-Identifier: MIT */
/*
 * The VM-wide sections beyond memory (docs/SNAPSHOT.md): CLOCK, DMADEV and
 * RUNOPTS, and the whole machine (every section of machine.h) parsed and
 * checked as one, so that `gmvm restore` can refuse a bad file before it
 * opens /dev/kvm.  machine.h states the invariants a parsed struct keeps.
 *
 * CLOCK (16): clock u64 (KVM_GET_CLOCK's nanoseconds), flags u32 = 0,
 *   reserved u32 = 0.
 * DMADEV (32 + 16 per pin): addr_lo, addr_hi, len, pattern, status,
 *   result, nr_pins, reserved = 0 (u32 each), then nr_pins {addr u64,
 *   len u64}.
 * RUNOPTS (32): ram_size u64, layout u32, nr_vcpus u32, mode u32,
 *   implicit u32, flags u32 (SNAP_RUNOPT_*), reserved u32 = 0.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "machine.h"

#define ULL(x) ((unsigned long long)(x))

/* ---- CLOCK --------------------------------------------------------------- */

int snap_clock_write(struct snap_writer *w, const struct snap_clock *c)
{
	uint8_t b[SNAP_CLOCK_SIZE] = { 0 };

	snap_put_le64(b, c->clock);
	snap_writer_begin(w, SNAP_SEC_CLOCK, 0);
	snap_writer_put(w, b, sizeof(b));
	return snap_writer_end(w);
}

/* A fixed-size payload into @b: 0, or -EBADMSG naming the size. */
static int load_fixed(struct snap_reader *r, const struct snap_section *s,
		      void *b, size_t len)
{
	if (s->len != len)
		return snap_sec_err(r, s, -EBADMSG, "%llu bytes (it has %zu)",
				    ULL(s->len), len);
	return snap_payload_read(r, s, 0, b, len);
}

int snap_clock_parse(struct snap_reader *r, const struct snap_section *s,
		     struct snap_clock *c)
{
	uint8_t b[SNAP_CLOCK_SIZE];
	int err = load_fixed(r, s, b, sizeof(b));

	if (err)
		return err;
	if (snap_get_le64(b + 8))
		return snap_sec_err(r, s, -EBADMSG,
				    "flags or reserved field not zero");
	c->clock = snap_get_le64(b);
	return 0;
}

/* ---- DMADEV -------------------------------------------------------------- */

int snap_dmadev_write(struct snap_writer *w, const struct snap_dmadev *d)
{
	uint8_t b[SNAP_DMADEV_HEAD] = { 0 }, e[SNAP_PIN_SIZE];
	uint32_t i;

	snap_put_le32(b, d->regs.addr_lo);
	snap_put_le32(b + 4, d->regs.addr_hi);
	snap_put_le32(b + 8, d->regs.len);
	snap_put_le32(b + 12, d->regs.pattern);
	snap_put_le32(b + 16, d->regs.status);
	snap_put_le32(b + 20, d->regs.result);
	snap_put_le32(b + 24, d->nr_pins);
	snap_writer_begin(w, SNAP_SEC_DMADEV, 0);
	snap_writer_put(w, b, sizeof(b));
	for (i = 0; i < d->nr_pins && i < SNAP_MAX_PINS; i++) {
		snap_put_le64(e, d->pins[i].addr);
		snap_put_le64(e + 8, d->pins[i].len);
		snap_writer_put(w, e, sizeof(e));
	}
	return snap_writer_end(w);
}

int snap_dmadev_parse(struct snap_reader *r, const struct snap_section *s,
		      struct snap_dmadev *d)
{
	uint8_t b[SNAP_DMADEV_HEAD + SNAP_MAX_PINS * SNAP_PIN_SIZE];
	const uint8_t *p;
	uint32_t i;
	int err;

	memset(d, 0, sizeof(*d));
	if (s->len < SNAP_DMADEV_HEAD || s->len > sizeof(b) ||
	    (s->len - SNAP_DMADEV_HEAD) % SNAP_PIN_SIZE)
		return snap_sec_err(r, s, -EBADMSG, "%llu bytes: not %u plus "
				    "%u per pin, for at most %u pins",
				    ULL(s->len), SNAP_DMADEV_HEAD,
				    SNAP_PIN_SIZE, SNAP_MAX_PINS);
	err = snap_payload_read(r, s, 0, b, (size_t)s->len);
	if (err)
		return err;
	d->regs.addr_lo = snap_get_le32(b);
	d->regs.addr_hi = snap_get_le32(b + 4);
	d->regs.len = snap_get_le32(b + 8);
	d->regs.pattern = snap_get_le32(b + 12);
	d->regs.status = snap_get_le32(b + 16);
	d->regs.result = snap_get_le32(b + 20);
	d->nr_pins = snap_get_le32(b + 24);
	if (snap_get_le32(b + 28))
		return snap_sec_err(r, s, -EBADMSG, "reserved field not zero");
	/* STATUS: 0 ok, 1 fault, 2 bad request, 3 no resources. */
	if (d->regs.status > 3)
		return snap_sec_err(r, s, -EBADMSG, "STATUS %u is not one the "
				    "device reports (0..3)", d->regs.status);
	if ((uint64_t)d->nr_pins * SNAP_PIN_SIZE !=
	    s->len - SNAP_DMADEV_HEAD)
		return snap_sec_err(r, s, -EBADMSG, "%u pins in %llu bytes",
				    d->nr_pins, ULL(s->len));
	for (i = 0, p = b + SNAP_DMADEV_HEAD; i < d->nr_pins;
	     i++, p += SNAP_PIN_SIZE) {
		d->pins[i].addr = snap_get_le64(p);
		d->pins[i].len = snap_get_le64(p + 8);
		if (!d->pins[i].len || d->pins[i].len > SNAP_DMA_MAX_LEN ||
		    d->pins[i].addr > UINT64_MAX - d->pins[i].len)
			return snap_sec_err(r, s, -EBADMSG, "pin %u [%#llx, "
					    "+%#llx): empty, longer than the "
					    "device's %u bytes, or wrapping",
					    i, ULL(d->pins[i].addr),
					    ULL(d->pins[i].len),
					    SNAP_DMA_MAX_LEN);
	}
	return 0;
}

/* ---- RUNOPTS ------------------------------------------------------------- */

int snap_runopts_write(struct snap_writer *w, const struct snap_runopts *o)
{
	uint8_t b[SNAP_RUNOPTS_SIZE] = { 0 };

	snap_put_le64(b, o->ram_size);
	snap_put_le32(b + 8, o->layout);
	snap_put_le32(b + 12, o->nr_vcpus);
	snap_put_le32(b + 16, o->mode);
	snap_put_le32(b + 20, o->implicit);
	snap_put_le32(b + 24, o->flags);
	snap_writer_begin(w, SNAP_SEC_RUNOPTS, 0);
	snap_writer_put(w, b, sizeof(b));
	return snap_writer_end(w);
}

int snap_runopts_parse(struct snap_reader *r, const struct snap_section *s,
		       struct snap_runopts *o)
{
	uint8_t b[SNAP_RUNOPTS_SIZE];
	int err = load_fixed(r, s, b, sizeof(b));

	if (err)
		return err;
	o->ram_size = snap_get_le64(b);
	o->layout = snap_get_le32(b + 8);
	o->nr_vcpus = snap_get_le32(b + 12);
	o->mode = snap_get_le32(b + 16);
	o->implicit = snap_get_le32(b + 20);
	o->flags = snap_get_le32(b + 24);
	if (snap_get_le32(b + 28))
		return snap_sec_err(r, s, -EBADMSG, "reserved field not zero");
	if (!o->ram_size || o->ram_size % GMEM_PAGE_SIZE)
		return snap_sec_err(r, s, -EBADMSG, "RAM size %#llx is not a "
				    "non-zero multiple of 4 KiB",
				    ULL(o->ram_size));
	if (o->layout > 1)
		return snap_sec_err(r, s, -EBADMSG, "memory layout %u (0 flat, "
				    "1 pc)", o->layout);
	if (!o->nr_vcpus || o->nr_vcpus > SNAP_MAX_VCPUS)
		return snap_sec_err(r, s, -EBADMSG, "%u vCPUs (1 to %d)",
				    o->nr_vcpus, SNAP_MAX_VCPUS);
	if (o->mode > GMEM_MODE_IN_PLACE)
		return snap_sec_err(r, s, -EBADMSG, "conversion mode %u (0 "
				    "discard, 1 in-place)", o->mode);
	if (o->implicit > 1)
		return snap_sec_err(r, s, -EBADMSG, "implicit policy %u (0 "
				    "convert, 1 deny)", o->implicit);
	if (o->flags & ~SNAP_RUNOPT_ALL)
		return snap_sec_err(r, s, -EBADMSG, "unknown flags %#x",
				    o->flags & ~SNAP_RUNOPT_ALL);
	/* What `gmvm run` refuses together, a file may not say either. */
	if (o->mode != GMEM_MODE_DISCARD &&
	    o->flags & (SNAP_RUNOPT_DEFERRED_RECLAIM | SNAP_RUNOPT_DMA_EXTERNAL))
		return snap_sec_err(r, s, -EBADMSG, "deferred reclaim or the "
				    "external DMA device with in-place "
				    "conversion");
	return 0;
}

/* ---- the whole machine --------------------------------------------------- */

/* The one section of @type, or a refusal naming it. */
static const struct snap_section *need_one(struct snap_reader *r,
					   uint32_t type, const char *name,
					   int *err)
{
	const struct snap_section *s = snap_reader_find(r, type, 0);

	if (!s)
		*err = snap_err(&r->msg, -EBADMSG, "no %s section: not a "
				"whole-VM snapshot (a memory-only one?)", name);
	return s;
}

static int parse_vcpus(struct snap_reader *r, struct snap_machine *m)
{
	const struct snap_section *s;
	unsigned int n = snap_reader_count(r, SNAP_SEC_VCPU), i;
	int err;

	if (n != m->opts.nr_vcpus)
		return snap_err(&r->msg, -EBADMSG, "%u VCPU sections for the "
				"%u vCPUs section RUNOPTS names", n,
				m->opts.nr_vcpus);
	for (i = 0; i < n; i++) {
		s = snap_reader_find(r, SNAP_SEC_VCPU, i);
		err = snap_vcpu_parse(r, s, &m->vcpu[i]);
		m->nr_vcpus = i + 1;	/* freed by snap_machine_free() */
		if (err)
			return err;
		if (m->vcpu[i].index != i)
			return snap_sec_err(r, s, -EBADMSG, "vCPU index %u in "
					    "the section of vCPU %u (they come "
					    "in order)", m->vcpu[i].index, i);
	}
	return 0;
}

int snap_machine_parse(struct snap_reader *r, struct snap_machine *m)
{
	const struct snap_section *s;
	uint8_t config[4];
	int err = 0;

	memset(m, 0, sizeof(*m));
	s = need_one(r, SNAP_SEC_RUNOPTS, "RUNOPTS", &err);
	if (!s)
		return err;
	err = snap_runopts_parse(r, s, &m->opts);
	if (err)
		return err;
	s = need_one(r, SNAP_SEC_CONFIG, "CONFIG", &err);
	if (!s)
		return err;
	if (s->len < sizeof(config))
		return snap_sec_err(r, s, -EBADMSG, "too short");
	err = snap_payload_read(r, s, 0, config, sizeof(config));
	if (err)
		return err;
	if (snap_get_le32(config) != m->opts.mode)
		return snap_err(&r->msg, -EBADMSG, "section RUNOPTS says "
				"conversion mode %u, section CONFIG %u",
				m->opts.mode, snap_get_le32(config));
	s = need_one(r, SNAP_SEC_CLOCK, "CLOCK", &err);
	if (!s)
		return err;
	err = snap_clock_parse(r, s, &m->clock);
	if (err)
		return err;
	s = need_one(r, SNAP_SEC_DMADEV, "DMADEV", &err);
	if (!s)
		return err;
	err = snap_dmadev_parse(r, s, &m->dma);
	if (err)
		return err;
	return parse_vcpus(r, m);
}

void snap_machine_free(struct snap_machine *m)
{
	unsigned int i;

	for (i = 0; i < m->nr_vcpus; i++)
		snap_vcpu_free(&m->vcpu[i]);
	m->nr_vcpus = 0;
}

int snap_machine_write(struct snap_writer *w, const struct snap_machine *m)
{
	unsigned int i;

	/* In the reader's rank order (format_read.c). */
	for (i = 0; i < m->nr_vcpus; i++)
		snap_vcpu_write(w, &m->vcpu[i]);
	snap_clock_write(w, &m->clock);
	snap_dmadev_write(w, &m->dma);
	return snap_runopts_write(w, &m->opts);
}
