/* SPDX-License-Identifier: MIT */
/*
 * gmvm's hypercall handling of guest ABI extension 3 without KVM: the
 * real doorbell handler (vmm/hypercall.c) on the fuzzers' VM
 * (fuzz/lib/fuzz_vm.c: real libgmem, real DMA device, no vCPU), the guest
 * played by this program through the doorbell's registers and the shared
 * view.  In both modes (and with --audit each):
 *  - CONVERT_BATCH converts both ways at once, writes exactly the 16
 *    header bytes, counts itself in --stats (text and JSON), keeps
 *    content as section 5 says;
 *  - every bad request (registers, list page private or unplugged, each
 *    kind of bad entry, an entry covering the list page, overlapping
 *    entries named by the documented rule) gets -22, writes the header
 *    only where the ABI says, and changes nothing: page states, plug
 *    states and content of every page are compared before and after;
 *  - a DMA PIN makes it -11 with the entry and the pinned page named,
 *    and nothing changed; after UNPIN the same list succeeds;
 *  - libgmem's -ENOMEM (injected at each mprotect of a change) is -12 for
 *    MAP_GPA_RANGE, SET_PLUGGED and CONVERT_BATCH, the VM goes on and
 *    --stats counts it; a rollback that cannot restore a view (broken
 *    memory, -EIO) still stops the VM with 125;
 *  - for real: batches of isolated pages fragment a VM until the host's
 *    vm.max_map_count refuses, the guest gets -12 (then MAP_GPA_RANGE
 *    too), an adjacent conversion still succeeds, and once runs are
 *    merged back the refused list goes through and the audit passes.
 */
#include <stdarg.h>

#include "test_util.h"
#include "fuzz_vm.h"
#include "internal.h"	/* gmem_fault_inject() */

#define PG		GMEM_PAGE_SIZE
#define RAM		(16ULL << 20)
#define NPAGES		(RAM / PG)
#define LIST		(256 * PG)	/* the list page, at 1 MiB */
#define AREA		(512 * PG)	/* pages the lists convert */
#define SENTINEL	0x5a

static struct fuzz_vm f;

/* One doorbell hypercall; the VM must go on.  RAX. */
static int64_t hc(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2)
{
	struct kvm_regs *regs = &f.run->s.regs.regs;
	uint8_t b = 0;

	regs->rax = nr;
	regs->rbx = a0;
	regs->rcx = a1;
	regs->rdx = a2;
	f.run->kvm_dirty_regs = 0;
	if (fuzz_port_io(&f, GM_PORT_DOORBELL, true, 1, &b) != EXIT_RESUME)
		TEST_FAIL("hypercall %#llx (%#llx, %#llx, %#llx) stopped the VM: %s",
			  (unsigned long long)nr, (unsigned long long)a0,
			  (unsigned long long)a1, (unsigned long long)a2,
			  f.vm.stop_msg);
	return (int64_t)regs->rax;
}

static int64_t map(uint64_t gpa, uint64_t pages, bool private)
{
	return hc(GM_HC_MAP_GPA_RANGE, gpa, pages,
		  private ? GM_MAP_PRIVATE : GM_MAP_SHARED);
}

static int64_t batch(uint64_t list, uint64_t n)
{
	return hc(GM_HC_CONVERT_BATCH, list, n, 0);
}

/* The guest writes the list page through the shared view: the header
 * filled with SENTINEL, then the entries. */
static void put_list(uint64_t list, const struct gm_batch_entry *e,
		     unsigned int n)
{
	static struct gm_batch_list l;

	memset(&l.hdr, SENTINEL, sizeof(l.hdr));
	memcpy(l.entries, e, n * sizeof(*e));
	TEST_ASSERT_EQ(gmem_access(f.vm.gmem, list, &l,
				   sizeof(l.hdr) + n * sizeof(*e), true,
				   GMEM_SHARED), 0);
}

