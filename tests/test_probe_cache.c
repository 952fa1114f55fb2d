/* SPDX-License-Identifier: MIT */
/*
 * gmvm's probe cache (vmm/probe_cache.c), without KVM:
 *
 *  - the key: the same host gives the same bytes; a KVM module parameter
 *    (in a sysfs tree of the test's own), a new KVM module, the KVM
 *    device (number, inode, ctime) or its API version changes it; other
 *    modules' parameters do not; a FIFO or a directory among the
 *    parameters neither blocks nor breaks it;
 *  - the path: XDG_CACHE_HOME if absolute, else HOME/.cache, else none;
 *    one too long for the buffer is refused;
 *  - round trip: store then load gives the answers back; the file is
 *    mode 0600 in directories created 0700, no temporary file is left;
 *  - every corrupted byte and every truncation (and one byte too many) is
 *    refused as -EBADMSG, so are a foreign magic, format, size or
 *    reserved field with a checksum that matches them;
 *  - a valid file of another key is -ESTALE, and probe_cache_get() then
 *    probes and rewrites it;
 *  - what is not a regular file of ours in a directory of ours is
 *    refused: a directory, a FIFO (without blocking), a symbolic link
 *    (whose target is left alone), a file or directory others can write;
 *  - probe_cache_get(): miss then hit; no cache (NULL path); answers not
 *    worth keeping are not stored; a probe's error is returned with
 *    nothing stored; answers valid() rejects count as corrupt; an
 *    unwritable cache directory still gives the probe's answers, every
 *    time, and says why it could not store them.
 *
 * Links vmm/probe_cache.o (see the Makefile).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"
#include "../vmm/probe_cache.h"

#define FILE_SIZE 248		/* struct probe_file */
#define OFF_FORMAT 8
#define OFF_SIZE 12
#define OFF_RESERVED 236	/* answers.reserved */
#define OFF_CHECKSUM 240

static char tmp[] = "/tmp/gmvm-probe-cache-XXXXXX";
static char path[PATH_MAX];	/* tmp/cache/gmvm/probes */
static char dir[PATH_MAX];	/* tmp/cache/gmvm */

static const struct probe_kvm_id kvm_id = {
	.rdev = 0xa00e8, .ino = 1234, .ctime_sec = 1700000000,
	.ctime_nsec = 5, .api_version = 12,
};

static void put_file(const char *p, const void *data, size_t len, int mode)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	TEST_ASSERT(fd >= 0);
	TEST_ASSERT_EQ(write(fd, data, len), (long long)len);
	TEST_ASSERT_EQ(fchmod(fd, (mode_t)mode), 0);
	close(fd);
}

static size_t get_file(const char *p, unsigned char *buf, size_t len)
{
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	TEST_ASSERT(fd >= 0);
	n = read(fd, buf, len);
	TEST_ASSERT(n >= 0);
	close(fd);
	return (size_t)n;
}

static void tpath(char *buf, const char *rel)
{
	TEST_ASSERT((size_t)snprintf(buf, PATH_MAX, "%s/%s", tmp, rel) <
		    PATH_MAX);
}

static void mkdir_p(const char *rel)
{
	char p[PATH_MAX];

	tpath(p, rel);
	TEST_ASSERT(!mkdir(p, 0700) || errno == EEXIST);
}

static void put_rel(const char *rel, const char *text)
{
	char p[PATH_MAX];

	tpath(p, rel);
	put_file(p, text, strlen(text), 0644);
}

static void fill(struct probe_key *k, const struct probe_kvm_id *id)
{
	char sys[PATH_MAX];

	tpath(sys, "sys");
	TEST_ASSERT_EQ(probe_key_fill(id, sys, k), 0);
}

static bool same(const struct probe_key *a, const struct probe_key *b)
{
	return !memcmp(a, b, sizeof(*a));
}

/* This host's key now, with the test's sysfs: @a again, or not? */
static void expect_key(const struct probe_key *a, bool want_same,
		       const char *after)
{
	struct probe_key b;

	fill(&b, &kvm_id);
	if (same(a, &b) != want_same)
		TEST_FAIL("after %s the key %s", after,
			  want_same ? "changed" : "did not change");
}

