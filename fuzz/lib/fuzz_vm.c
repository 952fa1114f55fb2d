/* SPDX-License-Identifier: MIT */
/*
 * A gmvm VM for the fuzzers: real libgmem, real devices, no KVM.
 *
 * The harnesses fuzz what gmvm does with guest-controlled values (port
 * writes, hypercall registers) against real page states, so they need a
 * real libgmem VM, and no vCPU ever runs.  libgmem runs without KVM when
 * the VMM owns the private backing and the memslots (vm_fd = -1): a memfd
 * stands in for the guest_memfd (mmap, mprotect and PUNCH_HOLE behave the
 * same for the emulated backend) and slots are accepted by a callback
 * that registers nothing.  Everything is the real code: page-state map,
 * views and their protections, the conversion engine, listeners, the DMA
 * mapper, gmem_audit() against /proc/self/maps and mincore.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_vm.h"
#include "devices/devices.h"

static int accept_slot(void *data, const struct gmem_slot *slot)
{
	return 0;
}

int fuzz_gmem_create(const struct gmem_config *cfg_in, struct gmem_vm **out)
{
	struct gmem_region_config rc[RAM_MAX_RANGES];
	struct gmem_config cfg = *cfg_in;
	uint64_t top = 0;
	unsigned int i;
	int fd, err;

	FUZZ_ASSERT(cfg.nr_regions >= 1 && cfg.nr_regions <= RAM_MAX_RANGES);
	for (i = 0; i < cfg.nr_regions; i++) {
		rc[i] = cfg_in->regions[i];
		if (rc[i].gpa + rc[i].len > top)
			top = rc[i].gpa + rc[i].len;
	}
	/* One file for all regions, region at GPA g at offset g. */
	fd = memfd_create("fuzz-private", MFD_CLOEXEC);
	FUZZ_ASSERT(fd >= 0 && ftruncate(fd, (off_t)top) == 0);
	for (i = 0; i < cfg.nr_regions; i++) {
		rc[i].private_fd = fd;
		rc[i].private_offset = rc[i].gpa;
	}
	cfg.regions = rc;
	cfg.vm_fd = -1;
	cfg.set_slot = accept_slot;
	err = gmem_create(&cfg, out);
	close(fd);	/* libgmem holds its own dups */
	return err;
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
	struct ram_range ranges[RAM_MAX_RANGES] = {
		{ 0, o->hole ? o->hole_start : o->ram_size },
		{ o->hole_start + o->hole, o->ram_size - o->hole_start },
	};
	struct gmem_region_config ram[RAM_MAX_RANGES];
	struct gmem_config gc = GMEM_INIT(struct gmem_config,
		.mode = o->mode,
		.initial_state = o->init_shared ? GMEM_SHARED : GMEM_PRIVATE,
		.flags = o->deferred_reclaim ? GMEM_CONFIG_DEFERRED_RECLAIM : 0,
		.regions = ram);
	struct vm *vm = &f->vm;
	unsigned int i;
	int ret;

	memset(f, 0, sizeof(*f));
	/* The RAM layout every gmvm check asks, as vm_run() makes it. */
	FUZZ_ASSERT(!ram_layout_from_ranges(&vm->ram, ranges,
					    o->hole ? 2 : 1));
	for (i = 0; i < vm->ram.nr; i++)
		ram[i] = GMEM_INIT(struct gmem_region_config,
				   .gpa = vm->ram.range[i].gpa,
				   .len = vm->ram.range[i].len,
				   .shared_fd = -1);
	gc.nr_regions = vm->ram.nr;
	f->cfg.ram_size = o->ram_size;
	f->cfg.layout = o->hole ? RAM_LAYOUT_PC : RAM_LAYOUT_FLAT;
	f->cfg.nr_vcpus = 1;
	f->cfg.mode = o->mode;
	f->cfg.init_shared = o->init_shared;
	f->cfg.deferred_reclaim = o->deferred_reclaim;
	f->cfg.audit_each = o->audit_each;
	f->cfg.dmatest = DMATEST_INTERNAL;

	vm->cfg = &f->cfg;
	vm->kvm_fd = -1;
	vm->vm_fd = -1;
	vm->nr_vcpus = 1;
	vm->vcpus = &f->vcpu;
	vm->sync_regs = true;	/* registers come from f->run */
	f->cpuid = fake_cpuid(o->gbpages);
	vm->cpuid = f->cpuid;
	pthread_mutex_init(&vm->stop_lock, NULL);
	pthread_mutex_init(&vm->gate_lock, NULL);
	pthread_cond_init(&vm->gate_cond, NULL);
	vm_pause_init(vm);	/* vm_stop() wakes paused vCPUs */
	vm->done_fd = -1;	/* no vCPU threads to wait for */

	f->run = calloc(1, sizeof(*f->run));
	FUZZ_ASSERT(f->run);
	f->vcpu.vm = vm;
	f->vcpu.fd = -1;
	f->vcpu.run = f->run;
	f->vcpu.fault_gpa = UINT64_MAX;

	ret = fuzz_gmem_create(&gc, &vm->gmem);
	if (ret)
		fuzz_fail("gmem_create(%llu bytes, hole %#llx at %#llx): %s",
			  (unsigned long long)o->ram_size,
			  (unsigned long long)o->hole,
			  (unsigned long long)o->hole_start, strerror(-ret));
	vm->shared_base = gmem_shared_base(vm->gmem);
	/* No console: guest output would only be noise here. */
	FUZZ_ASSERT(!device_add(vm, &exit_port_device));
	FUZZ_ASSERT(!device_add(vm, &doorbell_device));
	if (dmatest)
		FUZZ_ASSERT(!device_add(vm, &dma_test_device));
}

void fuzz_vm_destroy(struct fuzz_vm *f)
{
	struct vm *vm = &f->vm;

	devices_destroy(vm);
	gmem_destroy(vm->gmem);
	vm_pause_destroy(vm);
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
	if (devices_check(&f->vm))
		fuzz_fail("the DMA device's check failed (see above)");
}

uint8_t fuzz_vm_opts_read(struct fuzz_in *in, struct fuzz_vm_opts *o)
{
	uint8_t ram = fuzz_u8(in), cfg;
	uint64_t halves = ram % 16 + 1;

	o->ram_size = halves * SZ_2M;
	/* Bits 4..6: a hole of that many MiB in the middle (2 MiB at least
	 * on either side), so ranges touching it are fuzzed too. */
	o->hole = halves >= 2 ? (uint64_t)((ram >> 4) & 7) * SZ_1M : 0;
	o->hole_start = o->hole ? halves / 2 * SZ_2M : 0;
	cfg = fuzz_u8(in);
	o->mode = cfg & 1 ? GMEM_MODE_IN_PLACE : GMEM_MODE_DISCARD;
	o->init_shared = cfg & 2;
	o->deferred_reclaim = (cfg & 4) && o->mode == GMEM_MODE_DISCARD;
	return cfg;
}
