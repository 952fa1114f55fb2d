/* SPDX-License-Identifier: MIT */
/*
 * The probe cache: what gmvm's start-up probes found on this host, kept
 * across runs in $XDG_CACHE_HOME/gmvm/probes (else ~/.cache/gmvm/probes).
 *
 * The gating probe (libgmem) and the vmcall probe (vmcall_probe.c) each
 * run a throwaway VM, which costs every `gmvm run` milliseconds, and far
 * more under an emulating KVM; their answers change only when the host
 * does.  So the answers are stored under a key made of everything cheap
 * to read that could change them (struct probe_key), and a file is used
 * only if it is exactly what this code writes for exactly this key: any
 * other file (corrupt, truncated, foreign, another key, another owner) is
 * ignored and rewritten, never trusted.
 *
 * Nothing here prints; every function returns 0 or -errno.
 */
#ifndef GMVM_PROBE_CACHE_H
#define GMVM_PROBE_CACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

/*
 * The file format's version, and so the probes' too: bump it when the
 * layout below or what a probe means changes, and every old file is
 * stale.
 */
#define PROBE_CACHE_FORMAT 1

/* What identifies the KVM device gmvm opened (fstat, KVM_GET_API_VERSION). */
struct probe_kvm_id {
	uint64_t rdev;		/* device number */
	uint64_t ino;		/* a reloaded module gets a new node... */
	int64_t ctime_sec;	/* ...created at another time */
	int64_t ctime_nsec;
	int32_t api_version;
};

/*
 * The key: every field is compared, byte for byte, so the struct has no
 * implicit padding and is zeroed before it is filled.
 */
struct probe_key {
	char release[65];	/* uname -r */
	char version[65];	/* uname -v: the build of that release */
	char pad[6];		/* 0 */
	uint32_t format;	/* PROBE_CACHE_FORMAT */
	uint32_t gmem_version;	/* libgmem runs the gating probe */
	uint64_t kvm_rdev;
	uint64_t kvm_ino;
	int64_t kvm_ctime_sec;
	int64_t kvm_ctime_nsec;
	int32_t kvm_api_version;
	uint32_t cpu[5];	/* CPUID 0 vendor, 1 signature and features */
	uint64_t params_hash;	/* /sys/module/kvm{,_*}/parameters/ * */
};

/* What the probes found (probes.c says what each value means). */
struct probe_answers {
	int32_t gating_ret;	/* gmem_probe_gating(): 0 */
	uint32_t layout;	/* its enum gmem_layout */
	uint32_t vmcall;	/* enum vmcall_verdict */
	uint32_t reserved;	/* 0 */
};

/*
 * Fill @key for this host: uname, CPUID, @kvm (the open /dev/kvm), and a
 * hash of the parameters of every module under @sysfs_module
 * ("/sys/module" in gmvm; tests pass a directory of their own) whose name
 * is kvm or starts with kvm_.  Cheap: a few dozen small sysfs reads, no
 * VM.  A parameter that cannot be read is hashed as its errno, so the key
 * is still stable.  0 or -errno (uname).
 */
int probe_key_fill(const struct probe_kvm_id *kvm, const char *sysfs_module,
		   struct probe_key *key);

/*
 * The cache file's path: $XDG_CACHE_HOME/gmvm/probes if XDG_CACHE_HOME is
 * an absolute path, else $HOME/.cache/gmvm/probes.  -ENOENT if neither
 * variable gives one, -ENAMETOOLONG if it does not fit in @len.
 */
int probe_cache_path(char *buf, size_t len);

/*
 * The answers stored at @path for @key.  0: a hit; -ENOENT: no file;
 * -ESTALE: a valid file for another key (the host changed); -EBADMSG: not
 * a valid file (size, magic, format, checksum or values wrong, or it is
 * not a regular file of ours in a directory only we can write); another
 * -errno if it cannot be read.  Never trusts a byte it did not check.
 */
int probe_cache_load(const char *path, const struct probe_key *key,
		     struct probe_answers *out);

/*
 * Store @a for @key at @path, creating the file's directory and its
 * parent (mode 0700) if missing: a temporary file (mode 0600) in the same
 * directory, renamed over @path, so that a reader sees the old file or
 * the new one, never a mix.  0 or -errno (nothing is left behind).
 */
int probe_cache_store(const char *path, const struct probe_key *key,
		      const struct probe_answers *a);

/* How probe_cache_get() found its answers. */
struct probe_cache_result {
	bool enabled;		/* a cache file was asked (path not NULL) */
	int load;		/* probe_cache_load()'s: 0 = a hit */
	int store;		/* after a miss: probe_cache_store()'s, or
				   1: the answers were not worth keeping */
};

struct probe_cache_ops {
	/*
	 * Run the probes: 1 if the answers are worth keeping (they describe
	 * the host, not a passing failure), 0 if not, or -errno.
	 */
	int (*probe)(void *arg, struct probe_answers *a);
	/* Are stored answers ones @probe could have given and kept? */
	bool (*valid)(void *arg, const struct probe_answers *a);
};

/*
 * The answers for @key: from the cache at @path (NULL: no cache, as with
 * --no-probe-cache) if it holds them and ops->valid() accepts them (else
 * the file counts as -EBADMSG), or from ops->probe(), whose answers a
 * miss then stores if they are worth keeping.  A cache that cannot be
 * read or written changes nothing but @res.  0, or ops->probe()'s -errno
 * (nothing stored).
 */
int probe_cache_get(const char *path, const struct probe_key *key,
		    const struct probe_cache_ops *ops, void *arg,
		    struct probe_answers *out, struct probe_cache_result *res);

#endif /* GMVM_PROBE_CACHE_H */
