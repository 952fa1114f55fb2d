/* SPDX-License-Identifier: MIT */
/*
 * A vCPU's and the VM's architectural state to and from a snapshot's
 * machine sections (snapshot/machine.h), with KVM's x86 ioctls
 * (Documentation/virt/kvm/api.rst).  Written against the documented API;
 * there is no /dev/kvm where this was written, so only the formats are
 * tested (tests/test_snapshot_machine.c) and this file is run by the
 * KVM half of tests/test_gmvm_restore.sh.
 *
 * What is saved, per vCPU: GPRs, RIP and RFLAGS (KVM_GET_REGS), segment,
 * descriptor-table and control registers, EFER and the APIC base
 * (KVM_GET_SREGS), the XSAVE area (x87, SSE, AVX and every enabled
 * component: KVM_GET_XSAVE2 at KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) bytes,
 * else KVM_GET_XSAVE's 4 KiB), XCR0 (KVM_GET_XCRS), pending and injected
 * events, the interrupt shadow and NMI state (KVM_GET_VCPU_EVENTS), the
 * MP state, and every MSR KVM_GET_MSR_INDEX_LIST names that this vCPU
 * reads (each tried alone: KVM_GET_MSRS stops at the first it cannot
 * read), the guest TSC (MSR_IA32_TSC) among them, so that guest time
 * continues from where it stopped.  Per VM: kvmclock (KVM_GET_CLOCK).
 *
 * Omitted, and why: the local APIC, IOAPIC and PIT (gmvm creates no
 * in-kernel irqchip: HLT exits to gmvm, CPUID says there is no APIC);
 * debug registers (gmvm offers no debugger, its guests never set them);
 * nested virtualisation state (its guests never run VMX/SVM); SREGS2's
 * PDPTRs (they matter only under PAE paging without long mode, and the
 * guest ABI runs every vCPU in long mode); CPUID, which is not state but
 * the host's answer, set again as at a start (boot_setup_vcpu).
 *
 * Restore order (api.rst and what KVM checks): CPUID first (it decides
 * which XSAVE components and MSRs exist), then sregs (CR0, CR4 and EFER
 * decide what the rest means), regs, XCRS before XSAVE (XCR0 enables the
 * components the area holds), MSRs (the TSC among them), events, MP
 * state last.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "gmvm.h"
#include "snapshot/machine.h"

/* XSAVE bytes KVM_GET_XSAVE2 / KVM_SET_XSAVE move on this VM. */
static uint32_t xsave_size(struct vm *vm)
{
	int r = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	return r > SNAP_XSAVE_LEGACY ? (uint32_t)r : SNAP_XSAVE_LEGACY;
}

/* One MSR through KVM_GET_MSRS or KVM_SET_MSRS: 1 done, 0 refused, -errno. */
static int msr_io(struct vcpu *vcpu, unsigned long req, uint32_t index,
		  uint64_t *value)
{
	/* struct kvm_msrs and its one entry, 8-byte aligned. */
	uint64_t buf[(sizeof(struct kvm_msrs) +
		      sizeof(struct kvm_msr_entry) + 7) / 8];
	struct kvm_msrs *m = (struct kvm_msrs *)buf;
	int r;

	memset(buf, 0, sizeof(buf));
	m->nmsrs = 1;
	m->entries[0].index = index;
	m->entries[0].data = *value;
	r = ioctl(vcpu->fd, req, m);
	if (r < 0)
		return -errno;
	*value = m->entries[0].data;
	return r;
}

/*
 * The MSRs @vcpu can read: KVM_GET_MSR_INDEX_LIST (the system ioctl),
 * each tried alone.  Sorted, as the file wants them.
 */
