/* SPDX-License-Identifier: MIT */
/*
 * What this host's KVM must offer gmvm, and which libgmem backend gmvm
 * runs on it.  Shared by `gmvm run` (vm.c), which refuses a host that
 * lacks something, and `gmvm caps` (caps.c), which reports the same
 * verdicts, so that the two can never disagree.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "gmvm.h"

/* "/dev/kvm: ERRNO (what it means)", for a failed open of /dev/kvm. */
static void kvm_open_why(int err, char *why, size_t len)
{
	snprintf(why, len, "/dev/kvm: %s (%s)", strerror(err),
		 err == ENOENT ? "KVM is not available on this host" :
		 err == EACCES ? "no permission to use KVM" :
		 "cannot use KVM");
}

int kvm_open(int *fd, bool quiet)
{
	char why[128];
	int ret;

	*fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (*fd >= 0)
		return 0;
	ret = -errno;
	if (!quiet) {
		kvm_open_why(-ret, why, sizeof(why));
		gmvm_err("%s", why);
	}
	return ret;
}

/* What gmvm itself needs from KVM (libgmem checks its own needs). */
static const struct {
	long cap;
	long min;
	const char *name;
	const char *why;
} required_caps[] = {
	{ KVM_CAP_USER_MEMORY, 1, "KVM_CAP_USER_MEMORY", "memslots" },
	{ KVM_CAP_USER_MEMORY2, 1, "KVM_CAP_USER_MEMORY2",
	  "guest_memfd memslots" },
	{ KVM_CAP_GUEST_MEMFD, 1, "KVM_CAP_GUEST_MEMFD",
	  "private memory" },
	{ KVM_CAP_NR_MEMSLOTS, 2, "KVM_CAP_NR_MEMSLOTS>=2",
	  "one memslot per view" },
	{ KVM_CAP_EXT_CPUID, 1, "KVM_CAP_EXT_CPUID",
	  "KVM_GET_SUPPORTED_CPUID" },
	{ KVM_CAP_IMMEDIATE_EXIT, 1, "KVM_CAP_IMMEDIATE_EXIT",
	  "stopping vCPUs without a race" },
};

int vm_missing_caps(int fd, char *buf, size_t len)
{
	size_t off = 0;
	unsigned int i;
	int missing = 0;

	if (len)
		buf[0] = '\0';
	for (i = 0; i < ARRAY_SIZE(required_caps); i++) {
		int r = ioctl(fd, KVM_CHECK_EXTENSION, required_caps[i].cap);

		if (r >= required_caps[i].min)
			continue;
		missing++;
		if (off < len)
			off += (size_t)snprintf(buf + off, len - off,
						"%s%s (%s)", missing > 1 ?
						", " : "",
						required_caps[i].name,
						required_caps[i].why);
	}
	return missing;
}

/*
 * The backend gmvm runs in @mode on a VM with @caps.  libgmem's choice
 * (gmem_pick_backend(), *lib_backend / *lib_why) where gmvm can use it;
 * but gmvm writes the image, boot structures and page tables into private
 * memory from the host (gmem_access(..., GMEM_PRIVATE)), which the native
 * backends do not allow (KVM alone reaches private pages there), so gmvm
 * runs the emulated backend whatever libgmem prefers.  0 and *backend,
 * *why; or libgmem's -errno (no guest_memfd) with *why.
 */
int vm_choose_backend(const struct gmem_vm_caps *caps, enum gmem_mode mode,
		      enum gmem_backend *lib_backend, const char **lib_why,
		      enum gmem_backend *backend, const char **why)
{
	int ret;

	*lib_why = NULL;
	ret = gmem_pick_backend(caps, mode, lib_backend, lib_why);
	*why = *lib_why;
	if (ret)
		return ret;
	*backend = *lib_backend;
	if (*backend != GMEM_BACKEND_EMULATED) {
		*backend = GMEM_BACKEND_EMULATED;
		*why = "gmvm loads the guest through the host's private view, "
		       "which a native backend does not offer";
	}
	return 0;
}

long kvm_max_vcpus(int vm_fd)
{
	long n = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);

	if (n <= 0)
		n = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	return n > 0 ? n : 4;	/* 4: the documented default */
}

int kvm_host_check(int *kvm_fd, int *vm_fd, unsigned int nr_vcpus,
		   char *why, size_t len)
{
	char missing[512];
	long max_vcpus;
	int r;

	*vm_fd = -1;
	r = kvm_open(kvm_fd, true);
	if (r) {
		kvm_open_why(-r, why, len);
		return r;
	}
	r = ioctl(*kvm_fd, KVM_GET_API_VERSION, 0);
	if (r != KVM_API_VERSION) {
		snprintf(why, len, "/dev/kvm: API version %d, gmvm needs %d",
			 r, KVM_API_VERSION);
		return -ENOTSUP;
	}
	*vm_fd = ioctl(*kvm_fd, KVM_CREATE_VM, 0);
	if (*vm_fd < 0) {
		r = -errno;
		snprintf(why, len, "KVM_CREATE_VM: %s", strerror(errno));
		return r;
	}
	if (vm_missing_caps(*vm_fd, missing, sizeof(missing))) {
		snprintf(why, len, "this host's KVM lacks what gmvm needs: %s",
			 missing);
		return -ENOTSUP;
	}
	max_vcpus = kvm_max_vcpus(*vm_fd);
	if (nr_vcpus > max_vcpus) {
		snprintf(why, len, "--vcpus %u: this host's KVM allows at most %ld",
			 nr_vcpus, max_vcpus);
		return -ENOTSUP;
	}
	return 0;
}
