/* SPDX-License-Identifier: MIT */
/*
 * The VCPU section (docs/SNAPSHOT.md): one vCPU's architectural state, as
 * KVM's x86 UAPI gives it, written and parsed strictly.
 *
 * Payload: a 24-byte head {index, flags, mp_state, xsave_size,
 * nr_msrs, reserved = 0}, then the bytes of struct kvm_regs (144),
 * kvm_sregs (312), kvm_xcrs (392) and kvm_vcpu_events (64) exactly as
 * arch/x86/include/uapi/asm/kvm.h lays them out (a fixed ABI: x86-64 is
 * little-endian, so the bytes are the format), then xsave_size bytes of
 * XSAVE area, then nr_msrs entries {index u32, reserved u32 = 0, value
 * u64}.  The length must be exactly that sum.
 *
 * Why raw UAPI structs rather than field by field: they are the stable
 * kernel ABI KVM reads back, so a field-by-field copy would only add a
 * place to get one wrong.  The parser still checks every field it can
 * (machine.h's invariants) so that nothing malformed reaches KVM; what
 * only KVM knows (a CR0/CR4/EFER combination, an MSR it refuses) fails
 * the KVM_SET_* ioctl at restore, with its name.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "machine.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "the VCPU section is the little-endian UAPI structs' bytes");
_Static_assert(sizeof(struct kvm_regs) == 144, "kvm_regs");
_Static_assert(sizeof(struct kvm_sregs) == 312, "kvm_sregs");
_Static_assert(sizeof(struct kvm_xcrs) == 392, "kvm_xcrs");
_Static_assert(sizeof(struct kvm_vcpu_events) == 64, "kvm_vcpu_events");

#define ULL(x) ((unsigned long long)(x))

#define EVENT_FLAGS (KVM_VCPUEVENT_VALID_NMI_PENDING | \
		     KVM_VCPUEVENT_VALID_SIPI_VECTOR | \
		     KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM | \
		     KVM_VCPUEVENT_VALID_PAYLOAD | \
		     KVM_VCPUEVENT_VALID_TRIPLE_FAULT)
#define SHADOW_BITS (KVM_X86_SHADOW_INT_MOV_SS | KVM_X86_SHADOW_INT_STI)
/* x86's MP states: RUNNABLE .. SIPI_RECEIVED. */
#define MP_STATE_MAX KVM_MP_STATE_SIPI_RECEIVED

int snap_vcpu_write(struct snap_writer *w, const struct snap_vcpu *v)
{
	uint8_t head[SNAP_VCPU_HEAD] = { 0 }, e[SNAP_MSR_SIZE];
	uint32_t i;

	snap_put_le32(head, v->index);
	snap_put_le32(head + 4, v->flags);
	snap_put_le32(head + 8, v->mp_state);
	snap_put_le32(head + 12, v->xsave_size);
	snap_put_le32(head + 16, v->nr_msrs);
	snap_writer_begin(w, SNAP_SEC_VCPU, 0);
	snap_writer_put(w, head, sizeof(head));
	snap_writer_put(w, &v->regs, sizeof(v->regs));
	snap_writer_put(w, &v->sregs, sizeof(v->sregs));
	snap_writer_put(w, &v->xcrs, sizeof(v->xcrs));
	snap_writer_put(w, &v->events, sizeof(v->events));
	snap_writer_put(w, v->xsave, v->xsave_size);
	for (i = 0; i < v->nr_msrs; i++) {
		snap_put_le32(e, v->msrs[i].index);
		snap_put_le32(e + 4, 0);
		snap_put_le64(e + 8, v->msrs[i].value);
		snap_writer_put(w, e, sizeof(e));
	}
	/* The writer is sticky: the first failure is what this returns. */
	return snap_writer_end(w);
}

void snap_vcpu_free(struct snap_vcpu *v)
{
	free(v->xsave);
	free(v->msrs);
	v->xsave = NULL;
	v->msrs = NULL;
}

static bool all_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len--)
		if (*b++)
			return false;
	return true;
}

static const char *const seg_names[] = {
	"cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt",
};

/* A segment's fields in range; NULL or what is wrong. */
static const char *bad_segment(const struct kvm_segment *g)
{
	if (g->type > 15)
		return "type above 15";
	if (g->dpl > 3)
		return "DPL above 3";
	if (g->present > 1 || g->db > 1 || g->s > 1 || g->l > 1 ||
	    g->g > 1 || g->avl > 1 || g->unusable > 1)
		return "a one-bit field (present, db, s, l, g, avl, unusable) above 1";
	if (g->padding)
		return "padding not zero";
	return NULL;
}

