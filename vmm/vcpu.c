/* SPDX-License-Identifier: MIT */
/*
 * vCPUs: creation, register access and the run loop, one thread each.
 *
 * Stopping: vm_stop() sets vm->stop_flag, then for every vCPU sets
 * run->immediate_exit and sends SIGUSR1 to its thread (vcpu_kick()).  The
 * handler does nothing and is installed without SA_RESTART, so a thread
 * inside KVM_RUN gets EINTR; a thread outside it sees stop_flag before
 * its next KVM_RUN, and one that is between that check and the ioctl has
 * immediate_exit set (stored before the signal is sent), so KVM_RUN
 * returns EINTR at once.  No window is left in which a vCPU keeps running.
 * A pause (pause.c) kicks the same way; the loop parks before KVM_RUN
 * (after KVM_RUN with immediate_exit has completed the last exit and
 * any exit that completion raised: vcpu_settle()), or right after the
 * EINTR, until resumed, and clears
 * immediate_exit before it enters KVM_RUN again.
 *
 * Registers: with KVM_CAP_SYNC_REGS (KVM_SYNC_X86_REGS) KVM copies the
 * GPRs into run->s.regs on every exit and takes them back when the bit is
 * set in kvm_dirty_regs, which saves the KVM_GET_REGS/KVM_SET_REGS pair a
 * doorbell would cost.  Without it, the ioctls are used.  Either way RIP is
 * left alone, so KVM completes the `out` on re-entry.
 *
 * Everything in struct vcpu belongs to its thread once the start gate
 * opens, except run->immediate_exit (written atomically by the stopper or
 * pauser) and the thread handle (written by the main thread before the gate
 * opens).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gmvm.h"

static void kick_handler(int sig)
{
	(void)sig;
}

static void signal_init_once(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: KVM_RUN must see EINTR */
	sigaction(SIGUSR1, &sa, NULL);
}

void vcpu_signal_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, signal_init_once);
}

int vcpu_create(struct vm *vm, struct vcpu *vcpu, unsigned int index)
{
	void *run;
	int ret;

	vcpu->vm = vm;
	vcpu->index = index;
	vcpu->fault_gpa = UINT64_MAX;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (vcpu->fd < 0) {
		ret = -errno;
		gmvm_err("vcpu %u: KVM_CREATE_VCPU: %s", index,
			 strerror(errno));
		return ret;
	}
	run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   vcpu->fd, 0);
	if (run == MAP_FAILED) {
		ret = -errno;
		gmvm_err("vcpu %u: mmap of kvm_run: %s", index,
			 strerror(errno));
		goto err_fd;
	}
	vcpu->run = run;
	ret = boot_setup_vcpu(vm, vcpu);
	if (ret)
		goto err_run;
	if (vm->sync_regs)
		vcpu->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
	return 0;

err_run:
	munmap(vcpu->run, vm->run_size);
	vcpu->run = NULL;
err_fd:
	close(vcpu->fd);
	vcpu->fd = -1;
	return ret;
}

void vcpu_destroy(struct vm *vm, struct vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, vm->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
}

struct kvm_regs *vcpu_regs(struct vcpu *vcpu)
{
	if (vcpu->vm->sync_regs)
		return &vcpu->run->s.regs.regs;
	if (ioctl(vcpu->fd, KVM_GET_REGS, &vcpu->regs)) {
		vm_stop(vcpu->vm, GM_EXIT_HOST_ERROR,
			"vcpu %u: KVM_GET_REGS: %s", vcpu->index,
			strerror(errno));
		return NULL;
	}
	return &vcpu->regs;
}

