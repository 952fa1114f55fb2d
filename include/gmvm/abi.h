/* SPDX-License-Identifier: MIT */
/*
 * The gmvm guest ABI, version 1 (docs/GUEST_ABI.md): boot info layout,
 * port numbers, hypercall numbers and result codes, DMA device registers
 * and gmvm's exit statuses.  The one definition both sides use: gmvm
 * (vmm/) and the freestanding guest runtime (guest/) include this file, so
 * they cannot drift apart.  Freestanding: <stddef.h> and <stdint.h> only.
 */
#ifndef GMVM_ABI_H
#define GMVM_ABI_H

#include <stddef.h>
#include <stdint.h>

/* Section 4: boot info, at the GPA in RDI, in private memory. */
#define GM_BOOT_MAGIC		0x49424d47u	/* "GMBI" */
#define GM_BOOT_VERSION		1u

#define GM_BOOT_F_IN_PLACE	(1u << 0)	/* conversions keep content */
#define GM_BOOT_F_INIT_SHARED	(1u << 1)	/* all RAM started shared */
#define GM_BOOT_F_VMCALL	(1u << 2)	/* hypercalls use vmcall */
#define GM_BOOT_F_PLUG		(1u << 3)	/* SET_PLUGGED exists (ext. 1) */

struct gm_boot_info {
	uint32_t magic;
	uint32_t version;
	uint64_t ram_size;
	uint64_t shared_base;
	uint64_t free_start;
	uint32_t nr_vcpus;
	uint32_t flags;
	uint64_t cmdline;
};

_Static_assert(offsetof(struct gm_boot_info, ram_size) == 8, "boot info");
_Static_assert(offsetof(struct gm_boot_info, shared_base) == 16, "boot info");
_Static_assert(offsetof(struct gm_boot_info, free_start) == 24, "boot info");
_Static_assert(offsetof(struct gm_boot_info, nr_vcpus) == 32, "boot info");
_Static_assert(offsetof(struct gm_boot_info, flags) == 36, "boot info");
_Static_assert(offsetof(struct gm_boot_info, cmdline) == 40, "boot info");
_Static_assert(sizeof(struct gm_boot_info) == 48, "boot info");

/* Section 7: ports. */
#define GM_PORT_EXIT		0xf4
#define GM_PORT_DOORBELL	0xf5
#define GM_PORT_COM1		0x3f8
#define GM_PORT_COM1_LSR	0x3fd
#define GM_PORT_COM1_LAST	0x3ff
#define GM_PORT_DMA		0x520	/* the DMA test device's ports */
#define GM_PORT_DMA_LAST	0x53f

/* Section 5: MAP_GPA_RANGE, numbered as KVM_HC_MAP_GPA_RANGE. */
#define GM_HC_MAP_GPA_RANGE	12
#define GM_MAP_PAGE_SZ_4K	0ULL
#define GM_MAP_PAGE_SZ_2M	1ULL
#define GM_MAP_PAGE_SZ_1G	2ULL
#define GM_MAP_PAGE_SZ_MASK	0xfULL
#define GM_MAP_PRIVATE		(1ULL << 4)	/* clear: make shared */
#define GM_MAP_SHARED		0ULL
#define GM_MAP_RESERVED_MASK	(~0x1fULL)	/* bits 63:5 */

/*
 * Extension 1 (docs/GUEST_ABI.md, "Extensions"): SET_PLUGGED, doorbell
 * only.  a0: GPA, a1: pages, a2: bit 0 set = plug, clear = unplug.
 */
#define GM_HC_SET_PLUGGED	0x474d0001ULL	/* "GM" 1 */
#define GM_PLUG			(1ULL << 0)
#define GM_PLUG_RESERVED_MASK	(~0x1ULL)

#define GM_HC_OK		0L
#define GM_HC_EAGAIN		(-11L)	/* a page to make private is pinned */
#define GM_HC_EINVAL		(-22L)
#define GM_HC_ENOSYS		(-1000L)	/* KVM_ENOSYS: unknown number */

/* Section 7: DMA test device, 32-bit registers. */
#define GM_DMA_ADDR_LO		0x520
#define GM_DMA_ADDR_HI		0x524
#define GM_DMA_LEN		0x528
#define GM_DMA_PATTERN		0x52c
#define GM_DMA_CMD		0x530
#define GM_DMA_STATUS		0x534
#define GM_DMA_RESULT		0x538

#define GM_DMA_CMD_FILL		1u
#define GM_DMA_CMD_CHECKSUM	2u
#define GM_DMA_CMD_PIN		3u
#define GM_DMA_CMD_UNPIN	4u

#define GM_DMA_OK		0	/* done */
#define GM_DMA_FAULT		1	/* some page is not shared */
#define GM_DMA_BAD		2	/* bad request */
/* Extension 2: PIN with GM_DMA_MAX_PINS pins already held. */
#define GM_DMA_NO_RESOURCES	3

#define GM_DMA_MAX_LEN		0x1000000ULL	/* 16 MiB */
#define GM_DMA_MAX_PINS		64	/* pins the device holds at once */