static void test_key(void)
{
	struct probe_key a, b;
	struct probe_kvm_id id;
	char p[PATH_MAX];
	int i;

	mkdir_p("sys");
	mkdir_p("sys/kvm");
	mkdir_p("sys/kvm/parameters");
	mkdir_p("sys/kvm_amd");
	mkdir_p("sys/kvm_amd/parameters");
	mkdir_p("sys/kvmfoo");		/* not kvm, not kvm_* */
	mkdir_p("sys/kvmfoo/parameters");
	mkdir_p("sys/virtio");
	mkdir_p("sys/virtio/parameters");
	put_rel("sys/kvm/parameters/halt_poll_ns", "200000\n");
	put_rel("sys/kvm/parameters/tdp_mmu", "Y\n");
	put_rel("sys/kvm_amd/parameters/npt", "1\n");
	put_rel("sys/kvmfoo/parameters/x", "1\n");
	put_rel("sys/virtio/parameters/y", "1\n");
	/* Neither may block or break the key. */
	tpath(p, "sys/kvm/parameters/fifo");
	TEST_ASSERT_EQ(mkfifo(p, 0600), 0);
	mkdir_p("sys/kvm/parameters/subdir");

	fill(&a, &kvm_id);
	fill(&b, &kvm_id);
	TEST_ASSERT(same(&a, &b));
	TEST_ASSERT_EQ(a.format, PROBE_CACHE_FORMAT);
	TEST_ASSERT(a.release[0] && !a.release[sizeof(a.release) - 1]);
	TEST_ASSERT(a.cpu[0] || a.cpu[1] || a.cpu[2]);

	/* Other modules' parameters are not KVM's. */
	put_rel("sys/virtio/parameters/y", "2\n");
	put_rel("sys/kvmfoo/parameters/x", "2\n");
	expect_key(&a, true, "other modules' parameters changed");

	/* A KVM parameter, a new one, a new KVM module: new keys. */
	put_rel("sys/kvm/parameters/halt_poll_ns", "0\n");
	expect_key(&a, false, "kvm.halt_poll_ns changed");
	put_rel("sys/kvm/parameters/halt_poll_ns", "200000\n");
	expect_key(&a, true, "kvm.halt_poll_ns changed back");
	put_rel("sys/kvm_amd/parameters/avic", "0\n");
	expect_key(&a, false, "kvm_amd.avic appeared");
	tpath(p, "sys/kvm_amd/parameters/avic");
	TEST_ASSERT_EQ(unlink(p), 0);
	mkdir_p("sys/kvm_pvm");
	expect_key(&a, false, "kvm_pvm was loaded");
	tpath(p, "sys/kvm_pvm");
	TEST_ASSERT_EQ(rmdir(p), 0);
	expect_key(&a, true, "kvm_pvm was unloaded");

	/* The device and the API: each field on its own. */
	for (i = 0; i < 4; i++) {
		id = kvm_id;
		id.rdev += i == 0;
		id.ino += i == 1;
		id.ctime_nsec += i == 2;
		id.api_version += i == 3;
		fill(&b, &id);
		if (same(&a, &b))
			TEST_FAIL("KVM id field %d changed, the key did not", i);
	}

	/* No sysfs at all: still a stable key. */
	TEST_ASSERT_EQ(probe_key_fill(&kvm_id, "/nonexistent/module", &a), 0);
	TEST_ASSERT_EQ(probe_key_fill(&kvm_id, "/nonexistent/module", &b), 0);
	TEST_ASSERT(same(&a, &b));
}

static void test_path(void)
{
	char buf[PATH_MAX], tiny[16], longv[600];

	setenv("XDG_CACHE_HOME", "/xdg", 1);
	setenv("HOME", "/home/u", 1);
	TEST_ASSERT_EQ(probe_cache_path(buf, sizeof(buf)), 0);
	TEST_ASSERT(!strcmp(buf, "/xdg/gmvm/probes"));
	setenv("XDG_CACHE_HOME", "relative/dir", 1);
	TEST_ASSERT_EQ(probe_cache_path(buf, sizeof(buf)), 0);
	TEST_ASSERT(!strcmp(buf, "/home/u/.cache/gmvm/probes"));
	unsetenv("XDG_CACHE_HOME");
	TEST_ASSERT_EQ(probe_cache_path(buf, sizeof(buf)), 0);
	TEST_ASSERT(!strcmp(buf, "/home/u/.cache/gmvm/probes"));
	TEST_ASSERT_EQ(probe_cache_path(tiny, sizeof(tiny)), -ENAMETOOLONG);
	memset(longv, 'a', sizeof(longv) - 1);
	longv[0] = '/';
	longv[sizeof(longv) - 1] = '\0';
	setenv("XDG_CACHE_HOME", longv, 1);
	TEST_ASSERT_EQ(probe_cache_path(buf, 300), -ENAMETOOLONG);
	unsetenv("XDG_CACHE_HOME");
	unsetenv("HOME");
	TEST_ASSERT_EQ(probe_cache_path(buf, sizeof(buf)), -ENOENT);
	setenv("HOME", "", 1);
	TEST_ASSERT_EQ(probe_cache_path(buf, sizeof(buf)), -ENOENT);
}

