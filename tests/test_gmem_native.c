/* SPDX-License-Identifier: MIT */
/*
 * The native backends, on a host that offers them:
 *  - VM attributes: a KVM_X86_SW_PROTECTED_VM (or any VM type whose
 *    KVM_CAP_MEMORY_ATTRIBUTES has PRIVATE), discard mode;
 *  - guest_memfd in place: a VM whose KVM reports the guest_memfd
 *    conversion capability, in-place mode.
 * For each: gmem_pick_backend() must choose it, gmem_create() with it must
 * work, conversions both ways must commit and audit clean, the host must
 * reach a shared page through gmem_access() and never a private one
 * (-EPERM), and a range touching a hole is -EINVAL.  Each backend the host
 * does not offer is reported as skipped with the reason; the test exits
 * 77 when none can run (our development hosts: no VM type with a private
 * attribute, no conversion capability).
 */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm_compat.h"
#include "test_util.h"

#define PG GMEM_PAGE_SIZE
#define MiB (1ULL << 20)

#ifndef KVM_X86_SW_PROTECTED_VM
#define KVM_X86_SW_PROTECTED_VM 1	/* arch/x86/include/uapi/asm/kvm.h */
#endif

static int slot_cb(void *data, const struct gmem_slot *s)
{
	int vm_fd = *(int *)data;
	struct kvm_userspace_memory_region2 r = {
		.slot = s->id,
		.flags = s->kvm_flags,
		.guest_phys_addr = s->gpa,
		.memory_size = s->len,
		.userspace_addr = (uint64_t)(uintptr_t)s->userspace_addr,
		.guest_memfd_offset = s->guest_memfd_offset,
		.guest_memfd = (uint32_t)(s->guest_memfd < 0 ? 0 :
					  s->guest_memfd),
	};

	return ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION2, &r) < 0 ? -errno : 0;
}

/* 1 ran, 0 skipped (with the reason printed). */
static int run_backend(enum gmem_backend want, enum gmem_mode mode,
		       unsigned long vm_type)
{
	struct gmem_vm_caps caps = { .size = sizeof(caps) };
	struct gmem_region_config rc[2] = {
		GMEM_INIT(struct gmem_region_config, .gpa = 0, .len = 2 * MiB,
			  .private_fd = -1, .shared_fd = -1),
		GMEM_INIT(struct gmem_region_config, .gpa = 4 * MiB,
			  .len = 2 * MiB, .private_fd = -1, .shared_fd = -1),
	};
	struct gmem_config cfg;
	enum gmem_backend picked;
	struct gmem_vm *vm;
	const char *why;
	char buf[64] = "shared";
	int kvm, vm_fd, err;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		printf("%s: skipped: /dev/kvm: %s\n", gmem_backend_name(want),
		       strerror(errno));
		return 0;
	}
	vm_fd = ioctl(kvm, KVM_CREATE_VM, vm_type);
	close(kvm);
	if (vm_fd < 0) {
		printf("%s: skipped: KVM_CREATE_VM(type %lu): %s\n",
		       gmem_backend_name(want), vm_type, strerror(errno));
		return 0;
	}
	TEST_ASSERT_EQ(gmem_probe_vm(vm_fd, &caps), 0);
	err = gmem_pick_backend(&caps, mode, &picked, &why);
	if (err || picked != want) {
		printf("%s: skipped: this VM gets %s (%s)\n",
		       gmem_backend_name(want),
		       err ? "nothing" : gmem_backend_name(picked),
		       err ? strerror(-err) : why);
		close(vm_fd);
		return 0;
	}
	cfg = GMEM_INIT(struct gmem_config, .vm_fd = vm_fd, .mode = mode,
			.initial_state = GMEM_SHARED, .backend = want,
			.regions = rc, .nr_regions = 2, .max_gpa = 8 * MiB,
			.set_slot = slot_cb, .slot_data = &vm_fd);
	TEST_ASSERT_EQ(gmem_create(&cfg, &vm), 0);
	TEST_ASSERT_EQ(gmem_get_backend(vm), want);
	TEST_ASSERT_EQ(gmem_shared_base(vm), 0);
	test_audit(vm);
	TEST_ASSERT_EQ(gmem_access(vm, PG, buf, sizeof(buf), true,
				   GMEM_SHARED), 0);
	TEST_ASSERT_EQ(gmem_convert(vm, 0, 2 * MiB, GMEM_PRIVATE), 512);
	TEST_ASSERT_EQ(gmem_access(vm, PG, buf, sizeof(buf), false,
				   GMEM_PRIVATE), -EPERM);
	TEST_ASSERT_EQ(gmem_access(vm, PG, buf, sizeof(buf), false,
				   GMEM_SHARED), -EACCES);
	test_audit(vm);
	TEST_ASSERT_EQ(gmem_convert(vm, PG, PG, GMEM_SHARED), 1);
	TEST_ASSERT_EQ(gmem_access(vm, PG, buf, sizeof(buf), false,
				   GMEM_SHARED), 0);
	TEST_ASSERT_EQ(gmem_convert(vm, MiB, 4 * MiB, GMEM_PRIVATE), -EINVAL);
	TEST_ASSERT_EQ(gmem_convert(vm, 4 * MiB, 2 * MiB, GMEM_PRIVATE), 512);
	test_audit(vm);
	gmem_destroy(vm);
	close(vm_fd);
	printf("%s: ran\n", gmem_backend_name(want));
	return 1;
}

int main(void)
{
	int ran = 0;

	ran += run_backend(GMEM_BACKEND_VM_ATTRIBUTES, GMEM_MODE_DISCARD,
			   KVM_X86_SW_PROTECTED_VM);
	ran += run_backend(GMEM_BACKEND_GMEM_IN_PLACE, GMEM_MODE_IN_PLACE,
			   KVM_X86_SW_PROTECTED_VM);
	if (!ran)
		test_skip("no native backend on this host (see above)");
	return T_EXIT_PASS;
}
