/* SPDX-License-Identifier: MIT */
/*
 * Does a guest vmcall come back to gmvm?
 *
 * KVM_CAP_EXIT_HYPERCALL with MAP_GPA_RANGE is not enough: on some hosts
 * (our development hosts among them) a guest vmcall never exits to
 * userspace and KVM_RUN spins until a signal.  So gmvm runs a throwaway
 * real-mode VM (util/kvm_util.h) whose only instruction is a vmcall (or
 * vmmcall on AMD and Hygon), kicks it out of KVM_RUN with a signal after
 * VMCALL_PROBE_MS, and caches the verdict for the process.  A slow host can
 * only make it say "no" (then the doorbell is used, which always works),
 * never a false "yes".
 *
 * State: the kicker's done flag is under its lock; the verdict is written
 * once under the probe lock and read-only afterwards.
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
 * that spins.  Every gmvm start on such a host pays it, so keep it short (a
 * slow host can only make the answer "no", which is safe).
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

static bool probe_vmcall(int kvm_fd, const char **why)
{
	static const uint8_t vmcall[] = { 0x0f, 0x01, 0xc1, 0xf4 };
	static const uint8_t vmmcall[] = { 0x0f, 0x01, 0xd9, 0xf4 };
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_EXIT_HYPERCALL,
		.args[0] = 1ULL << KVM_HC_MAP_GPA_RANGE,
	};
	struct kvmu_vcpu v = { .fd = -1 };
	struct kvm_regs regs;
	bool works = false;
	int vm_fd, r;
	void *mem;

	vm_fd = kvmu_vm_create(kvm_fd, 0);
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
	memcpy((uint8_t *)mem + PROBE_CODE, host_is_amd() ? vmmcall : vmcall,
	       sizeof(vmcall));
	if (kvmu_set_slot(vm_fd, 0, 0, mem, SZ_64K))
		goto err_mem;
	if (kvmu_vcpu_create(kvm_fd, vm_fd, 0, &v))
		goto err_mem;
	/* Real mode at 0:0x1000, CPL 0: MAP_GPA_RANGE(0, 1 page, shared). */
	memset(&regs, 0, sizeof(regs));
	regs.rip = PROBE_CODE;
	regs.rax = KVM_HC_MAP_GPA_RANGE;
	regs.rcx = 1;
	if (kvmu_vcpu_real_mode(&v, 0, 0, &regs))
		goto err_vcpu;

	if (!run_kicked(&v, &r))
		goto err_vcpu;	/* no kicker: the VM never ran */
	if (r == 0 && v.run->exit_reason == KVM_EXIT_HYPERCALL &&
	    v.run->hypercall.nr == KVM_HC_MAP_GPA_RANGE) {
		works = true;
		*why = "a probe vmcall exited to userspace";
	} else if (r == -EINTR) {
		*why = "a probe vmcall did not exit to userspace within "
		       STR(VMCALL_PROBE_MS)
		       " ms (KVM_RUN had to be interrupted)";
	} else if (r == 0 && v.run->exit_reason == KVM_EXIT_HLT) {
		*why = "a probe vmcall returned to the guest without exiting to userspace";
	} else {
		*why = "a probe vmcall ended with an unexpected exit";
	}

err_vcpu:
	kvmu_vcpu_destroy(&v);
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
