/* SPDX-License-Identifier: MIT */
/*
 * Where a single conversion's user-space time goes, in instructions
 * (callgrind), which unlike timings are stable on a shared, noisy machine.
 *
 * The program runs itself under `valgrind --tool=callgrind` with
 * collection switched on only inside measure_loop(): N conversions of one
 * range there and back, after a warm-up outside it.  Two subjects:
 *   - libgmem: gmem_convert() on a VM without KVM (a memfd stands in for
 *     the guest_memfd, as in the tests), so that it runs on every host;
 *   - the floor: the same system calls issued directly on two views of a
 *     memfd: mprotect(old view, NONE), mprotect(new view, RW) and, in
 *     discard mode, fallocate(PUNCH_HOLE) of the old backing.
 * Callgrind counts user-space instructions only: the kernel's work is the
 * same for both and not in these figures; the time ratio with the kernel
 * included is bench_convert's table.  The table gives instructions per
 * conversion for both and the functions where libgmem's go (self cost,
 * callgrind_annotate).
 *
 * Skipped (77) without valgrind: scripts/install-deps.sh --bench installs
 * it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define RAM (64ULL << 20)
#define ITERS 1000	/* conversions there and back, inside the count */
#define TOP_FUNCTIONS 8

struct instr_case {
	const char *size_name;
	uint64_t len;
	bool in_place;
};

static const struct instr_case cases[] = {
	{ "4 KiB", 4096, false },
	{ "2 MiB", 2ULL << 20, false },
	{ "4 KiB", 4096, true },
	{ "2 MiB", 2ULL << 20, true },
};

/* ---- the child: what callgrind measures ------------------------------- */

struct subject {
	struct gmem_vm *vm;		/* libgmem, or NULL for the floor */
	struct floor_vm floor;		/* two views of memfds, no KVM VM */
	uint64_t gpa, len;
};

static void convert_once(struct subject *s, bool to_shared)
{
	int64_t r;

	if (!s->vm) {
		floor_vm_convert(&s->floor, s->gpa, s->len, to_shared);
		return;
	}
	r = gmem_convert(s->vm, s->gpa, s->len,
			 to_shared ? GMEM_SHARED : GMEM_PRIVATE);
	if (r != (int64_t)(s->len / GMEM_PAGE_SIZE))
		bench_die("gmem_convert: %lld", (long long)r);
}

/* Callgrind collects in here only (--toggle-collect): keep it a function. */
__attribute__((noinline)) static void measure_loop(struct subject *s, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		convert_once(s, true);
		convert_once(s, false);
	}
}

