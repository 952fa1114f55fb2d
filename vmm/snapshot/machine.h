/* SPDX-License-Identifier: MIT */
/*
 * The snapshot sections beyond memory (docs/SNAPSHOT.md): one VCPU section
 * per vCPU, the VM's CLOCK, the DMA test device's DMADEV and the run
 * options RUNOPTS.  Each has an in-memory form below, a writer and a
 * strict parser; machine_vcpu.c holds VCPU, machine_vm.c the others.
 * Nothing here calls KVM: gmvm's vmm/snapshot_vm.c fills and applies these
 * structs with the ioctls, so the formats are tested and fuzzed on any
 * host.
 *
 * Invariants of a parsed struct (the parsers refuse a file that breaks
 * one, -EBADMSG with a message naming the section, the field and why;
 * every length and count is checked before it is used, without overflow):
 *  - snap_vcpu: index < SNAP_MAX_VCPUS; flags only SNAP_VCPU_PARKED; 4096 <= xsave_size <= 1 MiB and a
 *    multiple of 4, xsave holds that many bytes; nr_msrs <= SNAP_MAX_MSRS,
 *    indices strictly increasing; the KVM structs' reserved and padding
 *    bytes are 0, their one-bit fields 0 or 1, enumerations in range
 *    (segment type, DPL, CR8, MP state, xcr count, event flags);
 *  - snap_dmadev: regs.status a defined STATUS (0..3), nr_pins <=
 *    SNAP_MAX_PINS, every pin non-empty, at most the device's longest
 *    transfer and not wrapping;
 *  - snap_runopts: every enumeration in range, 1 <= nr_vcpus <=
 *    SNAP_MAX_VCPUS, ram_size a non-zero multiple of 4 KiB.
 * What only gmvm can check (RAM layout against REGIONS, pins inside RAM
 * and mapped, the host's XSAVE size) it checks when restoring.
 */
#ifndef GMVM_SNAPSHOT_MACHINE_H
#define GMVM_SNAPSHOT_MACHINE_H

#include <stdint.h>

#include <linux/kvm.h>

#include "gmem/gmem.h"
#include "format.h"

/* Section types: SNAP_SEC_VCPU, _CLOCK, _DMADEV, _RUNOPTS (format.h). */
#define SNAP_MAX_MSRS 1024
#define SNAP_XSAVE_LEGACY 4096		/* struct kvm_xsave */
#define SNAP_XSAVE_MAX (1u << 20)
#define SNAP_MAX_PINS 64		/* GM_DMA_MAX_PINS */
#define SNAP_DMA_MAX_LEN (1u << 24)	/* GM_DMA_MAX_LEN, 16 MiB */

/* The fixed part of a VCPU section: a head and four KVM structs. */
#define SNAP_VCPU_HEAD 24
#define SNAP_VCPU_FIXED (SNAP_VCPU_HEAD + sizeof(struct kvm_regs) + \
			 sizeof(struct kvm_sregs) + sizeof(struct kvm_xcrs) + \
			 sizeof(struct kvm_vcpu_events))
#define SNAP_MSR_SIZE 16
#define SNAP_CLOCK_SIZE 16
#define SNAP_DMADEV_HEAD 32
#define SNAP_PIN_SIZE 16
#define SNAP_RUNOPTS_SIZE 32

struct snap_msr {
	uint32_t index;
	uint64_t value;
};

/* VCPU flags: the vCPU had left its run loop (hlt): a restore keeps it
 * out of the guest. */
#define SNAP_VCPU_PARKED (1u << 0)

struct snap_vcpu {
	uint32_t index;
	uint32_t flags;			/* SNAP_VCPU_* */
	uint32_t mp_state;		/* KVM_MP_STATE_* */
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_vcpu_events events;
	uint32_t xsave_size;		/* bytes of xsave */
	uint8_t *xsave;			/* struct kvm_xsave's region, and more
					   with KVM_CAP_XSAVE2 */
	uint32_t nr_msrs;
	struct snap_msr *msrs;		/* sorted by index */
};

/* The VM's kvmclock (KVM_GET_CLOCK), nanoseconds. */
struct snap_clock {
	uint64_t clock;
};

struct snap_pin {
	uint64_t addr, len;		/* a PIN's exact ADDR and LEN */
};

/* The DMA test device's registers (guest ABI section 7). */
struct snap_dma_regs {
	uint32_t addr_lo, addr_hi, len, pattern, status, result;
};

/* Its registers and pins. */
struct snap_dmadev {
	struct snap_dma_regs regs;
	uint32_t nr_pins;
	struct snap_pin pins[SNAP_MAX_PINS];
};

#define SNAP_RUNOPT_INIT_SHARED (1u << 0)
#define SNAP_RUNOPT_DEFERRED_RECLAIM (1u << 1)
#define SNAP_RUNOPT_DMA_EXTERNAL (1u << 2)
#define SNAP_RUNOPT_VMCALL (1u << 3)	/* the guest was told: use vmcall */
#define SNAP_RUNOPT_ALL 0xfu

/* What `gmvm run` was asked that the restored VM must be again. */
struct snap_runopts {
	uint64_t ram_size;
	uint32_t layout;		/* 0 flat, 1 pc */
	uint32_t nr_vcpus;
	uint32_t mode;			/* enum gmem_mode */
	uint32_t implicit;		/* 0 convert, 1 deny */
	uint32_t flags;			/* SNAP_RUNOPT_* */
};

/* Writers: one whole section each, between snap_writer_init/finish. */
int snap_vcpu_write(struct snap_writer *w, const struct snap_vcpu *v);
int snap_clock_write(struct snap_writer *w, const struct snap_clock *c);
int snap_dmadev_write(struct snap_writer *w, const struct snap_dmadev *d);
int snap_runopts_write(struct snap_writer *w, const struct snap_runopts *o);

/*
 * Parsers of one section @s of @r (found with snap_reader_find): 0, or
 * -EBADMSG (damaged, with a message), -EFBIG, -ENOMEM.  snap_vcpu_parse
 * allocates xsave and msrs: snap_vcpu_free() them (also after a failure).
 */
int snap_vcpu_parse(struct snap_reader *r, const struct snap_section *s,
		    struct snap_vcpu *v);
void snap_vcpu_free(struct snap_vcpu *v);
int snap_clock_parse(struct snap_reader *r, const struct snap_section *s,
		     struct snap_clock *c);
int snap_dmadev_parse(struct snap_reader *r, const struct snap_section *s,
		      struct snap_dmadev *d);
int snap_runopts_parse(struct snap_reader *r, const struct snap_section *s,
		       struct snap_runopts *o);

/*
 * Everything a whole-VM snapshot holds beyond memory, parsed and checked
 * against itself: RUNOPTS, CLOCK and DMADEV present, one VCPU section per
 * vCPU with indices 0..nr_vcpus-1 in order, RUNOPTS's mode equal to
 * CONFIG's.  A memory-only file is refused (-EBADMSG: "not a whole-VM
 * snapshot").  snap_machine_free() after success or failure.
 */
struct snap_machine {
	struct snap_runopts opts;
	struct snap_clock clock;
	struct snap_dmadev dma;
	unsigned int nr_vcpus;
	struct snap_vcpu vcpu[SNAP_MAX_VCPUS];
};

int snap_machine_parse(struct snap_reader *r, struct snap_machine *m);
void snap_machine_free(struct snap_machine *m);
/* Write every section of @m (after the memory sections). */
int snap_machine_write(struct snap_writer *w, const struct snap_machine *m);

#endif
