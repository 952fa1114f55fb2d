/* SPDX-License-Identifier: MIT */
/*
 * The KVM dirty log tracker (vmm/migrate/track_kvm.c), which needs a VM:
 * skipped (77) without /dev/kvm, with the reason.  With KVM: a plain
 * memslot needs no dirty log (the views' userfaultfd sees KVM's writes
 * there); a guest_memfd-bound slot gets KVM_MEM_LOG_DIRTY_PAGES, or the
 * tracker refuses it with -EOPNOTSUPP naming the slot; collecting with no
 * vCPU run reports nothing; stopping restores the slot's flags (the slot
 * can be registered again with them unchanged).
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm_compat.h"
#include "test_util.h"
#include "track.h"

#define LEN (2ULL << 20)

int main(void)
{
	struct mig_track_caps caps;
	struct mig_kvm_slot slot = { .slot = 5, .gpa = 1ULL << 30,
				     .len = LEN, .guest_memfd = -1 };
	struct mig_track_opts o = { .slots = &slot, .nr_slots = 1 };
	struct kvm_create_guest_memfd g = { .size = LEN };
	struct kvm_userspace_memory_region2 r;
	struct mig_kvmlog *k = NULL;
	struct mig_pages pages;
	struct ivals regions = { 0 };
	struct snap_msg m;
	char msg[256];
	void *hva;
	int vm, err;

	if (!test_kvm_available())
		test_skip("no /dev/kvm: the KVM dirty log needs a VM");
	vm = test_create_vm();
	TEST_ASSERT(vm >= 0);
	TEST_ASSERT_EQ(mig_track_probe(vm, &caps) == 0, caps.uffd_wp);
	printf("KVM dirty log: %s (%s)\n", caps.kvm_dirty_log == 1 ? "yes" :
	       "no", caps.kvm_why);
	snap_msg_init(&m, msg, sizeof(msg));
	o.vm_fd = vm;
	hva = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(hva != MAP_FAILED);
	slot.hva = (uintptr_t)hva;
	/* A plain slot: nothing to do. */
	TEST_ASSERT_EQ(mig_kvmlog_start(&o, &k, &m), 0);
	TEST_ASSERT(!k);
	if (ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD) <= 0)
		test_skip("no guest_memfd on this KVM");
	slot.guest_memfd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &g);
	TEST_ASSERT(slot.guest_memfd >= 0);
	slot.flags = KVM_MEM_GUEST_MEMFD;
	r = (struct kvm_userspace_memory_region2){
		.slot = slot.slot, .flags = slot.flags,
		.guest_phys_addr = slot.gpa, .memory_size = LEN,
		.userspace_addr = slot.hva,
		.guest_memfd = (uint32_t)slot.guest_memfd,
	};
	TEST_ASSERT_EQ(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	err = mig_kvmlog_start(&o, &k, &m);
	printf("dirty log on a guest_memfd slot: %s\n", err ? msg : "yes");
	if (err) {
		TEST_ASSERT_EQ(err, -EOPNOTSUPP);
		TEST_ASSERT(!k);
	} else {
		TEST_ASSERT(k);
		TEST_ASSERT_EQ(ivals_push(&regions, slot.gpa, slot.gpa + LEN), 0);
		TEST_ASSERT_EQ(mig_pages_init(&pages, &regions), 0);
		TEST_ASSERT_EQ(mig_kvmlog_collect(k, &pages, &m), 0);
		TEST_ASSERT_EQ(mig_pages_count(&pages), 0);
		mig_pages_free(&pages);
		ivals_free(&regions);
		mig_kvmlog_stop(k);
	}
	/* The slot is as it was: registering it again changes nothing. */
	TEST_ASSERT_EQ(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	close(slot.guest_memfd);
	close(vm);
	printf("PASS\n");
	return 0;
}
