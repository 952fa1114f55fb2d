/* SPDX-License-Identifier: MIT */
/*
 * Backings: the guest_memfd that holds private pages and the memfd that
 * holds shared ones in discard mode.  Both are files whose pages are
 * allocated on first touch and given back with PUNCH_HOLE.
 *
 * guest_memfd reports st_blocks = 0 whatever it holds, so residency is
 * measured with mincore() on a mapping of the file, which reads the page
 * cache and works through PROT_NONE mappings too.
 */
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "kvm_compat.h"

int gmem_backing_create_gmem(int vm_fd, uint64_t size, uint64_t flags)
{
	struct kvm_create_guest_memfd args = {
		.size = size,
		.flags = flags,
	};
	int fd;

	fd = ioctl(vm_fd, KVM_CREATE_GUEST_MEMFD, &args);
	if (fd < 0)
		return -errno;
	/* KVM hands the fd out with O_CLOEXEC already; make sure. */
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int gmem_backing_create_memfd(const char *name, uint64_t size)
{
	int fd, err;

	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int gmem_punch(struct gmem_vm *vm, int fd, uint64_t offset, uint64_t len)
{
	int err = gmem_fault_check(vm, GMEM_FAULT_FALLOCATE);

	if (err)
		return err;
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)offset, (off_t)len) < 0)
		return -errno;
	return 0;
}

#define MINCORE_CHUNK_PAGES (1ULL << 18)	/* 1 GiB at a time: 256 KiB vec */

int gmem_resident_pages(const void *addr, uint64_t npages, unsigned char *vec)
{
	if (mincore((void *)addr, npages * GMEM_PAGE_SIZE, vec) < 0)
		return -errno;
	return 0;
}

int64_t gmem_resident_bytes(const void *addr, uint64_t len)
{
	uint64_t npages = len / GMEM_PAGE_SIZE, done, i, n, resident = 0;
	unsigned char *vec;
	int err;

	vec = malloc(MINCORE_CHUNK_PAGES);
	if (!vec)
		return -ENOMEM;
	for (done = 0; done < npages; done += n) {
		n = npages - done;
		if (n > MINCORE_CHUNK_PAGES)
			n = MINCORE_CHUNK_PAGES;
		err = gmem_resident_pages((const uint8_t *)addr +
					  done * GMEM_PAGE_SIZE, n, vec);
		if (err) {
			free(vec);
			return err;
		}
		for (i = 0; i < n; i++)
			resident += vec[i] & 1;
	}
	free(vec);
	return (int64_t)(resident * GMEM_PAGE_SIZE);
}

int gmem_set_memslot(int vm_fd, uint32_t slot, uint32_t flags, uint64_t gpa,
		     uint64_t size, void *uaddr, int gmem_fd,
		     uint64_t gmem_offset)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)uaddr,
		.guest_memfd_offset = gmem_offset,
		.guest_memfd = (uint32_t)(flags & KVM_MEM_GUEST_MEMFD ?
					  gmem_fd : 0),
	};

	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION2, &r) < 0)
		return -errno;
	return 0;
}
