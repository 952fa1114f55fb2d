/* SPDX-License-Identifier: MIT */
/*
 * Implicit conversion (guest ABI section 6): the guest touched a page
 * through the view of the other state.
 *
 * The emulated backend gates each view with the host mapping KVM faults
 * through, so a wrong-view access reaches gmvm as either
 *  (a) KVM_EXIT_MMIO at the GPA used (this host): KVM has decoded the
 *      instruction and waits for the data.  gmvm converts the page(s) to
 *      the state of the view used, then performs the access itself on the
 *      converted page with gmem_access() (which cannot race with another
 *      conversion) and resumes; KVM completes the instruction; or
 *  (b) KVM_RUN failing with EFAULT and KVM_EXIT_MEMORY_FAULT (newer
 *      kernels, and the native backend): gmvm converts and re-enters, and
 *      the CPU retries the access.
 * Which state a GPA wants: with two views (shared_base != 0) the view it
 * falls in decides; with one (native, shared_base == 0) the fault's
 * KVM_MEMORY_EXIT_FLAG_PRIVATE does.
 *
 * Another vCPU may convert the page back between our conversion and our
 * access: (a) then retries a bounded number of times; (b) counts repeated
 * faults on one page and gives up if the conversion makes no progress.
 *
 * The exit says what the page was when the vCPU touched it, not what it is
 * now: another vCPU's MAP_GPA_RANGE may have been converting it to the
 * view used (a conversion revokes the old view before it grants the new
 * one, and commits the state last), or may have finished since.  Ordered
 * after that conversion, the access was legal, so with --implicit=deny
 * gmvm decides only on the page's state once any conversion in flight is
 * done: gmem_access() in the view used takes libgmem's range lock, which
 * waits for an overlapping conversion and then checks the committed
 * state.  If every page is in the view used, (a) completes the access with
 * it, and (b) re-enters so that the CPU retries; otherwise the VM stops.
 */
#include <errno.h>
#include <string.h>

#include "gmvm.h"

#define MMIO_RETRIES 100
/* (b): faults in a row on one page, and in a row with nothing to convert. */
#define FAULT_REPEAT_MAX 10000
#define FAULT_STUCK_MAX 64

struct wrong_view {
	uint64_t gpa;		/* private-view address (offset in RAM) */
	uint64_t len;
	enum gmem_state want;	/* the state of the view used */
};

/*
 * Find which view [addr, addr + len) is in.  False if it is not entirely
 * inside one RAM range of one view (a hole between ranges is in neither).
 */
static bool classify(struct vm *vm, uint64_t addr, uint64_t len,
		     bool private_flag, struct wrong_view *wv)
{
	uint64_t top = vm->ram.top, sb = vm->shared_base;

	if (len == 0 || addr + len < addr)
		return false;
	if (sb == 0) {
		wv->gpa = addr;
		wv->want = private_flag ? GMEM_PRIVATE : GMEM_SHARED;
	} else if (addr < top) {
		wv->gpa = addr;
		wv->want = GMEM_PRIVATE;
	} else if (addr >= sb && addr - sb < top) {
		wv->gpa = addr - sb;
		wv->want = GMEM_SHARED;
	} else {
		return false;
	}
	wv->len = len;
	return ram_layout_contains(&vm->ram, wv->gpa, len);
}

static const char *view_name(enum gmem_state s)
{
	return s == GMEM_PRIVATE ? "private" : "shared";
}

/*
 * An unplugged page (guest ABI extension 1) is in no view: touching it is
 * a guest fault whatever the policy (there is nothing to convert to).
 * Returns EXIT_STOP after vm_stop(), or EXIT_RESUME if every page is
 * plugged.
 */
static enum exit_action check_plugged(struct vcpu *vcpu,
				      const struct wrong_view *wv,
				      const char *access)
{
	uint64_t p, end = wv->gpa + wv->len;

	for (p = ALIGN_DOWN(wv->gpa, SZ_4K); p < end; p += SZ_4K)
		if (gmem_plugged_at(vcpu->vm->gmem, p, NULL, NULL) == 0)
			return vm_stop(vcpu->vm, GM_EXIT_GUEST_FAULT,
				       "vcpu %u: %s of GPA %#llx through the %s view: the page is unplugged (guest ABI extension 1) (RIP %#llx)",
				       vcpu->index, access,
				       (unsigned long long)wv->gpa,
				       view_name(wv->want),
				       (unsigned long long)vcpu_rip(vcpu));
	return EXIT_RESUME;
}

