/* SPDX-License-Identifier: MIT */
/*
 * gmvm's pause (vmm/pause.c), with gmvm's own vm_stop() and vcpu_kick(),
 * on fake vCPU threads: no KVM.
 *
 * A fake vCPU runs the run loop's protocol (vmm/vcpu.c: the stop check,
 * the pause point before KVM_RUN when pause_req is set and after every
 * EINTR, leaving the loop under gate_lock) around a "KVM_RUN" that treats the
 * kick as KVM does: EINTR at once when immediate_exit is set, EINTR when
 * SIGUSR1 interrupts the guest's time (a nanosleep), else an exit.
 *
 *  1. a pause parks every vCPU: none progresses until resumed; the vCPUs'
 *     plain counters are read while paused (TSan checks that this is
 *     ordered after their writes and before their next ones); a second
 *     pause returns at once; after a resume every vCPU runs again and
 *     KVM_RUN is not left returning EINTR (immediate_exit was cleared);
 *  2. a vCPU busy in an exit handler: a pause waits for it, and one that
 *     times out fails and lets the VM run on;
 *  3. a vCPU that left its loop (hlt) does not hold a pause up;
 *  4. vm_stop() while paused, and while a pause is waiting: every vCPU
 *     leaves, the first stop's status stands.
 * //@ concurrency
 */
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"
#include "../vmm/gmvm.h"

#define NR 4

static struct vm vm;
static struct vm_config cfg;
static struct vcpu vcpus[NR];
static struct kvm_run runs[NR];

/* Per vCPU, read and written atomically: what the test sees live. */
static unsigned long progress[NR];
static int stuck_ms[NR];	/* the next exit handler takes this long */
static int in_handler[NR];
static int halt[NR];		/* the next exit is a hlt: leave the loop */

static uint64_t ms_now(void)
{
	return now_ns() / 1000000ULL;
}

static int fake_kvm_run(struct vcpu *v)
{
	struct timespec ts = { .tv_nsec = 200000 };

	if (__atomic_load_n(&v->run->immediate_exit, __ATOMIC_SEQ_CST))
		return -EINTR;
	if (nanosleep(&ts, NULL) && errno == EINTR)
		return -EINTR;
	return 0;
}

