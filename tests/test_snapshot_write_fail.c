/* SPDX-License-Identifier: MIT */
/*
 * Memory snapshots (vmm/snapshot/, docs/SNAPSHOT.md) whose writing fails,
 * without KVM:
 *  - writes that fail at every possible call, and a real EFBIG, return
 *    -errno and leave neither PATH.tmp nor a changed PATH; so does a VM
 *    changed during its save (-EAGAIN).
 *  - a file that must be new (the control socket's snapshot) is never
 *    renamed over one that appeared at PATH while it was written.
 * Round trips are test_snapshot_roundtrip.c; refused files
 * test_snapshot_refuse.c.
 */
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include "snapshot_fixture.h"

/* ---- writes that fail -------------------------------------------------------- */

struct failing_io {
	unsigned int calls, fail_at;
	int err;
	/* Or: change the VM at the first write, as a caller that did not
	 * hold off changes would. */
	struct gmem_vm *change;
	uint64_t change_gpa;
	bool change_plug;
};

static int failing_write(void *data, int fd, const void *buf, size_t len,
			 uint64_t off)
{
	struct failing_io *f = data;
	ssize_t n;

	if (++f->calls == f->fail_at)
		return f->err;
	if (f->change && f->calls == 1)
		TEST_ASSERT(f->change_plug ?
			    gmem_set_plugged(f->change, f->change_gpa, 64 * KiB,
					     false) == 16 :
			    gmem_convert(f->change, f->change_gpa, 64 * KiB,
					 GMEM_SHARED) == 16);
	n = pwrite(fd, buf, len, (off_t)off);
	TEST_ASSERT(n == (ssize_t)len);
	return 0;
}

static void write_failures(void)
{
	struct failing_io fio = { 0 };
	struct snap_io io = { .write_at = failing_write, .data = &fio };
	struct snap_save_opts o = { .initial_state = GMEM_PRIVATE, .io = &io };
	struct creator c = { .own_shared = true };
	struct gmem_vm *vm;
	struct bytes before, after;
	char path[128], tmp[160], msg[256];
	unsigned int n, failed = 0;
	struct rlimit old, lim;
	struct model m;
	uint8_t *buf;
	int err;

	/* 3 MiB of content: several flushes, section headers completed
	 * after they were written. */
	model_init(&m, GMEM_MODE_DISCARD, GMEM_PRIVATE, 16 * MiB);
	vm = create_model_vm(&m, 0, &c);
	buf = malloc(3 * MiB);
	TEST_ASSERT(buf);
	memset(buf, 0x3c, 3 * MiB);
	TEST_ASSERT_EQ(gmem_access(vm, 0, buf, 2 * MiB, true, GMEM_PRIVATE), 0);
	TEST_ASSERT(gmem_convert(vm, 6 * MiB, 2 * MiB, GMEM_SHARED) > 0);
	TEST_ASSERT_EQ(gmem_access(vm, 6 * MiB, buf, 1 * MiB, true,
				   GMEM_SHARED), 0);
	free(buf);
	path_in_dir(path, sizeof(path), "w.snap");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	/* An older snapshot at PATH must survive every failure. */
	save(vm, &m, path, SNAP_FIND_AUTO, NULL);
	TEST_ASSERT(gmem_set_plugged(vm, 0, 64 * KiB, false) > 0);
	before = read_file(path);
	for (n = 1;; n++) {
		fio.calls = 0;
		fio.fail_at = n;
		fio.err = n % 2 ? -ENOSPC : -EIO;
		err = snap_save_file(vm, path, &o, NULL, msg, sizeof(msg));
		if (!err)
			break;
		failed++;
		TEST_ASSERT_EQ(err, fio.err);
		TEST_ASSERT(strstr(msg, strerror(-fio.err)));
		TEST_ASSERT(!exists(tmp));
		after = read_file(path);
		TEST_ASSERT(after.len == before.len &&
			    !memcmp(after.p, before.p, after.len));
		b_free(&after);
	}
	TEST_ASSERT(failed >= 5);
	TEST_ASSERT(fio.calls == n - 1);
	verify(vm, path);
	b_free(&before);
	before = read_file(path);

	/* The VM changes during the save: a page about to be read changed
	 * state, or the maps differ at the end.  Either way -EAGAIN, no
	 * file. */
	fio.fail_at = 0;
	fio.change = vm;
	for (n = 0; n < 2; n++) {
		fio.calls = 0;
		fio.change_plug = n;
		fio.change_gpa = n ? 12 * MiB : 2 * MiB - 64 * KiB;
		err = snap_save_file(vm, path, &o, NULL, msg, sizeof(msg));
		TEST_ASSERT_EQ(err, -EAGAIN);
		TEST_ASSERT(strstr(msg, n ? "memory changed while being saved" :
					    "changed state while being saved"));
		TEST_ASSERT(!exists(tmp));
	}
	fio.change = NULL;
	TEST_ASSERT_EQ(gmem_convert(vm, 2 * MiB - 64 * KiB, 64 * KiB,
				    GMEM_PRIVATE), 16);
	TEST_ASSERT_EQ(gmem_set_plugged(vm, 12 * MiB, 64 * KiB, true), 16);

	/* A real failure of the kernel's: the file size limit (EFBIG from
	 * pwrite, after a short write). */
	TEST_ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1 * MiB + 12345;
	signal(SIGXFSZ, SIG_IGN);
	TEST_ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
	o.io = NULL;
	err = snap_save_file(vm, path, &o, NULL, msg, sizeof(msg));
	TEST_ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
	TEST_ASSERT_EQ(err, -EFBIG);
	TEST_ASSERT(strstr(msg, "writing"));
	TEST_ASSERT(!exists(tmp));
	after = read_file(path);
	TEST_ASSERT(after.len == before.len &&
		    !memcmp(after.p, before.p, after.len));
	b_free(&after);
	b_free(&before);
	printf("write failures: each of the %u writes failed once (ENOSPC, "
	       "EIO), and EFBIG at the file size limit: -errno, no %s, the "
	       "old file intact\n", failed, tmp);
	unlink(path);
	gmem_destroy(vm);
	model_free(&m);
}