static const struct probe_answers answers = {
	.gating_ret = 0, .layout = 1, .vmcall = 2,
};

static bool answers_equal(const struct probe_answers *a,
			  const struct probe_answers *b)
{
	return a->gating_ret == b->gating_ret && a->layout == b->layout &&
	       a->vmcall == b->vmcall && a->reserved == b->reserved;
}

/* Only the file itself in the cache directory: no temporary left over. */
static void expect_only_file(void)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	TEST_ASSERT(d);
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (strcmp(e->d_name, "probes"))
			TEST_FAIL("%s left in the cache directory", e->d_name);
		n++;
	}
	closedir(d);
	TEST_ASSERT_EQ(n, 1);
}

static void test_round_trip(const struct probe_key *key)
{
	struct probe_answers out;
	char parent[PATH_MAX];
	struct stat st;

	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), -ENOENT);
	TEST_ASSERT_EQ(probe_cache_store(path, key, &answers), 0);
	memset(&out, 0xa5, sizeof(out));
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), 0);
	TEST_ASSERT(answers_equal(&out, &answers));
	TEST_ASSERT_EQ(stat(path, &st), 0);
	TEST_ASSERT(S_ISREG(st.st_mode));
	TEST_ASSERT_EQ(st.st_mode & 07777, 0600);
	TEST_ASSERT_EQ(st.st_size, FILE_SIZE);
	TEST_ASSERT_EQ(stat(dir, &st), 0);
	TEST_ASSERT_EQ(st.st_mode & 07777, 0700);
	tpath(parent, "cache");
	TEST_ASSERT_EQ(stat(parent, &st), 0);
	TEST_ASSERT_EQ(st.st_mode & 07777, 0700);
	expect_only_file();
	/* Again over the old file. */
	TEST_ASSERT_EQ(probe_cache_store(path, key, &answers), 0);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), 0);
	expect_only_file();
}

static uint64_t fnv1a(const unsigned char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (len--) {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* @good with @len bytes at @off set to @v and the checksum made to fit. */
static void put_forged(const unsigned char *good, size_t off, size_t len,
		       uint8_t v)
{
	unsigned char f[FILE_SIZE];
	uint64_t sum;

	memcpy(f, good, FILE_SIZE);
	memset(f + off, v, len);
	sum = fnv1a(f, OFF_CHECKSUM);
	memcpy(f + OFF_CHECKSUM, &sum, sizeof(sum));
	put_file(path, f, FILE_SIZE, 0600);
}

static void test_corrupt(const struct probe_key *key)
{
	unsigned char good[FILE_SIZE + 1], bad[FILE_SIZE + 1];
	struct probe_answers out;
	unsigned int i, bit;

	TEST_ASSERT_EQ(probe_cache_store(path, key, &answers), 0);
	TEST_ASSERT_EQ(get_file(path, good, sizeof(good)), FILE_SIZE);

	/* Every byte, every bit. */
	for (i = 0; i < FILE_SIZE; i++) {
		for (bit = 0; bit < 8; bit += 3) {
			memcpy(bad, good, FILE_SIZE);
			bad[i] ^= (unsigned char)(1u << bit);
			put_file(path, bad, FILE_SIZE, 0600);
			if (probe_cache_load(path, key, &out) != -EBADMSG)
				TEST_FAIL("byte %u bit %u flipped: accepted",
					  i, bit);
		}
	}
	/* Every truncation, and one byte too many. */
	for (i = 0; i < FILE_SIZE; i++) {
		put_file(path, good, i, 0600);
		if (probe_cache_load(path, key, &out) != -EBADMSG)
			TEST_FAIL("truncated to %u bytes: accepted", i);
	}
	memcpy(bad, good, FILE_SIZE);
	bad[FILE_SIZE] = 0;
	put_file(path, bad, FILE_SIZE + 1, 0600);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), -EBADMSG);

	/* Foreign, with a checksum that fits: each field on its own. */
	put_forged(good, 0, 1, 'X');
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), -EBADMSG);
	put_forged(good, OFF_FORMAT, 1, PROBE_CACHE_FORMAT + 1);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), -EBADMSG);
	put_forged(good, OFF_SIZE, 1, 0xf0);	/* 240, not 248 */
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), -EBADMSG);
	put_forged(good, OFF_RESERVED, 1, 1);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), -EBADMSG);
	/* The forger's method is right: the good bytes forged pass. */
	put_forged(good, 0, 1, good[0]);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), 0);
}

