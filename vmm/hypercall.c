/* SPDX-License-Identifier: MIT */
/*
 * MAP_GPA_RANGE (guest ABI section 5), through either transport:
 *  - the doorbell: `outb %al, $0xf5` with the arguments in RAX, RBX, RCX,
 *    RDX; gmvm reads them (sync regs or KVM_GET_REGS), writes the result to
 *    RAX, and KVM completes the `out` on re-entry;
 *  - vmcall, only where the host has KVM_CAP_EXIT_HYPERCALL with
 *    MAP_GPA_RANGE *and* a probe shows that a guest vmcall really exits to
 *    userspace (on our development hosts it does not: KVM_RUN spins until
 *    a signal).  The doorbell keeps working when vmcall is chosen.
 *
 * The probe runs a throwaway real-mode VM whose only instruction is a
 * vmcall, kicks it out of KVM_RUN with a signal after VMCALL_PROBE_MS, and
 * caches the verdict for the process.  A slow host can only make it say
 * "no" (then the doorbell is used, which always works), never a false
 * "yes".
 */
#include <cpuid.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "gmvm.h"
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
 * --audit each: after every change, check every invariant against the
 * kernel (libgmem's audit, and the DMA device's mappings, an external
 * device's real ones included).  A violation stops the VM with 125.
 */
enum exit_action audit_after_change(struct vcpu *vcpu, const char *what)
{
	struct vm *vm = vcpu->vm;
	char msg[512];
	int ret;

	if (!vm->cfg->audit_each)
		return EXIT_RESUME;
	ret = gmem_audit(vm->gmem, msg, sizeof(msg));
	if (ret == -EUCLEAN)
		return vm_stop(vm, GM_EXIT_HOST_ERROR,
			       "vcpu %u: audit after %s: %s", vcpu->index,
			       what, msg);
	if (ret < 0)
		return vm_stop(vm, GM_EXIT_HOST_ERROR,
			       "vcpu %u: audit after %s: gmem_audit: %s",
			       vcpu->index, what, strerror(-ret));
	if (dmatest_check(vm))
		return vm_stop(vm, GM_EXIT_HOST_ERROR,
			       "vcpu %u: audit after %s: the DMA device's mappings are wrong (see above)",
			       vcpu->index, what);
	return EXIT_RESUME;
}

/* a0/a1 as a byte range of RAM, or false (the guest gets -22). */
static bool hc_range(const struct vm *vm, uint64_t a0, uint64_t a1,
		     uint64_t *len)
{
	if (a0 % SZ_4K || a1 == 0 || a1 > UINT64_MAX / SZ_4K)
		return false;
	*len = a1 * SZ_4K;
	return a0 + *len >= a0 && a0 + *len <= vm->ram_size;
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

	*result = GM_HC_EINVAL;
	if (!hc_range(vm, a0, a1, &len) || (a2 & GM_PLUG_RESERVED_MASK))
		goto fail;
	ret = gmem_set_plugged(vm->gmem, a0, len, plug);
	if (ret == -EAGAIN) {
		*result = GM_HC_EAGAIN;
		goto fail;
	}
	if (ret < 0)
		return vm_stop(vm, GM_EXIT_HOST_ERROR,
			       "vcpu %u: SET_PLUGGED [%#llx, %#llx) %s: gmem_set_plugged: %s",
			       vcpu->index, (unsigned long long)a0,
			       (unsigned long long)(a0 + len),
			       plug ? "plug" : "unplug", strerror((int)-ret));
	*result = GM_HC_OK;
	return ret > 0 ? audit_after_change(vcpu, plug ? "a plug" :
							 "an unplug") :
			 EXIT_RESUME;

fail:
	vcpu->stats.hypercalls_failed++;
	return EXIT_RESUME;
}

/*
 * Validate and perform one hypercall.  Sets *result to what the guest gets
 * in RAX; returns EXIT_STOP (after vm_stop) on a host error.  @doorbell:
 * SET_PLUGGED exists only there (KVM answers vmcall numbers it does not
 * forward itself).
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
	if (ret == -EAGAIN) {
		/* A listener (the DMA device's pin) holds page @busy. */
		vcpu->stats.convert_busy++;
		vcpu->stats.busy_last_gpa = busy;
		vcpu->stats.busy_last_ns = now_ns();
		*result = GM_HC_EAGAIN;
		goto fail;
	}
	if (ret < 0)
		return vm_stop(vm, GM_EXIT_HOST_ERROR,
			       "vcpu %u: MAP_GPA_RANGE [%#llx, %#llx) to %s: gmem_convert: %s",
			       vcpu->index, (unsigned long long)a0,
			       (unsigned long long)(a0 + len),
			       gmem_state_name(to), strerror((int)-ret));
	*result = GM_HC_OK;
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

