/* SPDX-License-Identifier: MIT */
/*
 * MAP_GPA_RANGE (guest ABI section 5), through either transport:
 *  - the doorbell: `outb %al, $0xf5` with the arguments in RAX, RBX, RCX,
 *    RDX; gmvm reads them (sync regs or KVM_GET_REGS), writes the result to
 *    RAX, and KVM completes the `out` on re-entry;
 *  - vmcall, only where the host has KVM_CAP_EXIT_HYPERCALL with
 *    MAP_GPA_RANGE *and* a probe shows that a guest vmcall really exits to
 *    userspace (on our development hosts it does not: KVM_RUN spins until
 *    a signal; vmcall_probe.c).  The doorbell keeps working when vmcall is
 *    chosen.
 * Both end in dispatch_hypercall(), which validates the guest's values
 * (the rules are hc_rules.c's) and converts (or plugs) through libgmem; a
 * change is audited when --audit each asks for it (audit_each.c).
 * CONVERT_BATCH (guest ABI extension 3) reads its list from a shared page
 * and writes its answer there.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "gmvm.h"
#include "hc_rules.h"
#include "devices/devices.h"

/*
 * A vmcall that exits does so in microseconds; the wait only bounds a host
 * that spins.  Every gmvm start on such a host pays it, so keep it short (a
 * slow host can only make the answer "no", which is safe).
 */
#define VMCALL_PROBE_MS 10
/* For messages: the wait in words, so that they cannot drift from it. */
#define STR_(x) #x
#define STR(x) STR_(x)

/*
 * a0/a1 as a byte range of RAM, or false (the guest gets -22).  RAM may
 * have holes (--memory-layout pc): a range touching one is refused here,
 * before libgmem, which would refuse it too, but as a host error.
 */
static bool hc_range(const struct vm *vm, uint64_t a0, uint64_t a1,
		     uint64_t *len)
{
	if (a0 % SZ_4K || a1 == 0 || a1 > UINT64_MAX / SZ_4K)
		return false;
	*len = a1 * SZ_4K;
	return ram_layout_contains(&vm->ram, a0, *len);
}

/*
 * libgmem failed a call the guest's hypercall made (not the guest's fault):
 * stop the VM with 125, naming the call, its range and what it asked for.
 */
static enum exit_action hc_host_error(struct vcpu *vcpu, const char *hc,
				      uint64_t a0, uint64_t len,
				      const char *pre, const char *what,
				      const char *fn, int64_t ret)
{
	return vm_stop(vcpu->vm, GM_EXIT_HOST_ERROR,
		       "vcpu %u: %s [%#llx, %#llx) %s%s: %s: %s", vcpu->index,
		       hc, (unsigned long long)a0,
		       (unsigned long long)(a0 + len), pre, what, fn,
		       strerror((int)-ret));
}

/*
 * libgmem answered @ret to a change the guest asked for: set the guest's
 * *@result and count it.  False if the failure is the host's: the caller
 * stops the VM.  @busy: where libgmem names the page a -EAGAIN refused
 * (NULL: it does not).
 */
static bool hc_answer(struct vcpu *vcpu, int64_t ret, bool einval_is_guests,
		      const uint64_t *busy, int64_t *result)
{
	if (!hc_status(ret, einval_is_guests, result))
		return false;
	if (*result == GM_HC_EAGAIN && busy) {
		/* A listener (the DMA device's pin) holds page *busy. */
		vcpu->stats.convert_busy++;
		vcpu->stats.busy_last_gpa = *busy;
		vcpu->stats.busy_last_ns = now_ns();
	}
	/* Extension 3: nothing changed, the VM goes on. */
	if (*result == GM_HC_ENOMEM)
		vcpu->stats.hc_nomem++;
	if (*result != GM_HC_OK)
		vcpu->stats.hypercalls_failed++;
	return true;
}

/*
 * SET_PLUGGED (extension 1): give pages back to the host or take them
 * again.  Same conventions as MAP_GPA_RANGE.
 */