static void test_not_ours(const struct probe_key *key)
{
	struct probe_answers out;
	char target[PATH_MAX];
	unsigned char before[FILE_SIZE + 1], after[FILE_SIZE + 1];

	/* A directory, a FIFO (O_NONBLOCK: no hang), a symbolic link. */
	TEST_ASSERT_EQ(unlink(path), 0);
	TEST_ASSERT_EQ(mkdir(path, 0700), 0);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), -EBADMSG);
	TEST_ASSERT_EQ(rmdir(path), 0);
	TEST_ASSERT_EQ(mkfifo(path, 0600), 0);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), -EBADMSG);
	TEST_ASSERT_EQ(probe_cache_store(path, key, &answers), 0);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), 0);

	tpath(target, "elsewhere");
	TEST_ASSERT_EQ(rename(path, target), 0);
	TEST_ASSERT_EQ(symlink(target, path), 0);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), -EBADMSG);
	TEST_ASSERT_EQ(get_file(target, before, sizeof(before)), FILE_SIZE);
	/* The store replaces the link, never writes through it. */
	TEST_ASSERT_EQ(probe_cache_store(path, key, &answers), 0);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), 0);
	TEST_ASSERT_EQ(get_file(target, after, sizeof(after)), FILE_SIZE);
	TEST_ASSERT(!memcmp(before, after, FILE_SIZE));
	TEST_ASSERT_EQ(unlink(target), 0);

	/* Writable by others: the file, then the directory. */
	TEST_ASSERT_EQ(chmod(path, 0666), 0);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), -EBADMSG);
	TEST_ASSERT_EQ(chmod(path, 0600), 0);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), 0);
	TEST_ASSERT_EQ(chmod(dir, 0770), 0);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), -EBADMSG);
	TEST_ASSERT_EQ(probe_cache_store(path, key, &answers), -EACCES);
	TEST_ASSERT_EQ(chmod(dir, 0700), 0);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), 0);
	expect_only_file();
}

/* A fake probe: counts its runs, answers what it is told. */
struct fake {
	int calls;
	int ret;		/* 1 keep, 0 do not, < 0 error */
	bool valid;		/* what valid() says of stored answers */
	struct probe_answers a;
};

static int fake_probe(void *arg, struct probe_answers *a)
{
	struct fake *f = arg;

	f->calls++;
	*a = f->a;
	return f->ret;
}

static bool fake_valid(void *arg, const struct probe_answers *a)
{
	struct fake *f = arg;

	return f->valid;
}

static const struct probe_cache_ops fake_ops = {
	.probe = fake_probe,
	.valid = fake_valid,
};

static void test_get(const struct probe_key *key)
{
	struct fake f = { .ret = 1, .valid = true, .a = answers };
	struct probe_cache_result res;
	struct probe_answers out;
	struct probe_key other = *key;

	TEST_ASSERT_EQ(unlink(path), 0);
	/* Miss, stored; then a hit without probing. */
	TEST_ASSERT_EQ(probe_cache_get(path, key, &fake_ops, &f, &out, &res),
		       0);
	TEST_ASSERT(res.enabled);
	TEST_ASSERT_EQ(res.load, -ENOENT);
	TEST_ASSERT_EQ(res.store, 0);
	TEST_ASSERT_EQ(f.calls, 1);
	TEST_ASSERT(answers_equal(&out, &answers));
	memset(&out, 0, sizeof(out));
	TEST_ASSERT_EQ(probe_cache_get(path, key, &fake_ops, &f, &out, &res),
		       0);
	TEST_ASSERT_EQ(res.load, 0);
	TEST_ASSERT_EQ(f.calls, 1);
	TEST_ASSERT(answers_equal(&out, &answers));

	/* Another key: stale, probed again, rewritten for it. */
	other.release[0] ^= 1;
	f.a.vmcall = 3;
	TEST_ASSERT_EQ(probe_cache_get(path, &other, &fake_ops, &f, &out,
				       &res), 0);
	TEST_ASSERT_EQ(res.load, -ESTALE);
	TEST_ASSERT_EQ(res.store, 0);
	TEST_ASSERT_EQ(f.calls, 2);
	TEST_ASSERT_EQ(out.vmcall, 3);
	TEST_ASSERT_EQ(probe_cache_load(path, &other, &out), 0);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), -ESTALE);

	/* Stored answers the caller does not accept: corrupt, rewritten. */
	f.valid = false;
	TEST_ASSERT_EQ(probe_cache_get(path, &other, &fake_ops, &f, &out,
				       &res), 0);
	TEST_ASSERT_EQ(res.load, -EBADMSG);
	TEST_ASSERT_EQ(f.calls, 3);
	f.valid = true;

	/* A corrupt file is ignored and rewritten. */
	put_file(path, "garbage", 7, 0600);
	TEST_ASSERT_EQ(probe_cache_get(path, key, &fake_ops, &f, &out, &res),
		       0);
	TEST_ASSERT_EQ(res.load, -EBADMSG);
	TEST_ASSERT_EQ(res.store, 0);
	TEST_ASSERT_EQ(f.calls, 4);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), 0);

	/* No cache: probed, nothing read or written. */
	TEST_ASSERT_EQ(unlink(path), 0);
	TEST_ASSERT_EQ(probe_cache_get(NULL, key, &fake_ops, &f, &out, &res),
		       0);
	TEST_ASSERT(!res.enabled);
	TEST_ASSERT_EQ(f.calls, 5);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), -ENOENT);

	/* Not worth keeping: answered, not stored. */
	f.ret = 0;
	TEST_ASSERT_EQ(probe_cache_get(path, key, &fake_ops, &f, &out, &res),
		       0);
	TEST_ASSERT_EQ(res.store, 1);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), -ENOENT);

	/* A probe's error is the answer; nothing stored. */
	f.ret = -EIO;
	TEST_ASSERT_EQ(probe_cache_get(path, key, &fake_ops, &f, &out, &res),
		       -EIO);
	TEST_ASSERT_EQ(probe_cache_load(path, key, &out), -ENOENT);
	TEST_ASSERT_EQ(f.calls, 7);
}