int hypercall_init(struct vm *vm)
{
	static const struct port_handler h = {
		.first = GM_PORT_DOORBELL,
		.last = GM_PORT_DOORBELL,
		.name = "doorbell",
		.no_string = true,
		.fn = doorbell_port,
	};
	int ret;

	ret = vm_register_ports(vm, &h);
	if (ret)
		return ret;
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

/* ---------------------------------------------------------------------- */
/* Does a guest vmcall come back?                                          */

struct kicker {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	pthread_t target;
	struct kvm_run *run;
};

static void *kicker_thread(void *arg)
{
	struct kicker *k = arg;
	struct timespec deadline;
	int ret = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_nsec += VMCALL_PROBE_MS * 1000000L;
	deadline.tv_sec += deadline.tv_nsec / 1000000000L;
	deadline.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&k->lock);
	while (!k->done && ret != ETIMEDOUT)
		ret = pthread_cond_timedwait(&k->cond, &k->lock, &deadline);
	if (!k->done) {
		/* immediate_exit covers a kick that lands before KVM_RUN. */
		__atomic_store_n(&k->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		pthread_kill(k->target, SIGUSR1);
	}
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

static bool host_is_amd(void)
{
	unsigned int a, b, c, d;

	if (!__get_cpuid(0, &a, &b, &c, &d))
		return false;
	/* "AuthenticAMD" and "HygonGenuine" use vmmcall. */
	return (b == 0x68747541 && d == 0x69746e65) ||
	       (b == 0x6f677948 && d == 0x6e65476e);
}

static bool probe_vmcall(int kvm_fd, const char **why)
{
	static const uint8_t vmcall[] = { 0x0f, 0x01, 0xc1, 0xf4 };
	static const uint8_t vmmcall[] = { 0x0f, 0x01, 0xd9, 0xf4 };
	struct kvm_userspace_memory_region region = { 0 };
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_EXIT_HYPERCALL,
		.args[0] = 1ULL << KVM_HC_MAP_GPA_RANGE,
	};
	struct kicker k = { .done = false };
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_run *run;
	int vm_fd, vcpu_fd, r, err;
	pthread_condattr_t ca;
	pthread_t thread;
	bool works = false;
	long run_size;
	void *mem;

	vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm_fd < 0) {
		*why = "cannot create a probe VM";
		return false;
	}
	r = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_EXIT_HYPERCALL);
	if (r <= 0 || !(r & (1 << KVM_HC_MAP_GPA_RANGE))) {
		*why = "KVM_CAP_EXIT_HYPERCALL lacks MAP_GPA_RANGE (bit 12)";
		goto err_vm;
	}
	*why = "the probe VM could not be set up";
	if (ioctl(vm_fd, KVM_ENABLE_CAP, &cap))
		goto err_vm;
	mem = mmap(NULL, SZ_64K, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		goto err_vm;
	memcpy((uint8_t *)mem + 0x1000, host_is_amd() ? vmmcall : vmcall,
	       sizeof(vmcall));
	region.memory_size = SZ_64K;
	region.userspace_addr = (uintptr_t)mem;
	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region))
		goto err_mem;
	vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
	if (vcpu_fd < 0)
		goto err_mem;
	run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		goto err_vcpu;
	run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   vcpu_fd, 0);
	if (run == MAP_FAILED)
		goto err_vcpu;
	/* Real mode at 0:0x1000, CPL 0: MAP_GPA_RANGE(0, 1 page, shared). */
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs))
		goto err_run;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs))
		goto err_run;
	memset(&regs, 0, sizeof(regs));
	regs.rip = 0x1000;
	regs.rflags = 0x2;
	regs.rax = KVM_HC_MAP_GPA_RANGE;
	regs.rcx = 1;
	if (ioctl(vcpu_fd, KVM_SET_REGS, &regs))
		goto err_run;

	vcpu_signal_init();
	pthread_mutex_init(&k.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&k.cond, &ca);
	pthread_condattr_destroy(&ca);
	k.target = pthread_self();
	k.run = run;
	if (pthread_create(&thread, NULL, kicker_thread, &k))
		goto err_kicker;

	r = ioctl(vcpu_fd, KVM_RUN, 0);
	err = errno;

	pthread_mutex_lock(&k.lock);
	k.done = true;
	pthread_cond_signal(&k.cond);
	pthread_mutex_unlock(&k.lock);
	pthread_join(thread, NULL);

	if (r == 0 && run->exit_reason == KVM_EXIT_HYPERCALL &&
	    run->hypercall.nr == KVM_HC_MAP_GPA_RANGE) {
		works = true;
		*why = "a probe vmcall exited to userspace";
	} else if (r < 0 && err == EINTR) {
		*why = "a probe vmcall did not exit to userspace within "
		       STR(VMCALL_PROBE_MS)
		       " ms (KVM_RUN had to be interrupted)";
	} else if (r == 0 && run->exit_reason == KVM_EXIT_HLT) {
		*why = "a probe vmcall returned to the guest without exiting to userspace";
	} else {
		*why = "a probe vmcall ended with an unexpected exit";
	}

err_kicker:
	pthread_cond_destroy(&k.cond);
	pthread_mutex_destroy(&k.lock);
err_run:
	munmap(run, (size_t)run_size);
err_vcpu:
	close(vcpu_fd);
err_mem:
	munmap(mem, SZ_64K);
err_vm:
	close(vm_fd);
	return works;
}

bool hypercall_vmcall_works(int kvm_fd, const char **why)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static bool done, works;
	static const char *reason;

	pthread_mutex_lock(&lock);
	if (!done) {
		works = probe_vmcall(kvm_fd, &reason);
		done = true;
	}
	pthread_mutex_unlock(&lock);
	if (why)
		*why = reason;
	return works;
}