/* ---- a file that must be new ------------------------------------------------ */

/* A snap_file with @content committed to @path; @no_replace as set. */
static int commit_one(const char *path, const char *content, bool no_replace)
{
	char why[256];
	struct snap_msg msg;
	struct snap_file f;
	size_t n = strlen(content);

	snap_msg_init(&msg, why, sizeof(why));
	TEST_ASSERT_EQ(snap_file_create(&f, path, &msg), 0);
	f.no_replace = no_replace;
	TEST_ASSERT(write(f.fd, content, n) == (ssize_t)n);
	return snap_file_commit(&f, &msg);
}

static void write_content(const char *path, const char *content)
{
	FILE *fp = fopen(path, "w");

	TEST_ASSERT(fp);
	TEST_ASSERT(fputs(content, fp) >= 0);
	TEST_ASSERT_EQ(fclose(fp), 0);
}

static void expect_content(const char *path, const char *content)
{
	struct bytes b = read_file(path);

	TEST_ASSERT(b.len == strlen(content) && !memcmp(b.p, content, b.len));
	b_free(&b);
}

static void no_replace(void)
{
	char path[128], tmp[160];

	path_in_dir(path, sizeof(path), "new.snap");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	/* PATH free: the file lands. */
	TEST_ASSERT_EQ(commit_one(path, "ours", true), 0);
	expect_content(path, "ours");
	TEST_ASSERT(!exists(tmp));
	/* PATH appeared while ours was written: -EEXIST, theirs intact,
	 * ours gone. */
	write_content(path, "theirs");
	TEST_ASSERT_EQ(commit_one(path, "ours again", true), -EEXIST);
	expect_content(path, "theirs");
	TEST_ASSERT(!exists(tmp));
	/* Without no_replace a newer snapshot replaces the old one. */
	TEST_ASSERT_EQ(commit_one(path, "newer", false), 0);
	expect_content(path, "newer");
	TEST_ASSERT(!exists(tmp));
	unlink(path);
	printf("no_replace: a file that appeared at PATH meanwhile is kept "
	       "(-EEXIST), nothing of ours left\n");
}

int main(void)
{
	snap_fixture_init("test_snapshot_write_fail");
	write_failures();
	no_replace();
	snap_fixture_fini();
	printf("all passed\n");
	return T_EXIT_PASS;
}