static void *fake_vcpu(void *arg)
{
	struct vcpu *v = arg;
	unsigned int i = v->index;
	int ms;

	pthread_mutex_lock(&vm.gate_lock);
	while (!vm.gate)
		pthread_cond_wait(&vm.gate_cond, &vm.gate_lock);
	pthread_mutex_unlock(&vm.gate_lock);
	for (;;) {
		if (vm_stopping(&vm))
			break;
		if (__atomic_load_n(&vm.pause_req, __ATOMIC_ACQUIRE)) {
			vcpu_pause_point(v);
			continue;
		}
		v->stats.runs++;	/* plain, as the real counters */
		if (fake_kvm_run(v)) {
			v->stats.exits_intr++;
			vcpu_pause_point(v);
			continue;
		}
		__atomic_add_fetch(&progress[i], 1, __ATOMIC_RELAXED);
		if (__atomic_exchange_n(&halt[i], 0, __ATOMIC_ACQ_REL))
			break;
		ms = __atomic_exchange_n(&stuck_ms[i], 0, __ATOMIC_ACQ_REL);
		if (ms) {
			/* Busy that long, kicks or not (they interrupt
			 * a sleep, not the handler's work). */
			uint64_t end = ms_now() + (uint64_t)ms;

			__atomic_store_n(&in_handler[i], 1, __ATOMIC_RELEASE);
			while (ms_now() < end)
				usleep(1000);
			__atomic_store_n(&in_handler[i], 0, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_lock(&vm.gate_lock);
	vm.running--;
	pthread_cond_broadcast(&vm.pause_cond);
	pthread_mutex_unlock(&vm.gate_lock);
	return NULL;
}

static void vm_start(void)
{
	unsigned int i;

	memset(&vm, 0, sizeof(vm));
	memset(vcpus, 0, sizeof(vcpus));
	memset(runs, 0, sizeof(runs));
	memset(progress, 0, sizeof(progress));
	vm.cfg = &cfg;
	vm.nr_vcpus = NR;
	vm.vcpus = vcpus;
	pthread_mutex_init(&vm.stop_lock, NULL);
	pthread_mutex_init(&vm.gate_lock, NULL);
	pthread_cond_init(&vm.gate_cond, NULL);
	vm_pause_init(&vm);
	vcpu_signal_init();
	for (i = 0; i < NR; i++) {
		vcpus[i].vm = &vm;
		vcpus[i].index = i;
		vcpus[i].run = &runs[i];
		TEST_ASSERT_EQ(pthread_create(&vcpus[i].thread, NULL,
					      fake_vcpu, &vcpus[i]), 0);
		vcpus[i].thread_started = true;
	}
	pthread_mutex_lock(&vm.gate_lock);
	vm.running = NR;
	vm.gate = 1;
	pthread_cond_broadcast(&vm.gate_cond);
	pthread_mutex_unlock(&vm.gate_lock);
}

static void vm_end(int status)
{
	struct timespec ts;
	unsigned int i;

	vm_stop(&vm, status, "test: stop");
	for (i = 0; i < NR; i++) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		if (pthread_timedjoin_np(vcpus[i].thread, NULL, &ts))
			TEST_FAIL("vCPU %u did not leave after vm_stop()", i);
	}
	TEST_ASSERT_EQ(vm.running, 0);
	TEST_ASSERT_EQ(vm.nr_paused, 0);
	vm_pause_destroy(&vm);
	pthread_cond_destroy(&vm.gate_cond);
	pthread_mutex_destroy(&vm.gate_lock);
	pthread_mutex_destroy(&vm.stop_lock);
}

static void progress_now(unsigned long *p)
{
	unsigned int i;

	for (i = 0; i < NR; i++)
		p[i] = __atomic_load_n(&progress[i], __ATOMIC_RELAXED);
}

/* Every vCPU (but @skip) makes progress within 3 s. */
static void expect_running(int skip)
{
	unsigned long a[NR], b[NR];
	uint64_t t0 = ms_now();
	unsigned int i;

	progress_now(a);
	for (i = 0; i < NR; i++) {
		if ((int)i == skip)
			continue;
		do {
			usleep(1000);
			progress_now(b);
		} while (b[i] == a[i] && ms_now() - t0 < 3000);
		if (b[i] == a[i])
			TEST_FAIL("vCPU %u makes no progress", i);
	}
}

static void test_pause_resume(void)
{
	unsigned long runs0[NR], intr0[NR], p0[NR], p1[NR];
	unsigned int i, round;
	uint64_t t0;

	vm_start();
	expect_running(-1);
	for (round = 0; round < 5; round++) {
		TEST_ASSERT_EQ(vm_pause(&vm, 5000), 0);
		pthread_mutex_lock(&vm.gate_lock);
		TEST_ASSERT_EQ(vm.nr_paused, NR);
		pthread_mutex_unlock(&vm.gate_lock);
		/* Read the vCPUs' own counters: they are parked. */
		for (i = 0; i < NR; i++) {
			if (round && vcpus[i].stats.exits_intr - intr0[i] > 8)
				TEST_FAIL("vCPU %u: %lu EINTRs in one round: immediate_exit left set?",
					  i, (unsigned long)(vcpus[i].stats.exits_intr - intr0[i]));
			runs0[i] = vcpus[i].stats.runs;
			intr0[i] = vcpus[i].stats.exits_intr;
		}
		progress_now(p0);
		usleep(30000);
		progress_now(p1);
		for (i = 0; i < NR; i++) {
			TEST_ASSERT_EQ(p1[i], p0[i]);
			TEST_ASSERT_EQ(vcpus[i].stats.runs, runs0[i]);
		}
		/* Idempotent: a second pause returns at once. */
		t0 = ms_now();
		TEST_ASSERT_EQ(vm_pause(&vm, 5000), 0);
		TEST_ASSERT(ms_now() - t0 < 1000);
		vm_resume(&vm);
		expect_running(-1);
		usleep(50000);	/* ~250 exits each: EINTRs would show */
	}
	vm_resume(&vm);		/* resuming a running VM changes nothing */
	expect_running(-1);
	vm_end(0);
}

static void test_busy_vcpu(void)
{
	uint64_t t0, dt;

	vm_start();
	expect_running(-1);

	/* A pause that times out lets everyone run on. */
	__atomic_store_n(&stuck_ms[2], 600, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&in_handler[2], __ATOMIC_ACQUIRE))
		usleep(1000);
	t0 = ms_now();
	TEST_ASSERT_EQ(vm_pause(&vm, 100), -ETIMEDOUT);
	dt = ms_now() - t0;
	TEST_ASSERT(dt >= 90 && dt < 3000);
	TEST_ASSERT_EQ(__atomic_load_n(&vm.pause_req, __ATOMIC_ACQUIRE), 0);
	expect_running(2);
	while (__atomic_load_n(&in_handler[2], __ATOMIC_ACQUIRE))
		usleep(1000);
	expect_running(-1);

	/* One with time enough waits for the handler to finish. */
	__atomic_store_n(&stuck_ms[1], 300, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&in_handler[1], __ATOMIC_ACQUIRE))
		usleep(1000);
	TEST_ASSERT_EQ(vm_pause(&vm, 5000), 0);
	TEST_ASSERT_EQ(__atomic_load_n(&in_handler[1], __ATOMIC_ACQUIRE), 0);
	vm_resume(&vm);
	expect_running(-1);

	/* A vCPU that left its loop (hlt) holds no pause up. */
	__atomic_store_n(&halt[3], 1, __ATOMIC_RELEASE);
	for (;;) {
		unsigned int running;

		pthread_mutex_lock(&vm.gate_lock);
		running = vm.running;
		pthread_mutex_unlock(&vm.gate_lock);
		if (running == NR - 1)
			break;
		usleep(1000);
	}
	TEST_ASSERT_EQ(vm_pause(&vm, 1000), 0);
	TEST_ASSERT_EQ(vm.nr_paused, NR - 1);
	vm_resume(&vm);
	expect_running(3);
	vm_end(0);
}