/* The cache cannot be written: gmvm still gets its answers, every time. */
static void test_unwritable(const struct probe_key *key)
{
	struct fake f = { .ret = 1, .valid = true, .a = answers };
	struct probe_cache_result res;
	struct probe_answers out;
	char p[PATH_MAX], d[PATH_MAX];
	int i;

	/* Under a regular file: no directory can be made (root too). */
	put_rel("afile", "x");
	tpath(p, "afile/gmvm/probes");
	for (i = 1; i <= 2; i++) {
		memset(&out, 0, sizeof(out));
		TEST_ASSERT_EQ(probe_cache_get(p, key, &fake_ops, &f, &out,
					       &res), 0);
		TEST_ASSERT(answers_equal(&out, &answers));
		TEST_ASSERT_EQ(res.load, -ENOTDIR);
		TEST_ASSERT_EQ(res.store, -ENOTDIR);
		TEST_ASSERT_EQ(f.calls, i);
	}
	/* A read-only directory stops everyone but root. */
	tpath(d, "ro");
	TEST_ASSERT_EQ(mkdir(d, 0700), 0);
	mkdir_p("ro/gmvm");
	tpath(p, "ro/gmvm");
	TEST_ASSERT_EQ(chmod(p, 0500), 0);
	tpath(p, "ro/gmvm/probes");
	TEST_ASSERT_EQ(probe_cache_get(p, key, &fake_ops, &f, &out, &res), 0);
	TEST_ASSERT(answers_equal(&out, &answers));
	if (geteuid() != 0) {
		TEST_ASSERT_EQ(res.store, -EACCES);
		TEST_ASSERT_EQ(probe_cache_load(p, key, &out), -ENOENT);
	} else {
		printf("as root, a read-only directory does not stop the store (checked under a regular file instead)\n");
	}
	tpath(p, "ro/gmvm");
	TEST_ASSERT_EQ(chmod(p, 0700), 0);
}

int main(void)
{
	struct probe_key key;
	char cmd[PATH_MAX + 16];
	int ret;

	TEST_ASSERT(mkdtemp(tmp));
	tpath(dir, "cache/gmvm");
	tpath(path, "cache/gmvm/probes");
	test_key();
	printf("key: stable, and changed by what could change a probe's answer\n");
	test_path();
	printf("path: XDG_CACHE_HOME, HOME, none, too long\n");
	fill(&key, &kvm_id);
	test_round_trip(&key);
	printf("round trip: answers back, mode 0600 in 0700 directories, nothing left behind\n");
	test_corrupt(&key);
	printf("corrupt: every flipped byte, every truncation and each foreign field refused\n");
	test_not_ours(&key);
	printf("not ours: directory, FIFO, symbolic link, writable by others: refused\n");
	test_get(&key);
	printf("get: miss then hit, stale and corrupt files reprobed and rewritten\n");
	test_unwritable(&key);
	printf("unwritable: the probes' answers every time, the reason kept\n");

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	ret = system(cmd);
	TEST_ASSERT_EQ(ret, 0);
	return T_EXIT_PASS;
}
