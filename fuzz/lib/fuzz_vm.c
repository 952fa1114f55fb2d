/* SPDX-License-Identifier: MIT */
/*
 * A gmvm VM for the fuzzers: real libgmem, real devices, no KVM.
 *
 * The harnesses fuzz what gmvm does with guest-controlled values (port
 * writes, hypercall registers) against real page states, so they need a
 * real libgmem VM.  libgmem today creates one only on a VM fd: it probes
 * /dev/kvm, makes a guest_memfd with KVM_CREATE_GUEST_MEMFD and registers
 * two memslots.  None of that matters to what is fuzzed (no vCPU ever
 * runs), so the fuzzers are linked with --wrap (see the Makefile) so that
 * inside gmem_create():
 *  - the host probe reports guest_memfd with MMAP, and the gating probe
 *    picks the plain-slot layout;
 *  - the "guest_memfd" is a memfd of the same size (mmap, mprotect and
 *    PUNCH_HOLE behave the same for the emulated backend);
 *  - memslot registration succeeds without doing anything.
 * Everything else (page-state map, views and their protections, the
 * conversion engine, listeners, the DMA mapper, gmem_audit() against
 * /proc/self/maps and mincore) is the real code.
 *
 * This stands in for libgmem's own no-KVM configuration (VMM-supplied
 * memfd backings); once that exists, fuzz_gmem_create() should use it and
 * the wraps go.  If libgmem's internal helpers change signature, the
 * static assertions below stop the build rather than let a wrap be called
 * with the wrong arguments.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"	/* the wrapped internal helpers */
#include "fuzz_vm.h"
#include "devices/devices.h"

int __wrap_gmem_probe_host(struct gmem_host_caps *caps);
int __wrap_gmem_probe_gating(enum gmem_layout *layout);
int __wrap_gmem_backing_create_gmem(int vm_fd, uint64_t size, uint64_t flags);
int __wrap_gmem_set_memslot(int vm_fd, uint32_t slot, uint32_t flags,
			    uint64_t gpa, uint64_t size, void *uaddr,
			    int gmem_fd, uint64_t gmem_offset);

#define SAME_TYPE(a, b) __builtin_types_compatible_p(__typeof__(a), __typeof__(b))
_Static_assert(SAME_TYPE(&gmem_probe_host, &__wrap_gmem_probe_host),
	       "gmem_probe_host changed: update the fuzzers' wrap");
_Static_assert(SAME_TYPE(&gmem_probe_gating, &__wrap_gmem_probe_gating),
	       "gmem_probe_gating changed: update the fuzzers' wrap");
_Static_assert(SAME_TYPE(&gmem_backing_create_gmem,
			 &__wrap_gmem_backing_create_gmem),
	       "gmem_backing_create_gmem changed: update the fuzzers' wrap");
_Static_assert(SAME_TYPE(&gmem_set_memslot, &__wrap_gmem_set_memslot),
	       "gmem_set_memslot changed: update the fuzzers' wrap");

int __wrap_gmem_probe_host(struct gmem_host_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	caps->api_version = 12;
	caps->guest_memfd = true;
	/* What the project's hosts offer (gmvm caps in the README). */
	caps->guest_memfd_flags = GUEST_MEMFD_FLAG_MMAP |
				  GUEST_MEMFD_FLAG_INIT_SHARED;
	caps->user_memory2 = true;
	caps->nr_memslots = 32;
	return 0;
}

int __wrap_gmem_probe_gating(enum gmem_layout *layout)
{
	*layout = GMEM_LAYOUT_PLAIN_SLOT;
	return 0;
}

int __wrap_gmem_backing_create_gmem(int vm_fd, uint64_t size, uint64_t flags)
{
	return gmem_backing_create_memfd("fuzz-gmem", size);
}

int __wrap_gmem_set_memslot(int vm_fd, uint32_t slot, uint32_t flags,
			    uint64_t gpa, uint64_t size, void *uaddr,
			    int gmem_fd, uint64_t gmem_offset)
{
	return 0;
}

