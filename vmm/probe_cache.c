/* SPDX-License-Identifier: MIT */
/*
 * The probe cache (probe_cache.h): its key, its file and the
 * load-or-probe-and-store step.
 *
 * The file is one struct probe_file, native-endian (it never leaves this
 * host): magic, format, size, the key, the answers and an FNV-1a checksum
 * of everything before it.  A reader accepts it only if it is exactly
 * that size, every fixed field is what this code writes, the checksum
 * matches and the key is this host's; it is a regular file of ours, in a
 * directory of ours that nobody else can write (else another user could
 * plant answers), opened without following a symbolic link and without
 * blocking on a FIFO.  Anything else is ignored and, after the probes ran
 * again, replaced.
 *
 * A writer renames a complete temporary file over the old one, so a
 * reader never sees half a file.  There is no fsync: a file cut short by
 * a crash fails the size or checksum check and is rewritten, which costs
 * one probe, less than an fsync on every miss.
 */
#include <cpuid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <gmem/gmem.h>

#include "probe_cache.h"

#define PROBE_MAGIC "GMVMPRB\n"
#define PARAM_MAX 4096		/* bytes of one module parameter hashed */

struct probe_file {
	char magic[8];
	uint32_t format;
	uint32_t size;
	struct probe_key key;
	struct probe_answers answers;
	uint64_t checksum;	/* FNV-1a 64 of the bytes above */
};

/* No implicit padding: the key and the file are compared as bytes. */
_Static_assert(sizeof(struct probe_key) == 208, "probe key padding");
_Static_assert(sizeof(struct probe_answers) == 16, "probe answers");
_Static_assert(sizeof(struct probe_file) == 248, "probe file padding");

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv1a(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;

	while (len--) {
		h ^= *b++;
		h *= FNV_PRIME;
	}
	return h;
}

/* ---- the key ----------------------------------------------------------- */

static int is_kvm_module(const struct dirent *d)
{
	return !strcmp(d->d_name, "kvm") || !strncmp(d->d_name, "kvm_", 4);
}

static int is_entry(const struct dirent *d)
{
	return strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
}

/* One parameter file: its name, then its bytes or why it has none. */
static uint64_t hash_param(uint64_t h, int dir_fd, const char *name)
{
	char buf[PARAM_MAX];
	ssize_t n = -1;
	int fd, err;

	h = fnv1a(h, name, strlen(name) + 1);
	/* O_NONBLOCK: sysfs never blocks, but a test's directory might
	 * hold anything. */
	fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
				  O_NONBLOCK);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf));
		err = errno;
		close(fd);
	} else {
		err = errno;
	}
	if (n >= 0)
		return fnv1a(h, buf, (size_t)n);
	return fnv1a(h, &err, sizeof(err));
}

/* Every parameter of every KVM module, in name order. */
static uint64_t hash_params(const char *sysfs_module)
{
	struct dirent **mods = NULL, **params;
	uint64_t h = FNV_OFFSET;
	char path[PATH_MAX];
	int nr_mods, nr, i, k, dir_fd, err;

	nr_mods = scandir(sysfs_module, &mods, is_kvm_module, alphasort);
	if (nr_mods < 0) {
		err = errno;
		return fnv1a(h, &err, sizeof(err));
	}
	for (i = 0; i < nr_mods; i++) {
		h = fnv1a(h, mods[i]->d_name, strlen(mods[i]->d_name) + 1);
		if ((size_t)snprintf(path, sizeof(path), "%s/%s/parameters",
				     sysfs_module, mods[i]->d_name) >=
		    sizeof(path))
			goto next;
		nr = scandir(path, &params, is_entry, alphasort);
		if (nr < 0) {
			/* A module without parameters has no directory. */
			err = errno;
			h = fnv1a(h, &err, sizeof(err));
			goto next;
		}
		dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		for (k = 0; k < nr; k++) {
			if (dir_fd >= 0)
				h = hash_param(h, dir_fd, params[k]->d_name);
			free(params[k]);
		}
		free(params);
		if (dir_fd >= 0)
			close(dir_fd);
next:
		free(mods[i]);
	}
	free(mods);
	return h;
}

int probe_key_fill(const struct probe_kvm_id *kvm, const char *sysfs_module,
		   struct probe_key *key)
{
	unsigned int a, b, c, d;
	struct utsname u;

	memset(key, 0, sizeof(*key));
	if (uname(&u))
		return -errno;
	/* NUL-padded to the end: equal keys have equal bytes. */
	memcpy(key->release, u.release,
	       strnlen(u.release, sizeof(key->release) - 1));
	memcpy(key->version, u.version,
	       strnlen(u.version, sizeof(key->version) - 1));
	key->format = PROBE_CACHE_FORMAT;
	key->gmem_version = gmem_version();
	key->kvm_rdev = kvm->rdev;
	key->kvm_ino = kvm->ino;
	key->kvm_ctime_sec = kvm->ctime_sec;
	key->kvm_ctime_nsec = kvm->ctime_nsec;
	key->kvm_api_version = kvm->api_version;
	if (__get_cpuid(0, &a, &b, &c, &d)) {
		key->cpu[0] = b;	/* the vendor string */
		key->cpu[1] = d;
		key->cpu[2] = c;
	}
	if (__get_cpuid(1, &a, &b, &c, &d)) {
		key->cpu[3] = a;	/* family, model, stepping */
		key->cpu[4] = c;	/* features, the hypervisor bit too */
	}
	key->params_hash = hash_params(sysfs_module);
	return 0;
}

