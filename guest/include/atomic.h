/* SPDX-License-Identifier: MIT */
/*
 * What multi-vCPU guests need to coordinate: a spinlock, a reusable
 * barrier and thin wrappers over the __atomic builtins.  Interrupts are off
 * and there is no scheduler, so waiting is spinning; cpu_relax() (pause)
 * lets the host notice a spinning vCPU (pause-loop exiting).
 */
#ifndef GUEST_ATOMIC_H
#define GUEST_ATOMIC_H

#include <stdbool.h>
#include <stdint.h>

static inline void cpu_relax(void)
{
	asm volatile("pause" : : : "memory");
}

#define barrier()	asm volatile("" : : : "memory")

#define READ_ONCE(x)		__atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WRITE_ONCE(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define load_acquire(p)		__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define store_release(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define atomic_add_return(p, v)	__atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)
#define atomic_fetch_add(p, v)	__atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define atomic_xchg(p, v)	__atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#define atomic_cmpxchg(p, oldp, v) \
	__atomic_compare_exchange_n((p), (oldp), (v), false, \
				    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)

typedef struct {
	uint32_t locked;
} spinlock_t;

#define SPINLOCK_INIT	{ 0 }

static inline bool spin_trylock(spinlock_t *l)
{
	return !__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE);
}

static inline void spin_lock(spinlock_t *l)
{
	/* Test-and-test-and-set: spin on a read, not on a locked write. */
	while (!spin_trylock(l)) {
		while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED))
			cpu_relax();
	}
}

static inline void spin_unlock(spinlock_t *l)
{
	__atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

/*
 * Sense-reversing barrier for @n participants; reusable without
 * re-initialisation.  Zero-initialised is ready to use.
 */
struct gbarrier {
	uint32_t count;
	uint32_t gen;
};

static inline void gbarrier_wait(struct gbarrier *b, uint32_t n)
{
	/* Read the generation before arriving, or a fast last arriver could
	 * bump it before we look and we would wait for the next round. */
	uint32_t gen = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);

	if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == n) {
		__atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&b->gen, gen + 1, __ATOMIC_RELEASE);
		return;
	}
	while (__atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) == gen)
		cpu_relax();
}

#endif /* GUEST_ATOMIC_H */
