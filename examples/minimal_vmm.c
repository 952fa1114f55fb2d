// SPDX-License-Identifier: MIT
/*
 * A minimal VMM's use of libgmem, written only against the installed
 * library:
 *
 *   cc $(pkg-config --cflags libgmem) minimal_vmm.c $(pkg-config --libs libgmem)
 *
 * It creates its own KVM VM, its own guest_memfds and memfds for two RAM
 * regions around a hole ([0, 2M) and [4M, 6M)), owns the KVM memslot
 * numbers (libgmem hands it each slot through set_slot), tracks the shared
 * pages with a listener, converts a range in each region, checks that a
 * range touching the hole is refused, keeps DMA mappings with the DMA
 * mapper over a trivial in-process "IOMMU", audits and tears down.  It runs
 * no vCPU.
 *
 * Exit status: 0 success, 77 skipped (no usable KVM), 1 failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gmem/gmem.h>

/*
 * The two pieces of guest_memfd-era KVM UAPI this example uses, for
 * kernel headers older than Linux 6.8 (Debian 12 ships 6.1).  An outside
 * VMM has no access to libgmem's private kvm_compat.h, and libgmem's
 * public header defines no KVM UAPI (it would clash with the caller's
 * <linux/kvm.h>), so it carries what its headers lack, as QEMU carries its
 * own copy of the kernel headers.  Layouts as in Linux 6.8 <linux/kvm.h>;
 * newer system headers win.
 */
#ifndef KVM_SET_USER_MEMORY_REGION2
struct kvm_userspace_memory_region2 {
	__u32 slot, flags;
	__u64 guest_phys_addr, memory_size, userspace_addr, guest_memfd_offset;
	__u32 guest_memfd, pad1;
	__u64 pad2[14];
};
#define KVM_SET_USER_MEMORY_REGION2 \
	_IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)
#endif
#ifndef KVM_CREATE_GUEST_MEMFD
struct kvm_create_guest_memfd {
	__u64 size, flags, reserved[6];
};
#define KVM_CREATE_GUEST_MEMFD \
	_IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)
#endif

#define MiB ((uint64_t)1 << 20)
#define RAM_END (6 * MiB)
#define NR_PAGES (RAM_END / GMEM_PAGE_SIZE)

static int failed;

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "minimal_vmm: FAIL %s:%d: ", __FILE__, \
				__LINE__);                                   \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
			failed = 1;                                          \
		}                                                            \
	} while (0)

static int skip(const char *why, int err)
{
	if (err)
		printf("skipped: %s: %s\n", why, strerror(err));
	else
		printf("skipped: %s\n", why);
	return 77;
}

/* ------------------------------------------------------------------ */
/* Memslots: the VMM owns KVM slot numbers; libgmem names each slot.  */

#define MAX_SLOTS 16
#define FIRST_KVM_SLOT 8	/* this VMM keeps 0..7 for itself */

struct vmm {
	int vm_fd;
	pthread_mutex_t lock;
	struct {
		bool used;
		uint32_t id;	/* libgmem's name */
	} slots[MAX_SLOTS];	/* index i is KVM slot FIRST_KVM_SLOT + i */
	unsigned int live_slots;
};

static int set_slot(void *data, const struct gmem_slot *s)
{
	struct vmm *vmm = data;
	struct kvm_userspace_memory_region2 r;
	int i, free_i = -1, ret = 0;

	pthread_mutex_lock(&vmm->lock);
	for (i = 0; i < MAX_SLOTS; i++) {
		if (vmm->slots[i].used && vmm->slots[i].id == s->id)
			break;
		if (!vmm->slots[i].used && free_i < 0)
			free_i = i;
	}
	if (s->len == 0 && i == MAX_SLOTS) {
		ret = -ENOENT;		/* deleting a slot never registered */
		goto out;
	}
	if (s->len != 0) {
		if (i < MAX_SLOTS) {
			ret = -EEXIST;	/* ids are unique among live slots */
			goto out;
		}
		if (free_i < 0) {
			ret = -ENOSPC;
			goto out;
		}
		i = free_i;
	}
	memset(&r, 0, sizeof(r));
	r.slot = FIRST_KVM_SLOT + (uint32_t)i;
	if (s->len) {
		r.flags = s->kvm_flags;
		r.guest_phys_addr = s->gpa;
		r.memory_size = s->len;
		r.userspace_addr = (uint64_t)(uintptr_t)s->userspace_addr;
		if (s->guest_memfd >= 0) {
			r.guest_memfd = (uint32_t)s->guest_memfd;
			r.guest_memfd_offset = s->guest_memfd_offset;
		}
	}
	if (ioctl(vmm->vm_fd, KVM_SET_USER_MEMORY_REGION2, &r) < 0) {
		ret = -errno;
		goto out;
	}
	vmm->slots[i].used = s->len != 0;
	vmm->slots[i].id = s->id;
	if (s->len)
		vmm->live_slots++;
	else
		vmm->live_slots--;
out:
	pthread_mutex_unlock(&vmm->lock);
	return ret;
}

