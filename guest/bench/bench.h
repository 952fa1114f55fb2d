/* SPDX-License-Identifier: MIT */
/*
 * What the benchmark guests share: TSC reads, timed port exits and a cheap
 * way to report samples.
 *
 * Timing: the guest reads its TSC around one port instruction.  On the
 * project's hosts the guest TSC is the host TSC (no offset, no scaling;
 * bench/lib/tsc.c checks this on every run), so the host converts
 * cycles to ns with its own calibrated TSC rate.  rdtscp is not available
 * to guests here (it ends the VM), so the reads are lfence; rdtsc.
 *
 * The two timed sequences below are the same instructions except the port
 * instruction itself: guest instructions cost about a microsecond each
 * where KVM emulates them, so a fair comparison of a doorbell hypercall and
 * a bare port exit needs identical code around them.
 *
 * Reporting: a line "@ TAG v1 v2 ..." of hex numbers, written byte by byte
 * to COM1 without printf (every instruction counts here).
 */
#ifndef GUEST_BENCH_H
#define GUEST_BENCH_H

#include "guest.h"

static inline uint64_t tsc_now(void)
{
	uint32_t lo, hi;

	asm volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi) : : "memory");
	return (uint64_t)hi << 32 | lo;
}

/*
 * The timed sequence, around @port_insn: TSC, RAX = MAP_GPA_RANGE, RDX =
 * the "rdx" operand, the port instruction, TSC; the cycles end in RAX and
 * what RAX held after the port instruction in the "res" operand.  Both
 * users expand this one string, so the instructions around the port
 * access are the same by construction.
 */
#define TIMED_PORT_ASM(port_insn)		\
	"lfence\n\t"				\
	"rdtsc\n\t"				\
	"shlq $32, %%rdx\n\t"			\
	"orq %%rdx, %%rax\n\t"			\
	"movq %%rax, %[t0]\n\t"			\
	"movl %[nr], %%eax\n\t"			\
	"movq %[rdx], %%rdx\n\t"		\
	port_insn "\n\t"			\
	"movq %%rax, %[res]\n\t"		\
	"rdtsc\n\t"				\
	"shlq $32, %%rdx\n\t"			\
	"orq %%rdx, %%rax\n\t"			\
	"subq %[t0], %%rax\n\t"

/* RBX, RCX and RDX are the hypercall's arguments (GPA, pages, attrs). */
#define TIMED_PORT(port_insn, cycles, res, gpa, npages, rdx_val)	\
	do {								\
		uint64_t t0_;						\
									\
		asm volatile(TIMED_PORT_ASM(port_insn)			\
			     : "=&a"(cycles), [t0] "=&r"(t0_),		\
			       [res] "=&r"(res)				\
			     : "b"(gpa), "c"(npages),			\
			       [rdx] "r"((uint64_t)(rdx_val)),		\
			       [nr] "i"(GM_HC_MAP_GPA_RANGE),		\
			       [port] "i"(GM_PORT_DOORBELL)		\
			     : "rdx", "memory");			\
	} while (0)

/*
 * MAP_GPA_RANGE through the doorbell (outb %al, $0xf5), timed: TSC cycles
 * from just before the `out` to just after the guest resumes.  *@ret gets
 * the hypercall's result.
 */
static inline uint64_t timed_doorbell(uint64_t gpa, uint64_t npages,
				      uint64_t attrs, long *ret)
{
	uint64_t cycles, res;

	TIMED_PORT("outb %%al, %[port]", cycles, res, gpa, npages, attrs);
	*ret = (long)res;
	return cycles;
}

/*
 * The bare port exit: `inb %dx, %al` from COM1's line status register,
 * which gmvm answers with a constant.  Same instructions as above but the
 * port access (RDX holds the port instead of the attributes).
 */
static inline uint64_t timed_bare_exit(uint64_t gpa, uint64_t npages)
{
	uint64_t cycles, res;

	TIMED_PORT("inb %%dx, %%al", cycles, res, gpa, npages,
		   GM_PORT_COM1_LSR);
	(void)res;
	return cycles;
}

static inline void emit_str(const char *s)
{
	while (*s)
		outb(GM_PORT_COM1, (uint8_t)*s++);
}

static inline void emit_hex(uint64_t v)
{
	char b[17];
	int i = 16;

	b[16] = '\0';
	do {
		b[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	emit_str(b + i);
}

/* "@ TAG v1 v2 ... vn\n", the values in hex.  One vCPU at a time. */
static inline void emit_list(const char *tag, const uint64_t *v,
			     unsigned int n)
{
	emit_str("@ ");
	emit_str(tag);
	for (unsigned int i = 0; i < n; i++) {
		outb(GM_PORT_COM1, ' ');
		emit_hex(v[i]);
	}
	outb(GM_PORT_COM1, '\n');
}

static inline void emit1(const char *tag, uint64_t v)
{
	emit_list(tag, &v, 1);
}

#endif /* GUEST_BENCH_H */
