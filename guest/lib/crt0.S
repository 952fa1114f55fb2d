/* SPDX-License-Identifier: MIT */
/*
 * Entry point of every guest program (GUEST_ABI.md section 3).
 *
 * All vCPUs enter here at the same time in 64-bit mode with RDI = GPA of
 * the boot info, RSI = vCPU index and RSP = top of a private stack.  vCPU 0
 * zeroes .bss and initialises the runtime (which lives in .bss); the others
 * must not touch any runtime state before that, so they spin on a flag that
 * lives in .data, where the loader put its initial 0.
 *
 * guest_main()'s return value goes to the exit port, which stops the whole
 * VM.  For a secondary vCPU a return of 0 only means "my part is done": it
 * parks instead, so that vCPU 0 alone decides when a passing test ends.  A
 * secondary that returns non-zero ends the VM with that status at once.
 */
	.section .text.entry, "ax"
	.globl	_start
	.type	_start, @function
_start:
	cld
	xorl	%ebp, %ebp		/* end of the frame chain */
	andq	$-16, %rsp		/* the ABI promises it; be sure */
	movq	%rdi, %r12		/* callee-saved: boot info GPA */
	movl	%esi, %r13d		/* callee-saved: vCPU index */
	testl	%r13d, %r13d
	jnz	.Lwait_runtime

	/*
	 * vCPU 0: zero .bss (both ends 64-byte aligned by guest.ld; words,
	 * as guest instructions may be emulated one by one), then set up
	 * the runtime.
	 */
	leaq	__bss_start(%rip), %rdi
	leaq	__bss_end(%rip), %rcx
	subq	%rdi, %rcx
	shrq	$3, %rcx
	xorl	%eax, %eax
	rep stosq
	movq	%r12, %rdi
	call	__guest_runtime_init
	/*
	 * x86 stores are not reordered with earlier stores, so everything
	 * the init wrote is visible before the flag is.
	 */
	movl	$1, __guest_runtime_ready(%rip)
	jmp	.Lmain

.Lwait_runtime:
	pause
	cmpl	$0, __guest_runtime_ready(%rip)
	je	.Lwait_runtime

.Lmain:
	movq	%r12, %rdi
	movl	%r13d, %esi
	call	guest_main
	testl	%r13d, %r13d
	jz	.Lexit
	testl	%eax, %eax
	jz	.Lpark
.Lexit:
	outl	%eax, $0xf4
	/* Not reached: the exit port stops every vCPU.  Just in case. */
.Lpark:
	cli
	hlt
	jmp	.Lpark
	.size	_start, . - _start

	.data
	.balign	64
	.globl	__guest_runtime_ready
	.type	__guest_runtime_ready, @object
__guest_runtime_ready:
	.long	0
	.size	__guest_runtime_ready, 4

	.section .note.GNU-stack, "", @progbits
