/* SPDX-License-Identifier: MIT */
/*
 * The host probes gmvm runs before its VM, shared by `gmvm run` (vm.c)
 * and `gmvm caps` (caps.c) so that the two never disagree:
 *  - gating: under which memslot layout mprotect() of a view stops a vCPU
 *    (libgmem's gmem_probe_gating(), a throwaway VM);
 *  - vmcall: does a guest vmcall exit to gmvm (vmcall_probe.c, another).
 *
 * Their answers go through the probe cache (probe_cache.c) keyed by this
 * host's kernel, KVM device, CPU and KVM module parameters.  Only answers
 * that describe the host are kept: a working gating layout (a failure
 * stops gmvm anyway, and may have been a passing one) and a vmcall
 * verdict other than "could not even set the probe up".  What the key
 * cannot see (a firmware or microcode update that changes KVM's
 * behaviour without changing the kernel, the device or a parameter) needs
 * --no-probe-cache or the file deleted; README and ARCHITECTURE say so.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "gmvm.h"

struct probe_ctx {
	int kvm_fd;
};

static int run_probes(void *arg, struct probe_answers *a)
{
	const struct probe_ctx *c = arg;
	enum gmem_layout layout = GMEM_LAYOUT_AUTO;
	enum vmcall_verdict v;

	a->gating_ret = gmem_probe_gating(&layout);
	a->layout = (uint32_t)layout;
	v = vmcall_probe(c->kvm_fd);
	a->vmcall = (uint32_t)v;
	return a->gating_ret == 0 && vmcall_lasting(v);
}

/* Only what run_probes() keeps: a file saying anything else is forged. */
static bool answers_valid(void *arg, const struct probe_answers *a)
{
	return a->gating_ret == 0 &&
	       (a->layout == GMEM_LAYOUT_GMEM_SLOT ||
		a->layout == GMEM_LAYOUT_PLAIN_SLOT) &&
	       a->vmcall < VMCALL_NR_VERDICTS &&
	       vmcall_lasting((enum vmcall_verdict)a->vmcall);
}

static const struct probe_cache_ops ops = {
	.probe = run_probes,
	.valid = answers_valid,
};

/* The key, from the open /dev/kvm: -errno if it cannot be had. */
static int host_key(int kvm_fd, struct probe_key *key)
{
	struct probe_kvm_id id;
	struct stat st;
	int api;

	if (fstat(kvm_fd, &st))
		return -errno;
	api = ioctl(kvm_fd, KVM_GET_API_VERSION, 0);
	if (api < 0)
		return -errno;
	id.rdev = st.st_rdev;
	id.ino = st.st_ino;
	id.ctime_sec = st.st_ctim.tv_sec;
	id.ctime_nsec = st.st_ctim.tv_nsec;
	id.api_version = api;
	return probe_key_fill(&id, "/sys/module", key);
}

void probes_get(int kvm_fd, bool use_cache, struct probes *p)
{
	struct probe_ctx ctx = { .kvm_fd = kvm_fd };
	struct probe_answers a;
	struct probe_key key;
	const char *path = NULL;

	memset(p, 0, sizeof(*p));
	memset(&key, 0, sizeof(key));
	p->use_cache = use_cache;
	p->path_ret = probe_cache_path(p->path, sizeof(p->path));
	if (p->path_ret)
		p->path[0] = '\0';
	/* Without a key there is nothing to look up: probe, keep nothing. */
	if (use_cache && !p->path_ret) {
		p->key_ret = host_key(kvm_fd, &key);
		if (!p->key_ret)
			path = p->path;
	}
	/* Cannot fail: run_probes() returns 0 or 1. */
	probe_cache_get(path, &key, &ops, &ctx, &a, &p->cache);
	p->gating_ret = a.gating_ret;
	p->layout = (enum gmem_layout)a.layout;
	p->vmcall = (enum vmcall_verdict)a.vmcall;
}

const char *probes_cache_status(const struct probes *p)
{
	if (!p->cache.enabled)
		return "off";
	return p->cache.load ? "miss" : "hit";
}

void probes_cache_describe(const struct probes *p, char *buf, size_t len)
{
	const struct probe_cache_result *c = &p->cache;
	const char *why, *kept;
	char err[128];

	if (!p->use_cache) {
		snprintf(buf, len, "off (--no-probe-cache): probed now, nothing read or written");
		return;
	}
	if (!c->enabled) {
		snprintf(buf, len, "off: %s%s: probed now",
			 p->path_ret == -ENOENT ?
			 "no cache directory (neither XDG_CACHE_HOME nor HOME is an absolute path)" :
			 p->path_ret ? "the cache path is too long" :
			 "this host's key cannot be read: ",
			 p->path_ret ? "" : strerror(-p->key_ret));
		return;
	}
	if (!c->load) {
		snprintf(buf, len, "hit: %s", p->path);
		return;
	}
	switch (c->load) {
	case -ENOENT: why = "no file yet"; break;
	case -ESTALE: why = "written for another kernel, KVM or CPU"; break;
	case -EBADMSG: why = "not a valid cache file of ours"; break;
	default: why = strerror(-c->load); break;
	}
	if (c->store == 0) {
		kept = "probed and written";
	} else if (c->store == 1) {
		kept = "probed, not written (a probe failed, or could not be set up)";
	} else {
		snprintf(err, sizeof(err), "probed, cannot write it: %s",
			 strerror(-c->store));
		kept = err;
	}
	snprintf(buf, len, "miss: %s (%s; %s)", p->path, why, kept);
}