/* The header as the guest reads it; false if it still holds SENTINEL. */
static bool get_hdr(uint64_t list, struct gm_batch_header *h)
{
	uint8_t raw[sizeof(*h)], same[sizeof(*h)];

	TEST_ASSERT_EQ(gmem_access(f.vm.gmem, list, raw, sizeof(raw), false,
				   GMEM_SHARED), 0);
	memset(same, SENTINEL, sizeof(same));
	memcpy(h, raw, sizeof(*h));
	return memcmp(raw, same, sizeof(raw)) != 0;
}

static void expect_hdr(uint64_t list, int64_t status, unsigned int done,
		       unsigned int failed, uint64_t busy_gpa)
{
	struct gm_batch_header h;

	if (!get_hdr(list, &h))
		TEST_FAIL("the header was not written (status %lld expected)",
			  (long long)status);
	if (h.status != status || h.done != done || h.failed != failed ||
	    h.busy_gpa != busy_gpa)
		TEST_FAIL("header {done %u, failed %#x, status %d, busy %#llx}, expected {%u, %#x, %lld, %#llx}",
			  h.done, h.failed, h.status,
			  (unsigned long long)h.busy_gpa, done, failed,
			  (long long)status, (unsigned long long)busy_gpa);
}

static void expect_no_hdr(uint64_t list)
{
	struct gm_batch_header h;

	if (get_hdr(list, &h))
		TEST_FAIL("the header was written: status %d", h.status);
}

/* ---- what every page holds: state, plug state, first byte -------------- */

struct snap {
	uint8_t state[NPAGES], plugged[NPAGES], byte[NPAGES];
};

static void take(struct snap *s)
{
	uint64_t p;

	for (p = 0; p < NPAGES; p++) {
		int st = gmem_state_at(f.vm.gmem, p * PG, NULL, NULL);
		int pl = gmem_plugged_at(f.vm.gmem, p * PG, NULL, NULL);

		TEST_ASSERT(st >= 0 && pl >= 0);
		s->state[p] = (uint8_t)st;
		s->plugged[p] = (uint8_t)pl;
		s->byte[p] = 0;
		if (pl)
			TEST_ASSERT_EQ(gmem_access(f.vm.gmem, p * PG,
						   &s->byte[p], 1, false,
						   (enum gmem_state)st), 0);
	}
}

static void expect_unchanged(const struct snap *before, const char *what)
{
	static struct snap now;
	uint64_t p;

	take(&now);
	for (p = 0; p < NPAGES; p++)
		if (now.state[p] != before->state[p] ||
		    now.plugged[p] != before->plugged[p] ||
		    now.byte[p] != before->byte[p])
			TEST_FAIL("%s changed page %#llx: state %u -> %u, plugged %u -> %u, byte %#x -> %#x",
				  what, (unsigned long long)(p * PG),
				  before->state[p], now.state[p],
				  before->plugged[p], now.plugged[p],
				  before->byte[p], now.byte[p]);
}

/* Page @p of AREA holds @b in the view of its state. */
static void mark(uint64_t p, uint8_t b)
{
	int st = gmem_state_at(f.vm.gmem, p * PG, NULL, NULL);

	TEST_ASSERT_EQ(gmem_access(f.vm.gmem, p * PG, &b, 1, true,
				   (enum gmem_state)st), 0);
}

static uint8_t byte_at(uint64_t p)
{
	int st = gmem_state_at(f.vm.gmem, p * PG, NULL, NULL);
	uint8_t b;

	TEST_ASSERT_EQ(gmem_access(f.vm.gmem, p * PG, &b, 1, false,
				   (enum gmem_state)st), 0);
	return b;
}

static void start_vm(enum gmem_mode mode, bool audit_each, uint64_t ram,
		     bool dmatest)
{
	struct fuzz_vm_opts o = { .ram_size = ram, .mode = mode,
				  .audit_each = audit_each };

	fuzz_vm_init(&f, &o, dmatest);
	/* The guest makes its list page shared. */
	TEST_ASSERT_EQ(map(LIST, 1, false), 0);
}

/* ---- a successful batch --------------------------------------------------- */

