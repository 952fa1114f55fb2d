/* SPDX-License-Identifier: MIT */
/*
 * Guest memory: the two views, the test area and view-exact accessors.
 * Included by guest.h; include that instead.
 *
 * A private page is reachable only at its GPA (the private view, identity
 * mapped), a shared page only at shared_base + GPA (the shared view).
 * shared_base comes from the boot info; it may be 0, in which case both
 * views are the same addresses and the host gates by attribute.
 *
 * Everything below free_start (code, stack, boot info, page tables) is
 * private and must stay so.  The test area starts at free_start rounded up
 * to 2 MiB, so that tests get 2 MiB aligned ranges, and ends where the RAM
 * region holding free_start ends (ram_size, unless RAM has holes: guest
 * ABI extension 4).
 */
#ifndef GUEST_MEM_H
#define GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline void *gpa_private(uint64_t gpa)
{
	return (void *)(uintptr_t)gpa;
}

static inline void *gpa_shared(uint64_t gpa)
{
	return (void *)(uintptr_t)(gm_shared_base + gpa);
}

/* The private-view GPA of a pointer into either view. */
static inline uint64_t ptr_to_gpa(const void *p)
{
	uint64_t a = (uint64_t)(uintptr_t)p;

	if (gm_shared_base && a >= gm_shared_base)
		return a - gm_shared_base;
	return a;
}

/*
 * RAM regions (guest ABI extension 4, guest/lib/regions.c).  Without the
 * extension's boot info flag, RAM is what version 1 says: one region,
 * [0, ram_size), and the helpers answer as if the table said so.
 */
static inline bool gm_has_region_table(void)
{
	return gm_flags & GM_BOOT_F_REGIONS;
}

unsigned int gm_region_count(void);
/* Region @i (0 .. gm_region_count() - 1, in GPA order; asserts). */
struct gm_region gm_region(unsigned int i);
/* Is [gpa, gpa + len) RAM, inside one region (so not touching a hole)? */
bool gm_is_ram(uint64_t gpa, uint64_t len);
/* The end of the region holding @gpa; @gpa itself in a hole. */
uint64_t gm_region_end_of(uint64_t gpa);
/* Copies and checks the table; the runtime's start-up calls it. */
void __guest_regions_init(const struct gm_boot_info *bi);

static inline uint64_t test_area_start(void)
{
	return ALIGN_UP(gm_free_start, SZ_2M);
}

static inline uint64_t test_area_end(void)
{
	/* gmvm's area ends in the region where the test area starts. */
	return gm_region_end_of(gm_free_start - 1);
}

static inline uint64_t test_area_size(void)
{
	uint64_t s = test_area_start(), e = test_area_end();

	return s < e ? e - s : 0;
}

/*
 * Bump allocator over the test area, safe from any vCPU.  Returns the GPA
 * of @size bytes aligned to @align (a power of two, >= 4 KiB is sensible);
 * fails the test (GUEST_ASSERT) if the area is exhausted.  Never frees.
 * Pages come in whatever state they are; convert them explicitly.
 */
uint64_t test_alloc(uint64_t size, uint64_t align);

/* Fail the test unless RAM holds a test area of at least @size bytes. */
void test_area_require(uint64_t size);

/*
 * Loads and stores of exactly one `mov` of the given width.  Implicit
 * conversion (ABI section 6) is only guaranteed for these forms; compilers
 * may turn plain C accesses into something else (movzx, string or vector
 * instructions), so wrong-view accesses must go through these.
 */
#define __GM_RW(bits, type, suffix, reg)				\
static inline type gm_read##bits(const void *p)			\
{									\
	type v;								\
									\
	asm volatile("mov" suffix " %1, %0"				\
		     : "=" reg(v) : "m"(*(const volatile type *)p)	\
		     : "memory");					\
	return v;							\
}									\
static inline void gm_write##bits(void *p, type v)			\
{									\
	asm volatile("mov" suffix " %1, %0"				\
		     : "=m"(*(volatile type *)p) : reg(v) : "memory");	\
}

__GM_RW(8, uint8_t, "b", "q")
__GM_RW(16, uint16_t, "w", "r")
__GM_RW(32, uint32_t, "l", "r")
__GM_RW(64, uint64_t, "q", "r")
#undef __GM_RW

/* 32-bit wrapping sum of bytes, as the DMA device's CHECKSUM computes. */
uint32_t checksum(const void *p, size_t len);

/* CHECKSUM of @len bytes that all hold @byte. */
static inline uint32_t pattern_checksum(uint8_t byte, uint64_t len)
{
	return (uint32_t)(byte * len);
}

/*
 * Offset of the first byte of [p, p + len) that differs from @byte, or -1
 * if none.  Plain loads: only for pages known to be in the view used.
 */
long find_mismatch(const void *p, uint8_t byte, size_t len);

#endif /* GUEST_MEM_H */
