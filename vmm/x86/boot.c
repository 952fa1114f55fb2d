/* SPDX-License-Identifier: MIT */
/*
 * x86-64 launch state (guest ABI sections 3 and 4).
 *
 * Layout: gmvm keeps everything of its own in one area right after the
 * image, so that low memory holds nothing and a guest sees a single
 * [image start, free_start) block that is not its to use:
 *
 *   area_start = image end rounded up to 4 KiB
 *   +0      boot info (one page; the region table of guest ABI
 *           extension 4 at +2 KiB in it)
 *   +4K     GDT (null, code 0x08, data 0x10, TSS 0x18) and the TSS
 *   +8K     command line, NUL-terminated, if the guest got ARGS
 *   ...     page tables: PML4, PDPTs, (PDs when 1 GiB pages are missing)
 *   ...     one 64 KiB stack per vCPU
 *   free_start = the next 2 MiB boundary
 *
 * free_start is 2 MiB aligned (the ABI asks for 4 KiB) so that a guest can
 * carve huge-page-sized regions from it without arithmetic.
 *
 * The area lies inside the RAM range that holds the image's end: with
 * --memory-layout pc, an image above the hole puts it there too.
 *
 * Paging identity-maps every RAM range in the private view and at
 * shared_base + GPA in the shared view, with 1 GiB pages if the vCPU model
 * has pdpe1gb, else 2 MiB pages.  A hole between ranges is not mapped
 * where it is leaf-aligned (the pc hole is, both ways), so touching it is
 * a page fault; a leaf that sticks out past the end of a range maps
 * guest-physical addresses without memory, and touching them exits to
 * gmvm, which reports an access outside guest RAM.  Either way the guest
 * stops with a fault.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../gmvm.h"

#define PTE_P (1ULL << 0)
#define PTE_RW (1ULL << 1)
#define PTE_A (1ULL << 5)
#define PTE_D (1ULL << 6)
#define PTE_PS (1ULL << 7)
#define PTE_ADDR 0x000ffffffffff000ULL
/* Accessed and dirty preset: the CPU never has to write a table entry. */
#define PTE_TABLE (PTE_P | PTE_RW | PTE_A)
#define PTE_LEAF (PTE_P | PTE_RW | PTE_A | PTE_D | PTE_PS)

#define CR0_PE (1ULL << 0)
#define CR0_MP (1ULL << 1)
#define CR0_ET (1ULL << 4)
#define CR0_NE (1ULL << 5)
#define CR0_WP (1ULL << 16)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define CR4_OSFXSR (1ULL << 9)
#define CR4_OSXMMEXCPT (1ULL << 10)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define SEL_CODE 0x08
#define SEL_DATA 0x10
#define SEL_TSS 0x18
#define GDT_ENTRIES 5		/* null, code, data, TSS (two slots) */
#define TSS_OFFSET 0x80		/* within the GDT page */
#define TSS_LIMIT 0x67
/* Extension 4's region table, within the boot info page. */
#define REGIONS_OFFSET 0x800
#define REGIONS_MAX ((SZ_4K - REGIONS_OFFSET) / sizeof(struct gm_region))

_Static_assert(RAM_MAX_RANGES <= REGIONS_MAX, "region table too small");
_Static_assert(REGIONS_OFFSET >= sizeof(struct gm_boot_info_ext),
	       "region table over the boot info");

/* ---------------------------------------------------------------------- */
/* CPUID                                                                  */

int cpuid_get_supported(int kvm_fd, struct kvm_cpuid2 **out)
{
	unsigned int nent = 64;
	struct kvm_cpuid2 *c;

	for (;;) {
		c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = nent;
		if (!ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c))
			break;
		free(c);
		if (errno != E2BIG || nent >= 4096)
			return -errno;
		nent *= 2;
	}
	*out = c;
	return 0;
}

static struct kvm_cpuid_entry2 *cpuid_find(const struct kvm_cpuid2 *c,
					   uint32_t function, uint32_t index)
{
	unsigned int i;

	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = (struct kvm_cpuid_entry2 *)
			&c->entries[i];

		if (e->function != function)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) &&
		    e->index != index)
			continue;
		return e;
	}
	return NULL;
}

bool cpuid_has_gbpages(const struct kvm_cpuid2 *c)
{
	const struct kvm_cpuid_entry2 *e = cpuid_find(c, 0x80000001, 0);

	return e && (e->edx & (1u << 26));
}

unsigned int cpuid_maxphyaddr(const struct kvm_cpuid2 *c)
{
	const struct kvm_cpuid_entry2 *e = cpuid_find(c, 0x80000008, 0);

	/* Without the leaf, the architectural default is 36 bits. */
	if (!e || (e->eax & 0xff) == 0)
		return 36;
	return e->eax & 0xff;
}