/*
 * Extension 3 (docs/GUEST_ABI.md): CONVERT_BATCH, many page-state changes
 * as one all-or-nothing call, modelled on SEV-SNP's GHCB Page State
 * Change request; doorbell only.  a0: GPA of the list page (shared and
 * plugged), a1: entries (1..GM_BATCH_MAX_ENTRIES), a2: flags, must be 0.
 * The list page holds struct gm_batch_list; gmvm writes its header (and
 * nothing else) once per call that got as far as reading the list.
 * Also new with extension 3: status -12 from MAP_GPA_RANGE, SET_PLUGGED
 * and CONVERT_BATCH where older gmvm stopped with 125.
 */
#define GM_BOOT_F_BATCH		(1u << 4)	/* extension 3 exists */
#define GM_HC_CONVERT_BATCH	0x474d0002ULL	/* "GM" 2 */
#define GM_HC_ENOMEM		(-12L)	/* the host cannot split mappings */

#define GM_BATCH_MAX_ENTRIES	253
#define GM_BATCH_TO_SHARED	0	/* struct gm_batch_entry.target */
#define GM_BATCH_TO_PRIVATE	1
#define GM_BATCH_NO_ENTRY	0xffffu	/* header.failed: none to blame */

/* Written by gmvm only; its old content is never read. */
struct gm_batch_header {
	uint16_t done;		/* entries applied: a1, or 0 on failure */
	uint16_t failed;	/* index of the entry at fault, or NO_ENTRY */
	int32_t status;		/* the call's result, as in RAX */
	uint64_t busy_gpa;	/* status -11: first GPA refused, else 0 */
};

/* Written by the guest; gmvm never writes it. */
struct gm_batch_entry {
	uint64_t gpa;		/* private-view GPA, 4 KiB aligned */
	uint32_t pages;		/* 4 KiB pages, > 0 */
	uint8_t target;		/* GM_BATCH_TO_SHARED or _TO_PRIVATE */
	uint8_t reserved[3];	/* must be 0 */
};

struct gm_batch_list {
	struct gm_batch_header hdr;
	struct gm_batch_entry entries[GM_BATCH_MAX_ENTRIES];
};

_Static_assert(offsetof(struct gm_batch_header, failed) == 2, "batch");
_Static_assert(offsetof(struct gm_batch_header, status) == 4, "batch");
_Static_assert(offsetof(struct gm_batch_header, busy_gpa) == 8, "batch");
_Static_assert(sizeof(struct gm_batch_header) == 16, "batch");
_Static_assert(offsetof(struct gm_batch_entry, pages) == 8, "batch");
_Static_assert(offsetof(struct gm_batch_entry, target) == 12, "batch");
_Static_assert(offsetof(struct gm_batch_entry, reserved) == 13, "batch");
_Static_assert(sizeof(struct gm_batch_entry) == 16, "batch");
_Static_assert(offsetof(struct gm_batch_list, entries) == 16, "batch");
_Static_assert(sizeof(struct gm_batch_list) <= 4096, "one page");
_Static_assert(GM_BATCH_MAX_ENTRIES < GM_BATCH_NO_ENTRY, "batch");

/*
 * Extension 4 (docs/GUEST_ABI.md, "Extensions"): the RAM region table.
 * With GM_BOOT_F_REGIONS set, struct gm_boot_regions follows the version-1
 * boot info at offset 48, and boot info ram_size is the top of RAM (the
 * end of the highest region).  regions is the GPA of nr_regions entries
 * of struct gm_region, in GPA order, in private memory.  A version-1
 * guest reads the first 48 bytes only, and with the default (flat)
 * layout the table's one entry is [0, ram_size), as version 1 says.
 */
#define GM_BOOT_F_REGIONS	(1u << 5)	/* region table (ext. 4) */
#define GM_BOOT_REGIONS_OFFSET	48u

struct gm_region {
	uint64_t gpa;		/* 4 KiB aligned */
	uint64_t size;		/* bytes, 4 KiB aligned, > 0 */
};

struct gm_boot_regions {
	uint32_t nr_regions;	/* >= 1 */
	uint32_t reserved;	/* 0 */
	uint64_t regions;	/* GPA of struct gm_region[nr_regions] */
};

/* The boot info as gmvm writes it: version 1, then extension 4. */
struct gm_boot_info_ext {
	struct gm_boot_info v1;
	struct gm_boot_regions regions;
};

_Static_assert(sizeof(struct gm_region) == 16, "region table entry");
_Static_assert(offsetof(struct gm_region, gpa) == 0, "region table entry");
_Static_assert(offsetof(struct gm_region, size) == 8, "region table entry");
_Static_assert(offsetof(struct gm_boot_info_ext, regions) ==
	       GM_BOOT_REGIONS_OFFSET, "boot info extension 4");
_Static_assert(offsetof(struct gm_boot_info_ext, regions.nr_regions) == 48,
	       "boot info extension 4");
_Static_assert(offsetof(struct gm_boot_info_ext, regions.reserved) == 52,
	       "boot info extension 4");
_Static_assert(offsetof(struct gm_boot_info_ext, regions.regions) == 56,
	       "boot info extension 4");
_Static_assert(sizeof(struct gm_boot_info_ext) == 64, "boot info extension 4");

/* Section 8: gmvm's own exit statuses, never written by a guest. */
#define GM_EXIT_TIMEOUT		124
#define GM_EXIT_HOST_ERROR	125
#define GM_EXIT_GUEST_FAULT	126
#define GM_EXIT_SIGINT		130	/* 128 + SIGINT: stopped by SIGINT */
#define GM_EXIT_SIGTERM		143	/* 128 + SIGTERM: stopped by SIGTERM */

#endif /* GMVM_ABI_H */
