/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the hypercall dispatcher (vmm/hypercall.c): MAP_GPA_RANGE and
 * SET_PLUGGED with any registers, through the doorbell (port 0xf5, the
 * registers in the vCPU's sync regs) and through a vmcall exit, against
 * page states the same input built up, with DMA pins held by the test
 * device so that conversions can be refused.
 *
 * Each input makes a VM (fuzz/lib/fuzz_vm.c: real libgmem, real devices,
 * no KVM; 2..32 MiB, maybe with a hole, either mode, private or shared at
 * start, optionally deferred reclaim and --audit each) and runs a sequence of hypercalls,
 * doorbell misuse (which must stop the VM as a guest fault, never as a
 * host error), PINs and UNPINs.  Every result in RAX is compared with the
 * guest ABI's rules applied to fuzz/lib/fuzz_model.c, and at the end every
 * page's state and plug state must be the model's, libgmem's audit and
 * the device's check must pass.
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

/* The guest ABI (section 5, extension 1) applied to the model. */
static int64_t expected(struct fuzz_model *m, uint64_t nr, uint64_t a0,
			uint64_t a1, uint64_t a2, bool doorbell)
{
	uint64_t len;
	int64_t r;

	if (nr != GM_HC_MAP_GPA_RANGE &&
	    !(nr == GM_HC_SET_PLUGGED && doorbell))
		return GM_HC_ENOSYS;
	if (a0 % GMEM_PAGE_SIZE || !a1 || a1 > UINT64_MAX / GMEM_PAGE_SIZE)
		return GM_HC_EINVAL;
	len = a1 * GMEM_PAGE_SIZE;
	if (!model_in_ram(m, a0, len))
		return GM_HC_EINVAL;
	if (nr == GM_HC_SET_PLUGGED) {
		if (a2 & GM_PLUG_RESERVED_MASK)
			return GM_HC_EINVAL;
		r = model_plug(m, a0, len, a2 & GM_PLUG);
	} else {
		if ((a2 & GM_MAP_RESERVED_MASK) ||
		    (a2 & GM_MAP_PAGE_SZ_MASK) > GM_MAP_PAGE_SZ_1G)
			return GM_HC_EINVAL;
		r = model_convert(m, a0, len, a2 & GM_MAP_PRIVATE ?
					      GMEM_PRIVATE : GMEM_SHARED);
	}
	FUZZ_ASSERT(r >= 0 || r == -EAGAIN);
	return r == -EAGAIN ? GM_HC_EAGAIN : GM_HC_OK;
}

/* Registers: mostly sane (page-aligned ranges in RAM), sometimes any. */
static void hc_regs(struct fuzz_in *in, const struct fuzz_model *m,
		    uint64_t r[4])
{
	uint8_t sel = fuzz_u8(in);

	switch (sel & 3) {
	case 0: case 1: r[0] = GM_HC_MAP_GPA_RANGE; break;
	case 2: r[0] = GM_HC_SET_PLUGGED; break;
	default: r[0] = fuzz_u64(in); break;
	}
	if (sel & 4) {
		r[1] = fuzz_u64(in);
		r[2] = fuzz_u64(in);
	} else {
		r[1] = (fuzz_u16(in) % (m->npages + 1)) * GMEM_PAGE_SIZE;
		r[2] = fuzz_u16(in) % (m->npages + 1);
	}
	r[3] = sel & 8 ? fuzz_u64(in) : fuzz_u8(in) & (sel & 16 ? 0x3f : 0x13);
}

static void doorbell(struct fuzz_vm *f, struct fuzz_model *m,
		     struct fuzz_in *in)
{
	struct kvm_regs *regs = &f->run->s.regs.regs;
	uint64_t r[4];
	int64_t want;
	uint8_t b = 0;

	hc_regs(in, m, r);
	want = expected(m, r[0], r[1], r[2], r[3], true);
	regs->rax = r[0];
	regs->rbx = r[1];
	regs->rcx = r[2];
	regs->rdx = r[3];
	f->run->kvm_dirty_regs = 0;
	if (fuzz_port_io(f, GM_PORT_DOORBELL, true, 1, &b) != EXIT_RESUME)
		fuzz_fail("doorbell nr %#llx (%#llx, %#llx, %#llx) stopped the VM: %s",
			  (unsigned long long)r[0], (unsigned long long)r[1],
			  (unsigned long long)r[2], (unsigned long long)r[3],
			  f->vm.stop_msg);
	if ((int64_t)regs->rax != want)
		fuzz_fail("doorbell nr %#llx (%#llx, %#llx, %#llx): RAX %lld, the ABI says %lld",
			  (unsigned long long)r[0], (unsigned long long)r[1],
			  (unsigned long long)r[2], (unsigned long long)r[3],
			  (long long)regs->rax, (long long)want);
	/* KVM must take RAX back, and nothing else may change. */
	FUZZ_ASSERT(f->run->kvm_dirty_regs & KVM_SYNC_X86_REGS);
	FUZZ_ASSERT(regs->rbx == r[1] && regs->rcx == r[2] &&
		    regs->rdx == r[3]);
}

static void vmcall(struct fuzz_vm *f, struct fuzz_model *m,
		   struct fuzz_in *in)
{
	struct kvm_run *run = f->run;
	uint64_t r[4];
	int64_t want;

	hc_regs(in, m, r);
	want = expected(m, r[0], r[1], r[2], r[3], false);
	run->exit_reason = KVM_EXIT_HYPERCALL;
	run->hypercall.nr = r[0];
	run->hypercall.args[0] = r[1];
	run->hypercall.args[1] = r[2];
	run->hypercall.args[2] = r[3];
	run->hypercall.ret = 0x5a5a5a5a;
	f->vm.vmcall = true;	/* as if the host's vmcall came back */
	if (hypercall_vmcall_exit(&f->vcpu) != EXIT_RESUME)
		fuzz_fail("vmcall nr %#llx stopped the VM: %s",
			  (unsigned long long)r[0], f->vm.stop_msg);
	f->vm.vmcall = false;
	if ((int64_t)run->hypercall.ret != want)
		fuzz_fail("vmcall nr %#llx (%#llx, %#llx, %#llx): ret %lld, the ABI says %lld",
			  (unsigned long long)r[0], (unsigned long long)r[1],
			  (unsigned long long)r[2], (unsigned long long)r[3],
			  (long long)run->hypercall.ret, (long long)want);
}

/* Anything but `outb` at the doorbell is a guest fault (126), not 125. */
static void doorbell_misuse(struct fuzz_vm *f, struct fuzz_in *in)
{
	static const unsigned int sizes[] = { 1, 2, 4 };
	uint8_t sel = fuzz_u8(in), b[4] = { 0 };
	unsigned int size = sizes[sel % 3];
	bool out = (sel & 4) && size != 1;
	struct vm *vm = &f->vm;

	FUZZ_ASSERT(fuzz_port_io(f, GM_PORT_DOORBELL, out, size, b) ==
		    EXIT_STOP);
	FUZZ_ASSERT(vm->stopping && vm->status == GM_EXIT_GUEST_FAULT);
	/* Undo the stop, so that the input goes on. */
	vm->stopping = false;
	vm->status = 0;
	vm->stop_msg[0] = '\0';
	__atomic_store_n(&vm->stop_flag, 0, __ATOMIC_RELEASE);
}

/* PIN or UNPIN through the DMA device: what makes a conversion busy. */
static void pin(struct fuzz_vm *f, struct fuzz_model *m, struct fuzz_in *in)
{
	uint8_t sel = fuzz_u8(in);
	uint64_t addr = (fuzz_u16(in) % m->npages) * GMEM_PAGE_SIZE +
			(sel & 0x40 ? fuzz_u16(in) % GMEM_PAGE_SIZE : 0);
	uint32_t len = fuzz_u16(in) % (8 * GMEM_PAGE_SIZE) + 1;
	uint32_t cmd = GM_DMA_CMD_PIN, status, want, result;

	if ((sel & 1) && m->nr_pins) {
		unsigned int k = (sel >> 1) % m->nr_pins;

		cmd = GM_DMA_CMD_UNPIN;
		addr = m->pins[k].addr;
		len = (uint32_t)m->pins[k].len;
	}
	want = model_dma(m, cmd, addr, len, 0, &result);
	status = fuzz_dma_command(f, cmd, addr, len, 0, &result);
	if (status != want)
		fuzz_fail("DMA %s [%#llx, +%#x): STATUS %u, the model says %u",
			  cmd == GM_DMA_CMD_PIN ? "PIN" : "UNPIN",
			  (unsigned long long)addr, len, status, want);
}

struct cmp {
	struct fuzz_model *m;
};

static int cmp_extent(void *arg, const struct gmem_extent *e)
{
	struct fuzz_model *m = ((struct cmp *)arg)->m;
	uint64_t p;

	for (p = e->gpa / GMEM_PAGE_SIZE;
	     p < (e->gpa + e->len) / GMEM_PAGE_SIZE; p++)
		if (m->shared[p] != (e->state == GMEM_SHARED) ||
		    m->unplugged[p] != !e->plugged)
			fuzz_fail("page %#llx is %s and %s, the model says %s and %s",
				  (unsigned long long)(p * GMEM_PAGE_SIZE),
				  gmem_state_name(e->state),
				  e->plugged ? "plugged" : "unplugged",
				  m->shared[p] ? "shared" : "private",
				  m->unplugged[p] ? "unplugged" : "plugged");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct fuzz_vm_opts o = { 0 };
	static struct fuzz_vm f;
	struct fuzz_model m;
	struct cmp c = { &m };
	unsigned int ops = 0;
	uint8_t cfg;

	cfg = fuzz_vm_opts_read(&in, &o);
	/* Reads /proc/self/maps after every change: rare, it is slow. */
	o.audit_each = (cfg & 0x38) == 0x38;
	fuzz_vm_init(&f, &o, true);
	model_init(&m, f.vm.ram.top, o.hole_start, o.hole,
		   o.mode == GMEM_MODE_IN_PLACE, o.init_shared);

	while (in.left && ops++ < MAX_OPS) {
		switch (fuzz_u8(&in) % 8) {
		case 0: case 1: case 2:
			doorbell(&f, &m, &in);
			break;
		case 3: case 4:
			vmcall(&f, &m, &in);
			break;
		case 5:
			doorbell_misuse(&f, &in);
			break;
		default:
			pin(&f, &m, &in);
			break;
		}
	}
	FUZZ_ASSERT(!gmem_for_each_extent(f.vm.gmem, 0, f.vm.ram.top,
					  cmp_extent, &c));
	fuzz_vm_check(&f);
	model_free(&m);
	fuzz_vm_destroy(&f);
	return 0;
}