/* gmem_create() wants a VM fd; any open fd will do, nothing uses it. */
static int fake_vm_fd(void)
{
	static int fd = -1;

	if (fd < 0)
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	FUZZ_ASSERT(fd >= 0);
	return fd;
}

int fuzz_gmem_create(const struct gmem_config *cfg, struct gmem_vm **out)
{
	struct gmem_config c = *cfg;

	c.vm_fd = fake_vm_fd();
	c.layout = GMEM_LAYOUT_AUTO;
	return gmem_create(&c, out);
}

/* Where fuzz_fail() writes once fuzz_quiet() has silenced stderr. */
static FILE *fuzz_err;

void fuzz_quiet(void)
{
	FILE *null = fopen("/dev/null", "w");
	int fd = dup(2);

	FUZZ_ASSERT(null && fd >= 0);
	fuzz_err = fdopen(fd, "w");
	FUZZ_ASSERT(fuzz_err);
	stderr = null;
}

void fuzz_fail(const char *fmt, ...)
{
	FILE *err = fuzz_err ? fuzz_err : stderr;
	va_list ap;

	fputs("fuzz: check failed: ", err);
	va_start(ap, fmt);
	vfprintf(err, fmt, ap);
	va_end(ap);
	fputc('\n', err);
	fflush(err);
	abort();
}

static struct kvm_cpuid2 *fake_cpuid(bool gbpages)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 2 * sizeof(c->entries[0]));

	FUZZ_ASSERT(c);
	c->nent = 2;
	c->entries[0].function = 0x80000001;
	c->entries[0].edx = gbpages ? 1u << 26 : 0;
	c->entries[1].function = 0x80000008;
	c->entries[1].eax = 48;
	return c;
}

void fuzz_vm_init(struct fuzz_vm *f, const struct fuzz_vm_opts *o,
		  bool dmatest)
{
	struct gmem_config gc = {
		.ram_size = o->ram_size,
		.mode = o->mode,
		.initial_state = o->init_shared ? GMEM_SHARED : GMEM_PRIVATE,
		.deferred_reclaim = o->deferred_reclaim,
	};
	struct vm *vm = &f->vm;
	int ret;

	memset(f, 0, sizeof(*f));
	f->cfg.ram_size = o->ram_size;
	f->cfg.nr_vcpus = 1;
	f->cfg.mode = o->mode;
	f->cfg.init_shared = o->init_shared;
	f->cfg.deferred_reclaim = o->deferred_reclaim;
	f->cfg.audit_each = o->audit_each;
	f->cfg.dmatest = DMATEST_INTERNAL;

	vm->cfg = &f->cfg;
	vm->kvm_fd = -1;
	vm->vm_fd = -1;
	vm->ram_size = o->ram_size;
	vm->nr_vcpus = 1;
	vm->vcpus = &f->vcpu;
	vm->sync_regs = true;	/* registers come from f->run */
	f->cpuid = fake_cpuid(o->gbpages);
	vm->cpuid = f->cpuid;
	pthread_mutex_init(&vm->stop_lock, NULL);
	pthread_mutex_init(&vm->gate_lock, NULL);
	pthread_cond_init(&vm->gate_cond, NULL);
	pthread_cond_init(&vm->done_cond, NULL);

	f->run = calloc(1, sizeof(*f->run));
	FUZZ_ASSERT(f->run);
	f->vcpu.vm = vm;
	f->vcpu.fd = -1;
	f->vcpu.run = f->run;
	f->vcpu.fault_gpa = UINT64_MAX;

	ret = fuzz_gmem_create(&gc, &vm->gmem);
	if (ret)
		fuzz_fail("gmem_create(%llu bytes): %s",
			  (unsigned long long)o->ram_size, strerror(-ret));
	vm->shared_base = gmem_shared_base(vm->gmem);
	/* No console: guest output would only be noise here. */
	FUZZ_ASSERT(!exit_dev_init(vm));
	FUZZ_ASSERT(!hypercall_init(vm));
	if (dmatest)
		FUZZ_ASSERT(!dmatest_init(vm));
}