static int check_sregs(struct snap_reader *r, const struct snap_section *s,
		       const struct kvm_sregs *sr)
{
	const struct kvm_segment *seg[] = {
		&sr->cs, &sr->ds, &sr->es, &sr->fs, &sr->gs, &sr->ss,
		&sr->tr, &sr->ldt,
	};
	unsigned int i, bits = 0;
	const char *why;

	for (i = 0; i < sizeof(seg) / sizeof(seg[0]); i++) {
		why = bad_segment(seg[i]);
		if (why)
			return snap_sec_err(r, s, -EBADMSG, "sregs: segment %s: %s",
					    seg_names[i], why);
	}
	if (!all_zero(sr->gdt.padding, sizeof(sr->gdt.padding)) ||
	    !all_zero(sr->idt.padding, sizeof(sr->idt.padding)))
		return snap_sec_err(r, s, -EBADMSG,
				    "sregs: GDT or IDT padding not zero");
	if (sr->cr8 > 15)
		return snap_sec_err(r, s, -EBADMSG, "sregs: CR8 %#llx above 15",
				    ULL(sr->cr8));
	for (i = 0; i < sizeof(sr->interrupt_bitmap) / 8; i++)
		bits += (unsigned int)__builtin_popcountll(sr->interrupt_bitmap[i]);
	/* KVM queues at most one pending external interrupt from it. */
	if (bits > 1)
		return snap_sec_err(r, s, -EBADMSG,
				    "sregs: %u interrupts pending in the "
				    "interrupt bitmap (at most 1)", bits);
	return 0;
}

static int check_xcrs(struct snap_reader *r, const struct snap_section *s,
		      const struct kvm_xcrs *x)
{
	unsigned int i;

	if (x->nr_xcrs > KVM_MAX_XCRS)
		return snap_sec_err(r, s, -EBADMSG, "xcrs: %u XCRs (at most %d)",
				    x->nr_xcrs, KVM_MAX_XCRS);
	if (x->flags || !all_zero(x->padding, sizeof(x->padding)))
		return snap_sec_err(r, s, -EBADMSG,
				    "xcrs: flags or padding not zero");
	for (i = 0; i < KVM_MAX_XCRS; i++)
		if (x->xcrs[i].reserved ||
		    (i >= x->nr_xcrs && (x->xcrs[i].xcr || x->xcrs[i].value)))
			return snap_sec_err(r, s, -EBADMSG,
					    "xcrs: entry %u: reserved or unused "
					    "field not zero", i);
	return 0;
}

static int check_events(struct snap_reader *r, const struct snap_section *s,
			const struct kvm_vcpu_events *e)
{
	const char *why = NULL;

	if (e->flags & ~(uint32_t)EVENT_FLAGS)
		why = "unknown flags";
	else if (e->exception.injected > 1 || e->exception.pending > 1 ||
		 e->exception.has_error_code > 1 ||
		 e->exception_has_payload > 1)
		why = "an exception field above 1";
	else if (e->exception.nr > 31)
		why = "exception vector above 31";
	else if (e->interrupt.injected > 1 || e->interrupt.soft > 1 ||
		 e->interrupt.shadow & ~SHADOW_BITS)
		why = "an interrupt field out of range";
	/* KVM queues up to two NMIs (process_nmi()), and says so. */
	else if (e->nmi.injected > 1 || e->nmi.pending > 2 ||
		 e->nmi.masked > 1 || e->nmi.pad)
		why = "an NMI field out of range";
	else if (e->smi.smm > 1 || e->smi.pending > 1 ||
		 e->smi.smm_inside_nmi > 1 || e->smi.latched_init > 1 ||
		 e->triple_fault.pending > 1)
		why = "an SMI or triple-fault field above 1";
	else if (!all_zero(e->reserved, sizeof(e->reserved)))
		why = "reserved bytes not zero";
	if (why)
		return snap_sec_err(r, s, -EBADMSG, "events: %s", why);
	return 0;
}

