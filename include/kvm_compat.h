/* SPDX-License-Identifier: MIT */
/*
 * The guest_memfd-era KVM UAPI that Debian 12's Linux 6.1 headers lack.
 *
 * Every value here is part of the stable KVM ABI (include/uapi/linux/kvm.h
 * and Documentation/virt/kvm/api.rst of Linux 6.8 and later; the
 * guest_memfd flags and KVM_CAP_GUEST_MEMFD_FLAGS of Linux 6.18).  Each
 * definition is guarded so that newer system headers win.  Nothing here is
 * assumed to be supported: callers probe with KVM_CHECK_EXTENSION.
 */
#ifndef GMEM_KVM_COMPAT_H
#define GMEM_KVM_COMPAT_H

#include <linux/kvm.h>
#include <linux/types.h>
#include <stdint.h>

#ifndef KVM_CAP_USER_MEMORY2
#define KVM_CAP_USER_MEMORY2 231
#endif
#ifndef KVM_CAP_MEMORY_FAULT_INFO
#define KVM_CAP_MEMORY_FAULT_INFO 232
#endif
#ifndef KVM_CAP_MEMORY_ATTRIBUTES
#define KVM_CAP_MEMORY_ATTRIBUTES 233
#endif
#ifndef KVM_CAP_GUEST_MEMFD
#define KVM_CAP_GUEST_MEMFD 234
#endif
#ifndef KVM_CAP_VM_TYPES
#define KVM_CAP_VM_TYPES 235
#endif
#ifndef KVM_CAP_GUEST_MEMFD_FLAGS
#define KVM_CAP_GUEST_MEMFD_FLAGS 244
#endif

#ifndef KVM_MEM_GUEST_MEMFD
#define KVM_MEM_GUEST_MEMFD (1u << 2)
#endif

#ifndef KVM_SET_USER_MEMORY_REGION2
struct kvm_userspace_memory_region2 {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;
	__u64 userspace_addr;
	__u64 guest_memfd_offset;
	__u32 guest_memfd;
	__u32 pad1;
	__u64 pad2[14];
};
#define KVM_SET_USER_MEMORY_REGION2 \
	_IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)
#endif

#ifndef KVM_SET_MEMORY_ATTRIBUTES
struct kvm_memory_attributes {
	__u64 address;
	__u64 size;
	__u64 attributes;
	__u64 flags;
};
#define KVM_SET_MEMORY_ATTRIBUTES \
	_IOW(KVMIO, 0xd2, struct kvm_memory_attributes)
#define KVM_MEMORY_ATTRIBUTE_PRIVATE (1ULL << 3)
#endif

#ifndef KVM_CREATE_GUEST_MEMFD
struct kvm_create_guest_memfd {
	__u64 size;
	__u64 flags;
	__u64 reserved[6];
};
#define KVM_CREATE_GUEST_MEMFD \
	_IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)
#endif
#ifndef GUEST_MEMFD_FLAG_MMAP
#define GUEST_MEMFD_FLAG_MMAP (1ULL << 0)
#endif
#ifndef GUEST_MEMFD_FLAG_INIT_SHARED
#define GUEST_MEMFD_FLAG_INIT_SHARED (1ULL << 1)
#endif

#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT 39
#endif
#ifndef KVM_MEMORY_EXIT_FLAG_PRIVATE
#define KVM_MEMORY_EXIT_FLAG_PRIVATE (1ULL << 3)
#endif

/*
 * kvm_run's exit union as of 6.8 carries memory_fault, which the 6.1
 * struct does not name.  The union starts at the same offset in every
 * version (it follows the fixed header), so overlay it.
 */
struct kvm_compat_memory_fault {
	__u64 flags;
	__u64 gpa;
	__u64 size;
};

static inline struct kvm_compat_memory_fault *
kvm_run_memory_fault(struct kvm_run *run)
{
	return (struct kvm_compat_memory_fault *)(void *)&run->mmio;
}

/* The hypercall number of KVM_HC_MAP_GPA_RANGE (include/uapi/linux/kvm_para.h). */
#ifndef KVM_HC_MAP_GPA_RANGE
#define KVM_HC_MAP_GPA_RANGE 12
#endif

/*
 * GUEST_MEMFD_FLAG_NO_DIRECT_MAP: private pages leave the kernel direct
 * map.  NOT merged: "Direct Map Removal Support for guest_memfd" v12,
 * patch 10/16 (2026-04-10), advertised through KVM_CAP_GUEST_MEMFD_FLAGS.
 */
#ifndef GUEST_MEMFD_FLAG_NO_DIRECT_MAP
#define GUEST_MEMFD_FLAG_NO_DIRECT_MAP (1ULL << 2)
#endif

/*
 * guest_memfd in-place conversion.  NOT merged: "[PATCH v8 00/46]
 * guest_memfd: In-place conversion support" (2026-06-18), patches 13, 14
 * and 17.  KVM_SET_MEMORY_ATTRIBUTES2 is an ioctl on the guest_memfd fd
 * (not the VM): attributes 0 (shared) or KVM_MEMORY_ATTRIBUTE_PRIVATE over
 * [offset, offset + size); a conversion to private refused because a page
 * is still referenced (pinned) fails with EAGAIN and error_offset = the
 * first refusing byte offset in the file; nothing changes then.  The
 * capability (on the VM fd) answers the attribute mask.  Its number moved
 * in every revision (246, 248, 249, 250 in v8 against kvm-x86/next), so
 * libgmem uses it only behind the probe and never assumes it.
 */
#define KVM_CAP_GMEM_CONVERSION 250	/* KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES */

struct kvm_memory_attributes2 {
	union {
		__u64 address;
		__u64 offset;
	};
	__u64 size;
	__u64 attributes;
	__u64 flags;
	__u64 error_offset;	/* out */
	__u64 reserved[11];
};

#define KVM_SET_MEMORY_ATTRIBUTES2 \
	_IOWR(KVMIO, 0xd2, struct kvm_memory_attributes2)

#endif /* GMEM_KVM_COMPAT_H */
