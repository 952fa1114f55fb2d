/* SPDX-License-Identifier: MIT */
/*
 * The trackers' questions to KVM, which need a VM: skipped (77) without
 * /dev/kvm, with the reason.  With KVM:
 *  - the KVM dirty log tracker (vmm/migrate/track_kvm.c): a plain memslot
 *    needs no dirty log (the views' userfaultfd sees KVM's writes there);
 *    a guest_memfd-bound slot gets KVM_MEM_LOG_DIRTY_PAGES, or the
 *    tracker refuses it with -EOPNOTSUPP naming the slot; collecting with
 *    no vCPU run reports nothing; afterwards the slot logs nothing
 *    (KVM_GET_DIRTY_LOG: ENOENT, as a slot without a bitmap answers) and
 *    can be deleted (guest_memfd slots cannot be changed, only deleted);
 *  - the guest probe (vmm/migrate/track_guest.c), for both layouts: the
 *    layout libgmem's gating probe picks is one where KVM faults the
 *    guest's pages through the view, so a guest's write through it must
 *    reach userfaultfd write-protect on the view, or gmvm could not
 *    migrate its VMs on this host.
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm_compat.h"
#include "kvm_util.h"
#include "test_util.h"
#include "track.h"

#define LEN (2ULL << 20)

/* uffd-wp against the guest's writes, per layout (track_guest.c). */
static void guest_probe(void)
{
	static const enum gmem_layout layouts[] = {
		GMEM_LAYOUT_GMEM_SLOT, GMEM_LAYOUT_PLAIN_SLOT,
	};
	enum gmem_layout gating;
	const char *why;
	unsigned int i;
	int kvm = kvmu_open(), ret, gating_ret;

	TEST_ASSERT(kvm >= 0);
	gating_ret = gmem_probe_gating(&gating);
	printf("gating layout: %s\n", gating_ret ? strerror(-gating_ret) :
	       gmem_layout_name(gating));
	for (i = 0; i < 2; i++) {
		why = NULL;
		ret = mig_uffd_probe_guest(kvm, layouts[i], &why);
		printf("guest writes through %s: %s (%s)\n",
		       gmem_layout_name(layouts[i]), ret ? "unseen" : "seen",
		       why ? why : "no reason given");
		TEST_ASSERT(why);
		TEST_ASSERT(ret == 0 || ret == -EOPNOTSUPP);
		if (!gating_ret && layouts[i] == gating && ret)
			TEST_FAIL("the gating layout %s faults through the view, yet the guest's write was not seen: %s",
				  gmem_layout_name(gating), why);
	}
	close(kvm);
}

int main(void)
{
	struct mig_track_caps caps;
	struct mig_kvm_slot slot = { .slot = 5, .gpa = 1ULL << 30,
				     .len = LEN, .guest_memfd = -1 };
	struct mig_track_opts o = { .slots = &slot, .nr_slots = 1 };
	struct kvm_create_guest_memfd g = { .size = LEN };
	struct kvm_userspace_memory_region2 r;
	struct kvm_dirty_log dl = { 0 };
	static uint64_t bitmap[LEN / 4096 / 64];
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
	/* The slot is as it was: no dirty bitmap, and deleting it (the one
	 * change KVM allows a guest_memfd slot) works. */
	dl.slot = slot.slot;
	dl.dirty_bitmap = bitmap;
	TEST_ASSERT(ioctl(vm, KVM_GET_DIRTY_LOG, &dl) < 0 && errno == ENOENT);
	r.memory_size = 0;
	TEST_ASSERT_EQ(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r), 0);
	close(slot.guest_memfd);
	close(vm);
	guest_probe();
	printf("PASS\n");
	return 0;
}