/* ---------------------------------------------------------------------- */
/* Page tables                                                            */

struct pt_build {
	uint64_t (*pages)[512];
	unsigned int nr;
	unsigned int cap;
	uint64_t base;		/* GPA of pages[0] */
};

static int pt_alloc(struct pt_build *pt, unsigned int *idx)
{
	if (pt->nr == pt->cap) {
		unsigned int cap = pt->cap ? pt->cap * 2 : 8;
		void *p = realloc(pt->pages, cap * sizeof(*pt->pages));

		if (!p)
			return -ENOMEM;
		pt->pages = p;
		pt->cap = cap;
	}
	memset(pt->pages[pt->nr], 0, sizeof(pt->pages[0]));
	*idx = pt->nr++;
	return 0;
}

/* The table an entry points to, allocating it if the entry is empty. */
static int pt_next(struct pt_build *pt, unsigned int table, unsigned int slot,
		   unsigned int *next)
{
	uint64_t e = pt->pages[table][slot];
	int ret;

	if (e & PTE_P) {
		*next = (unsigned int)(((e & PTE_ADDR) - pt->base) / SZ_4K);
		return 0;
	}
	ret = pt_alloc(pt, next);
	if (ret)
		return ret;
	pt->pages[table][slot] = (pt->base + *next * SZ_4K) | PTE_TABLE;
	return 0;
}

static int pt_map(struct pt_build *pt, uint64_t start, uint64_t len,
		  bool gbpages)
{
	uint64_t step = gbpages ? SZ_1G : SZ_2M;
	uint64_t va;
	int ret;

	for (va = ALIGN_DOWN(start, step); va < start + len; va += step) {
		unsigned int pdpt, pd;

		ret = pt_next(pt, 0, (va >> 39) & 511, &pdpt);
		if (ret)
			return ret;
		if (gbpages) {
			pt->pages[pdpt][(va >> 30) & 511] = va | PTE_LEAF;
			continue;
		}
		ret = pt_next(pt, pdpt, (va >> 30) & 511, &pd);
		if (ret)
			return ret;
		pt->pages[pd][(va >> 21) & 511] = va | PTE_LEAF;
	}
	return 0;
}