static void test_success(void)
{
	struct gm_batch_entry e[GM_BATCH_MAX_ENTRIES];
	uint64_t a = AREA / PG, p;
	unsigned int i;

	/* Pages a .. a+63 shared (0x11), a+64 .. a+127 private (0x22). */
	TEST_ASSERT_EQ(map(AREA, 64, false), 0);
	for (p = 0; p < 128; p++)
		mark(a + p, p < 64 ? 0x11 : 0x22);
	/* Even shared pages to private, odd private ones to shared, and one
	 * entry whose pages are already as asked. */
	for (i = 0; i < 32; i++) {
		e[i] = (struct gm_batch_entry){ .gpa = (a + 2 * i) * PG,
			.pages = 1, .target = GM_BATCH_TO_PRIVATE };
		e[32 + i] = (struct gm_batch_entry){
			.gpa = (a + 64 + 2 * i + 1) * PG, .pages = 1,
			.target = GM_BATCH_TO_SHARED };
	}
	e[64] = (struct gm_batch_entry){ .gpa = (a + 200) * PG, .pages = 8,
					 .target = GM_BATCH_TO_PRIVATE };
	put_list(LIST, e, 65);
	TEST_ASSERT_EQ(batch(LIST, 65), 0);
	expect_hdr(LIST, 0, 65, GM_BATCH_NO_ENTRY, 0);
	for (p = 0; p < 128; p++) {
		bool converted = p < 64 ? !(p & 1) : (p & 1);
		int want = p < 64 ? (converted ? GMEM_PRIVATE : GMEM_SHARED) :
				    (converted ? GMEM_SHARED : GMEM_PRIVATE);
		uint8_t old = p < 64 ? 0x11 : 0x22;

		TEST_ASSERT_EQ(gmem_state_at(f.vm.gmem, (a + p) * PG, NULL,
					     NULL), want);
		TEST_ASSERT_EQ(byte_at(a + p),
			       converted && gmem_get_mode(f.vm.gmem) ==
			       GMEM_MODE_DISCARD ? 0 : old);
	}
	TEST_ASSERT_EQ(f.vcpu.stats.batch_calls, 1);
	TEST_ASSERT_EQ(f.vcpu.stats.batch_entries, 65);
	TEST_ASSERT_EQ(f.vcpu.stats.batch_pages, 64);
	/* Entries are never written back. */
	{
		struct gm_batch_entry back[65];

		TEST_ASSERT_EQ(gmem_access(f.vm.gmem, LIST + 16, back,
					   sizeof(back), false, GMEM_SHARED), 0);
		TEST_ASSERT(!memcmp(back, e, sizeof(back)));
	}
	/* The largest list, every entry one page of its own. */
	for (i = 0; i < GM_BATCH_MAX_ENTRIES; i++)
		e[i] = (struct gm_batch_entry){ .gpa = (a + 2 * i) * PG,
			.pages = 1, .target = GM_BATCH_TO_SHARED };
	put_list(LIST, e, GM_BATCH_MAX_ENTRIES);
	TEST_ASSERT_EQ(batch(LIST, GM_BATCH_MAX_ENTRIES), 0);
	expect_hdr(LIST, 0, GM_BATCH_MAX_ENTRIES, GM_BATCH_NO_ENTRY, 0);
	for (i = 0; i < GM_BATCH_MAX_ENTRIES; i++)
		TEST_ASSERT_EQ(gmem_state_at(f.vm.gmem, (a + 2 * i) * PG, NULL,
					     NULL), GMEM_SHARED);
}

/* ---- bad requests ----------------------------------------------------------- */

/* @e[@n] must get -22 naming @failed (or, NO_ENTRY and @no_hdr, no header)
 * and change nothing. */
