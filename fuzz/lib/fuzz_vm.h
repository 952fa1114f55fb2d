/* SPDX-License-Identifier: MIT */
/*
 * What the fuzz harnesses share: a gmvm struct vm with real guest memory
 * (libgmem) and no KVM, a byte reader for fuzz input, and a way to fail
 * loudly.
 */
#ifndef GMVM_FUZZ_VM_H
#define GMVM_FUZZ_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gmvm.h"

/* The options of a fuzzed VM (a subset of `gmvm run`'s). */
struct fuzz_vm_opts {
	uint64_t ram_size;
	enum gmem_mode mode;
	bool init_shared;
	bool deferred_reclaim;
	bool audit_each;
	bool gbpages;
};

/* One VM with one vCPU whose registers live in a kvm_run (sync regs). */
struct fuzz_vm {
	struct vm_config cfg;
	struct vm vm;
	struct vcpu vcpu;
	struct kvm_run *run;
	struct kvm_cpuid2 *cpuid;
};

/*
 * Guest memory without KVM; see fuzz_vm.c.  The one place that knows how
 * libgmem gets its backings in the fuzzers.
 */
int fuzz_gmem_create(const struct gmem_config *cfg, struct gmem_vm **out);

/*
 * Set up @f as gmvm would before it starts the vCPUs: guest memory, exit
 * port, doorbell and, if @dmatest, the DMA test device (internal); no
 * console (guest output would be noise).  Aborts on failure: then the
 * harness is broken, not the input.
 */
void fuzz_vm_init(struct fuzz_vm *f, const struct fuzz_vm_opts *o,
		  bool dmatest);
void fuzz_vm_destroy(struct fuzz_vm *f);

/*
 * One port access by the vCPU, dispatched as exits.c would: the handler
 * registered for @port, or EXIT_STOP if none.
 */
enum exit_action fuzz_port_io(struct fuzz_vm *f, uint16_t port, bool out,
			      unsigned int size, uint8_t *data);

/* 32-bit port accesses that must not stop the VM. */
void fuzz_port_write32(struct fuzz_vm *f, uint16_t port, uint32_t val);
uint32_t fuzz_port_read32(struct fuzz_vm *f, uint16_t port);

/*
 * A DMA test device command through its registers, as a guest issues it:
 * the STATUS register after it, and RESULT in *@result.
 */
uint32_t fuzz_dma_command(struct fuzz_vm *f, uint32_t cmd, uint64_t addr,
			  uint32_t len, uint32_t pattern, uint32_t *result);

/* libgmem's audit and the DMA device's own check must both pass. */
void fuzz_vm_check(struct fuzz_vm *f);

/* Fuzz input, consumed front to back; reads past the end give zeros. */
struct fuzz_in {
	const uint8_t *p;
	size_t left;
};

uint8_t fuzz_u8(struct fuzz_in *in);
uint16_t fuzz_u16(struct fuzz_in *in);
uint32_t fuzz_u32(struct fuzz_in *in);
uint64_t fuzz_u64(struct fuzz_in *in);

/*
 * The VM a harness input asks for, from its first two bytes: RAM of 2..32
 * MiB, mode, initial state, deferred reclaim.  Returns the second byte,
 * whose higher bits a harness may read for options of its own.
 */
uint8_t fuzz_vm_opts_read(struct fuzz_in *in, struct fuzz_vm_opts *o);

/*
 * Send what gmvm prints on stderr (one line per refused input) to
 * /dev/null; fuzz_fail(), libFuzzer and the sanitizers still reach the real
 * stderr.
 */
void fuzz_quiet(void);

/* A harness check failed: print why, then abort (libFuzzer saves it). */
void fuzz_fail(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));

#define FUZZ_ASSERT(cond)                                                  \
	do {                                                               \
		if (!(cond))                                               \
			fuzz_fail("%s:%d: %s", __FILE__, __LINE__, #cond); \
	} while (0)

#endif /* GMVM_FUZZ_VM_H */