/* Build the tables as they will sit at @base; pages[0] is the PML4. */
static int pt_build(struct vm *vm, uint64_t base, struct pt_build *pt)
{
	unsigned int root, i;
	int ret;

	memset(pt, 0, sizeof(*pt));
	pt->base = base;
	ret = pt_alloc(pt, &root);
	for (i = 0; !ret && i < vm->ram.nr; i++) {
		const struct ram_range *r = &vm->ram.range[i];

		ret = pt_map(pt, r->gpa, r->len, vm->boot.gbpages);
		if (!ret && vm->shared_base)
			ret = pt_map(pt, vm->shared_base + r->gpa, r->len,
				     vm->boot.gbpages);
	}
	if (ret) {
		free(pt->pages);
		pt->pages = NULL;
	}
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Layout                                                                 */

int boot_plan(struct vm *vm, const char *cmdline)
{
	struct boot_layout *b = &vm->boot;
	unsigned int phys_bits = cpuid_maxphyaddr(vm->cpuid);
	uint64_t top = vm->shared_base + vm->ram.top;
	const struct ram_range *image_ram;
	uint64_t limit = 1ULL << (phys_bits < 47 ? phys_bits : 47);
	struct pt_build pt;
	uint64_t a;
	int ret;

	/*
	 * The identity map puts the views at virtual = physical, which must
	 * be below both the guest's physical address width and the 47-bit
	 * reach of 4-level paging.
	 */
	if (top > limit) {
		gmvm_err("the shared view ends at %#llx, beyond what this vCPU model can address (%u physical address bits): use less --memory",
			 (unsigned long long)top, phys_bits);
		return -ENOSPC;
	}
	b->gbpages = cpuid_has_gbpages(vm->cpuid);

	a = ALIGN_UP(b->image_end, SZ_4K);
	b->area_start = a;
	b->boot_info = a;
	a += SZ_4K;
	b->gdt = a;
	b->tss = a + TSS_OFFSET;
	a += SZ_4K;
	if (cmdline) {
		b->cmdline = a;
		b->cmdline_len = strlen(cmdline);
		a += ALIGN_UP(b->cmdline_len + 1, SZ_4K);
	}
	ret = pt_build(vm, 0, &pt);
	if (ret) {
		gmvm_err("building page tables: %s", strerror(-ret));
		return ret;
	}
	b->page_tables = a;
	b->nr_table_pages = pt.nr;
	free(pt.pages);
	a += (uint64_t)b->nr_table_pages * SZ_4K;
	b->area_written_end = a;
	b->stacks = a;
	a += vm->nr_vcpus * GMVM_STACK_SIZE;
	b->free_start = ALIGN_UP(a, SZ_2M);
	/* In the range of the image's last byte (the loader checked it). */
	image_ram = ram_layout_find(&vm->ram, b->image_end - 1);
	if (!image_ram) {
		gmvm_err("internal error: the image's end %#llx is in no RAM range",
			 (unsigned long long)b->image_end);
		return -EINVAL;
	}
	if (b->free_start - image_ram->gpa > image_ram->len) {
		gmvm_err("the image ends at %#llx and gmvm's boot structures and %u vCPU stacks need memory up to %#llx, beyond the RAM range it ends in, [%#llx, %#llx) (--memory %#llx)",
			 (unsigned long long)b->image_end, vm->nr_vcpus,
			 (unsigned long long)b->free_start,
			 (unsigned long long)image_ram->gpa,
			 (unsigned long long)(image_ram->gpa + image_ram->len),
			 (unsigned long long)vm->cfg->ram_size);
		return -ENOSPC;
	}

	/* Extensions 1 and 4 are always there. */
	b->flags = GM_BOOT_F_PLUG | GM_BOOT_F_REGIONS;
	if (vm->cfg->mode == GMEM_MODE_IN_PLACE)
		b->flags |= GM_BOOT_F_IN_PLACE;
	if (vm->cfg->init_shared)
		b->flags |= GM_BOOT_F_INIT_SHARED;
	if (vm->vmcall)
		b->flags |= GM_BOOT_F_VMCALL;

	/* Extension 3 is always there too. */
	b->flags |= GM_BOOT_F_BATCH;
	return 0;
}

static uint64_t gdt_entry(uint32_t base, uint32_t limit, uint32_t access,
			  uint32_t flags)
{
	return (uint64_t)(limit & 0xffff) |
	       ((uint64_t)(base & 0xffffff) << 16) |
	       ((uint64_t)(access & 0xff) << 40) |
	       ((uint64_t)((limit >> 16) & 0xf) << 48) |
	       ((uint64_t)(flags & 0xf) << 52) |
	       ((uint64_t)((base >> 24) & 0xff) << 56);
}

int boot_write(struct vm *vm, const char *cmdline)
{
	const struct boot_layout *b = &vm->boot;
	uint64_t len = b->area_written_end - b->area_start;
	/* ram_size is the top of RAM: with no hole, RAM's size (version 1). */
	struct gm_boot_info_ext bi = {
		.v1 = {
			.magic = GM_BOOT_MAGIC,
			.version = GM_BOOT_VERSION,
			.ram_size = vm->ram.top,
			.shared_base = vm->shared_base,
			.free_start = b->free_start,
			.nr_vcpus = vm->nr_vcpus,
			.flags = b->flags,
			.cmdline = b->cmdline,
		},
		.regions = {
			.nr_regions = vm->ram.nr,
			.regions = b->boot_info + REGIONS_OFFSET,
		},
	};
	struct gm_region table[RAM_MAX_RANGES];
	uint64_t gdt[GDT_ENTRIES];
	struct pt_build pt;
	unsigned int i;
	uint8_t *area;
	int ret;

	area = calloc(1, len);
	if (!area) {
		gmvm_err("out of memory for the boot area (%llu bytes)",
			 (unsigned long long)len);
		return -ENOMEM;
	}
	memcpy(area + (b->boot_info - b->area_start), &bi, sizeof(bi));
	for (i = 0; i < vm->ram.nr; i++) {
		table[i].gpa = vm->ram.range[i].gpa;
		table[i].size = vm->ram.range[i].len;
	}
	memcpy(area + (b->boot_info - b->area_start) + REGIONS_OFFSET, table,
	       vm->ram.nr * sizeof(table[0]));

	/* Flat 64-bit code and data; a 64-bit TSS descriptor (busy). */
	gdt[0] = 0;
	gdt[1] = gdt_entry(0, 0xfffff, 0x9b, 0xa);	/* P, S, code RX A; G, L */
	gdt[2] = gdt_entry(0, 0xfffff, 0x93, 0xc);	/* P, S, data RW A; G, DB */
	gdt[3] = gdt_entry((uint32_t)b->tss, TSS_LIMIT, 0x8b, 0);
	gdt[4] = b->tss >> 32;
	memcpy(area + (b->gdt - b->area_start), gdt, sizeof(gdt));
	/* TSS: I/O map base past the limit, i.e. no I/O permission map. */
	area[b->tss - b->area_start + 0x66] = TSS_LIMIT + 1;

	if (b->cmdline)
		memcpy(area + (b->cmdline - b->area_start), cmdline,
		       b->cmdline_len + 1);

	ret = pt_build(vm, b->page_tables, &pt);
	if (ret) {
		gmvm_err("building page tables: %s", strerror(-ret));
		goto err_area;
	}
	if (pt.nr != b->nr_table_pages) {
		/* Same inputs, same walk: cannot happen. */
		gmvm_err("internal error: page tables need %u pages, planned %u",
			 pt.nr, b->nr_table_pages);
		ret = -EINVAL;
		goto err_pt;
	}
	memcpy(area + (b->page_tables - b->area_start), pt.pages,
	       (size_t)pt.nr * SZ_4K);

	ret = gmem_access(vm->gmem, b->area_start, area, len, true,
			  GMEM_PRIVATE);
	if (ret < 0)
		gmvm_err("writing boot structures at %#llx: %s",
			 (unsigned long long)b->area_start, strerror(-ret));
err_pt:
	free(pt.pages);
err_area:
	free(area);
	return ret < 0 ? ret : 0;
}

/* ---------------------------------------------------------------------- */
/* vCPU state                                                             */

static int setup_cpuid(struct vm *vm, struct vcpu *vcpu)
{
	size_t sz = sizeof(*vm->cpuid) +
		    vm->cpuid->nent * sizeof(vm->cpuid->entries[0]);
	struct kvm_cpuid2 *c = malloc(sz);
	struct kvm_cpuid_entry2 *e;
	unsigned int i;
	int ret = 0;

	if (!c)
		return -ENOMEM;
	memcpy(c, vm->cpuid, sz);
	/*
	 * There is no interrupt controller (HLT must exit to gmvm), so say
	 * so: no APIC, no x2APIC, no TSC deadline timer.  The APIC ID
	 * fields still tell each vCPU its index, as hardware would.
	 */
	e = cpuid_find(c, 1, 0);
	if (e) {
		e->ebx = (e->ebx & 0x00ffffff) | (vcpu->index << 24);
		e->edx &= ~(1u << 9);
		e->ecx &= ~((1u << 21) | (1u << 24));
	}
	for (i = 0; i < c->nent; i++) {
		e = &c->entries[i];
		if (e->function == 0xb || e->function == 0x1f)
			e->edx = vcpu->index;
	}
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, c))
		ret = -errno;
	free(c);
	return ret;
}

