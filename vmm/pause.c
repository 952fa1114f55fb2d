/* SPDX-License-Identifier: MIT */
/*
 * Pausing the VM: every vCPU out of KVM_RUN (so stopped at an instruction
 * boundary: KVM_RUN returns only between guest instructions) and parked in
 * its run loop before it would enter KVM_RUN again, until resumed or
 * stopped.  The control socket's
 * pause and resume use it, and its stats, so that the vCPUs' counters,
 * which their threads write without atomics, are read while none writes.
 *
 * vm_pause() sets pause_req, kicks every vCPU as vm_stop() does
 * (vcpu_kick(): immediate_exit, then SIGUSR1, so a vCPU in KVM_RUN gets
 * EINTR and one about to enter returns at once), and waits until every
 * vCPU still in its loop is parked (nr_paused == running; one that left
 * its loop, by hlt or a stop, counts as stopped).  A vCPU parks in
 * vcpu_pause_point(), which its loop calls before KVM_RUN when pause_req
 * is set and after every EINTR, and leaves when pause_req is cleared
 * (vm_resume(), or a pause that timed out) or the VM stops
 * (vm_pause_wake(), called by vm_stop() before its kicks).
 *
 * immediate_exit: a pause's kick leaves it set, which would make every
 * later KVM_RUN return EINTR at once, so vcpu_pause_point() clears it,
 * under gate_lock and only if the VM is not stopping.  vm_stop() stores
 * stop_flag, then takes gate_lock (vm_pause_wake()), then sets
 * immediate_exit: if the clear held gate_lock first, the stop's
 * immediate_exit comes after it; if the stop did, the clear sees
 * stop_flag and leaves it set.  Either way a stop is never lost.
 *
 * Locking: pause_req, nr_paused and running (vcpu.c) under gate_lock,
 * which stays a leaf: a vCPU parks holding nothing else (in its loop,
 * between exits), so a pause never waits for a lock a parked vCPU
 * holds, and nobody takes another lock under gate_lock.  pause_req is also
 * read without the lock, atomically, as a hint; the decision is taken
 * again under the lock.  One thread at a time pauses and resumes (the
 * control server's, or its worker during a migration, while the server
 * runs no other command); vm_stop() may run at the same time on any
 * thread.
 */
#include <errno.h>
#include <time.h>

#include "gmvm.h"

void vm_pause_init(struct vm *vm)
{
	pthread_condattr_t attr;

	/* Pause deadlines must not move with the wall clock. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->pause_cond, &attr);
	pthread_condattr_destroy(&attr);
}

void vm_pause_destroy(struct vm *vm)
{
	pthread_cond_destroy(&vm->pause_cond);
}

int vm_pause(struct vm *vm, unsigned int timeout_ms)
{
	struct timespec deadline;
	bool asked;
	unsigned int i;
	int ret = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}

	pthread_mutex_lock(&vm->gate_lock);
	asked = !vm->pause_req;
	__atomic_store_n(&vm->pause_req, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->gate_lock);
	/* Already paused: the wait below returns at once (idempotent). */
	if (asked) {
		for (i = 0; i < vm->nr_vcpus; i++)
			vcpu_kick(&vm->vcpus[i]);
	}

	pthread_mutex_lock(&vm->gate_lock);
	while (vm->nr_paused < vm->running && !ret)
		ret = pthread_cond_timedwait(&vm->pause_cond, &vm->gate_lock,
					     &deadline);
	if (ret && vm->nr_paused < vm->running) {
		/* Give up, and let the vCPUs that did park run on. */
		__atomic_store_n(&vm->pause_req, 0, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&vm->pause_cond);
		ret = -ETIMEDOUT;
	} else {
		ret = 0;
	}
	pthread_mutex_unlock(&vm->gate_lock);
	return ret;
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->gate_lock);
	__atomic_store_n(&vm->pause_req, 0, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->gate_lock);
}

void vm_pause_wake(struct vm *vm)
{
	pthread_mutex_lock(&vm->gate_lock);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->gate_lock);
}

void vcpu_pause_point(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;

	pthread_mutex_lock(&vm->gate_lock);
	if (vm->pause_req && !vm_stopping(vm)) {
		vm->nr_paused++;
		pthread_cond_broadcast(&vm->pause_cond);
		while (vm->pause_req && !vm_stopping(vm))
			pthread_cond_wait(&vm->pause_cond, &vm->gate_lock);
		vm->nr_paused--;
	}
	if (!vm_stopping(vm))
		__atomic_store_n(&vcpu->run->immediate_exit, 0,
				 __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&vm->gate_lock);
}