static int msr_list(struct vcpu *vcpu, struct snap_vcpu *v, char *why,
		    size_t len)
{
	struct kvm_msr_list probe = { .nmsrs = 0 }, *list;
	uint64_t value;
	uint32_t i, n = 0;
	int ret = 0;

	if (ioctl(vcpu->vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) &&
	    errno != E2BIG) {
		ret = -errno;
		snprintf(why, len, "KVM_GET_MSR_INDEX_LIST: %s", strerror(-ret));
		return ret;
	}
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(list->indices[0]));
	v->msrs = calloc(probe.nmsrs + 1, sizeof(*v->msrs));
	if (!list || !v->msrs) {
		snprintf(why, len, "out of memory for %u MSRs", probe.nmsrs);
		ret = -ENOMEM;
		goto out;
	}
	list->nmsrs = probe.nmsrs;
	if (ioctl(vcpu->vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, list)) {
		ret = -errno;
		snprintf(why, len, "KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
		goto out;
	}
	for (i = 0; i < list->nmsrs; i++) {
		value = 0;
		if (msr_io(vcpu, KVM_GET_MSRS, list->indices[i], &value) != 1)
			continue;	/* not this vCPU's (its CPUID) */
		/* Refuse rather than drop: a restored vCPU missing an MSR
		 * the guest may have written would not resume exactly. */
		if (n == SNAP_MAX_MSRS) {
			snprintf(why, len,
				 "the vCPU has more than %u readable MSRs, the most a snapshot holds",
				 SNAP_MAX_MSRS);
			ret = -E2BIG;
			goto out;
		}
		v->msrs[n].index = list->indices[i];
		v->msrs[n].value = value;
		n++;
	}
	v->nr_msrs = n;
	/* Sorted and unique: the file allows one encoding. */
	for (i = 1; i < n; i++) {
		struct snap_msr m = v->msrs[i];
		uint32_t k = i;

		while (k && v->msrs[k - 1].index > m.index) {
			v->msrs[k] = v->msrs[k - 1];
			k--;
		}
		v->msrs[k] = m;
	}
	for (i = 1, n = v->nr_msrs ? 1 : 0; i < v->nr_msrs; i++)
		if (v->msrs[i].index != v->msrs[n - 1].index)
			v->msrs[n++] = v->msrs[i];
	v->nr_msrs = n;
out:
	free(list);
	return ret;
}

/* One vCPU ioctl, or -errno and "vcpu N: NAME: ERRNO" and on to err. */
#define VCPU_IOCTL(req, arg, name)					\
	do {								\
		if (ioctl(vcpu->fd, req, arg)) {			\
			ret = -errno;					\
			snprintf(why, len, "vcpu %u: %s: %s",		\
				 vcpu->index, name, strerror(errno));	\
			goto err;					\
		}							\
	} while (0)

