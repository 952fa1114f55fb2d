/* SPDX-License-Identifier: MIT */
/*
 * The freestanding runtime of gmvm guest programs.
 *
 * A guest program defines
 *
 *	int guest_main(const struct gm_boot_info *bi, unsigned int cpu);
 *
 * which every vCPU calls (see crt0.S for how the return value is used), and
 * reports failure through the exit port: GUEST_ASSERT*() print what failed
 * on the console and exit with status 1.  Port I/O is the only report
 * channel a guest needs: it never depends on shared memory, so it works
 * whatever the state of every page.
 */
#ifndef GUEST_GUEST_H
#define GUEST_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gm_abi.h"
#include "io.h"
#include "atomic.h"

#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a)		(((x) + ((a) - 1)) & ~((uint64_t)(a) - 1))
#define ALIGN_DOWN(x, a)	((x) & ~((uint64_t)(a) - 1))
#define IS_ALIGNED(x, a)	(((x) & ((uint64_t)(a) - 1)) == 0)
#define MIN(a, b)		((a) < (b) ? (a) : (b))
#define MAX(a, b)		((a) > (b) ? (a) : (b))

#define __noreturn	__attribute__((noreturn))
#define __printf(a, b)	__attribute__((format(printf, a, b)))
#define __unused	__attribute__((unused))
#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)

/* Defined by the guest program. */
int guest_main(const struct gm_boot_info *bi, unsigned int cpu);

/* Set by crt0 on vCPU 0 before any guest_main() runs. */
extern const struct gm_boot_info *gm_boot;
extern uint64_t gm_ram_size;
extern uint64_t gm_shared_base;
extern uint64_t gm_free_start;
extern uint32_t gm_nr_vcpus;
extern uint32_t gm_flags;

/* Provided by the link script. */
extern char __image_start[], __image_end[];

static inline bool gm_in_place(void)
{
	return gm_flags & GM_BOOT_F_IN_PLACE;
}

static inline bool gm_init_shared(void)
{
	return gm_flags & GM_BOOT_F_INIT_SHARED;
}

/* ---- exit and console ------------------------------------------------ */

/* Stops every vCPU; gmvm exits with @status & 0xff (use 0..123). */
__noreturn void gexit(int status);

int putchar(int c);
int puts(const char *s);
int printf(const char *fmt, ...) __printf(1, 2);
int vprintf(const char *fmt, va_list ap) __printf(1, 0);
int snprintf(char *buf, size_t size, const char *fmt, ...) __printf(3, 4);
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
	__printf(3, 0);

/* ---- assertions -------------------------------------------------------- */

__noreturn void guest_fail(const char *file, int line, const char *fmt, ...)
	__printf(3, 4);

#define GUEST_FAIL(fmt, ...) \
	guest_fail(__FILE__, __LINE__, fmt, ##__VA_ARGS__)

#define GUEST_ASSERT(cond)						\
	do {								\
		if (unlikely(!(cond)))					\
			guest_fail(__FILE__, __LINE__, "%s", #cond);	\
	} while (0)

/* As GUEST_ASSERT, with a printf-style note saying which case failed. */
#define GUEST_ASSERT_MSG(cond, fmt, ...)				\
	do {								\
		if (unlikely(!(cond)))					\
			guest_fail(__FILE__, __LINE__, "%s: " fmt,	\
				   #cond, ##__VA_ARGS__);		\
	} while (0)

/*
 * Both sides are converted to uint64_t, so a signed result compares equal
 * to the same negative constant whatever its width.  The ordered
 * comparisons are unsigned.
 */
#define __GUEST_ASSERT_CMP(a, b, op)					\
	do {								\
		uint64_t __ga = (uint64_t)(a), __gb = (uint64_t)(b);	\
		if (unlikely(!(__ga op __gb)))				\
			guest_fail(__FILE__, __LINE__,			\
				   "%s %s %s (a = 0x%llx, b = 0x%llx)",	\
				   #a, #op, #b,				\
				   (unsigned long long)__ga,		\
				   (unsigned long long)__gb);		\
	} while (0)

#define GUEST_ASSERT_EQ(a, b)	__GUEST_ASSERT_CMP(a, b, ==)
#define GUEST_ASSERT_NE(a, b)	__GUEST_ASSERT_CMP(a, b, !=)
#define GUEST_ASSERT_LT(a, b)	__GUEST_ASSERT_CMP(a, b, <)
#define GUEST_ASSERT_LE(a, b)	__GUEST_ASSERT_CMP(a, b, <=)
#define GUEST_ASSERT_GT(a, b)	__GUEST_ASSERT_CMP(a, b, >)
#define GUEST_ASSERT_GE(a, b)	__GUEST_ASSERT_CMP(a, b, >=)

/* ---- strings ----------------------------------------------------------- */

void *memset(void *s, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);
unsigned long long strtoull(const char *s, char **end, int base);

/* ---- command line (boot info cmdline: words joined by spaces) --------- */

/* The whole argument string, "" if none. */
const char *cmdline(void);
/* True if the word @word (no "=") or "@word=..." is present. */
bool arg_present(const char *word);
/* Value of "@key=VALUE" as a number (base prefix allowed), or @def. */
uint64_t arg_u64(const char *key, uint64_t def);
/* True if "@key=@value" is present. */
bool arg_is(const char *key, const char *value);

/* ---- PRNG: xorshift64* ------------------------------------------------- */

struct rng {
	uint64_t state;
};

void rng_seed(struct rng *r, uint64_t seed);

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t x = r->state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Uniform enough in [0, n), n > 0 (multiply-shift: no division). */
static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* True with probability @percent / 100. */
static inline bool rng_chance(struct rng *r, unsigned int percent)
{
	return rng_below(r, 100) < percent;
}

#include "mem.h"
#include "hypercall.h"
#include "dma.h"
#include "check.h"

#endif /* GUEST_GUEST_H */
