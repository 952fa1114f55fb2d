/* SPDX-License-Identifier: MIT */
/*
 * The host a benchmark runs on: whether KVM runs libgmem's emulated
 * backend here (a guest_memfd it can use and a memslot layout under which
 * mprotect() gates a vCPU), and libgmem created for a benchmark, with a VM
 * or without one.  bench_dma runs either way; the benchmarks of a
 * conversion's floor and of gmvm need KVM and skip without it.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

/* Probed once: 1 usable (probed filled in), 0 not (why says why). */
static int usable = -1;
static char why[160];
static struct bench_host probed;

static bool __attribute__((format(printf, 1, 2)))
unusable(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return false;
}

/*
 * The checks libgmem's emulated backend needs, in the order it needs
 * them, on a throwaway VM of the default type (the benchmarks' VMs).
 */
static bool probe_host(void)
{
	struct gmem_vm_caps caps = GMEM_INIT(struct gmem_vm_caps);
	const char *no_flags = "";
	int kvm, vm, err;

	if (usable >= 0)
		return usable;
	usable = 0;
	kvm = kvmu_open();
	if (kvm < 0)
		return unusable("no usable /dev/kvm: %s", strerror(-kvm));
	vm = kvmu_vm_create(kvm, 0);
	close(kvm);
	if (vm < 0)
		return unusable("KVM_CREATE_VM: %s", strerror(-vm));
	err = gmem_probe_vm(vm, &caps);
	close(vm);
	if (err)
		return unusable("gmem_probe_vm: %s", strerror(-err));
	if (gmem_pick_guest_memfd_flags(&caps, GMEM_BACKEND_EMULATED,
					&probed.gmem_flags, &no_flags))
		return unusable("guest_memfd unusable: %s", no_flags);
	err = gmem_probe_gating(&probed.layout);
	if (err == -EOPNOTSUPP)
		return unusable("no memslot layout gates vCPU access on this host");
	if (err)
		bench_die("gating probe failed: %s", strerror(-err));
	usable = 1;
	return true;
}

void bench_require_kvm(struct bench_host *host)
{
	if (!probe_host())
		bench_skip("%s", why);
	*host = probed;
}

int bench_create_vm(void)
{
	int kvm, vm;

	if (!probe_host())
		return -1;
	kvm = kvmu_open();
	if (kvm < 0)
		bench_skip("open /dev/kvm: %s", strerror(-kvm));
	vm = kvmu_vm_create(kvm, 0);
	close(kvm);
	if (vm < 0)
		bench_die("KVM_CREATE_VM: %s", strerror(-vm));
	return vm;
}

/* Without a VM there is nothing to register a slot in. */
static int no_slot(void *data, const struct gmem_slot *slot)
{
	return 0;
}

int bench_memfd(const char *name, uint64_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC), err;

	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

int bench_create_memfd_vm(void *data, const struct gmem_config *in,
			  struct gmem_vm **out)
{
	struct gmem_region_config rc;
	struct gmem_config cfg = *in;
	int err;

	if (in->nr_regions != 1)
		return -EINVAL;
	rc = in->regions[0];
	rc.private_fd = bench_memfd(data, rc.len);
	if (rc.private_fd < 0)
		return -errno;
	cfg.regions = &rc;
	err = gmem_create(&cfg, out);
	close(rc.private_fd);	/* libgmem holds its own */
	return err;
}

/*
 * Without a VM, the PLAIN_SLOT layout needs of the private backing only
 * mmap() and PUNCH_HOLE, which a memfd has.
 */
static int private_memfd(uint64_t size)
{
	int fd = bench_memfd("bench-private", size);

	if (fd < 0)
		bench_die("memfd: %s", strerror(errno));
	return fd;
}

void bench_gmem_config(struct gmem_config *cfg, struct gmem_region_config *rc,
		       int vm_fd, uint64_t ram, enum gmem_mode mode,
		       enum gmem_state initial)
{
	bool vm = vm_fd >= 0;

	*rc = GMEM_INIT(struct gmem_region_config, .gpa = 0, .len = ram,
			.private_fd = vm ? -1 : private_memfd(ram),
			.shared_fd = -1);
	*cfg = GMEM_INIT(struct gmem_config, .vm_fd = vm_fd, .mode = mode,
			 .initial_state = initial, .regions = rc,
			 .nr_regions = 1, .set_slot = vm ? NULL : no_slot);
	/* Cached by libgmem: the answer bench_create_vm() had. */
	if (vm && gmem_probe_gating(&cfg->layout))
		bench_die("gating probe failed");
}

struct gmem_vm *bench_gmem_create(const struct gmem_config *cfg)
{
	struct gmem_vm *vm;
	int err = gmem_create(cfg, &vm);

	/* libgmem holds its own dup of a private fd it was given. */
	if (cfg->regions[0].private_fd >= 0)
		close(cfg->regions[0].private_fd);
	if (err)
		bench_die("gmem_create(%#llx, %s): %s",
			  (unsigned long long)cfg->regions[0].len,
			  gmem_mode_name(cfg->mode), strerror(-err));
	return vm;
}
