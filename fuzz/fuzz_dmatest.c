/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the DMA test device's register interface (vmm/devices/dma_device.c,
 * guest ABI section 7) against real page states.
 *
 * Each input makes a VM (2..32 MiB, maybe with a hole, discard or
 * in-place, private or shared at start, sync or deferred reclaim; fuzz/lib/fuzz_vm.c: real
 * libgmem, the internal device behind its software IOMMU and libgmem's
 * DMA mapper, no KVM) and runs a sequence of operations:
 *  - any port access in 0x520..0x53f: any size, alignment and value;
 *  - a whole command (ADDR, LEN, PATTERN, CMD, then STATUS and RESULT),
 *    with addresses near the pages that matter;
 *  - conversions and plug changes of page ranges (what a guest's
 *    hypercalls would do).
 * Every answer is compared with fuzz/lib/fuzz_model.c: registers read
 * back what was written, STATUS and CHECKSUM as the model's pages say,
 * conversions change exactly the pages they should or fail with -EAGAIN
 * over a pin, and at the end libgmem's audit and the device's own check
 * pass.
 */
#include <errno.h>
#include <string.h>

#include "fuzz_model.h"
#include "fuzz_vm.h"

#define MAX_OPS 200

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

struct regs {
	uint32_t v[4];	/* ADDR_LO, ADDR_HI, LEN, PATTERN as written */
};

/* A page-aligned range of 1..npages pages, mostly inside RAM. */
static void page_range(struct fuzz_in *in, uint64_t npages, uint64_t *off,
		       uint64_t *len)
{
	uint64_t first = fuzz_u16(in) % (npages + 1);
	uint64_t n = fuzz_u16(in) % (npages + 1) + 1;

	*off = first * GMEM_PAGE_SIZE;
	*len = n * GMEM_PAGE_SIZE;
}

/*
 * Write @cmd to CMD with the registers as they are, then read STATUS and
 * RESULT: as the model says.
 */
static void check_cmd(struct fuzz_vm *f, struct fuzz_model *m,
		      const struct regs *r, uint32_t cmd)
{
	uint64_t addr = r->v[0] | (uint64_t)r->v[1] << 32;
	uint32_t len = r->v[2], status, result, want, want_sum = 0;

	/* The device takes PATTERN's low byte. */
	want = model_dma(m, cmd, addr, len, (uint8_t)r->v[3], &want_sum);
	fuzz_port_write32(f, GM_DMA_CMD, cmd);
	status = fuzz_port_read32(f, GM_DMA_STATUS);
	result = fuzz_port_read32(f, GM_DMA_RESULT);
	if (status != want)
		fuzz_fail("DMA cmd %u [%#llx, +%#x): STATUS %u, the model says %u",
			  cmd, (unsigned long long)addr, len, status, want);
	/* RESULT changes only with a CHECKSUM that succeeds. */
	if (cmd == GM_DMA_CMD_CHECKSUM && want == GM_DMA_OK &&
	    result != want_sum)
		fuzz_fail("CHECKSUM [%#llx, +%#x) = %#x, the model says %#x",
			  (unsigned long long)addr, len, result, want_sum);
}

/* Any access of any size at any port of the device. */
static void raw_access(struct fuzz_vm *f, struct fuzz_model *m,
		       struct regs *r, struct fuzz_in *in)
{
	static const unsigned int sizes[] = { 1, 2, 4 };
	uint8_t sel = fuzz_u8(in);
	uint16_t port = GM_PORT_DMA + sel % 0x20;
	unsigned int size = sizes[(sel >> 5) % 3], k;
	bool out = sel & 0x80;
	uint8_t b[4];
	uint32_t val = fuzz_u32(in), want;
	bool aligned = size == 4 && !(port & 3);

	if (aligned && out && port == GM_DMA_CMD) {
		check_cmd(f, m, r, val);
		return;
	}
	memcpy(b, &val, 4);
	if (fuzz_port_io(f, port, out, size, b) != EXIT_RESUME)
		fuzz_fail("%u-byte %s at %#x stopped the VM: %s", size,
			  out ? "out" : "in", port, f->vm.stop_msg);
	if (!aligned) {
		/* Like a bus with no target: all ones, writes ignored. */
		for (k = 0; !out && k < size; k++)
			FUZZ_ASSERT(b[k] == 0xff);
		return;
	}
	if (out) {
		if (port < GM_DMA_CMD)
			r->v[(port - GM_DMA_ADDR_LO) / 4] = val;
		return;
	}
	memcpy(&val, b, 4);
	if (port < GM_DMA_CMD) {
		want = r->v[(port - GM_DMA_ADDR_LO) / 4];
		if (val != want)
			fuzz_fail("register %#x reads %#x, %#x was written",
				  port, val, want);
	} else if (port == GM_DMA_CMD) {
		FUZZ_ASSERT(val == 0);
	} else if (port > GM_DMA_RESULT) {
		FUZZ_ASSERT(val == 0xffffffff);
	}
}