static enum exit_action deny(struct vcpu *vcpu, const struct wrong_view *wv,
			     const char *access, uint64_t addr)
{
	/* The page may have been unplugged while we waited. */
	if (check_plugged(vcpu, wv, access) != EXIT_RESUME)
		return EXIT_STOP;
	return vm_stop(vcpu->vm, GM_EXIT_GUEST_FAULT,
		       "vcpu %u: implicit conversion denied (--implicit=deny): %s of GPA %#llx through the %s view (address %#llx), page is %s (RIP %#llx)",
		       vcpu->index, access, (unsigned long long)wv->gpa,
		       view_name(wv->want), (unsigned long long)addr,
		       view_name(!wv->want),
		       (unsigned long long)vcpu_rip(vcpu));
}

/*
 * Convert the pages under @wv to wv->want.  Returns the number of pages
 * changed (>= 0) or EXIT_STOP's negative twin: -1 after vm_stop().
 */
static int64_t convert(struct vcpu *vcpu, const struct wrong_view *wv,
		       const char *access)
{
	uint64_t start = ALIGN_DOWN(wv->gpa, SZ_4K);
	uint64_t end = ALIGN_UP(wv->gpa + wv->len, SZ_4K);
	int64_t ret;

	ret = gmem_convert(vcpu->vm->gmem, start, end - start, wv->want);
	if (ret == -EAGAIN) {
		vm_stop(vcpu->vm, GM_EXIT_GUEST_FAULT,
			"vcpu %u: implicit conversion of GPA %#llx to %s (a %s) refused: the page is pinned by the DMA device (guest ABI section 7) (RIP %#llx)",
			vcpu->index, (unsigned long long)wv->gpa,
			view_name(wv->want), access,
			(unsigned long long)vcpu_rip(vcpu));
		return -1;
	}
	if (ret < 0) {
		vm_stop(vcpu->vm, GM_EXIT_HOST_ERROR,
			"vcpu %u: implicit conversion of [%#llx, %#llx) to %s: gmem_convert: %s",
			vcpu->index, (unsigned long long)start,
			(unsigned long long)end, view_name(wv->want),
			strerror((int)-ret));
		return -1;
	}
	if (ret > 0) {
		vcpu->stats.implicit_conv[wv->want]++;
		vcpu->stats.implicit_pages[wv->want] += (uint64_t)ret;
		if (audit_after_change(vcpu, "an implicit conversion") !=
		    EXIT_RESUME)
			return -1;
	}
	return ret;
}

/*
 * --implicit=deny after a memory fault: 0 if every page under @wv is in
 * wv->want once any conversion in flight is done (the CPU may retry),
 * -EACCES if one is not, or another -errno.  A one-byte read through the
 * view used, by gmem_access(), is what takes the range lock; it reads a
 * page the guest is about to touch anyway.
 */
static int recheck(struct vcpu *vcpu, const struct wrong_view *wv)
{
	uint64_t p = wv->gpa, end = wv->gpa + wv->len;
	uint8_t byte;
	int ret;

	for (; p < end; p = ALIGN_DOWN(p, SZ_4K) + SZ_4K) {
		ret = gmem_access(vcpu->vm->gmem, p, &byte, 1, false,
				  wv->want);
		if (ret)
			return ret;
	}
	return 0;
}

enum exit_action implicit_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	struct vm *vm = vcpu->vm;
	uint64_t addr = run->mmio.phys_addr;
	uint32_t len = run->mmio.len;
	bool write = run->mmio.is_write;
	const char *access = write ? "write" : "read";
	struct wrong_view wv;
	unsigned int tries;
	int64_t changed;
	int ret = 0;

	if (len == 0 || len > sizeof(run->mmio.data) ||
	    !classify(vm, addr, len, false, &wv)) {
		char ram[128];

		ram_layout_describe(&vm->ram, ram, sizeof(ram));
		return vm_stop(vm, GM_EXIT_GUEST_FAULT,
			       "vcpu %u: %u-byte %s at GPA %#llx, outside guest RAM (private view %s, shared view at +%#llx) (RIP %#llx)",
			       vcpu->index, len, access,
			       (unsigned long long)addr, ram,
			       (unsigned long long)vm->shared_base,
			       (unsigned long long)vcpu_rip(vcpu));
	}
	if (check_plugged(vcpu, &wv, access) != EXIT_RESUME)
		return EXIT_STOP;
	if (vm->cfg->implicit == IMPLICIT_DENY) {
		/* Serialised with conversions: see the top of the file. */
		ret = gmem_access(vm->gmem, wv.gpa, run->mmio.data, len, write,
				  wv.want);
		if (ret == -EACCES)
			return deny(vcpu, &wv, access, addr);
		if (ret < 0)
			return vm_stop(vm, GM_EXIT_HOST_ERROR,
				       "vcpu %u: completing a %s of GPA %#llx through the %s view: gmem_access: %s",
				       vcpu->index, access,
				       (unsigned long long)wv.gpa,
				       view_name(wv.want), strerror(-ret));
		vcpu->stats.implicit_raced++;
		return EXIT_RESUME;
	}

	for (tries = 0; tries < MMIO_RETRIES; tries++) {
		/* Unplugged by another vCPU meanwhile? */
		if (tries && check_plugged(vcpu, &wv, access) != EXIT_RESUME)
			return EXIT_STOP;
		changed = convert(vcpu, &wv, access);
		if (changed < 0)
			return EXIT_STOP;
		ret = gmem_access(vm->gmem, wv.gpa, run->mmio.data, len, write,
				  wv.want);
		if (ret == 0 && !tries && !changed)
			vcpu->stats.implicit_raced++;
		if (ret != -EACCES)
			break;
		/* Converted back by another vCPU meanwhile: again. */
	}
	if (ret == -EACCES)
		return vm_stop(vm, GM_EXIT_GUEST_FAULT,
			       "vcpu %u: implicit conversion of GPA %#llx to %s for a %s: the page was converted back %u times in a row by other vCPUs (RIP %#llx)",
			       vcpu->index, (unsigned long long)wv.gpa,
			       view_name(wv.want), access, MMIO_RETRIES,
			       (unsigned long long)vcpu_rip(vcpu));
	if (ret < 0)
		return vm_stop(vm, GM_EXIT_HOST_ERROR,
			       "vcpu %u: completing a %s of GPA %#llx through the %s view: gmem_access: %s",
			       vcpu->index, access, (unsigned long long)wv.gpa,
			       view_name(wv.want), strerror(-ret));
	return EXIT_RESUME;
}

