/* SPDX-License-Identifier: MIT */
/*
 * Restore to the first guest instruction against a fresh gmvm start
 * (issue 11 item 6), with KVM: a 16 GiB guest in in-place mode with
 * RESIDENT_MIB resident (guest/bench/restore.c) is snapshotted while it
 * spins (`gmvm ctl PATH snapshot FILE --stop`); then `gmvm restore FILE`
 * is timed from posix_spawn() to the first byte the guest writes after
 * it, a newline a few instructions past the one it stopped at (gmvm
 * flushes its console at each newline), against `gmvm run` of the same
 * guest with nothing resident, from posix_spawn() to its first line
 * ("ready", after the guest runtime's start-up: some hundred
 * instructions, which counts for the fresh start).  Medians of REPS runs each.  Goal (issue 11): restore <= 2x a
 * fresh start.
 *
 * Without KVM: skipped (77, with the reason).  bench_snapshot measures
 * the host-side parts (file size, snapshot time, the memory part of a
 * restore) on any host.  The snapshot goes to a new directory under
 * $BENCH_SNAPSHOT_DIR (default /var/tmp), removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define RESIDENT_MIB "256"
#define MEMORY "16G"
#define REPS 5
/* The longest any step may take before the run counts as failed. */
#define STEP_MS 300000

extern char **environ;

static char dir[PATH_MAX], snap[PATH_MAX + 16], sock[PATH_MAX + 16];
static char out_file[PATH_MAX + 16], err_file[PATH_MAX + 16];
static char elf[PATH_MAX + 96];

/* @argv with stdout to @out_fd and stderr to err_file: its pid, or -1. */
static pid_t spawn(char *const argv[], int out_fd)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int ret;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	/* Appended: a ctl spawned while the VM runs must not truncate the
	 * file the VM is still writing. */
	posix_spawn_file_actions_addopen(&fa, 2, err_file,
					 O_WRONLY | O_CREAT | O_APPEND, 0600);
	ret = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (ret) {
		bench_fail("posix_spawn %s: %s", argv[0], strerror(ret));
		return -1;
	}
	return pid;
}

