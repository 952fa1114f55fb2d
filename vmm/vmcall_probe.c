/* SPDX-License-Identifier: MIT */
/*
 * Does a guest vmcall come back to gmvm?
 *
 * KVM_CAP_EXIT_HYPERCALL with MAP_GPA_RANGE is not enough: on some hosts
 * (our development hosts among them) a guest vmcall never exits to
 * userspace and KVM_RUN spins until a signal.  So gmvm runs a throwaway
 * real-mode VM (util/kvm_util.h) whose only instruction is a vmcall (or
 * vmmcall on AMD and Hygon) and kicks it out of KVM_RUN with a signal after
 * VMCALL_PROBE_MS.  A slow host can only make it say "no" (then the
 * doorbell is used, which always works), never a false "yes".
 *
 * The verdict is a value, not prose, so that the probe cache
 * (probe_cache.c, through probes.c) can keep it: every verdict but the
 * two passing failures (no VM, no set-up) describes the host.
 *
 * State: the kicker's done flag is under its lock; nothing else is shared.
 */
#include <cpuid.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "gmvm.h"
#include "kvm_util.h"

/*
 * A vmcall that exits does so in microseconds; the wait only bounds a host
 * that spins.  Every gmvm start on such a host pays it unless the probe
 * cache has the answer, so keep it short (a slow host can only make the
 * answer "no", which is safe).
 */
#define VMCALL_PROBE_MS 10
/* For messages: the wait in words, so that they cannot drift from it. */
#define STR_(x) #x
#define STR(x) STR_(x)

/* Where the probe's code sits in its 64 KiB of RAM (real mode, CS 0). */
#define PROBE_CODE 0x1000

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

/*
 * Run @v once with a kicker armed: false if no kicker could be started
 * (the vCPU never ran); else true, and *@run_ret is kvmu_vcpu_run()'s 0 or
 * -errno (-EINTR: the kicker had to take it out of KVM_RUN).
 */
static bool run_kicked(struct kvmu_vcpu *v, int *run_ret)
{
	struct kicker k = { .done = false };
	pthread_condattr_t ca;
	pthread_t thread;
	bool ran = false;

	vcpu_signal_init();
	pthread_mutex_init(&k.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&k.cond, &ca);
	pthread_condattr_destroy(&ca);
	k.target = pthread_self();
	k.run = v->run;
	if (pthread_create(&thread, NULL, kicker_thread, &k))
		goto out;

	*run_ret = kvmu_vcpu_run(v);
	ran = true;

	pthread_mutex_lock(&k.lock);
	k.done = true;
	pthread_cond_signal(&k.cond);
	pthread_mutex_unlock(&k.lock);
	pthread_join(thread, NULL);
out:
	pthread_cond_destroy(&k.cond);
	pthread_mutex_destroy(&k.lock);
	return ran;
}

static const char *const verdict_why[VMCALL_NR_VERDICTS] = {
	[VMCALL_EXITS] = "a probe vmcall exited to userspace",
	[VMCALL_NO_CAP] =
		"KVM_CAP_EXIT_HYPERCALL lacks MAP_GPA_RANGE (bit 12)",
	[VMCALL_SPINS] = "a probe vmcall did not exit to userspace within "
			 STR(VMCALL_PROBE_MS)
			 " ms (KVM_RUN had to be interrupted)",
	[VMCALL_RETURNS] =
		"a probe vmcall returned to the guest without exiting to userspace",
	[VMCALL_ODD_EXIT] = "a probe vmcall ended with an unexpected exit",
	[VMCALL_NO_VM] = "cannot create a probe VM",
	[VMCALL_NO_SETUP] = "the probe VM could not be set up",
};

const char *vmcall_why(enum vmcall_verdict v)
{
	return (unsigned int)v < VMCALL_NR_VERDICTS ? verdict_why[v] :
						      "unknown";
}

bool vmcall_lasting(enum vmcall_verdict v)
{
	return (unsigned int)v < VMCALL_NR_VERDICTS && v != VMCALL_NO_VM &&
	       v != VMCALL_NO_SETUP;
}

enum vmcall_verdict vmcall_probe(int kvm_fd)
{
	static const uint8_t vmcall[] = { 0x0f, 0x01, 0xc1, 0xf4 };
	static const uint8_t vmmcall[] = { 0x0f, 0x01, 0xd9, 0xf4 };
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_EXIT_HYPERCALL,
		.args[0] = 1ULL << KVM_HC_MAP_GPA_RANGE,
	};
	enum vmcall_verdict v = VMCALL_NO_SETUP;
	struct kvmu_vcpu vcpu = { .fd = -1 };
	struct kvm_regs regs;
	int vm_fd, r;
	void *mem;

	vm_fd = kvmu_vm_create(kvm_fd, 0);
	if (vm_fd < 0)
		return VMCALL_NO_VM;
	r = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_EXIT_HYPERCALL);
	if (r <= 0 || !(r & (1 << KVM_HC_MAP_GPA_RANGE))) {
		v = VMCALL_NO_CAP;
		goto err_vm;
	}
	if (ioctl(vm_fd, KVM_ENABLE_CAP, &cap))
		goto err_vm;
	mem = mmap(NULL, SZ_64K, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		goto err_vm;
	memcpy((uint8_t *)mem + PROBE_CODE, host_is_amd() ? vmmcall : vmcall,
	       sizeof(vmcall));
	if (kvmu_set_slot(vm_fd, 0, 0, mem, SZ_64K))
		goto err_mem;
	if (kvmu_vcpu_create(kvm_fd, vm_fd, 0, &vcpu))
		goto err_mem;
	/* Real mode at 0:0x1000, CPL 0: MAP_GPA_RANGE(0, 1 page, shared). */
	memset(&regs, 0, sizeof(regs));
	regs.rip = PROBE_CODE;
	regs.rax = KVM_HC_MAP_GPA_RANGE;
	regs.rcx = 1;
	if (kvmu_vcpu_real_mode(&vcpu, 0, 0, &regs))
		goto err_vcpu;

	if (!run_kicked(&vcpu, &r))
		goto err_vcpu;	/* no kicker: the VM never ran */
	if (r == 0 && vcpu.run->exit_reason == KVM_EXIT_HYPERCALL &&
	    vcpu.run->hypercall.nr == KVM_HC_MAP_GPA_RANGE)
		v = VMCALL_EXITS;
	else if (r == -EINTR)
		v = VMCALL_SPINS;
	else if (r == 0 && vcpu.run->exit_reason == KVM_EXIT_HLT)
		v = VMCALL_RETURNS;
	else if (r == 0)
		v = VMCALL_ODD_EXIT;
	/* else KVM_RUN failed (-ENOMEM, ...): passing, VMCALL_NO_SETUP. */

err_vcpu:
	kvmu_vcpu_destroy(&vcpu);
err_mem:
	munmap(mem, SZ_64K);
err_vm:
	close(vm_fd);
	return v;
}
