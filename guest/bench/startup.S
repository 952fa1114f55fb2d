/* SPDX-License-Identifier: MIT */
/*
 * Start-up benchmark guest (bench/bench_guest_startup.c): its first instruction
 * reads the TSC, then it prints "@ start HEX" on COM1, spins for 2^27 TSC
 * cycles (~50 ms: the harness samples gmvm's RSS meanwhile) and exits
 * with 0.  No runtime: nothing may run before the first rdtsc.
 */
	.section .text.entry, "ax"
	.globl	_start
	.type	_start, @function
_start:
	rdtsc
	shlq	$32, %rdx
	orq	%rax, %rdx
	movq	%rdx, %r8
	movw	$0x3f8, %dx
	leaq	msg(%rip), %rsi
1:	movb	(%rsi), %al
	testb	%al, %al
	jz	2f
	outb	%al, %dx
	incq	%rsi
	jmp	1b
2:	leaq	hexdigits(%rip), %rdi
	movl	$60, %ecx
3:	movq	%r8, %rax
	shrq	%cl, %rax
	andl	$15, %eax
	movb	(%rdi,%rax), %al
	outb	%al, %dx
	subl	$4, %ecx
	jns	3b
	movb	$10, %al
	outb	%al, %dx
	addq	$0x8000000, %r8
5:	pause
	rdtsc
	shlq	$32, %rdx
	orq	%rax, %rdx
	cmpq	%r8, %rdx
	jb	5b
	xorl	%eax, %eax
	outl	%eax, $0xf4
4:	cli
	hlt
	jmp	4b
	.size	_start, . - _start

	.section .rodata
msg:
	.asciz	"@ start "
hexdigits:
	.ascii	"0123456789abcdef"

	.section .note.GNU-stack, "", @progbits