int vcpu_regs_dirty(struct vcpu *vcpu)
{
	if (vcpu->vm->sync_regs) {
		vcpu->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
		return 0;
	}
	if (ioctl(vcpu->fd, KVM_SET_REGS, &vcpu->regs)) {
		vm_stop(vcpu->vm, GM_EXIT_HOST_ERROR,
			"vcpu %u: KVM_SET_REGS: %s", vcpu->index,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* For messages: the current RIP, read fresh (all ones if unreadable). */
uint64_t vcpu_rip(struct vcpu *vcpu)
{
	struct kvm_regs regs;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs))
		return UINT64_MAX;
	return regs.rip;
}

void vcpu_kick(struct vcpu *vcpu)
{
	if (!vcpu->thread_started || !vcpu->run)
		return;
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(vcpu->thread, SIGUSR1);
}

/* Wait until every vCPU thread exists; false if the start was aborted. */
static bool gate_wait(struct vm *vm)
{
	int gate;

	pthread_mutex_lock(&vm->gate_lock);
	while (vm->gate == 0)
		pthread_cond_wait(&vm->gate_cond, &vm->gate_lock);
	gate = vm->gate;
	pthread_mutex_unlock(&vm->gate_lock);
	return gate > 0;
}

static enum exit_action run_failed(struct vcpu *vcpu, int err)
{
	uint32_t reason = vcpu->run->exit_reason;

	if (err == EFAULT && reason == KVM_EXIT_MEMORY_FAULT) {
		vcpu->stats.exits_memory_fault++;
		return implicit_memory_fault(vcpu);
	}
	return vm_stop(vcpu->vm, GM_EXIT_GUEST_FAULT,
		       "vcpu %u: KVM_RUN failed: %s (exit reason %s (%u)) (RIP %#llx)",
		       vcpu->index, strerror(err), exit_reason_name(reason),
		       reason, (unsigned long long)vcpu_rip(vcpu));
}

/* What a KVM_RUN that returned 0 asks for: count the exit, handle it. */
static enum exit_action vcpu_dispatch(struct vcpu *vcpu)
{
	uint32_t reason = vcpu->run->exit_reason;

	vcpu->stats.exits[reason < STATS_NR_EXIT_REASONS ?
			  reason : STATS_NR_EXIT_REASONS - 1]++;
	if (vcpu->fault_repeats)
		implicit_note_exit(vcpu);
	return exits_dispatch(vcpu);
}

/*
 * Before parking for a pause: finish what the last exit left pending.
 * KVM completes a port-I/O (or MMIO) exit, and takes registers marked
 * dirty in kvm_run, only when KVM_RUN is entered again (api.rst, "the
 * corresponding operations are complete ... only after userspace has
 * re-entered the kernel with KVM_RUN"); with immediate_exit set it does
 * that and returns -EINTR without running the guest.
 *
 * But completing an exit can itself end in a new one before KVM looks at
 * immediate_exit (x86.c runs complete_userspace_io first and returns its
 * exit): the next iteration of a `rep outs` (one exit per byte), the
 * next read-ahead batch of a `rep ins`, the second half of an
 * MMIO access split across pages.  KVM_RUN then returns 0 with that exit
 * in kvm_run, and the instruction is still in flight.  So dispatch every
 * such exit as the run loop would and enter again, until KVM says EINTR:
 * only then is the vCPU at an instruction boundary with nothing pending,
 * and a paused vCPU's state, as KVM_GET_* read it for a snapshot, whole.
 * The loop ends: each completion moves the one instruction on, and the
 * guest itself never runs with immediate_exit set.  These KVM_RUNs are
 * not counted in stats.runs (they never enter the guest); the exits
 * they return are counted as exits.
 */
static enum exit_action vcpu_settle(struct vcpu *vcpu)
{
	enum exit_action act;

	for (;;) {
		/* Set again each time: an exit handler may have kicked. */
		__atomic_store_n(&vcpu->run->immediate_exit, 1,
				 __ATOMIC_SEQ_CST);
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			int err = errno;

			return err == EINTR ? EXIT_RESUME :
					      run_failed(vcpu, err);
		}
		vcpu->t_exit = now_ns();
		act = vcpu_dispatch(vcpu);
		if (act != EXIT_RESUME)
			return act;
	}
}

static enum exit_action vcpu_loop(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;
	enum exit_action act = EXIT_STOP;
	int ret;

	for (;;) {
		if (__atomic_load_n(&vm->stop_flag, __ATOMIC_ACQUIRE))
			break;
		if (vcpu->hc_timing) {
			stats_hist_record(vcpu->stats.hc_hist,
					  now_ns() - vcpu->t_exit);
			vcpu->hc_timing = false;
		}
		/* After the latency is taken: a pause is not the VMM's cost.
		 * Then the stop check again: a stop ends a pause. */
		if (__atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE)) {
			act = vcpu_settle(vcpu);
			if (act != EXIT_RESUME)
				break;
			vcpu_pause_point(vcpu);
			continue;
		}
		vcpu->stats.runs++;
		ret = ioctl(vcpu->fd, KVM_RUN, 0);
		vcpu->t_exit = now_ns();
		if (ret < 0) {
			int err = errno;

			if (err == EINTR) {
				vcpu->stats.exits_intr++;
				/* Park if paused; clear a pause's kick. */
				vcpu_pause_point(vcpu);
				continue;
			}
			act = run_failed(vcpu, err);
		} else {
			act = vcpu_dispatch(vcpu);
		}
		if (act != EXIT_RESUME)
			break;
	}
	return act;
}

void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;
	bool last;

	if (!gate_wait(vm))
		return NULL;
	/* A vCPU restored as parked (it had done hlt) stays out. */
	if (!vcpu->parked)
		vcpu->parked = vcpu_loop(vcpu) == EXIT_PARK;
	pthread_mutex_lock(&vm->gate_lock);
	last = --vm->running == 0;
	/* A pause counts only the vCPUs still in their loop. */
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->gate_lock);
	/*
	 * Wake the main thread, which waits in ppoll() so that a signal can
	 * wake it too.  Adding 1 to a fresh eventfd cannot fail, and the
	 * main thread closes it only after joining every vCPU thread.
	 */
	if (last)
		eventfd_write(vm->done_fd, 1);
	return NULL;
}