static uint8_t *map_view(int fd)
{
	void *p = mmap(NULL, RAM, PROT_NONE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		bench_die("mmap: %s", strerror(errno));
	return p;
}

static int child(const char *what, unsigned int ci)
{
	const struct instr_case *c = &cases[ci];
	struct subject s = { .len = c->len };
	struct floor_vm *f = &s.floor;
	struct gmem_region_config rc;
	struct gmem_config cfg;

	/* A range away from the edges, as a guest's would be. */
	s.gpa = RAM / 2;
	if (!strcmp(what, "libgmem")) {
		bench_gmem_config(&cfg, &rc, -1, RAM,
				  c->in_place ? GMEM_MODE_IN_PLACE :
						GMEM_MODE_DISCARD,
				  GMEM_PRIVATE);
		s.vm = bench_gmem_create(&cfg);
		if (rc.private_fd >= 0)
			close(rc.private_fd);
	} else {
		/* floor_vm_create() needs KVM: the same views, built here
		 * on memfds (the floor's calls touch only these). */
		*f = (struct floor_vm){ .vm = -1, .in_place = c->in_place,
					.ram = RAM };
		f->gfd = bench_memfd("floor-private", RAM);
		f->sfd = c->in_place ? f->gfd :
				       bench_memfd("floor-shared", RAM);
		if (f->gfd < 0 || f->sfd < 0)
			bench_die("memfd: %s", strerror(errno));
		f->priv = map_view(f->gfd);
		f->shared = map_view(f->sfd);
		if (mprotect(f->priv, RAM, PROT_READ | PROT_WRITE))
			bench_die("mprotect: %s", strerror(errno));
	}
	/* Warm-up outside the count: first-time allocations, lazy binding. */
	measure_loop(&s, 20);
	measure_loop(&s, ITERS);
	if (s.vm)
		gmem_destroy(s.vm);
	return 0;
}

/* ---- the parent: run the children under callgrind, read the counts ---- */

struct profile {
	unsigned long long total;	/* instructions in measure_loop() */
	char top[TOP_FUNCTIONS][288];	/* "share% function" */
	int nr_top;
};

/* The digits of "1,234,567" as a number. */
static unsigned long long parse_count(const char *s)
{
	unsigned long long n = 0;

	for (; *s && *s != ' '; s++)
		if (*s >= '0' && *s <= '9')
			n = n * 10 + (unsigned long long)(*s - '0');
	return n;
}

/*
 * callgrind_annotate's "6,063,666 (100.0%)  PROGRAM TOTALS" and, below
 * the "file:function" heading, "824,160 (13.59%)  lib/x.c:fn [object]".
 */
static void parse_annotate(const char *out, struct profile *p)
{
	const char *line;
	bool in_table = false;

	for (line = out; line && *line; line = strchr(line, '\n'),
	     line = line ? line + 1 : NULL) {
		char pct[16], fn[256], *name, *at;

		if (strstr(line, "PROGRAM TOTALS") &&
		    strstr(line, "PROGRAM TOTALS") < strchr(line, '\n')) {
			p->total = parse_count(line);
			continue;
		}
		if (!strncmp(line, "Ir ", 3) && strstr(line, "file:function")) {
			in_table = true;
			continue;
		}
		if (!in_table || p->nr_top == TOP_FUNCTIONS ||
		    line[0] < '0' || line[0] > '9' ||
		    sscanf(line, "%*s (%15[^)]) %255s", pct, fn) != 2)
			continue;
		/* "./nptl/x.c:pthread_mutex_lock@@GLIBC_2.2.5" -> the name */
		name = strrchr(fn, ':') ? strrchr(fn, ':') + 1 : fn;
		if ((at = strchr(name, '@')))
			*at = '\0';
		snprintf(p->top[p->nr_top++], sizeof(p->top[0]), "%s %s",
			 name, pct + strspn(pct, " "));
	}
}

/* The path of program @name on $PATH into @buf, or false. */
static bool find_program(const char *name, char *buf, size_t size)
{
	char cmd[128];
	FILE *f;
	bool ok;

	snprintf(cmd, sizeof(cmd), "command -v %s", name);
	f = popen(cmd, "r");
	if (!f)
		return false;
	ok = fgets(buf, (int)size, f) && buf[0] == '/';
	pclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return ok;
}

static char valgrind_path[256], annotate_path[256];

static int profile_case(const char *what, unsigned int ci, struct profile *p)
{
	char outfile[] = "/tmp/gmvm-callgrind-XXXXXX";
	char ci_s[16], out_arg[64];
	struct bench_run r;
	int fd, err = -1;

	memset(p, 0, sizeof(*p));
	fd = mkstemp(outfile);
	if (fd < 0)
		bench_die("mkstemp: %s", strerror(errno));
	close(fd);
	snprintf(ci_s, sizeof(ci_s), "%u", ci);
	snprintf(out_arg, sizeof(out_arg), "--callgrind-out-file=%s", outfile);
	{
		const char *argv[] = {
			valgrind_path, "--tool=callgrind", "--quiet",
			"--collect-atstart=no",
			"--toggle-collect=measure_loop", out_arg,
			bench_self_path(), "--child", what, ci_s, NULL
		};

		if (bench_run_cmd((char *const *)argv, &r, false))
			goto out;
		bench_run_free(&r);
	}
	{
		const char *argv[] = { annotate_path, "--inclusive=no",
				       outfile, NULL };

		if (bench_run_cmd((char *const *)argv, &r, false))
			goto out;
		parse_annotate(r.out, p);
		bench_run_free(&r);
	}
	if (!p->total)
		bench_fail("%s case %u: no instruction total in the profile",
			   what, ci);
	else
		err = 0;
out:
	unlink(outfile);
	return err;
}

int main(int argc, char **argv)
{
	unsigned int ci;

	if (argc == 4 && !strcmp(argv[1], "--child"))
		return child(argv[2], (unsigned int)atoi(argv[3]) %
				      (sizeof(cases) / sizeof(cases[0])));
	if (!find_program("valgrind", valgrind_path, sizeof(valgrind_path)) ||
	    !find_program("callgrind_annotate", annotate_path,
			  sizeof(annotate_path)))
		bench_skip("valgrind (callgrind) is not installed: "
			   "scripts/install-deps.sh --bench installs it");
	printf("## One conversion in user-space instructions (callgrind)\n\n");
	printf("User-space instructions per conversion (there and back = 2), "
	       "mean of %d round trips after a warm-up; kernel work is the "
	       "same for both sides and not counted. Where libgmem's go: "
	       "self cost, largest first.\n\n", ITERS);
	printf("| mode | size | libgmem instr | floor instr | where libgmem's "
	       "go |\n|---|---|---|---|---|\n");
	fflush(stdout);
	for (ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
		const struct instr_case *c = &cases[ci];
		struct profile lib, floor;
		double per_lib, per_floor;
		int i;

		if (profile_case("libgmem", ci, &lib) ||
		    profile_case("floor", ci, &floor))
			continue;
		per_lib = (double)lib.total / (2.0 * ITERS);
		per_floor = (double)floor.total / (2.0 * ITERS);
		printf("| %s | %s | %.0f | %.0f | ",
		       c->in_place ? "in-place" : "discard", c->size_name,
		       per_lib, per_floor);
		for (i = 0; i < lib.nr_top; i++)
			printf("%s%s", i ? ", " : "", lib.top[i]);
		printf(" |\n");
		printf("BENCH instr mode=%s bytes=%llu lib=%.0f floor=%.0f\n",
		       c->in_place ? "in-place" : "discard",
		       (unsigned long long)c->len, per_lib, per_floor);
		fflush(stdout);
	}
	printf("\n");
	return bench_failures() ? 1 : 0;
}