static void expect_refused(uint64_t list, const struct gm_batch_entry *e,
			   unsigned int n, uint64_t a1, uint64_t a2,
			   unsigned int failed, bool no_hdr, const char *what)
{
	static struct snap before;
	uint64_t calls = f.vcpu.stats.batch_calls;
	int64_t r;

	put_list(LIST, e, n);
	take(&before);
	r = hc(GM_HC_CONVERT_BATCH, list, a1, a2);
	if (r != GM_HC_EINVAL)
		TEST_FAIL("%s: %lld, expected -22", what, (long long)r);
	if (no_hdr)
		expect_no_hdr(LIST);
	else
		expect_hdr(LIST, GM_HC_EINVAL, 0, failed, 0);
	put_list(LIST, e, n);	/* the header's first byte is in the snapshot */
	expect_unchanged(&before, what);
	TEST_ASSERT_EQ(f.vcpu.stats.batch_calls, calls + 1);
}

static void test_refused(void)
{
	struct gm_batch_entry e[GM_BATCH_MAX_ENTRIES + 1], ok[4];
	uint64_t a = AREA / PG;
	unsigned int i, n = 4;

	for (i = 0; i < GM_BATCH_MAX_ENTRIES + 1; i++)
		e[i] = (struct gm_batch_entry){ .gpa = (a + 2 * i) * PG,
			.pages = 1, .target = (uint8_t)(i & 1) };
	memcpy(ok, e, sizeof(ok));

	/* Registers: nothing read, nothing written. */
	expect_refused(LIST, e, n, 0, 0, 0, true, "a1 = 0");
	expect_refused(LIST, e, n, GM_BATCH_MAX_ENTRIES + 1, 0, 0, true,
		       "254 entries");
	expect_refused(LIST, e, n, (1ULL << 32) + 4, 0, 0, true,
		       "a count that wraps in 32 bits");
	expect_refused(LIST, e, n, n, 1, 0, true, "a2 = 1");
	expect_refused(LIST, e, n, n, 1ULL << 63, 0, true, "a2 bit 63");
	expect_refused(LIST + 8, e, n, n, 0, 0, true, "unaligned list");
	expect_refused(RAM, e, n, n, 0, 0, true, "list past RAM");
	expect_refused(UINT64_MAX & ~(PG - 1), e, n, n, 0, 0, true,
		       "list at the top of the address space");
	if (f.vm.shared_base)
		expect_refused(f.vm.shared_base + LIST, e, n, n, 0, 0, true,
			       "a shared-view address");
	/* The list page private, then unplugged: nothing read or written. */
	expect_refused(LIST + PG, e, n, n, 0, 0, true, "a private list page");
	TEST_ASSERT_EQ(hc(GM_HC_SET_PLUGGED, LIST + 2 * PG, 1, 0), 0);
	TEST_ASSERT_EQ(map(LIST + 2 * PG, 1, false), 0);
	expect_refused(LIST + 2 * PG, e, n, n, 0, 0, true,
		       "an unplugged list page");

	/* Entries: -22 naming the first bad one. */
	e[2].gpa += 0x800;
	expect_refused(LIST, e, n, n, 0, 2, false, "an unaligned entry");
	e[2] = ok[2];
	e[3].pages = 0;
	expect_refused(LIST, e, n, n, 0, 3, false, "no pages");
	e[3] = ok[3];
	e[1].gpa = RAM - PG;
	e[1].pages = 2;
	expect_refused(LIST, e, n, n, 0, 1, false, "past RAM");
	e[1].gpa = UINT64_MAX & ~(PG - 1);
	expect_refused(LIST, e, n, n, 0, 1, false, "wrapping");
	e[1].pages = UINT32_MAX;
	e[1].gpa = 0;
	expect_refused(LIST, e, n, n, 0, 1, false, "4 G pages");
	e[1] = ok[1];
	e[0].target = 2;
	expect_refused(LIST, e, n, n, 0, 0, false, "target 2");
	e[0] = ok[0];
	for (i = 0; i < 3; i++) {
		e[3].reserved[i] = 1;
		expect_refused(LIST, e, n, n, 0, 3, false, "reserved byte");
		e[3].reserved[i] = 0;
	}
	/* Covering the list page, whatever the target (it stays shared). */
	e[2] = (struct gm_batch_entry){ .gpa = LIST, .pages = 1,
					.target = GM_BATCH_TO_SHARED };
	expect_refused(LIST, e, n, n, 0, 2, false, "the list page, to shared");
	e[2] = (struct gm_batch_entry){ .gpa = LIST - 4 * PG, .pages = 8,
					.target = GM_BATCH_TO_PRIVATE };
	expect_refused(LIST, e, n, n, 0, 2, false, "across the list page");
	e[2] = ok[2];
	/* Two bad ones: the first in list order. */
	e[3].target = 9;
	e[1].pages = 0;
	expect_refused(LIST, e, n, n, 0, 1, false, "first of two bad");
	e[1] = ok[1];
	e[3] = ok[3];
	/* Overlaps, whatever the targets: sorted by GPA (then index), the
	 * first entry starting inside the one before it is named. */
	e[3] = (struct gm_batch_entry){ .gpa = e[1].gpa, .pages = 1,
					.target = (uint8_t)!e[1].target };
	expect_refused(LIST, e, n, n, 0, 3, false, "same page, both ways");
	e[3] = (struct gm_batch_entry){ .gpa = e[0].gpa - PG, .pages = 2,
					.target = e[0].target };
	expect_refused(LIST, e, n, n, 0, 0, false,
		       "a later entry starting before an earlier one");
	e[3] = ok[3];
	/* And the list that was refused so often is fine. */
	put_list(LIST, ok, n);
	TEST_ASSERT_EQ(batch(LIST, n), 0);
	expect_hdr(LIST, 0, n, GM_BATCH_NO_ENTRY, 0);
	/* Unknown through vmcall (KVM does not forward the number). */
	f.run->exit_reason = KVM_EXIT_HYPERCALL;
	f.run->hypercall.nr = GM_HC_CONVERT_BATCH;
	f.run->hypercall.args[0] = LIST;
	f.run->hypercall.args[1] = 1;
	f.run->hypercall.args[2] = 0;
	f.vm.vmcall = true;
	TEST_ASSERT_EQ(hypercall_vmcall_exit(&f.vcpu), EXIT_RESUME);
	f.vm.vmcall = false;
	TEST_ASSERT_EQ((int64_t)f.run->hypercall.ret, GM_HC_ENOSYS);
}