static void *pauser(void *arg)
{
	*(int *)arg = vm_pause(&vm, 5000);
	return NULL;
}

static void test_stop(void)
{
	pthread_t t;
	int ret = 1;

	/* Stopped while paused: parked vCPUs wake and leave. */
	vm_start();
	expect_running(-1);
	TEST_ASSERT_EQ(vm_pause(&vm, 5000), 0);
	vm_end(7);
	TEST_ASSERT_EQ(vm.status, 7);
	/* The kicks of a stop stay: immediate_exit is still set. */
	TEST_ASSERT_EQ(runs[0].immediate_exit, 1);

	/* Stopped while a pause waits for a busy vCPU: the pause ends as
	 * the vCPUs leave, the stop's status stands. */
	vm_start();
	expect_running(-1);
	__atomic_store_n(&stuck_ms[0], 300, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&in_handler[0], __ATOMIC_ACQUIRE))
		usleep(1000);
	TEST_ASSERT_EQ(pthread_create(&t, NULL, pauser, &ret), 0);
	usleep(50000);
	vm_stop(&vm, 9, "test: stop during a pause");
	pthread_join(t, NULL);
	TEST_ASSERT_EQ(ret, 0);
	vm_end(8);
	TEST_ASSERT_EQ(vm.status, 9);
}

int main(void)
{
	sigset_t block;

	/* As in gmvm: the stop signals are the main thread's business. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, NULL);

	test_pause_resume();
	printf("pause parks every vCPU, counters read while parked, resume clears the kick\n");
	test_busy_vcpu();
	printf("a busy vCPU: waited for, or the pause times out and the VM runs on; a halted one counts as stopped\n");
	test_stop();
	printf("vm_stop() while paused and while a pause waits: every vCPU leaves\n");
	return 0;
}