static enum exit_action set_plugged(struct vcpu *vcpu, uint64_t a0,
				    uint64_t a1, uint64_t a2, int64_t *result)
{
	struct vm *vm = vcpu->vm;
	bool plug = a2 & GM_PLUG;
	uint64_t len;
	int64_t ret;

	if (!hc_range(vm, a0, a1, &len) || (a2 & GM_PLUG_RESERVED_MASK)) {
		*result = GM_HC_EINVAL;
		vcpu->stats.hypercalls_failed++;
		return EXIT_RESUME;
	}
	ret = gmem_set_plugged(vm->gmem, a0, len, plug);
	if (!hc_answer(vcpu, ret, false, NULL, result))
		return hc_host_error(vcpu, "SET_PLUGGED", a0, len, "",
				     plug ? "plug" : "unplug",
				     "gmem_set_plugged", ret);
	return ret > 0 ? audit_after_change(vcpu, plug ? "a plug" :
							 "an unplug") :
			 EXIT_RESUME;
}

/* hc_range() for the rules of hc_rules.c, which do not know a VM. */
static bool batch_in_ram(const void *vm, uint64_t gpa, uint64_t pages,
			 uint64_t *len)
{
	return hc_range(vm, gpa, pages, len);
}

/*
 * CONVERT_BATCH (extension 3).  The list is copied out of the shared list
 * page in one gmem_access(), which holds off conversions of the page while
 * it copies, so every check and the change itself work on gmvm's copy and
 * the guest cannot change a value between its check and its use.  The
 * entries may not cover the list page, so the call itself never takes it
 * away; another vCPU may, and then the answer is not written (RAX is).
 */
static enum exit_action convert_batch(struct vcpu *vcpu, uint64_t a0,
				      uint64_t a1, uint64_t a2,
				      int64_t *result)
{
	struct vm *vm = vcpu->vm;
	struct gm_batch_list list;
	struct gmem_batch_entry e[GM_BATCH_MAX_ENTRIES];
	struct gm_batch_header hdr = { .failed = GM_BATCH_NO_ENTRY };
	unsigned int n = (unsigned int)a1;
	uint64_t busy = 0, len;
	int failed;
	int64_t ret = 0;
	int err;

	vcpu->stats.batch_calls++;
	*result = GM_HC_EINVAL;
	if (!hc_range(vm, a0, 1, &len) || !hc_batch_args(a1, a2)) {
		vcpu->stats.hypercalls_failed++;
		return EXIT_RESUME;
	}
	err = gmem_access(vm->gmem, a0, &list,
			  sizeof(list.hdr) + n * sizeof(list.entries[0]),
			  false, GMEM_SHARED);
	if (err == -EACCES || err == -EINVAL) {
		/* Private, unplugged (or, -EINVAL, not RAM to libgmem
		 * either): nothing is written. */
		vcpu->stats.hypercalls_failed++;
		return EXIT_RESUME;
	}
	if (err)
		return hc_host_error(vcpu, "CONVERT_BATCH", a0, SZ_4K, "",
				     "list page", "gmem_access", err);
	failed = hc_batch_entries(list.entries, n, batch_in_ram, vm, a0, e);
	if (failed >= 0) {
		vcpu->stats.hypercalls_failed++;
	} else {
		/* Overlapping entries: -EINVAL naming one of them. */
		ret = gmem_convert_batch(vm->gmem, e, n, &failed, &busy);
		if (!hc_answer(vcpu, ret, true, &busy, result))
			return hc_host_error(vcpu, "CONVERT_BATCH", a0, SZ_4K,
					     "", "list page",
					     "gmem_convert_batch", ret);
	}
	hdr.status = (int32_t)*result;
	if (*result == GM_HC_OK) {
		hdr.done = (uint16_t)n;
		vcpu->stats.batch_entries += n;
		vcpu->stats.batch_pages += (uint64_t)ret;
	} else if (failed >= 0) {
		hdr.failed = (uint16_t)failed;
	}
	if (*result == GM_HC_EAGAIN)
		hdr.busy_gpa = busy;
	/* -EACCES: another vCPU took the list page away meanwhile. */
	gmem_access(vm->gmem, a0, &hdr, sizeof(hdr), true, GMEM_SHARED);
	return ret > 0 ? audit_after_change(vcpu, "CONVERT_BATCH") :
			 EXIT_RESUME;
}

/*
 * Validate and perform one hypercall.  Sets *result to what the guest gets
 * in RAX; returns EXIT_STOP (after vm_stop) on a host error.  @doorbell:
 * SET_PLUGGED and CONVERT_BATCH exist only there (KVM answers vmcall
 * numbers it does not forward itself).
 */