/* ---- busy ------------------------------------------------------------------- */

static void test_busy(void)
{
	struct gm_batch_entry e[3];
	static struct snap before;
	uint64_t a = AREA / PG + 300, pinned = (a + 21) * PG, busy0;
	uint32_t res;

	TEST_ASSERT_EQ(map(a * PG, 40, false), 0);
	TEST_ASSERT_EQ(fuzz_dma_command(&f, GM_DMA_CMD_PIN, pinned, PG, 0,
					&res), GM_DMA_OK);
	e[0] = (struct gm_batch_entry){ .gpa = a * PG, .pages = 4,
					.target = GM_BATCH_TO_PRIVATE };
	e[1] = (struct gm_batch_entry){ .gpa = (a + 30) * PG, .pages = 1,
					.target = GM_BATCH_TO_PRIVATE };
	e[2] = (struct gm_batch_entry){ .gpa = (a + 16) * PG, .pages = 8,
					.target = GM_BATCH_TO_PRIVATE };
	put_list(LIST, e, 3);
	take(&before);
	busy0 = f.vcpu.stats.convert_busy;
	TEST_ASSERT_EQ(batch(LIST, 3), GM_HC_EAGAIN);
	expect_hdr(LIST, GM_HC_EAGAIN, 0, 2, pinned);
	put_list(LIST, e, 3);	/* the sentinel header back */
	expect_unchanged(&before, "a busy batch");
	TEST_ASSERT_EQ(f.vcpu.stats.convert_busy, busy0 + 1);
	TEST_ASSERT_EQ(f.vcpu.stats.busy_last_gpa, pinned);
	TEST_ASSERT_EQ(fuzz_dma_command(&f, GM_DMA_CMD_UNPIN, pinned, PG, 0,
					&res), GM_DMA_OK);
	TEST_ASSERT_EQ(batch(LIST, 3), 0);
	expect_hdr(LIST, 0, 3, GM_BATCH_NO_ENTRY, 0);
	TEST_ASSERT_EQ(gmem_state_at(f.vm.gmem, pinned, NULL, NULL),
		       GMEM_PRIVATE);
}

