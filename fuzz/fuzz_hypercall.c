/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the hypercall dispatcher (vmm/hypercall.c): MAP_GPA_RANGE and
 * SET_PLUGGED with any registers, through the doorbell (port 0xf5, the
 * registers in the vCPU's sync regs) and through a vmcall exit, and
 * CONVERT_BATCH (extension 3) with any registers and list contents,
 * against page states the same input built up, with DMA pins held by the
 * test device so that conversions can be refused.
 *
 * Each input makes a VM (fuzz/lib/fuzz_vm.c: real libgmem, real devices,
 * no KVM; 2..32 MiB, maybe with a hole, either mode, private or shared at
 * start, optionally deferred reclaim and --audit each) and runs a sequence of hypercalls,
 * doorbell misuse (which must stop the VM as a guest fault, never as a
 * host error), PINs and UNPINs.  Every result in RAX is compared with the
 * guest ABI's rules applied to fuzz/lib/fuzz_model.c, and so is the list
 * header CONVERT_BATCH writes (or must not write); at the end every
 * page's state and plug state must be the model's, libgmem's audit and
 * the device's check must pass.  The batch rules are written here again,
 * naively (every pair for overlaps), rather than shared with gmvm.
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
	default:
		r[0] = fuzz_u64(in);
		/* CONVERT_BATCH needs a list: batch() does it. */
		if (r[0] == GM_HC_CONVERT_BATCH)
			r[0] = ~r[0];
		break;
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

/* ---- CONVERT_BATCH (extension 3) ------------------------------------------ */

#define HDR_SENTINEL 0xa7

struct batch_want {
	int64_t status;
	bool written;		/* the header is written */
	int failed;		/* -1: no entry to blame */
	uint64_t busy_gpa;
};

/* Entry @e, from gmvm's copy of the list at @list, breaks step 2. */
static bool entry_bad(const struct fuzz_model *m, const struct gm_batch_entry *e,
		      uint64_t list)
{
	uint64_t len = (uint64_t)e->pages * GMEM_PAGE_SIZE;

	return e->gpa % GMEM_PAGE_SIZE || !model_in_ram(m, e->gpa, len) ||
	       e->target > GM_BATCH_TO_PRIVATE ||
	       e->reserved[0] || e->reserved[1] || e->reserved[2] ||
	       (list >= e->gpa && list < e->gpa + len);
}

/* Does entry @j come before entry @k, sorted by GPA, then index? */
static bool before(const struct gm_batch_entry *e, unsigned int j,
		   unsigned int k)
{
	return e[j].gpa < e[k].gpa || (e[j].gpa == e[k].gpa && j < k);
}

/*
 * Step 3, naively: among the entries that overlap an entry ordered before
 * them, the first in that order; or -1.
 */
static int overlap_named(const struct gm_batch_entry *e, unsigned int n)
{
	int named = -1;
	unsigned int j, k;

	for (j = 0; j < n; j++) {
		for (k = 0; k < n; k++) {
			uint64_t ek = e[k].gpa + e[k].pages * GMEM_PAGE_SIZE;

			if (k == j || !before(e, k, j) || e[j].gpa >= ek)
				continue;
			if (named < 0 || before(e, j, (unsigned int)named))
				named = (int)j;
		}
	}
	return named;
}

/* Steps 2 to 4 on the model, applied on success. */
static void expected_batch(struct fuzz_model *m, uint64_t list,
			   const struct gm_batch_entry *e, unsigned int n,
			   struct batch_want *w)
{
	uint64_t p, best = UINT64_MAX;
	unsigned int i;

	w->written = true;
	w->status = GM_HC_EINVAL;
	for (i = 0; i < n; i++) {
		if (entry_bad(m, &e[i], list)) {
			w->failed = (int)i;
			return;
		}
	}
	w->failed = overlap_named(e, n);
	if (w->failed >= 0)
		return;
	/* Busy: the lowest pinned reachable page any entry makes private
	 * (libgmem drops runs in GPA order, the device names the first
	 * pinned page of the run it refuses). */
	for (i = 0; i < n; i++) {
		if (e[i].target != GM_BATCH_TO_PRIVATE)
			continue;
		for (p = e[i].gpa / GMEM_PAGE_SIZE;
		     p < e[i].gpa / GMEM_PAGE_SIZE + e[i].pages && p < best; p++)
			if (model_page_busy(m, p)) {
				best = p;
				w->failed = (int)i;
			}
	}
	if (w->failed >= 0) {
		w->status = GM_HC_EAGAIN;
		w->busy_gpa = best * GMEM_PAGE_SIZE;
		return;
	}
	for (i = 0; i < n; i++)
		FUZZ_ASSERT(model_convert(m, e[i].gpa,
					  e[i].pages * GMEM_PAGE_SIZE,
					  e[i].target == GM_BATCH_TO_PRIVATE ?
					  GMEM_PRIVATE : GMEM_SHARED) >= 0);
	w->status = GM_HC_OK;
}

/* An entry: mostly a short range inside RAM, sometimes anything. */
static void batch_entry(struct fuzz_in *in, const struct fuzz_model *m,
			struct gm_batch_entry *e)
{
	uint8_t sel = fuzz_u8(in);

	memset(e, 0, sizeof(*e));
	if (sel & 0x80) {
		e->gpa = sel & 0x40 ? fuzz_u64(in) :
				      fuzz_u16(in) * GMEM_PAGE_SIZE + fuzz_u8(in);
		e->pages = fuzz_u32(in);
		e->target = fuzz_u8(in);
		e->reserved[fuzz_u8(in) % 3] = fuzz_u8(in);
		return;
	}
	e->gpa = (fuzz_u16(in) % m->npages) * GMEM_PAGE_SIZE;
	e->pages = 1 + fuzz_u8(in) % 16;
	e->target = sel & 1;
}

static void batch(struct fuzz_vm *f, struct fuzz_model *m, struct fuzz_in *in)
{
	static struct gm_batch_list l;
	struct kvm_regs *regs = &f->run->s.regs.regs;
	struct batch_want w = { .failed = -1 };
	uint8_t sel = fuzz_u8(in), b = 0, sentinel[sizeof(l.hdr)];
	uint64_t a0, a1, a2, lp;
	bool list_ok;
	unsigned int n, i;

	a0 = sel & 1 ? fuzz_u64(in) :
		       (fuzz_u16(in) % (m->npages + 1)) * GMEM_PAGE_SIZE;
	a1 = sel & 2 ? fuzz_u64(in) :
	     sel & 4 ? fuzz_u8(in) : fuzz_u8(in) % 9;
	a2 = sel & 8 ? fuzz_u64(in) : 0;
	n = a1 < GM_BATCH_MAX_ENTRIES ? (unsigned int)a1 : GM_BATCH_MAX_ENTRIES;
	for (i = 0; i < n; i++)
		batch_entry(in, m, &l.entries[i]);
	memset(&l.hdr, HDR_SENTINEL, sizeof(l.hdr));
	memset(sentinel, HDR_SENTINEL, sizeof(sentinel));
	/* The guest writes its list where it can: a shared, plugged page. */
	lp = a0 / GMEM_PAGE_SIZE;
	list_ok = a0 % GMEM_PAGE_SIZE == 0 &&
		  model_in_ram(m, a0, GMEM_PAGE_SIZE) && m->shared[lp] &&
		  !m->unplugged[lp];
	if (list_ok)
		FUZZ_ASSERT(!gmem_access(f->vm.gmem, a0, &l,
					 sizeof(l.hdr) + n * sizeof(l.entries[0]),
					 true, GMEM_SHARED));
	w.status = GM_HC_EINVAL;
	if (list_ok && a1 >= 1 && a1 <= GM_BATCH_MAX_ENTRIES && !a2)
		expected_batch(m, a0, l.entries, n, &w);

	regs->rax = GM_HC_CONVERT_BATCH;
	regs->rbx = a0;
	regs->rcx = a1;
	regs->rdx = a2;
	f->run->kvm_dirty_regs = 0;
	if (fuzz_port_io(f, GM_PORT_DOORBELL, true, 1, &b) != EXIT_RESUME)
		fuzz_fail("CONVERT_BATCH (%#llx, %#llx, %#llx) stopped the VM: %s",
			  (unsigned long long)a0, (unsigned long long)a1,
			  (unsigned long long)a2, f->vm.stop_msg);
	if ((int64_t)regs->rax != w.status)
		fuzz_fail("CONVERT_BATCH (%#llx, %#llx, %#llx): RAX %lld, the ABI says %lld",
			  (unsigned long long)a0, (unsigned long long)a1,
			  (unsigned long long)a2, (long long)regs->rax,
			  (long long)w.status);
	if (!list_ok)
		return;
	/* The call never takes the list page away: read the header. */
	FUZZ_ASSERT(!gmem_access(f->vm.gmem, a0, &l.hdr, sizeof(l.hdr), false,
				 GMEM_SHARED));
	if (!w.written) {
		if (memcmp(&l.hdr, sentinel, sizeof(sentinel)))
			fuzz_fail("CONVERT_BATCH (%#llx, %#llx, %#llx) wrote the header",
				  (unsigned long long)a0, (unsigned long long)a1,
				  (unsigned long long)a2);
		return;
	}
	if (l.hdr.status != w.status ||
	    l.hdr.done != (w.status ? 0 : n) ||
	    l.hdr.failed != (w.failed < 0 ? GM_BATCH_NO_ENTRY :
			     (unsigned int)w.failed) ||
	    l.hdr.busy_gpa != w.busy_gpa)
		fuzz_fail("CONVERT_BATCH of %u entries: header {done %u, failed %#x, status %d, busy %#llx}, the ABI says {%u, %#x, %lld, %#llx}",
			  n, l.hdr.done, l.hdr.failed, l.hdr.status,
			  (unsigned long long)l.hdr.busy_gpa,
			  w.status ? 0 : n,
			  w.failed < 0 ? GM_BATCH_NO_ENTRY :
			  (unsigned int)w.failed,
			  (long long)w.status,
			  (unsigned long long)w.busy_gpa);
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
		uint8_t op = fuzz_u8(&in);

		/* The top 16 values are new (extension 3), so that older
		 * seeds keep their meaning but for those bytes. */
		if (op >= 0xf0) {
			batch(&f, &m, &in);
			continue;
		}
		switch (op % 8) {
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