/* ------------------------------------------------------------------ */
/* A listener that tracks the shared (and plugged) pages.             */

struct tracker {
	pthread_mutex_t lock;
	bool shared[NR_PAGES];
	int errors;
};

static int track(struct tracker *t, uint64_t gpa, uint64_t len, bool map)
{
	uint64_t p;

	if (gpa % GMEM_PAGE_SIZE || len % GMEM_PAGE_SIZE || !len ||
	    gpa + len > RAM_END)
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	for (p = gpa / GMEM_PAGE_SIZE; p < (gpa + len) / GMEM_PAGE_SIZE; p++) {
		if (t->shared[p] == map)
			t->errors++;	/* mapped twice, or unmapped unmapped */
		t->shared[p] = map;
	}
	pthread_mutex_unlock(&t->lock);
	return 0;
}

static int tracker_populate(void *data, uint64_t gpa, uint64_t len)
{
	return track(data, gpa, len, true);
}

static int tracker_discard(void *data, uint64_t gpa, uint64_t len,
			   unsigned int flags)
{
	(void)flags;	/* never refuses, so forced or not is all one */
	return track(data, gpa, len, false);
}

static int tracker_report(void *data,
			  int (*fn)(void *arg, uint64_t gpa, uint64_t len),
			  void *arg)
{
	struct tracker *t = data;
	uint64_t p = 0, start;
	int ret = 0;

	pthread_mutex_lock(&t->lock);
	while (!ret && p < NR_PAGES) {
		if (!t->shared[p]) {
			p++;
			continue;
		}
		start = p;
		while (p < NR_PAGES && t->shared[p])
			p++;
		ret = fn(arg, start * GMEM_PAGE_SIZE, (p - start) * GMEM_PAGE_SIZE);
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

static uint64_t tracked_bytes(struct tracker *t, uint64_t gpa, uint64_t len)
{
	uint64_t p, n = 0;

	pthread_mutex_lock(&t->lock);
	for (p = gpa / GMEM_PAGE_SIZE; p < (gpa + len) / GMEM_PAGE_SIZE; p++)
		n += t->shared[p];
	pthread_mutex_unlock(&t->lock);
	return n * GMEM_PAGE_SIZE;
}

/* ------------------------------------------------------------------ */
/* A trivial in-process DMA backend: a list of live mappings.          */

#define MAX_MAPPINGS 64

struct iommu {
	pthread_mutex_t lock;
	struct { uint64_t iova, len; } m[MAX_MAPPINGS];
	unsigned int n;
};

static int iommu_map(void *data, uint64_t iova, uint64_t len)
{
	struct iommu *io = data;
	unsigned int i;
	int ret = 0;

	pthread_mutex_lock(&io->lock);
	for (i = 0; i < io->n; i++)
		if (iova < io->m[i].iova + io->m[i].len &&
		    io->m[i].iova < iova + len)
			ret = -EEXIST;	/* the mapper never overlaps */
	if (!ret && io->n == MAX_MAPPINGS)
		ret = -ENOSPC;
	if (!ret) {
		io->m[io->n].iova = iova;
		io->m[io->n].len = len;
		io->n++;
	}
	pthread_mutex_unlock(&io->lock);
	return ret;
}

static int iommu_unmap(void *data, uint64_t iova, uint64_t len,
		       unsigned int flags)
{
	struct iommu *io = data;
	unsigned int i;
	int ret = -ENOENT;	/* only whole live mappings are unmapped */

	(void)flags;		/* never refuses (no pins here) */

	pthread_mutex_lock(&io->lock);
	for (i = 0; i < io->n; i++) {
		if (io->m[i].iova == iova && io->m[i].len == len) {
			io->m[i] = io->m[--io->n];
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&io->lock);
	return ret;
}

static int iommu_report(void *data,
			int (*fn)(void *arg, uint64_t iova, uint64_t len),
			void *arg)
{
	struct iommu *io = data;
	unsigned int i;
	int ret = 0;

	pthread_mutex_lock(&io->lock);
	for (i = 0; i < io->n && !ret; i++)
		ret = fn(arg, io->m[i].iova, io->m[i].len);
	pthread_mutex_unlock(&io->lock);
	return ret;
}

/* ------------------------------------------------------------------ */

static int create_guest_memfd(int vm_fd, uint64_t size, uint64_t flags)
{
	struct kvm_create_guest_memfd g;

	memset(&g, 0, sizeof(g));
	g.size = size;
	g.flags = flags;
	return ioctl(vm_fd, KVM_CREATE_GUEST_MEMFD, &g);
}

int main(void)
{
	static struct tracker tracker = { .lock = PTHREAD_MUTEX_INITIALIZER };
	static struct iommu iommu = { .lock = PTHREAD_MUTEX_INITIALIZER };
	static struct vmm vmm = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct gmem_vm_caps caps = GMEM_INIT(struct gmem_vm_caps);
	enum gmem_layout layout = GMEM_LAYOUT_AUTO;
	enum gmem_backend backend;
	uint64_t gmem_flags = 0;
	const char *why = NULL;
	int kvm_fd, gmem_lo, gmem_hi, shm, ret;
	struct gmem_vm *mem = NULL;
	struct gmem_listener *listener = NULL;
	struct gmem_dma_mapper *mapper = NULL;
	struct gmem_dma_stats dst = GMEM_INIT(struct gmem_dma_stats);
	char msg[256], buf[64];
	uint64_t busy = 0;
	int64_t n;

	printf("libgmem %u.%u.%u (header %d.%d.%d)\n", gmem_version() >> 16,
	       (gmem_version() >> 8) & 0xff, gmem_version() & 0xff,
	       GMEM_VERSION_MAJOR, GMEM_VERSION_MINOR, GMEM_VERSION_PATCH);
	if (gmem_version() >> 16 != GMEM_VERSION_MAJOR) {
		fprintf(stderr, "minimal_vmm: library major version differs from the header's\n");
		return 1;
	}

	/* Our own VM. */
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0)
		return skip("cannot open /dev/kvm", errno);
	if (ioctl(kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		return skip("unexpected KVM_GET_API_VERSION", 0);
	vmm.vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vmm.vm_fd < 0)
		return skip("KVM_CREATE_VM", errno);

	/* What this VM offers, and what libgmem would run on it. */
	ret = gmem_probe_vm(vmm.vm_fd, &caps);
	if (ret) {
		fprintf(stderr, "minimal_vmm: gmem_probe_vm: %s\n", strerror(-ret));
		return 1;
	}
	if (!caps.guest_memfd)
		return skip("this KVM has no guest_memfd (KVM_CAP_GUEST_MEMFD)", 0);
	if (!caps.user_memory2)
		return skip("this KVM has no KVM_SET_USER_MEMORY_REGION2", 0);
	ret = gmem_pick_backend(&caps, GMEM_MODE_DISCARD, &backend, &why);
	if (ret)
		return skip(why ? why : "no libgmem backend runs on this VM", -ret);
	printf("backend: %s (%s)\n", gmem_backend_name(backend), why ? why : "");
	ret = gmem_probe_gating(&layout);
	if (ret == -ENOENT || ret == -EACCES)
		return skip("gmem_probe_gating: no usable /dev/kvm", -ret);
	if (ret && backend == GMEM_BACKEND_EMULATED)
		return skip("gmem_probe_gating: no layout gates on this KVM", -ret);
	if (!ret)
		printf("layout: %s\n", gmem_layout_name(layout));
	ret = gmem_pick_guest_memfd_flags(&caps, backend, &gmem_flags, &why);
	if (ret)
		return skip(why ? why : "no usable guest_memfd flags", -ret);

	/* Our own backings: a guest_memfd per region, one memfd for both
	 * regions' shared pages. */
	gmem_lo = create_guest_memfd(vmm.vm_fd, 2 * MiB, gmem_flags);
	gmem_hi = create_guest_memfd(vmm.vm_fd, 2 * MiB, gmem_flags);
	if (gmem_lo < 0 || gmem_hi < 0) {
		fprintf(stderr, "minimal_vmm: KVM_CREATE_GUEST_MEMFD(flags %#" PRIx64 "): %s\n",
			gmem_flags, strerror(errno));
		return 1;
	}
	shm = memfd_create("minimal_vmm-shared", MFD_CLOEXEC);
	if (shm < 0 || ftruncate(shm, 4 * MiB) < 0) {
		perror("minimal_vmm: memfd");
		return 1;
	}

	const struct gmem_region_config ram[] = {
		GMEM_INIT(struct gmem_region_config, .gpa = 0, .len = 2 * MiB,
			  .private_fd = gmem_lo, .shared_fd = shm,
			  .shared_offset = 0),
		GMEM_INIT(struct gmem_region_config, .gpa = 4 * MiB,
			  .len = 2 * MiB, .private_fd = gmem_hi,
			  .shared_fd = shm, .shared_offset = 2 * MiB),
	};
	struct gmem_config cfg = GMEM_INIT(struct gmem_config,
		.vm_fd = vmm.vm_fd,
		.mode = GMEM_MODE_DISCARD,
		.initial_state = GMEM_PRIVATE,
		.backend = backend,
		.layout = layout,
		.guest_memfd_flags = gmem_flags,
		.max_gpa = RAM_END,
		.regions = ram,
		.nr_regions = 2,
		.set_slot = set_slot,
		.slot_data = &vmm);
	ret = gmem_create(&cfg, &mem);
	if (ret) {
		fprintf(stderr, "minimal_vmm: gmem_create: %s\n", strerror(-ret));
		return 1;
	}
	printf("created: %d regions, %" PRIu64 " MiB RAM, %u memslots, backend %s\n",
	       gmem_region_count(mem), gmem_ram_size(mem) / MiB, vmm.live_slots,
	       gmem_backend_name(gmem_get_backend(mem)));
	CHECK(gmem_region_count(mem) == 2, "regions: %d", gmem_region_count(mem));
	CHECK(gmem_ram_size(mem) == 4 * MiB, "ram size %" PRIu64, gmem_ram_size(mem));
	CHECK(vmm.live_slots > 0, "set_slot was never called");

	/* A device that must see exactly the shared pages. */
	static const struct gmem_listener_ops tracker_ops = {
		.size = sizeof(struct gmem_listener_ops),
		.populate = tracker_populate,
		.discard = tracker_discard,
		.report = tracker_report,
	};
	ret = gmem_listener_register(mem, &tracker_ops, &tracker, &listener);
	CHECK(ret == 0, "gmem_listener_register: %s", strerror(-ret));
	CHECK(tracked_bytes(&tracker, 0, RAM_END) == 0, "shared pages at start");

	/* Convert a range in each region. */
	n = gmem_convert_ex(mem, 1 * MiB, 256 * 1024, GMEM_SHARED, &busy);
	CHECK(n == 64, "convert in region 0: %" PRId64, n);
	n = gmem_convert(mem, 4 * MiB + 512 * 1024, 512 * 1024, GMEM_SHARED);
	CHECK(n == 128, "convert in region 1: %" PRId64, n);
	CHECK(gmem_state_at(mem, 1 * MiB, NULL, NULL) == GMEM_SHARED, "state in region 0");
	CHECK(gmem_state_at(mem, 5 * MiB, NULL, NULL) == GMEM_PRIVATE, "state in region 1");
	CHECK(tracked_bytes(&tracker, 0, RAM_END) == 768 * 1024,
	      "listener tracks %" PRIu64 " shared bytes", tracked_bytes(&tracker, 0, RAM_END));

	/* A range touching the hole [2M, 4M) is refused and changes nothing. */
	n = gmem_convert(mem, 1 * MiB, 4 * MiB, GMEM_SHARED);
	CHECK(n == -EINVAL, "convert across the hole: %" PRId64, n);
	n = gmem_convert(mem, 3 * MiB, GMEM_PAGE_SIZE, GMEM_SHARED);
	CHECK(n == -EINVAL, "convert in the hole: %" PRId64, n);
	CHECK(gmem_state_at(mem, 3 * MiB, NULL, NULL) == -EINVAL, "state in the hole");
	CHECK(tracked_bytes(&tracker, 0, RAM_END) == 768 * 1024, "refused convert changed the listener");

	/* Copy through the shared view. */
	memset(buf, 0x5a, sizeof(buf));
	ret = gmem_access(mem, 4 * MiB + 512 * 1024, buf, sizeof(buf), true, GMEM_SHARED);
	CHECK(ret == 0, "gmem_access write: %s", strerror(-ret));
	memset(buf, 0, sizeof(buf));
	ret = gmem_access(mem, 4 * MiB + 512 * 1024, buf, sizeof(buf), false, GMEM_SHARED);
	CHECK(ret == 0 && buf[0] == 0x5a && buf[63] == 0x5a, "gmem_access read back");
	ret = gmem_access(mem, 5 * MiB + 512 * 1024, buf, sizeof(buf), false, GMEM_SHARED);
	CHECK(ret == -EACCES, "gmem_access of a private page: %d", ret);

	/* DMA: one mapping per shared run, over our in-process "IOMMU". */
	static const struct gmem_dma_ops iommu_ops = {
		.size = sizeof(struct gmem_dma_ops),
		.map = iommu_map,
		.unmap = iommu_unmap,
		.report = iommu_report,
	};
	struct gmem_dma_mapper_config mcfg = GMEM_INIT(struct gmem_dma_mapper_config,
		.ops = &iommu_ops, .data = &iommu);
	ret = gmem_dma_mapper_create(mem, &mcfg, &mapper);
	CHECK(ret == 0, "gmem_dma_mapper_create: %s", strerror(-ret));
	if (!ret) {
		CHECK(iommu.n == 2, "%u DMA mappings for two shared runs", iommu.n);
		n = gmem_convert(mem, 1 * MiB, 256 * 1024, GMEM_PRIVATE);
		CHECK(n == 64, "convert back: %" PRId64, n);
		CHECK(iommu.n == 1, "%u DMA mappings for one shared run", iommu.n);
		ret = gmem_dma_mapper_validate(mapper, msg, sizeof(msg));
		CHECK(ret == 0, "gmem_dma_mapper_validate: %s", ret ? msg : "");
		ret = gmem_dma_mapper_get_stats(mapper, &dst);
		CHECK(ret == 0, "gmem_dma_mapper_get_stats: %s", strerror(-ret));
		printf("dma: %" PRIu64 " live, %" PRIu64 " maps, %" PRIu64 " unmaps\n",
		       dst.live, dst.maps, dst.unmaps);
	}

	ret = gmem_audit(mem, msg, sizeof(msg));
	CHECK(ret == 0, "gmem_audit: %s", ret == -EUCLEAN ? msg : strerror(-ret));

	if (mapper) {
		gmem_dma_mapper_destroy(mem, mapper);
		CHECK(iommu.n == 0, "%u DMA mappings left after destroy", iommu.n);
	}
	if (listener) {
		gmem_listener_unregister(mem, listener);
		CHECK(tracked_bytes(&tracker, 0, RAM_END) == 0, "listener still maps pages");
	}
	gmem_destroy(mem);
	CHECK(vmm.live_slots == 0, "%u memslots left after gmem_destroy", vmm.live_slots);
	CHECK(tracker.errors == 0, "%d listener calls mapped or unmapped twice", tracker.errors);

	/* libgmem dup()ed our fds: ours are still ours to close. */
	close(shm);
	close(gmem_hi);
	close(gmem_lo);
	close(vmm.vm_fd);
	close(kvm_fd);
	if (failed)
		return 1;
	printf("minimal_vmm: ok\n");
	return 0;
}