/* ---- -12 and broken memory, injected ----------------------------------------- */

static void test_nomem_injected(void)
{
	struct gmem_vm *g = f.vm.gmem;
	struct gm_batch_entry e[2];
	static struct snap before;
	uint64_t a = AREA / PG + 400, nomem0 = f.vcpu.stats.hc_nomem;
	unsigned int nth;

	/* Each change below needs two mprotects or more: [a, a+8) private,
	 * a+8 shared and a+9 private (an unplug revokes each run's view). */
	TEST_ASSERT_EQ(map(a * PG, 16, true), 0);
	TEST_ASSERT_EQ(map((a + 8) * PG, 1, false), 0);
	e[0] = (struct gm_batch_entry){ .gpa = a * PG, .pages = 2,
					.target = GM_BATCH_TO_SHARED };
	e[1] = (struct gm_batch_entry){ .gpa = (a + 5) * PG, .pages = 1,
					.target = GM_BATCH_TO_SHARED };
	/* Each mprotect of a change in turn (the first or the last of the
	 * revokes and grants): all end in a clean -ENOMEM. */
	for (nth = 1; nth <= 2; nth++) {
		take(&before);
		gmem_fault_inject(g, GMEM_FAULT_MPROTECT, nth, ENOMEM);
		TEST_ASSERT_EQ(map(a * PG, 4, false), GM_HC_ENOMEM);
		expect_unchanged(&before, "MAP_GPA_RANGE at -ENOMEM");

		gmem_fault_inject(g, GMEM_FAULT_MPROTECT, nth, ENOMEM);
		TEST_ASSERT_EQ(hc(GM_HC_SET_PLUGGED, (a + 8) * PG, 2, 0),
			       GM_HC_ENOMEM);
		expect_unchanged(&before, "SET_PLUGGED at -ENOMEM");

		put_list(LIST, e, 2);
		take(&before);
		gmem_fault_inject(g, GMEM_FAULT_MPROTECT, 2 * nth, ENOMEM);
		TEST_ASSERT_EQ(batch(LIST, 2), GM_HC_ENOMEM);
		expect_hdr(LIST, GM_HC_ENOMEM, 0, GM_BATCH_NO_ENTRY, 0);
		put_list(LIST, e, 2);
		expect_unchanged(&before, "CONVERT_BATCH at -ENOMEM");
	}
	gmem_fault_inject(g, GMEM_FAULT_MPROTECT, 0, 0);
	TEST_ASSERT_EQ(f.vcpu.stats.hc_nomem, nomem0 + 6);
	TEST_ASSERT(!f.vm.stopping);
	fuzz_vm_check(&f);
	/* The same calls go through now. */
	TEST_ASSERT_EQ(map(a * PG, 4, false), 0);
	TEST_ASSERT_EQ(hc(GM_HC_SET_PLUGGED, (a + 8) * PG, 2, 0), 0);
	TEST_ASSERT_EQ(hc(GM_HC_SET_PLUGGED, (a + 8) * PG, 2, GM_PLUG), 0);
	TEST_ASSERT_EQ(batch(LIST, 2), 0);
	expect_hdr(LIST, 0, 2, GM_BATCH_NO_ENTRY, 0);
}

