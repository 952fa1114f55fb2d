/* SPDX-License-Identifier: MIT */
/*
 * x86-64 launch state: where gmvm puts its own structures in guest memory
 * (boot info, GDT/TSS, command line, page tables, stacks), what they
 * contain, and the registers each vCPU starts with (guest ABI sections 3
 * and 4).
 */
#ifndef GMVM_X86_BOOT_H
#define GMVM_X86_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gmvm/abi.h"

#define GMVM_STACK_SIZE 0x10000ULL	/* 64 KiB per vCPU */


/*
 * gmvm's area starts at the first page after the image and holds, in this
 * order: boot info (1 page, with the region table at +2 KiB), GDT + TSS
 * (1 page), command line (if any),
 * page tables, the vCPU stacks.  free_start is the next 2 MiB boundary.
 * Everything below stacks is written at launch (the "area" image); the
 * stacks are fresh memory and read as zero.
 */
struct boot_layout {
	uint64_t image_start;	/* lowest PT_LOAD GPA */
	uint64_t image_end;	/* end of the highest PT_LOAD */
	uint64_t entry;
	uint64_t area_start;
	uint64_t boot_info;
	uint64_t gdt;
	uint64_t tss;
	uint64_t cmdline;	/* 0 if no command line */
	size_t cmdline_len;	/* without the NUL */
	uint64_t page_tables;	/* the PML4 */
	unsigned int nr_table_pages;
	uint64_t stacks;
	uint64_t area_written_end;	/* [area_start, this) is written */
	uint64_t free_start;
	bool gbpages;		/* 1 GiB leaf pages, else 2 MiB */
	uint32_t flags;		/* boot info flags */
};

struct kvm_cpuid2;
struct vm;
struct vcpu;

int cpuid_get_supported(int kvm_fd, struct kvm_cpuid2 **out);
bool cpuid_has_gbpages(const struct kvm_cpuid2 *cpuid);
unsigned int cpuid_maxphyaddr(const struct kvm_cpuid2 *cpuid);

/*
 * Place gmvm's structures after the image.  Needs vm->ram,
 * vm->shared_base, vm->nr_vcpus, vm->cpuid and the image bounds in
 * vm->boot.  -ENOSPC (with a message printed) if they do not fit.
 */
int boot_plan(struct vm *vm, const char *cmdline);

/* Write boot info, GDT, TSS, command line and page tables (private). */
int boot_write(struct vm *vm, const char *cmdline);

/* Registers, segments, control registers, FPU and CPUID of one vCPU. */
int boot_setup_vcpu(struct vm *vm, struct vcpu *vcpu);

#endif /* GMVM_X86_BOOT_H */