/* The child's exit status, or -1 (a signal); its stderr on a surprise. */
static int reap(pid_t pid, int want)
{
	char buf[512];
	ssize_t n;
	int ws, fd;

	if (waitpid(pid, &ws, 0) != pid)
		return -1;
	if (WIFEXITED(ws) && WEXITSTATUS(ws) == want)
		return want;
	fd = open(err_file, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	bench_fail("gmvm exited %d (want %d): %s",
		   WIFEXITED(ws) ? WEXITSTATUS(ws) : -WTERMSIG(ws), want, buf);
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

/*
 * ms from posix_spawn() of @argv to the first byte on its stdout, then
 * SIGTERM (a VM stopped by it exits 143); -1 if it failed.
 */
static double first_byte_ms(char *const argv[])
{
	struct pollfd p = { .events = POLLIN };
	double t0, t1 = -1;
	int fds[2];
	pid_t pid;
	char c;

	if (pipe2(fds, O_CLOEXEC))
		bench_die("pipe: %s", strerror(errno));
	t0 = bench_now_us();
	pid = spawn(argv, fds[1]);
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		return -1;
	}
	p.fd = fds[0];
	if (poll(&p, 1, STEP_MS) == 1 && read(fds[0], &c, 1) == 1)
		t1 = bench_now_us();
	/* gmvm drops the rest of its output (EPIPE) and runs on. */
	close(fds[0]);
	kill(pid, SIGTERM);
	if (reap(pid, 143) != 143 || t1 < 0)
		return -1;
	return (t1 - t0) / 1000;
}

/* Wait until @path holds @word, up to STEP_MS: true if it does. */
static bool wait_word(const char *path, const char *word)
{
	char buf[256];
	double t0 = bench_now_us();
	ssize_t n;
	int fd;

	while (bench_now_us() - t0 < STEP_MS * 1000.0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = '\0';
		if (strstr(buf, word))
			return true;
		usleep(10000);
	}
	return false;
}

/* The spinning guest with RESIDENT_MIB resident, snapshotted and stopped. */
static bool make_snapshot(void)
{
	char resident[] = "resident=" RESIDENT_MIB;
	char *run[] = { (char *)bench_gmvm_path(), (char *)"run",
			(char *)"--memory", (char *)MEMORY,
			(char *)"--conversion", (char *)"in-place",
			(char *)"--control", sock, (char *)"--timeout",
			(char *)"600", elf, resident, NULL };
	char *ctl[] = { (char *)bench_gmvm_path(), (char *)"ctl", sock,
			(char *)"snapshot", snap, (char *)"--stop", NULL };
	int out, null;
	pid_t vm, c;

	out = open(out_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (out < 0 || null < 0)
		bench_die("%s: %s", out_file, strerror(errno));
	vm = spawn(run, out);
	close(out);
	if (vm < 0) {
		close(null);
		return false;
	}
	if (!wait_word(out_file, "ready")) {
		bench_fail("the guest never said ready");
		kill(vm, SIGKILL);
		waitpid(vm, NULL, 0);
		close(null);
		return false;
	}
	/* gmvm ctl's own stderr goes to err_file too; its reply nowhere. */
	c = spawn(ctl, null);
	close(null);
	if (c < 0 || reap(c, 0) != 0) {
		kill(vm, SIGKILL);
		waitpid(vm, NULL, 0);
		return false;
	}
	return reap(vm, 143) == 143;
}

static void cleanup(void)
{
	unlink(snap);
	unlink(sock);
	unlink(out_file);
	unlink(err_file);
	rmdir(dir);
}

int main(void)
{
	char *fresh[] = { (char *)bench_gmvm_path(), (char *)"run",
			  (char *)"--memory", (char *)MEMORY,
			  (char *)"--conversion", (char *)"in-place", elf,
			  NULL };
	char *restore[] = { (char *)bench_gmvm_path(), (char *)"restore",
			    snap, NULL };
	const char *base = getenv("BENCH_SNAPSHOT_DIR");
	double r[REPS], f[REPS], rm, fm;
	struct bench_host host;
	struct stat st;
	int i, ok = 0;

	bench_gmvm_setup("restore.elf", &host);	/* exits 77 with the reason */
	bench_guest_path(elf, sizeof(elf), "restore.elf");
	snprintf(dir, sizeof(dir), "%s/gmvm-bench-restore-XXXXXX",
		 base && *base ? base : "/var/tmp");
	if (!mkdtemp(dir))
		bench_die("mkdtemp %s: %s", dir, strerror(errno));
	snprintf(snap, sizeof(snap), "%s/vm.snap", dir);
	snprintf(sock, sizeof(sock), "%s/ctl", dir);
	snprintf(out_file, sizeof(out_file), "%s/out", dir);
	snprintf(err_file, sizeof(err_file), "%s/err", dir);
	atexit(cleanup);

	bench_progress("restore: the 16 GiB guest with " RESIDENT_MIB
		       " MiB resident, snapshotted");
	if (!make_snapshot() || stat(snap, &st))
		bench_die("no snapshot to restore");
	bench_progress("restore: %d restores and %d fresh starts", REPS, REPS);
	for (i = 0; i < REPS; i++) {
		r[i] = first_byte_ms(restore);
		f[i] = first_byte_ms(fresh);
		ok += r[i] >= 0 && f[i] >= 0;
	}
	if (ok != REPS)
		bench_die("%d of %d runs failed", REPS - ok, REPS);
	rm = bench_median(r, REPS);
	fm = bench_median(f, REPS);
	printf("## Restore to the first guest instruction (bench_guest_restore, KVM)\n\n");
	printf("| figure | value | baseline | ratio | goal | |\n");
	printf("|---|---|---|---|---|---|\n");
	printf("| 16 GiB guest, " RESIDENT_MIB " MiB resident (in-place): `gmvm restore` to the guest's first output | %.1f ms | fresh `gmvm run`, nothing resident, to its first output %.1f ms | %.2fx | <= 2x | %s |\n\n",
	       rm, fm, rm / fm, bench_goal_mark(rm / fm <= 2.0));
	printf("BENCH restore_first_insn restore_ms=%.2f fresh_ms=%.2f file_bytes=%lld\n",
	       rm, fm, (long long)st.st_size);
	printf("Medians of %d runs each, alternated. Snapshot file %lld bytes. Timed from posix_spawn() to the first byte on gmvm's stdout: for the restore a newline written a few instructions after the one the guest stopped at (guest/bench/restore.c spins writing them; gmvm flushes its console at each), for the fresh start the line \"ready\", after the guest runtime's start-up. Both VMs then stop by SIGTERM.\n\n",
	       REPS, (long long)st.st_size);
	/* No guest TSC figures here: bench_gmvm_finish()'s TSC paragraph
	 * would have nothing to say. */
	return bench_failures() ? 1 : 0;
}