static int check_head(struct snap_reader *r, const struct snap_section *s,
		      const uint8_t *p, struct snap_vcpu *v)
{
	uint64_t want;

	v->index = snap_get_le32(p);
	v->flags = snap_get_le32(p + 4);
	v->mp_state = snap_get_le32(p + 8);
	v->xsave_size = snap_get_le32(p + 12);
	v->nr_msrs = snap_get_le32(p + 16);
	if (v->flags & ~SNAP_VCPU_PARKED)
		return snap_sec_err(r, s, -EBADMSG, "unknown flags %#x",
				    v->flags & ~SNAP_VCPU_PARKED);
	if (snap_get_le32(p + 20))
		return snap_sec_err(r, s, -EBADMSG, "reserved field not zero");
	if (v->index >= SNAP_MAX_VCPUS)
		return snap_sec_err(r, s, -EBADMSG, "vCPU index %u (at most %d)",
				    v->index, SNAP_MAX_VCPUS - 1);
	if (v->mp_state > MP_STATE_MAX)
		return snap_sec_err(r, s, -EBADMSG, "MP state %u is not an x86 "
				    "one (0..%d)", v->mp_state, MP_STATE_MAX);
	if (v->xsave_size < SNAP_XSAVE_LEGACY ||
	    v->xsave_size > SNAP_XSAVE_MAX || v->xsave_size % 4)
		return snap_sec_err(r, s, -EBADMSG, "XSAVE size %u (a multiple "
				    "of 4 from %u to %u)", v->xsave_size,
				    SNAP_XSAVE_LEGACY, SNAP_XSAVE_MAX);
	if (v->nr_msrs > SNAP_MAX_MSRS)
		return snap_sec_err(r, s, -EBADMSG, "%u MSRs (at most %d)",
				    v->nr_msrs, SNAP_MAX_MSRS);
	want = SNAP_VCPU_FIXED + (uint64_t)v->xsave_size +
	       (uint64_t)v->nr_msrs * SNAP_MSR_SIZE;
	if (s->len != want)
		return snap_sec_err(r, s, -EBADMSG, "%llu bytes, but its XSAVE "
				    "size and MSR count make %llu",
				    ULL(s->len), ULL(want));
	return 0;
}

static int parse_msrs(struct snap_reader *r, const struct snap_section *s,
		      const uint8_t *p, struct snap_vcpu *v)
{
	uint32_t i;

	v->msrs = calloc(v->nr_msrs ? v->nr_msrs : 1, sizeof(*v->msrs));
	if (!v->msrs)
		return snap_err(&r->msg, -ENOMEM, "no memory");
	for (i = 0; i < v->nr_msrs; i++, p += SNAP_MSR_SIZE) {
		v->msrs[i].index = snap_get_le32(p);
		v->msrs[i].value = snap_get_le64(p + 8);
		if (snap_get_le32(p + 4))
			return snap_sec_err(r, s, -EBADMSG, "MSR entry %u: "
					    "reserved field not zero", i);
		/* One encoding per state, and no MSR set twice. */
		if (i && v->msrs[i].index <= v->msrs[i - 1].index)
			return snap_sec_err(r, s, -EBADMSG, "MSR entry %u "
					    "(%#x): indices not strictly "
					    "increasing", i, v->msrs[i].index);
	}
	return 0;
}

int snap_vcpu_parse(struct snap_reader *r, const struct snap_section *s,
		    struct snap_vcpu *v)
{
	uint64_t max = SNAP_VCPU_FIXED + SNAP_XSAVE_MAX +
		       (uint64_t)SNAP_MAX_MSRS * SNAP_MSR_SIZE;
	uint8_t *buf = NULL;
	const uint8_t *p;
	int err;

	memset(v, 0, sizeof(*v));
	if (s->len < SNAP_VCPU_FIXED)
		return snap_sec_err(r, s, -EBADMSG, "%llu bytes, less than the "
				    "%zu of its fixed part", ULL(s->len),
				    SNAP_VCPU_FIXED);
	err = snap_payload_load(r, s, max, &buf);
	if (err)
		return err;
	p = buf;
	err = check_head(r, s, p, v);
	if (err)
		goto out;
	p += SNAP_VCPU_HEAD;
	memcpy(&v->regs, p, sizeof(v->regs));
	p += sizeof(v->regs);
	memcpy(&v->sregs, p, sizeof(v->sregs));
	p += sizeof(v->sregs);
	memcpy(&v->xcrs, p, sizeof(v->xcrs));
	p += sizeof(v->xcrs);
	memcpy(&v->events, p, sizeof(v->events));
	p += sizeof(v->events);
	/* RFLAGS is 22 bits wide. */
	if (v->regs.rflags >> 22) {
		err = snap_sec_err(r, s, -EBADMSG, "regs: RFLAGS %#llx has "
				   "bits above 21", ULL(v->regs.rflags));
		goto out;
	}
	err = check_sregs(r, s, &v->sregs);
	if (!err)
		err = check_xcrs(r, s, &v->xcrs);
	if (!err)
		err = check_events(r, s, &v->events);
	if (err)
		goto out;
	v->xsave = malloc(v->xsave_size);
	if (!v->xsave) {
		err = snap_err(&r->msg, -ENOMEM, "no memory");
		goto out;
	}
	memcpy(v->xsave, p, v->xsave_size);
	p += v->xsave_size;
	err = parse_msrs(r, s, p, v);
out:
	free(buf);
	return err;
}