enum exit_action implicit_memory_fault(struct vcpu *vcpu)
{
	struct kvm_compat_memory_fault *mf = kvm_run_memory_fault(vcpu->run);
	struct vm *vm = vcpu->vm;
	uint64_t gpa = mf->gpa, size = mf->size, flags = mf->flags;
	bool private_flag = flags & KVM_MEMORY_EXIT_FLAG_PRIVATE;
	const char *access = "access";
	struct wrong_view wv;
	int64_t changed;

	/* A fault reports at least the page it hit. */
	if (size == 0)
		size = 1;
	if (!classify(vm, gpa, size, private_flag, &wv))
		return vm_stop(vm, GM_EXIT_GUEST_FAULT,
			       "vcpu %u: memory fault at GPA %#llx (size %#llx, flags %#llx), outside guest RAM (RIP %#llx)",
			       vcpu->index, (unsigned long long)gpa,
			       (unsigned long long)mf->size,
			       (unsigned long long)flags,
			       (unsigned long long)vcpu_rip(vcpu));
	if (check_plugged(vcpu, &wv, access) != EXIT_RESUME)
		return EXIT_STOP;

	if (ALIGN_DOWN(wv.gpa, SZ_4K) == vcpu->fault_gpa) {
		vcpu->fault_repeats++;
	} else {
		vcpu->fault_gpa = ALIGN_DOWN(wv.gpa, SZ_4K);
		vcpu->fault_repeats = 1;
		vcpu->fault_stuck = 0;
	}
	if (vm->cfg->implicit == IMPLICIT_DENY) {
		changed = recheck(vcpu, &wv);
		if (changed == -EACCES)
			return deny(vcpu, &wv, "access (read or write: the fault does not say)",
				    gpa);
		if (changed < 0)
			return vm_stop(vm, GM_EXIT_HOST_ERROR,
				       "vcpu %u: checking GPA %#llx in the %s view after a memory fault: gmem_access: %s",
				       vcpu->index, (unsigned long long)wv.gpa,
				       view_name(wv.want),
				       strerror((int)-changed));
	} else {
		changed = convert(vcpu, &wv, access);
		if (changed < 0)
			return EXIT_STOP;
	}
	if (!changed)
		vcpu->stats.implicit_raced++;
	vcpu->fault_stuck = changed ? 0 : vcpu->fault_stuck + 1;
	if (vcpu->fault_stuck >= FAULT_STUCK_MAX ||
	    vcpu->fault_repeats >= FAULT_REPEAT_MAX)
		return vm_stop(vm, GM_EXIT_GUEST_FAULT,
			       "vcpu %u: memory fault at GPA %#llx (%s view) repeats without progress (%u faults in a row, %u with the page already %s) (RIP %#llx)",
			       vcpu->index, (unsigned long long)wv.gpa,
			       view_name(wv.want), vcpu->fault_repeats,
			       vcpu->fault_stuck, view_name(wv.want),
			       (unsigned long long)vcpu_rip(vcpu));
	return EXIT_RESUME;
}

/* Any exit other than a memory fault ends a run of faults on one page. */
void implicit_note_exit(struct vcpu *vcpu)
{
	vcpu->fault_gpa = UINT64_MAX;
	vcpu->fault_repeats = 0;
	vcpu->fault_stuck = 0;
}