/* A whole command: registers, CMD, STATUS, RESULT. */
static void command(struct fuzz_vm *f, struct fuzz_model *m, struct regs *r,
		    struct fuzz_in *in)
{
	uint8_t sel = fuzz_u8(in);
	uint32_t cmd = sel % 6;	/* 0 and 5: bad commands */
	uint64_t addr;
	uint32_t len;

	r->v[3] = fuzz_u32(in);
	if (sel & 0x80) {
		addr = fuzz_u64(in);
		len = fuzz_u32(in);
		if (!(sel & 0x40) && m->nr_pins) {
			/* What is really pinned (to unpin it). */
			unsigned int k = addr % m->nr_pins;

			addr = m->pins[k].addr;
			len = (uint32_t)m->pins[k].len;
		}
	} else {
		/* Near page boundaries of RAM, up to a few pages long. */
		addr = (fuzz_u16(in) % (m->npages + 1)) * GMEM_PAGE_SIZE +
		       (sel & 0x40 ? fuzz_u16(in) % GMEM_PAGE_SIZE : 0);
		len = fuzz_u16(in) % (4 * GMEM_PAGE_SIZE) + 1;
		if (sel & 0x20)
			len *= 64;
	}
	r->v[0] = (uint32_t)addr;
	r->v[1] = (uint32_t)(addr >> 32);
	r->v[2] = len;
	fuzz_port_write32(f, GM_DMA_ADDR_LO, r->v[0]);
	fuzz_port_write32(f, GM_DMA_ADDR_HI, r->v[1]);
	fuzz_port_write32(f, GM_DMA_LEN, r->v[2]);
	fuzz_port_write32(f, GM_DMA_PATTERN, r->v[3]);
	check_cmd(f, m, r, cmd);
}

static void change(struct fuzz_vm *f, struct fuzz_model *m, bool plug_op,
		   struct fuzz_in *in)
{
	uint8_t sel = fuzz_u8(in);
	uint64_t off, len;
	int64_t got, want;

	page_range(in, m->npages, &off, &len);
	if (plug_op) {
		want = model_plug(m, off, len, sel & 1);
		got = gmem_set_plugged(f->vm.gmem, off, len, sel & 1);
	} else {
		enum gmem_state to = sel & 1 ? GMEM_SHARED : GMEM_PRIVATE;

		want = model_convert(m, off, len, to);
		got = gmem_convert(f->vm.gmem, off, len, to);
	}
	if (got != want)
		fuzz_fail("%s [%#llx, +%#llx) %s: %lld, the model says %lld",
			  plug_op ? "set_plugged" : "convert",
			  (unsigned long long)off, (unsigned long long)len,
			  sel & 1 ? (plug_op ? "plug" : "to shared") :
				    (plug_op ? "unplug" : "to private"),
			  (long long)got, (long long)want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct fuzz_vm_opts o = { 0 };
	static struct fuzz_vm f;
	struct fuzz_model m;
	struct regs r = { { 0 } };
	unsigned int ops = 0;

	fuzz_vm_opts_read(&in, &o);
	fuzz_vm_init(&f, &o, true);
	model_init(&m, f.vm.ram.top, o.hole_start, o.hole,
		   o.mode == GMEM_MODE_IN_PLACE, o.init_shared);

	while (in.left && ops++ < MAX_OPS) {
		switch (fuzz_u8(&in) % 8) {
		case 0:
		case 1:
			raw_access(&f, &m, &r, &in);
			break;
		case 2:
		case 3:
		case 4:
			command(&f, &m, &r, &in);
			break;
		case 5:
		case 6:
			change(&f, &m, false, &in);
			break;
		default:
			change(&f, &m, true, &in);
			break;
		}
	}
	fuzz_vm_check(&f);
	model_free(&m);
	fuzz_vm_destroy(&f);
	return 0;
}
