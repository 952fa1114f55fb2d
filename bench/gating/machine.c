/* SPDX-License-Identifier: MIT */
/*
 * The machine: can it run two threads at once, and does it for page-table
 * work?  A CPU loop, a system call and a PTE zap, timed alone and beside a
 * busy thread or process, and their table; pinning a thread to a CPU.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gating.h"

/*
 * Worker @slot on CPU @slot: two threads on two CPUs, as pinned vCPUs
 * are.  Left to the scheduler, a short run's two threads often start on
 * the same CPU while another process keeps the other one busy, and
 * measure that instead.
 */
void gating_pin(int slot)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;

	if (n < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(slot % n, &set);
	gating_must(sched_setaffinity(0, sizeof(set), &set),
		    "sched_setaffinity");
}

/* ---- the machine --------------------------------------------------------- */

/*
 * Can this machine run two threads at once, and does it for page-table
 * work?  Three loops, each alone, beside a thread of this process that
 * spins and beside another process that spins: nothing shared, no lock,
 * no memory, no system call.  Where the loop that changes PTEs slows
 * beside either, the limit is the machine's (a hypervisor's page-table or
 * TLB handling, vCPUs contending on the host), not any lock of this
 * process, and no gate can scale past it.
 */
enum { L_CPU, L_SYSCALL, L_ZAP, NR_LOOPS };
#define MACHINE_REPS 3

static const char *const loop_names[NR_LOOPS] = {
	[L_CPU] = "a CPU loop",
	[L_SYSCALL] = "getppid()",
	[L_ZAP] = "a write + MADV_DONTNEED of a shmem page",
};

/* Medians: alone, beside a thread, beside a process (enum busy). */
static double machine_us[NR_LOOPS][3];

static atomic_bool spin_stop;

static void *spin_run(void *arg)
{
	gating_pin(1);
	while (!atomic_load_explicit(&spin_stop, memory_order_relaxed))
		gating_relax();
	return NULL;
}

static double loop_us(int l, uint8_t *page)
{
	int n = l == L_ZAP ? 2000 : 100000, i, j;
	double t0 = bench_now_us();

	for (i = 0; i < n; i++) {
		if (l == L_CPU) {
			for (j = 0; j < 300; j++)
				__asm__ volatile("" ::: "memory");
		} else if (l == L_SYSCALL) {
			syscall(SYS_getppid);
		} else {
			*(volatile uint8_t *)page = 1;
			gating_must(madvise(page, PAGE, MADV_DONTNEED),
				    "MADV_DONTNEED");
		}
	}
	return (bench_now_us() - t0) / n;
}

/* The other CPU's load: nothing, a thread of ours, another process. */
enum busy { BUSY_NONE, BUSY_THREAD, BUSY_PROCESS, NR_BUSY };

struct busy_one {
	enum busy how;
	pthread_t th;
	pid_t child;
};

/* Only the main thread runs when this forks: fork() is safe. */
static void busy_start(struct busy_one *b, enum busy how)
{
	struct timespec settle = { 0, 2000000 };

	b->how = how;
	if (how == BUSY_THREAD) {
		atomic_store(&spin_stop, false);
		if (pthread_create(&b->th, NULL, spin_run, NULL))
			bench_die("pthread_create failed");
	} else if (how == BUSY_PROCESS) {
		b->child = fork();
		gating_must(b->child, "fork");
		if (!b->child) {
			gating_pin(1);
			for (;;)
				gating_relax();
		}
	}
	nanosleep(&settle, NULL);	/* it runs by now */
}

static void busy_stop(struct busy_one *b)
{
	if (b->how == BUSY_THREAD) {
		atomic_store(&spin_stop, true);
		pthread_join(b->th, NULL);
	} else if (b->how == BUSY_PROCESS) {
		kill(b->child, SIGKILL);
		waitpid(b->child, NULL, 0);
	}
}

/* The loop on CPU 0, the busy one on CPU 1. */
void gating_measure_machine(void)
{
	double v[NR_LOOPS][NR_BUSY][MACHINE_REPS];
	int fd = bench_memfd("gating-machine", PAGE), rep, l, how;
	uint8_t *page;
	cpu_set_t all;

	gating_must(sched_getaffinity(0, sizeof(all), &all),
		    "sched_getaffinity");
	gating_pin(0);
	gating_must(fd, "memfd");
	page = mmap(NULL, PAGE, RW, MAP_SHARED, fd, 0);
	gating_must(page == MAP_FAILED ? -1 : 0, "mmap");
	for (rep = 0; rep < MACHINE_REPS; rep++) {
		for (l = 0; l < NR_LOOPS; l++) {
			for (how = 0; how < NR_BUSY; how++) {
				struct busy_one b;

				busy_start(&b, how);
				v[l][how][rep] = loop_us(l, page);
				busy_stop(&b);
			}
		}
	}
	for (l = 0; l < NR_LOOPS; l++)
		for (how = 0; how < NR_BUSY; how++)
			machine_us[l][how] = bench_median(v[l][how],
							  MACHINE_REPS);
	munmap(page, PAGE);
	close(fd);
	gating_must(sched_setaffinity(0, sizeof(all), &all),
		    "sched_setaffinity");
}

void gating_print_machine(void)
{
	int l;

	printf("| one thread running | alone us | beside a busy thread of "
	       "this process us (x) | beside a busy other process us (x) "
	       "|\n|---|---|---|---|\n");
	for (l = 0; l < NR_LOOPS; l++) {
		const double *x = machine_us[l];

		printf("| %s | %.2f | %.2f (%.2f) | %.2f (%.2f) |\n",
		       loop_names[l], x[0], x[1], x[1] / x[0], x[2],
		       x[2] / x[0]);
		printf("BENCH gating_machine loop=%d alone_us=%.3f "
		       "beside_thread_us=%.3f beside_process_us=%.3f\n", l,
		       x[0], x[1], x[2]);
	}
	printf("\nThe machine: one thread's loop on CPU 0 alone and while "
	       "CPU 1 spins, in this process or in another one (nothing "
	       "shared), medians of %d. A loop that slows beside another "
	       "process is limited by the machine, not by any lock of this "
	       "process.\n\n", MACHINE_REPS);
}