/* ---- where the file lives ---------------------------------------------- */

int probe_cache_path(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	int n;

	/* The XDG spec: a relative XDG_CACHE_HOME is invalid, ignore it. */
	if (xdg && xdg[0] == '/')
		n = snprintf(buf, len, "%s/gmvm/probes", xdg);
	else if (home && home[0] == '/')
		n = snprintf(buf, len, "%s/.cache/gmvm/probes", home);
	else
		return -ENOENT;
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* @path's directory into @dir. */
static int dir_of(const char *path, char *dir, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (!slash)
		return -EINVAL;
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return 0;
}

/* Ours, and nobody else can write it (or replace what is in it). */
static bool owned(const struct stat *st)
{
	return st->st_uid == geteuid() && !(st->st_mode & (S_IWGRP | S_IWOTH));
}

static int check_dir(const char *dir)
{
	struct stat st;

	if (stat(dir, &st))
		return -errno;
	return S_ISDIR(st.st_mode) && owned(&st) ? 0 : -EACCES;
}

/* ---- load and store ---------------------------------------------------- */

static uint64_t file_checksum(const struct probe_file *f)
{
	return fnv1a(FNV_OFFSET, f, offsetof(struct probe_file, checksum));
}

int probe_cache_load(const char *path, const struct probe_key *key,
		     struct probe_answers *out)
{
	/* One spare byte: a longer file is refused, not cut. */
	unsigned char buf[sizeof(struct probe_file) + 1];
	char dir[PATH_MAX];
	struct probe_file f;
	struct stat st;
	size_t have = 0;
	ssize_t n;
	int fd, ret;

	ret = dir_of(path, dir, sizeof(dir));
	if (ret)
		return ret;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return errno == ELOOP ? -EBADMSG : -errno;
	ret = -EBADMSG;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || !owned(&st) ||
	    check_dir(dir))
		goto out;
	while (have < sizeof(buf)) {
		n = read(fd, buf + have, sizeof(buf) - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break;
		have += (size_t)n;
	}
	if (have != sizeof(f))
		goto out;
	memcpy(&f, buf, sizeof(f));
	if (memcmp(f.magic, PROBE_MAGIC, sizeof(f.magic)) ||
	    f.format != PROBE_CACHE_FORMAT || f.size != sizeof(f) ||
	    f.checksum != file_checksum(&f) || f.answers.reserved)
		goto out;
	if (memcmp(&f.key, key, sizeof(*key))) {
		ret = -ESTALE;
		goto out;
	}
	*out = f.answers;
	ret = 0;
out:
	close(fd);
	return ret;
}

/* mkdir that is happy when the directory is there already. */
static int make_dir(const char *dir)
{
	return mkdir(dir, 0700) && errno != EEXIST ? -errno : 0;
}

static int write_all(int fd, const void *p, size_t len)
{
	const char *c = p;
	ssize_t n;

	while (len) {
		n = write(fd, c, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

int probe_cache_store(const char *path, const struct probe_key *key,
		      const struct probe_answers *a)
{
	char dir[PATH_MAX], parent[PATH_MAX], tmp[PATH_MAX];
	struct probe_file f;
	int fd, ret;

	ret = dir_of(path, dir, sizeof(dir));
	if (!ret)
		ret = dir_of(dir, parent, sizeof(parent));
	if (ret)
		return ret;
	/* $XDG_CACHE_HOME (or ~/.cache) and its gmvm/, as the spec says. */
	ret = make_dir(parent);
	if (!ret)
		ret = make_dir(dir);
	if (!ret)
		ret = check_dir(dir);
	if (ret)
		return ret;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >=
	    sizeof(tmp))
		return -ENAMETOOLONG;

	memset(&f, 0, sizeof(f));
	memcpy(f.magic, PROBE_MAGIC, sizeof(f.magic));
	f.format = PROBE_CACHE_FORMAT;
	f.size = sizeof(f);
	f.key = *key;
	f.answers = *a;
	f.answers.reserved = 0;
	f.checksum = file_checksum(&f);

	fd = mkostemp(tmp, O_CLOEXEC);	/* mode 0600 */
	if (fd < 0)
		return -errno;
	/* Said again, whatever the C library's mkostemp() does. */
	ret = fchmod(fd, 0600) ? -errno : 0;
	if (!ret)
		ret = write_all(fd, &f, sizeof(f));
	if (close(fd) && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

int probe_cache_get(const char *path, const struct probe_key *key,
		    const struct probe_cache_ops *ops, void *arg,
		    struct probe_answers *out, struct probe_cache_result *res)
{
	int ret;

	memset(res, 0, sizeof(*res));
	res->load = -ENOENT;
	res->store = 1;
	if (path) {
		res->enabled = true;
		res->load = probe_cache_load(path, key, out);
		if (!res->load && !ops->valid(arg, out))
			res->load = -EBADMSG;
		if (!res->load)
			return 0;
	}
	memset(out, 0, sizeof(*out));
	ret = ops->probe(arg, out);
	if (ret < 0)
		return ret;
	if (path && ret)
		res->store = probe_cache_store(path, key, out);
	return 0;
}