int vcpu_state_get(struct vcpu *vcpu, struct snap_vcpu *v, char *why,
		   size_t len)
{
	struct kvm_mp_state mp;
	struct kvm_xsave *xs = NULL;
	int ret;

	memset(v, 0, sizeof(*v));
	v->index = vcpu->index;
	v->flags = vcpu->parked ? SNAP_VCPU_PARKED : 0;
	VCPU_IOCTL(KVM_GET_REGS, &v->regs, "KVM_GET_REGS");
	VCPU_IOCTL(KVM_GET_SREGS, &v->sregs, "KVM_GET_SREGS");
	if (ioctl(vcpu->vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0)
		VCPU_IOCTL(KVM_GET_XCRS, &v->xcrs, "KVM_GET_XCRS");
	VCPU_IOCTL(KVM_GET_VCPU_EVENTS, &v->events, "KVM_GET_VCPU_EVENTS");
	VCPU_IOCTL(KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE");
	v->mp_state = mp.mp_state;
	v->xsave_size = xsave_size(vcpu->vm);
	xs = calloc(1, v->xsave_size);
	if (!xs) {
		ret = -ENOMEM;
		snprintf(why, len, "vcpu %u: out of memory", vcpu->index);
		goto err;
	}
	if (v->xsave_size > SNAP_XSAVE_LEGACY)
		VCPU_IOCTL(KVM_GET_XSAVE2, xs, "KVM_GET_XSAVE2");
	else
		VCPU_IOCTL(KVM_GET_XSAVE, xs, "KVM_GET_XSAVE");
	v->xsave = (uint8_t *)xs;
	xs = NULL;
	ret = msr_list(vcpu, v, why, len);
	if (ret)
		goto err;
	return 0;
err:
	free(xs);
	snap_vcpu_free(v);
	return ret;
}

/*
 * The saved MSRs, written back one at a time, and only those this fresh
 * vCPU does not already hold: some MSRs read fine but refuse any
 * host-initiated write on a VM like gmvm's, without an in-kernel LAPIC
 * (MSR_KVM_ASYNC_PF_INT: kvm_pv_enable_async_pf_int() fails even for 0
 * there), and writing back what is already there changes nothing.  One
 * per call so that a refusal names its MSR and no call comes near KVM's
 * limit on entries per KVM_SET_MSRS.  An MSR the guest changed that
 * this host refuses fails the restore: the vCPU would not resume exactly.
 * IA32_PERF_CAPABILITIES goes first: a write that changes it resets the
 * PMU's counters and controls (x86 pmu.c), which sort after it.
 */
#define MSR_IA32_PERF_CAPABILITIES 0x345

static int set_msr(struct vcpu *vcpu, const struct snap_msr *m, char *why,
		   size_t len)
{
	uint64_t now = 0;
	int r;

	if (msr_io(vcpu, KVM_GET_MSRS, m->index, &now) == 1 &&
	    now == m->value)
		return 0;
	now = m->value;
	r = msr_io(vcpu, KVM_SET_MSRS, m->index, &now);
	if (r == 1)
		return 0;
	if (r < 0)
		snprintf(why, len, "vcpu %u: KVM_SET_MSRS of MSR %#x: %s",
			 vcpu->index, m->index, strerror(-r));
	else
		snprintf(why, len, "vcpu %u: KVM_SET_MSRS: this host's KVM refuses MSR %#x = %#llx",
			 vcpu->index, m->index, (unsigned long long)m->value);
	return r < 0 ? r : -EINVAL;
}

static int set_msrs(struct vcpu *vcpu, const struct snap_vcpu *v, char *why,
		    size_t len)
{
	uint32_t i;
	int r = 0;

	for (i = 0; !r && i < v->nr_msrs; i++)
		if (v->msrs[i].index == MSR_IA32_PERF_CAPABILITIES)
			r = set_msr(vcpu, &v->msrs[i], why, len);
	for (i = 0; !r && i < v->nr_msrs; i++)
		if (v->msrs[i].index != MSR_IA32_PERF_CAPABILITIES)
			r = set_msr(vcpu, &v->msrs[i], why, len);
	return r;
}

int vcpu_state_set(struct vcpu *vcpu, const struct snap_vcpu *v, char *why,
		   size_t len)
{
	struct kvm_mp_state mp = { .mp_state = v->mp_state };
	uint32_t host = xsave_size(vcpu->vm), i;
	struct kvm_vcpu_events ev = v->events;
	struct kvm_regs regs = v->regs;
	struct kvm_sregs sregs = v->sregs;
	struct kvm_xcrs xcrs = v->xcrs;
	uint8_t *xs;
	int ret;

	/* A bigger area is fine only if what this host lacks is unused. */
	for (i = host; i < v->xsave_size; i++)
		if (v->xsave[i]) {
			snprintf(why, len, "vcpu %u: the snapshot's XSAVE area uses %u bytes, this host's KVM holds %u",
				 vcpu->index, v->xsave_size, host);
			return -EOPNOTSUPP;
		}
	VCPU_IOCTL(KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
	/* Without an in-kernel LAPIC every KVM_RUN loads CR8 from kvm_run
	 * (x86.c: "re-sync apic's tpr"), which is 0 on a new vCPU. */
	vcpu->run->cr8 = v->sregs.cr8;
	VCPU_IOCTL(KVM_SET_REGS, &regs, "KVM_SET_REGS");
	if (xcrs.nr_xcrs)
		VCPU_IOCTL(KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS");
	xs = calloc(1, host);
	if (!xs) {
		snprintf(why, len, "vcpu %u: out of memory", vcpu->index);
		return -ENOMEM;
	}
	memcpy(xs, v->xsave, v->xsave_size < host ? v->xsave_size : host);
	ret = ioctl(vcpu->fd, KVM_SET_XSAVE, xs) ? -errno : 0;
	free(xs);
	if (ret) {
		snprintf(why, len, "vcpu %u: KVM_SET_XSAVE: %s", vcpu->index,
			 strerror(-ret));
		return ret;
	}
	ret = set_msrs(vcpu, v, why, len);
	if (ret)
		return ret;
	VCPU_IOCTL(KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS");
	VCPU_IOCTL(KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE");
	vcpu->parked = v->flags & SNAP_VCPU_PARKED;
	return 0;
err:
	return ret;
}

int vm_clock_get(struct vm *vm, struct snap_clock *c, char *why, size_t len)
{
	struct kvm_clock_data d;

	memset(&d, 0, sizeof(d));
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &d)) {
		snprintf(why, len, "KVM_GET_CLOCK: %s", strerror(errno));
		return -errno;
	}
	c->clock = d.clock;
	return 0;
}

int vm_clock_set(struct vm *vm, const struct snap_clock *c, char *why,
		 size_t len)
{
	struct kvm_clock_data d;

	memset(&d, 0, sizeof(d));
	d.clock = c->clock;
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &d)) {
		snprintf(why, len, "KVM_SET_CLOCK: %s", strerror(errno));
		return -errno;
	}
	return 0;
}