static enum exit_action dispatch_hypercall(struct vcpu *vcpu, uint64_t nr,
					   uint64_t a0, uint64_t a1,
					   uint64_t a2, bool doorbell,
					   int64_t *result)
{
	struct vm *vm = vcpu->vm;
	enum gmem_state to;
	uint64_t len, busy = 0;
	int64_t ret;

	vcpu->stats.hypercalls++;
	*result = GM_HC_EINVAL;
	if (nr == GM_HC_SET_PLUGGED && doorbell)
		return set_plugged(vcpu, a0, a1, a2, result);
	if (nr == GM_HC_CONVERT_BATCH && doorbell)
		return convert_batch(vcpu, a0, a1, a2, result);
	if (nr != KVM_HC_MAP_GPA_RANGE) {
		*result = GM_HC_ENOSYS;
		goto fail;
	}
	if (!hc_range(vm, a0, a1, &len))
		goto fail;
	if ((a2 & GM_MAP_RESERVED_MASK) || (a2 & GM_MAP_PAGE_SZ_MASK) > 2)
		goto fail;

	/* The page-size hint is only a hint: conversion is per 4 KiB page. */
	to = (a2 & GM_MAP_PRIVATE) ? GMEM_PRIVATE : GMEM_SHARED;
	ret = gmem_convert_ex(vm->gmem, a0, len, to, &busy);
	if (!hc_answer(vcpu, ret, false, &busy, result))
		return hc_host_error(vcpu, "MAP_GPA_RANGE", a0, len, "to ",
				     gmem_state_name(to), "gmem_convert", ret);
	if (ret > 0) {
		vcpu->stats.explicit_conv[to]++;
		vcpu->stats.explicit_pages[to] += (uint64_t)ret;
		return audit_after_change(vcpu, "MAP_GPA_RANGE");
	}
	return EXIT_RESUME;

fail:
	vcpu->stats.hypercalls_failed++;
	return EXIT_RESUME;
}

static enum exit_action doorbell_port(struct vcpu *vcpu, void *opaque,
				      uint16_t port, bool out,
				      unsigned int size, uint8_t *data)
{
	enum exit_action act;
	struct kvm_regs *regs;
	int64_t result;

	if (!out || size != 1)
		return vm_stop(vcpu->vm, GM_EXIT_GUEST_FAULT,
			       "vcpu %u: %u-byte %s at the doorbell port %#x: only `outb %%al, $%#x` is defined (RIP %#llx)",
			       vcpu->index, size, out ? "write" : "read",
			       port, port,
			       (unsigned long long)vcpu_rip(vcpu));
	regs = vcpu_regs(vcpu);
	if (!regs)
		return EXIT_STOP;
	act = dispatch_hypercall(vcpu, regs->rax, regs->rbx, regs->rcx,
				 regs->rdx, true, &result);
	if (act != EXIT_RESUME)
		return act;
	regs->rax = (uint64_t)result;
	if (vcpu_regs_dirty(vcpu))
		return EXIT_STOP;
	vcpu->hc_timing = true;
	return EXIT_RESUME;
}

enum exit_action hypercall_vmcall_exit(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	enum exit_action act;
	int64_t result;

	if (!vcpu->vm->vmcall)
		return vm_stop(vcpu->vm, GM_EXIT_GUEST_FAULT,
			       "vcpu %u: hypercall exit (nr %llu) although hypercall exits are not enabled (RIP %#llx)",
			       vcpu->index,
			       (unsigned long long)run->hypercall.nr,
			       (unsigned long long)vcpu_rip(vcpu));
	act = dispatch_hypercall(vcpu, run->hypercall.nr,
				 run->hypercall.args[0], run->hypercall.args[1],
				 run->hypercall.args[2], false, &result);
	if (act != EXIT_RESUME)
		return act;
	run->hypercall.ret = (uint64_t)result;
	vcpu->hc_timing = true;
	return EXIT_RESUME;
}

/* With vmcall, have KVM hand MAP_GPA_RANGE to gmvm. */
static int hypercall_init(struct vm *vm, void **state)
{
	int ret;

	if (vm->vmcall) {
		struct kvm_enable_cap cap = {
			.cap = KVM_CAP_EXIT_HYPERCALL,
			.args[0] = 1ULL << KVM_HC_MAP_GPA_RANGE,
		};

		if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap)) {
			ret = -errno;
			gmvm_err("KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL): %s",
				 strerror(errno));
			return ret;
		}
	}
	return 0;
}

/* The doorbell is a device of its own (its port), the vmcall path is not. */
const struct device doorbell_device = {
	DEVICE_PORTS("doorbell", GM_PORT_DOORBELL, GM_PORT_DOORBELL),
	.no_string = true,
	.io = doorbell_port,
	.init = hypercall_init,
};
