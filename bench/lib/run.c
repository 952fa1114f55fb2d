/* SPDX-License-Identifier: MIT */
/*
 * Running gmvm (or the benchmark itself, re-executed) as the user would:
 * a separate process whose stdout is captured for its "@" lines, with the
 * host TSC read right before the spawn and right after the exit (the
 * bracket bench_tsc_check() holds guest TSC values to) and, on request,
 * its memory sampled from /proc while it runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

extern char **environ;

static char gmvm_path[PATH_MAX + 32], guest_dir[PATH_MAX + 32];
static char self_path[PATH_MAX];

/* $(BUILD)/bench/NAME -> $(BUILD): 0, or -1 if this program is not found. */
static int find_build_dir(char *dir, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", self_path,
			     sizeof(self_path) - 1);
	char *slash;
	int i;

	if (n <= 0)
		return -1;
	self_path[n] = '\0';
	snprintf(dir, size, "%s", self_path);
	for (i = 0; i < 2; i++) {
		if (!(slash = strrchr(dir, '/')))
			return -1;
		*slash = '\0';
	}
	return 0;
}

static void find_gmvm(const char *guest)
{
	char dir[PATH_MAX], elf[PATH_MAX + 96];

	if (find_build_dir(dir, sizeof(dir)))
		bench_skip("cannot find this program's path");
	snprintf(gmvm_path, sizeof(gmvm_path), "%s/gmvm", dir);
	snprintf(guest_dir, sizeof(guest_dir), "%s/guest/bench", dir);
	bench_guest_path(elf, sizeof(elf), guest);
	if (access(gmvm_path, X_OK) || access(elf, R_OK))
		bench_skip("%s or %s missing: build with make bench",
			   gmvm_path, elf);
}

void bench_gmvm_setup(const char *guest, struct bench_host *host)
{
	find_gmvm(guest);
	bench_require_kvm(host);
	bench_tsc_calibrate();
}

int bench_gmvm_finish(void)
{
	bench_tsc_report();
	return bench_failures() ? 1 : 0;
}

const char *bench_gmvm_path(void)
{
	return gmvm_path;
}

const char *bench_self_path(void)
{
	ssize_t n;

	/* Benchmarks that run themselves without gmvm come here first. */
	if (!self_path[0]) {
		n = readlink("/proc/self/exe", self_path,
			     sizeof(self_path) - 1);
		if (n <= 0)
			bench_die("readlink /proc/self/exe: %s",
				  strerror(errno));
		self_path[n] = '\0';
	}
	return self_path;
}

void bench_guest_path(char *buf, size_t size, const char *guest)
{
	snprintf(buf, size, "%s/%s", guest_dir, guest);
}

static long status_field(const char *buf, const char *key)
{
	const char *p = strstr(buf, key);

	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

/* One sample of /proc/@pid/status (kB values). */
static void sample_rss(pid_t pid, struct bench_run *r)
{
	char path[64], buf[4096];
	ssize_t n;
	long hwm, rss;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	hwm = status_field(buf, "VmHWM:");
	rss = status_field(buf, "VmRSS:");
	if (hwm < 0 || rss < 0)
		return;		/* exiting: no mm any more */
	if (hwm > r->hwm_kib)
		r->hwm_kib = hwm;
	if (rss > r->rss_kib) {
		r->rss_kib = rss;
		r->anon_kib = status_field(buf, "RssAnon:");
		r->file_kib = status_field(buf, "RssFile:");
		r->shmem_kib = status_field(buf, "RssShmem:");
	}
}

void bench_run_free(struct bench_run *r)
{
	free(r->out);
	r->out = NULL;
}

int bench_run_cmd(char *const argv[], struct bench_run *r, bool poll_rss)
{
	posix_spawn_file_actions_t fa;
	size_t cap = 1 << 16;
	int p[2], st, err;
	pid_t pid;
	ssize_t n;

	memset(r, 0, sizeof(*r));
	r->status = -1;
	r->out = malloc(cap);
	if (!r->out || pipe2(p, O_CLOEXEC))
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	r->h0 = bench_rdtsc();
	err = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (err) {
		close(p[0]);
		bench_fail("spawn %s: %s", argv[0], strerror(err));
		return -1;
	}
	for (;;) {
		if (cap - r->len < 4096) {
			char *q = realloc(r->out, cap * 2);

			if (!q)
				break;
			r->out = q;
			cap *= 2;
		}
		if (poll_rss) {
			struct pollfd pfd = { .fd = p[0], .events = POLLIN };

			sample_rss(pid, r);
			if (poll(&pfd, 1, 1) == 0)
				continue;
		}
		n = read(p[0], r->out + r->len, cap - r->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		r->len += (size_t)n;
	}
	r->out[r->len] = '\0';
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	r->h1 = bench_rdtsc();
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	if (r->status) {
		bench_fail("%s %s ... exited with status %d; its output:\n%s",
			   argv[0], argv[1], r->status, r->out);
		return -1;
	}
	return 0;
}

int bench_run_gmvm(struct bench_run *r, const char *guest,
		   const char *const *opts)
{
	char elf[PATH_MAX + 96];
	char *argv[32];
	int n = 0;

	bench_guest_path(elf, sizeof(elf), guest);
	argv[n++] = gmvm_path;
	argv[n++] = (char *)"run";
	argv[n++] = (char *)"--timeout";
	argv[n++] = (char *)"300";
	for (; *opts && n < 24; opts++)
		argv[n++] = (char *)*opts;
	argv[n++] = elf;
	while (*++opts && n < 31)
		argv[n++] = (char *)*opts;
	argv[n] = NULL;
	return bench_run_cmd(argv, r, false);
}