int boot_setup_vcpu(struct vm *vm, struct vcpu *vcpu)
{
	const struct boot_layout *b = &vm->boot;
	struct kvm_segment code = {
		.base = 0, .limit = 0xffffffff, .selector = SEL_CODE,
		.type = 0xb, .present = 1, .dpl = 0, .db = 0, .s = 1,
		.l = 1, .g = 1,
	};
	struct kvm_segment data = {
		.base = 0, .limit = 0xffffffff, .selector = SEL_DATA,
		.type = 0x3, .present = 1, .dpl = 0, .db = 1, .s = 1,
		.l = 0, .g = 1,
	};
	struct kvm_segment tr = {
		.base = b->tss, .limit = TSS_LIMIT, .selector = SEL_TSS,
		.type = 0xb, .present = 1, .s = 0, .g = 0,
	};
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_fpu fpu;
	int ret;

	ret = setup_cpuid(vm, vcpu);
	if (ret) {
		gmvm_err("vcpu %u: KVM_SET_CPUID2: %s", vcpu->index,
			 strerror(-ret));
		return ret;
	}

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs))
		goto err_ioctl_sregs;
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.tr = tr;
	sregs.gdt.base = b->gdt;
	sregs.gdt.limit = GDT_ENTRIES * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	sregs.cr3 = b->page_tables;
	sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	sregs.efer = EFER_LME | EFER_LMA;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs))
		goto err_ioctl_sregs;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = b->entry;
	regs.rsp = b->stacks + (vcpu->index + 1) * GMVM_STACK_SIZE;
	regs.rdi = b->boot_info;
	regs.rsi = vcpu->index;
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs)) {
		ret = -errno;
		gmvm_err("vcpu %u: KVM_SET_REGS: %s", vcpu->index,
			 strerror(errno));
		return ret;
	}

	/* x87 and SSE in their reset state, exceptions masked. */
	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu)) {
		ret = -errno;
		gmvm_err("vcpu %u: KVM_SET_FPU: %s", vcpu->index,
			 strerror(errno));
		return ret;
	}
	return 0;

err_ioctl_sregs:
	ret = -errno;
	gmvm_err("vcpu %u: KVM_GET/SET_SREGS: %s", vcpu->index,
		 strerror(errno));
	return ret;
}