/* gmvm's --stats of this VM, in @fmt, as one string (static). */
static const char *stats_text(enum stats_format fmt)
{
	static char out[16384];
	FILE *real = stdout, *tmp = tmpfile();
	size_t n;

	TEST_ASSERT(tmp);
	f.cfg.stats = fmt;
	stdout = tmp;
	stats_print(&f.vm);
	stdout = real;
	f.cfg.stats = STATS_NONE;
	rewind(tmp);
	n = fread(out, 1, sizeof(out) - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
	return out;
}

/* Output @t holds the text @fmt formats. */
static void __attribute__((format(printf, 2, 3)))
expect_in(const char *t, const char *fmt, ...)
{
	char want[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(want, sizeof(want), fmt, ap);
	va_end(ap);
	if (!strstr(t, want))
		TEST_FAIL("--stats lacks '%s':\n%s", want, t);
}

/* --stats shows the batch and -12 counters in both formats. */
static void check_stats(void)
{
	const struct vcpu_stats *v = &f.vcpu.stats;
	unsigned long long calls = v->batch_calls, entries = v->batch_entries;
	unsigned long long pages = v->batch_pages, nomem = v->hc_nomem;
	const char *t = stats_text(STATS_TEXT);

	expect_in(t, "batches:      %llu CONVERT_BATCH calls; those that succeeded applied %llu entries and changed %llu pages",
		  calls, entries, pages);
	expect_in(t, " failed, %llu of them -12: no memory, the host's mapping limit)",
		  nomem);
	t = stats_text(STATS_JSON);
	expect_in(t, "\"batch\": {\"calls\": %llu, \"entries\": %llu, \"pages\": %llu}",
		  calls, entries, pages);
	expect_in(t, "\"nomem\": %llu, \"latency_ns_p50\"", nomem);
}

/* A rollback that cannot restore a view: broken memory stays fatal. */
static void test_broken_stops(enum gmem_mode mode)
{
	struct kvm_regs *regs;
	uint8_t b = 0;

	start_vm(mode, false, RAM, true);
	/* The grant fails, and so does every mprotect after it: the undo of
	 * the revoke too. */
	gmem_fault_inject(f.vm.gmem, GMEM_FAULT_MPROTECT,
			  2 | GMEM_FAULT_STICKY, ENOMEM);
	regs = &f.run->s.regs.regs;
	regs->rax = GM_HC_MAP_GPA_RANGE;
	regs->rbx = AREA;
	regs->rcx = 1;
	regs->rdx = GM_MAP_SHARED;
	TEST_ASSERT_EQ(fuzz_port_io(&f, GM_PORT_DOORBELL, true, 1, &b),
		       EXIT_STOP);
	TEST_ASSERT(f.vm.stopping);
	TEST_ASSERT_EQ(f.vm.status, GM_EXIT_HOST_ERROR);
	if (!strstr(f.vm.stop_msg, "MAP_GPA_RANGE") ||
	    !strstr(f.vm.stop_msg, strerror(EIO)))
		TEST_FAIL("stop message: %s", f.vm.stop_msg);
	{
		char msg[256];

		TEST_ASSERT_EQ(gmem_audit(f.vm.gmem, msg, sizeof(msg)), -EUCLEAN);
		TEST_ASSERT(strstr(msg, "broken"));
	}
	gmem_fault_inject(f.vm.gmem, GMEM_FAULT_MPROTECT, 0, 0);
	fuzz_vm_destroy(&f);
}

/* ---- -12 for real: vm.max_map_count ----------------------------------------- */

static long max_map_count(void)
{
	FILE *fp = fopen("/proc/sys/vm/max_map_count", "r");
	long v = -1;

	if (fp) {
		if (fscanf(fp, "%ld", &v) != 1)
			v = -1;
		fclose(fp);
	}
	return v;
}

/*
 * Lists of isolated pages (every other page above the list page, to
 * shared) until the host
 * refuses.  While the process is at its mapping limit nothing may
 * allocate (see test_gmem_max_map_count.c): the checks there use
 * gmem_state_at() and gmem_access(), the merges convert 16 pages at a
 * time (8 runs: no allocation in libgmem).  The DMA device is there, as
 * in gmvm: its mapper's bookkeeping grows with the runs, near the limit.
 */
static void test_nomem_real(enum gmem_mode mode)
{
	long limit = max_map_count();
	uint64_t ram, npages, base = LIST / PG + 4, pg = base, p, fail_pg;
	struct gm_batch_entry e[GM_BATCH_MAX_ENTRIES];
	unsigned int i;
	int64_t r;

	if (limit <= 0 || limit > (1L << 20)) {
		fprintf(stderr, "not fragmenting for real: vm.max_map_count is %ld\n",
			limit);
		return;
	}
	npages = (uint64_t)limit / 2 + 8 * GM_BATCH_MAX_ENTRIES;
	ram = (npages * PG + (2ULL << 20) - 1) & ~((2ULL << 20) - 1);
	npages = ram / PG;
	start_vm(mode, false, ram, true);
	for (;;) {
		TEST_ASSERT(pg + 2 * GM_BATCH_MAX_ENTRIES < npages);
		for (i = 0; i < GM_BATCH_MAX_ENTRIES; i++)
			e[i] = (struct gm_batch_entry){
				.gpa = (pg + 2 * i) * PG, .pages = 1,
				.target = GM_BATCH_TO_SHARED };
		put_list(LIST, e, GM_BATCH_MAX_ENTRIES);
		r = batch(LIST, GM_BATCH_MAX_ENTRIES);
		if (r)
			break;
		pg += 2 * GM_BATCH_MAX_ENTRIES;
	}
	TEST_ASSERT_EQ(r, GM_HC_ENOMEM);
	expect_hdr(LIST, GM_HC_ENOMEM, 0, GM_BATCH_NO_ENTRY, 0);
	for (i = 0; i < GM_BATCH_MAX_ENTRIES; i++)
		TEST_ASSERT_EQ(gmem_state_at(f.vm.gmem, (pg + 2 * i) * PG,
					     NULL, NULL), GMEM_PRIVATE);
	/* Single pages until MAP_GPA_RANGE is refused too. */
	while ((r = map(pg * PG, 1, false)) == 0)
		pg += 2;
	TEST_ASSERT_EQ(r, GM_HC_ENOMEM);
	fail_pg = pg;
	TEST_ASSERT_EQ(gmem_state_at(f.vm.gmem, fail_pg * PG, NULL, NULL),
		       GMEM_PRIVATE);
	TEST_ASSERT(!f.vm.stopping);
	/* Adjacent to a shared run: merges, succeeds at the limit. */
	TEST_ASSERT_EQ(map((fail_pg - 1) * PG, 1, false), 0);
	/* Merge runs back, then everything is checked and goes through. */
	for (p = base; p < base + 64 * 16; p += 16)
		TEST_ASSERT_EQ(map(p * PG, 16, true), 0);
	fuzz_vm_check(&f);
	TEST_ASSERT_EQ(map(fail_pg * PG, 1, false), 0);
	TEST_ASSERT_EQ(batch(LIST, GM_BATCH_MAX_ENTRIES), GM_HC_OK);
	for (p = base; p < npages; p += 16)
		TEST_ASSERT_EQ(map(p * PG, npages - p < 16 ? npages - p : 16,
				   true), 0);
	fuzz_vm_check(&f);
	TEST_ASSERT(f.vcpu.stats.hc_nomem >= 2);
	fprintf(stderr, "%s: -12 at %llu runs (vm.max_map_count %ld)\n",
		gmem_mode_name(mode), (unsigned long long)(fail_pg - base),
		limit);
	fuzz_vm_destroy(&f);
}

int main(void)
{
	static const enum gmem_mode modes[] = { GMEM_MODE_DISCARD,
						GMEM_MODE_IN_PLACE };
	unsigned int m, audit;

	for (m = 0; m < 2; m++) {
		for (audit = 0; audit < 2; audit++) {
			start_vm(modes[m], audit, RAM, true);
			test_success();
			test_refused();
			test_busy();
			test_nomem_injected();
			check_stats();
			fuzz_vm_check(&f);
			fuzz_vm_destroy(&f);
		}
		test_broken_stops(modes[m]);
		test_nomem_real(modes[m]);
	}
	return T_EXIT_PASS;
}
