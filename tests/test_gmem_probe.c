/* SPDX-License-Identifier: MIT */
/*
 * libgmem's probes and names, what a VMM asks before it creates anything:
 *  - gmem_probe_vm(): -EBADF for what is not a VM; a real VM's
 *    capabilities where KVM is usable;
 *  - gmem_pick_guest_memfd_flags() (MMAP among the flags, only flags the
 *    VM offers, a refusal that says why) and gmem_pick_backend() on given
 *    capabilities;
 *  - gmem_probe_gating(): a real layout, cached; or -ENOENT/-EACCES
 *    without KVM;
 *  - the name helpers and gmem_version().
 */
#include <unistd.h>

#include "kvm_compat.h"
#include "test_util.h"

#define PG GMEM_PAGE_SIZE

/* ---- probes -------------------------------------------------------------- */

static void test_probes(void)
{
	struct gmem_vm_caps caps = { .size = sizeof(caps) }, bad;
	enum gmem_layout layout, layout2;
	enum gmem_backend backend;
	const char *why = NULL;
	uint64_t flags = 0;
	int vm_fd = test_create_vm(), fd, err;

	TEST_ASSERT_EQ(GMEM_GUEST_MEMFD_MMAP, GUEST_MEMFD_FLAG_MMAP);
	TEST_ASSERT_EQ(GMEM_GUEST_MEMFD_INIT_SHARED,
		       GUEST_MEMFD_FLAG_INIT_SHARED);
	TEST_ASSERT_EQ(GMEM_GUEST_MEMFD_NO_DIRECT_MAP,
		       GUEST_MEMFD_FLAG_NO_DIRECT_MAP);

	/* Not a VM: -EBADF (and nothing is created to find out). */
	TEST_ASSERT_EQ(gmem_probe_vm(-1, &caps), -EBADF);
	fd = test_memfd(PG);
	TEST_ASSERT_EQ(gmem_probe_vm(fd, &caps), -EBADF);
	close(fd);

	if (vm_fd >= 0) {
		/* The VM's own capabilities. */
		TEST_ASSERT_EQ(gmem_probe_vm(vm_fd, &caps), 0);
		TEST_ASSERT_EQ(caps.size, sizeof(caps));
		TEST_ASSERT_EQ(caps.api_version, 12);
		TEST_ASSERT(caps.guest_memfd);
		TEST_ASSERT(caps.user_memory2);
		TEST_ASSERT(caps.guest_memfd_flags & GMEM_GUEST_MEMFD_MMAP);
		TEST_ASSERT(caps.nr_memslots >= 2);
		bad = (struct gmem_vm_caps){ .size = 0 };
		TEST_ASSERT_EQ(gmem_probe_vm(vm_fd, &bad), -EINVAL);
	} else {
		/* No KVM here: the probe of a real VM is skipped; the pickers
		 * below run on the capabilities of a typical default VM. */
		printf("no KVM: gmem_probe_vm() of a real VM skipped\n");
		caps = GMEM_INIT(struct gmem_vm_caps, .api_version = 12,
				 .guest_memfd = true,
				 .guest_memfd_flags = GMEM_GUEST_MEMFD_MMAP |
						      GMEM_GUEST_MEMFD_INIT_SHARED,
				 .user_memory2 = true, .nr_memslots = 32764);
	}
	TEST_ASSERT_EQ(gmem_pick_guest_memfd_flags(&caps, GMEM_BACKEND_EMULATED,
						   &flags, &why), 0);
	TEST_ASSERT(flags & GMEM_GUEST_MEMFD_MMAP);
	/* Only flags the VM offers. */
	TEST_ASSERT_EQ(flags & ~caps.guest_memfd_flags, 0);
	TEST_ASSERT(why != NULL);
	printf("guest_memfd flags %#llx: %s\n", (unsigned long long)flags, why);

	/* A VM without guest_memfd, USER_MEMORY2 or MMAP is refused, saying
	 * why. */
	bad = caps;
	bad.guest_memfd = false;
	why = NULL;
	TEST_ASSERT_EQ(gmem_pick_guest_memfd_flags(&bad, GMEM_BACKEND_EMULATED,
						   &flags, &why), -EOPNOTSUPP);
	TEST_ASSERT(why && *why);
	why = NULL;
	TEST_ASSERT_EQ(gmem_pick_backend(&bad, GMEM_MODE_DISCARD, &backend,
					 &why), -EOPNOTSUPP);
	TEST_ASSERT(why && *why);
	bad = caps;
	bad.user_memory2 = false;
	why = NULL;
	TEST_ASSERT_EQ(gmem_pick_guest_memfd_flags(&bad, GMEM_BACKEND_EMULATED,
						   &flags, &why), -EOPNOTSUPP);
	TEST_ASSERT(why && *why);
	bad = caps;
	bad.guest_memfd_flags &= ~GMEM_GUEST_MEMFD_MMAP;
	why = NULL;
	TEST_ASSERT_EQ(gmem_pick_guest_memfd_flags(&bad, GMEM_BACKEND_EMULATED,
						   &flags, &why), -EOPNOTSUPP);
	TEST_ASSERT(why && *why);
	why = NULL;
	TEST_ASSERT_EQ(gmem_pick_guest_memfd_flags(&bad,
						   GMEM_BACKEND_GMEM_IN_PLACE,
						   &flags, &why), -EOPNOTSUPP);
	TEST_ASSERT(why && *why);
	/* The native VM-attribute backend never maps private pages: no MMAP,
	 * NO_DIRECT_MAP where offered. */
	bad = caps;
	bad.guest_memfd_flags = GMEM_GUEST_MEMFD_NO_DIRECT_MAP;
	bad.memory_attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE;
	TEST_ASSERT_EQ(gmem_pick_guest_memfd_flags(&bad,
						   GMEM_BACKEND_VM_ATTRIBUTES,
						   &flags, &why), 0);
	TEST_ASSERT_EQ(flags, GMEM_GUEST_MEMFD_NO_DIRECT_MAP);

	/* Backends: native where the capabilities offer them. */
	bad = caps;
	bad.memory_attributes = 0;
	bad.gmem_conversion = false;
	TEST_ASSERT_EQ(gmem_pick_backend(&bad, GMEM_MODE_DISCARD, &backend,
					 &why), 0);
	TEST_ASSERT_EQ(backend, GMEM_BACKEND_EMULATED);
	TEST_ASSERT_EQ(gmem_pick_backend(&bad, GMEM_MODE_IN_PLACE, &backend,
					 &why), 0);
	TEST_ASSERT_EQ(backend, GMEM_BACKEND_EMULATED);
	bad.memory_attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE;
	TEST_ASSERT_EQ(gmem_pick_backend(&bad, GMEM_MODE_DISCARD, &backend,
					 &why), 0);
	TEST_ASSERT_EQ(backend, GMEM_BACKEND_VM_ATTRIBUTES);
	bad.gmem_conversion = true;
	bad.guest_memfd_flags |= GMEM_GUEST_MEMFD_MMAP;
	TEST_ASSERT_EQ(gmem_pick_backend(&bad, GMEM_MODE_IN_PLACE, &backend,
					 &why), 0);
	TEST_ASSERT_EQ(backend, GMEM_BACKEND_GMEM_IN_PLACE);
	TEST_ASSERT(why && *why);

	layout = GMEM_LAYOUT_AUTO;
	err = gmem_probe_gating(&layout);
	if (vm_fd >= 0) {
		TEST_ASSERT_EQ(err, 0);
		TEST_ASSERT(layout == GMEM_LAYOUT_GMEM_SLOT ||
			    layout == GMEM_LAYOUT_PLAIN_SLOT);
		TEST_ASSERT_EQ(gmem_probe_gating(&layout2), 0);	/* cached */
		TEST_ASSERT_EQ(layout2, layout);
		printf("layout: %s\n", gmem_layout_name(layout));
	} else {
		/* Without a usable /dev/kvm: -ENOENT or -EACCES, cached. */
		TEST_ASSERT(err == -ENOENT || err == -EACCES);
		TEST_ASSERT_EQ(gmem_probe_gating(&layout2), err);
	}
	close(vm_fd);

	TEST_ASSERT(!strcmp(gmem_state_name(GMEM_PRIVATE), "private"));
	TEST_ASSERT(!strcmp(gmem_state_name(GMEM_SHARED), "shared"));
	TEST_ASSERT(gmem_state_name((enum gmem_state)7) != NULL);
	TEST_ASSERT(!strcmp(gmem_mode_name(GMEM_MODE_DISCARD), "discard"));
	TEST_ASSERT(gmem_mode_name(GMEM_MODE_IN_PLACE) != NULL);
	TEST_ASSERT(gmem_layout_name(GMEM_LAYOUT_AUTO) != NULL);
	TEST_ASSERT(gmem_backend_name(GMEM_BACKEND_EMULATED) != NULL);
	TEST_ASSERT(gmem_backend_name((enum gmem_backend)9) != NULL);
	TEST_ASSERT(gmem_inval_reason_name(GMEM_INVAL_CONVERT) != NULL);
	TEST_ASSERT(gmem_inval_reason_name(GMEM_INVAL_PUNCH) != NULL);
	TEST_ASSERT(gmem_inval_reason_name(GMEM_INVAL_RELEASE) != NULL);
	TEST_ASSERT_EQ(gmem_version(), GMEM_VERSION);
}

int main(void)
{
	test_require_gmem();
	test_probes();
	printf("ok\n");
	return T_EXIT_PASS;
}