void fuzz_vm_destroy(struct fuzz_vm *f)
{
	struct vm *vm = &f->vm;

	dmatest_destroy(vm);
	gmem_destroy(vm->gmem);
	pthread_cond_destroy(&vm->done_cond);
	pthread_cond_destroy(&vm->gate_cond);
	pthread_mutex_destroy(&vm->gate_lock);
	pthread_mutex_destroy(&vm->stop_lock);
	free(f->cpuid);
	free(f->run);
}

enum exit_action fuzz_port_io(struct fuzz_vm *f, uint16_t port, bool out,
			      unsigned int size, uint8_t *data)
{
	struct vm *vm = &f->vm;
	unsigned int i;

	for (i = 0; i < vm->nr_ports; i++) {
		const struct port_handler *h = &vm->ports[i];

		if (port >= h->first && port <= h->last)
			return h->fn(&f->vcpu, h->opaque, port, out, size,
				     data);
	}
	return EXIT_STOP;
}

uint8_t fuzz_u8(struct fuzz_in *in)
{
	uint8_t v = 0;

	if (in->left) {
		v = *in->p++;
		in->left--;
	}
	return v;
}

/* Little-endian, one byte at a time (the calls are sequenced). */
static uint64_t fuzz_le(struct fuzz_in *in, unsigned int bytes)
{
	uint64_t v = 0;
	unsigned int i;

	for (i = 0; i < bytes; i++)
		v |= (uint64_t)fuzz_u8(in) << (8 * i);
	return v;
}

uint16_t fuzz_u16(struct fuzz_in *in)
{
	return (uint16_t)fuzz_le(in, 2);
}

uint32_t fuzz_u32(struct fuzz_in *in)
{
	return (uint32_t)fuzz_le(in, 4);
}

uint64_t fuzz_u64(struct fuzz_in *in)
{
	return fuzz_le(in, 8);
}

void fuzz_port_write32(struct fuzz_vm *f, uint16_t port, uint32_t val)
{
	uint8_t b[4];

	memcpy(b, &val, 4);
	if (fuzz_port_io(f, port, true, 4, b) != EXIT_RESUME)
		fuzz_fail("out %#x to port %#x stopped the VM: %s", val, port,
			  f->vm.stop_msg);
}

uint32_t fuzz_port_read32(struct fuzz_vm *f, uint16_t port)
{
	uint8_t b[4];
	uint32_t val;

	if (fuzz_port_io(f, port, false, 4, b) != EXIT_RESUME)
		fuzz_fail("in from port %#x stopped the VM: %s", port,
			  f->vm.stop_msg);
	memcpy(&val, b, 4);
	return val;
}

uint32_t fuzz_dma_command(struct fuzz_vm *f, uint32_t cmd, uint64_t addr,
			  uint32_t len, uint32_t pattern, uint32_t *result)
{
	fuzz_port_write32(f, GM_DMA_ADDR_LO, (uint32_t)addr);
	fuzz_port_write32(f, GM_DMA_ADDR_HI, (uint32_t)(addr >> 32));
	fuzz_port_write32(f, GM_DMA_LEN, len);
	fuzz_port_write32(f, GM_DMA_PATTERN, pattern);
	fuzz_port_write32(f, GM_DMA_CMD, cmd);
	*result = fuzz_port_read32(f, GM_DMA_RESULT);
	return fuzz_port_read32(f, GM_DMA_STATUS);
}

void fuzz_vm_check(struct fuzz_vm *f)
{
	char msg[512] = "";
	int ret;

	ret = gmem_audit(f->vm.gmem, msg, sizeof(msg));
	if (ret)
		fuzz_fail("gmem_audit: %s (%s)", strerror(-ret), msg);
	if (dmatest_check(&f->vm))
		fuzz_fail("dmatest_check failed (see above)");
}
