/* SPDX-License-Identifier: MIT */
/*
 * A real vCPU reads and writes a page through both views before and after
 * conversions, and sees exactly what the contract says: the view of the
 * page's state gives data, the other view gives an exit (never data);
 * after a conversion the page reads zeros (discard) or its old content
 * (in-place).  The host's own mappings are probed too.
 */
#include <unistd.h>

#include "test_util.h"

#define RAM (512 * 1024ULL)		/* shared_base = 512 KiB: real mode */
#define CODE_GPA 0x0ULL
#define DATA_GPA 0x10000ULL
#define PATTERN 0x11223344u
#define PATTERN2 0xcafef00du

static struct test_vcpu *vcpu;

static void expect_data(uint64_t gpa, uint32_t want)
{
	uint64_t exit_gpa = 0;
	uint32_t v = 0;

	if (test_vcpu_access(vcpu, gpa, false, &v, &exit_gpa) !=
	    TEST_ACCESS_DATA)
		TEST_FAIL("load at GPA %#llx exited (at %#llx), expected data",
			  (unsigned long long)gpa,
			  (unsigned long long)exit_gpa);
	TEST_ASSERT_EQ(v, want);
}

static void expect_exit(uint64_t gpa, bool write)
{
	uint64_t exit_gpa = 0;
	uint32_t v = PATTERN2;

	if (test_vcpu_access(vcpu, gpa, write, &v, &exit_gpa) !=
	    TEST_ACCESS_EXIT)
		TEST_FAIL("%s at GPA %#llx completed (value %#x), expected an "
			  "exit", write ? "store" : "load",
			  (unsigned long long)gpa, v);
	TEST_ASSERT_EQ(exit_gpa, gpa);
}

static void store(uint64_t gpa, uint32_t value)
{
	uint64_t exit_gpa = 0;

	if (test_vcpu_access(vcpu, gpa, true, &value, &exit_gpa) !=
	    TEST_ACCESS_DATA)
		TEST_FAIL("store at GPA %#llx exited",
			  (unsigned long long)gpa);
}

/* Host side: the page is reachable in exactly the view of @state. */
static void expect_host_views(struct gmem_vm *vm, uint64_t gpa,
			      enum gmem_state state)
{
	uint8_t *priv = (uint8_t *)gmem_private_view(vm) + gpa;
	uint8_t *shared = (uint8_t *)gmem_shared_view(vm) + gpa;
	uint8_t v;

	TEST_ASSERT_EQ(test_probe_read(priv, &v), state == GMEM_PRIVATE);
	TEST_ASSERT_EQ(test_probe_read(shared, &v), state == GMEM_SHARED);
	TEST_ASSERT_EQ(test_probe_write(state == GMEM_PRIVATE ? shared : priv,
					0x77), false);
}

static void run_mode(enum gmem_mode mode)
{
	bool keep = mode == GMEM_MODE_IN_PLACE;
	int vm_fd = test_create_vm();
	struct gmem_vm *vm = test_create_gmem(vm_fd, RAM, mode, GMEM_PRIVATE,
					      NULL, NULL);
	uint64_t sb = gmem_shared_base(vm);
	uint32_t pattern = PATTERN;

	/* Two views read by a real vCPU: the emulated backend's design. */
	if (gmem_get_backend(vm) != GMEM_BACKEND_EMULATED)
		test_skip("the %s has no two views to read through",
			  gmem_backend_name(gmem_get_backend(vm)));

	printf("mode %s: shared_base %#llx, layout %s\n", gmem_mode_name(mode),
	       (unsigned long long)sb, gmem_layout_name(gmem_get_layout(vm)));
	TEST_ASSERT_EQ(sb, RAM);
	vcpu = test_vcpu_create(vm_fd, CODE_GPA,
				(uint8_t *)gmem_private_view(vm) + CODE_GPA);
	TEST_ASSERT_EQ(gmem_access(vm, DATA_GPA, &pattern, 4, true,
				   GMEM_PRIVATE), 0);
	test_audit(vm);

	/* Private: data through the private view, exits through the other. */
	expect_data(DATA_GPA, PATTERN);
	expect_exit(sb + DATA_GPA, false);
	expect_exit(sb + DATA_GPA, true);
	expect_host_views(vm, DATA_GPA, GMEM_PRIVATE);

	/* To shared. */
	TEST_ASSERT_EQ(gmem_convert(vm, DATA_GPA, GMEM_PAGE_SIZE, GMEM_SHARED),
		       1);
	test_audit(vm);
	expect_exit(DATA_GPA, false);
	expect_exit(DATA_GPA, true);
	expect_data(sb + DATA_GPA, keep ? PATTERN : 0);
	expect_host_views(vm, DATA_GPA, GMEM_SHARED);
	/* A neighbour that did not convert still works as before. */
	expect_data(DATA_GPA + GMEM_PAGE_SIZE, 0);
	expect_exit(sb + DATA_GPA + GMEM_PAGE_SIZE, false);

	/* The guest writes the shared page; the host sees it there. */
	store(sb + DATA_GPA, PATTERN2);
	pattern = 0;
	TEST_ASSERT_EQ(gmem_access(vm, DATA_GPA, &pattern, 4, false,
				   GMEM_SHARED), 0);
	TEST_ASSERT_EQ(pattern, PATTERN2);

	/* Back to private. */
	TEST_ASSERT_EQ(gmem_convert(vm, DATA_GPA, GMEM_PAGE_SIZE,
				    GMEM_PRIVATE), 1);
	test_audit(vm);
	expect_data(DATA_GPA, keep ? PATTERN2 : 0);
	expect_exit(sb + DATA_GPA, false);
	expect_host_views(vm, DATA_GPA, GMEM_PRIVATE);

	/* A 2 MiB-hinted style larger range: 64 pages around the data page. */
	TEST_ASSERT_EQ(gmem_convert(vm, DATA_GPA, 64 * GMEM_PAGE_SIZE,
				    GMEM_SHARED), 64);
	test_audit(vm);
	expect_data(sb + DATA_GPA + 63 * GMEM_PAGE_SIZE, 0);
	expect_exit(DATA_GPA + 63 * GMEM_PAGE_SIZE, false);
	expect_data(DATA_GPA + 64 * GMEM_PAGE_SIZE, 0);

	test_vcpu_destroy(vcpu);
	gmem_destroy(vm);
	close(vm_fd);
}

int main(void)
{
	test_require_kvm();
	run_mode(GMEM_MODE_DISCARD);
	run_mode(GMEM_MODE_IN_PLACE);
	printf("ok\n");
	return T_EXIT_PASS;
}
