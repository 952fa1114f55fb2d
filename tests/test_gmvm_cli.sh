#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# gmvm's command line and image validation, and its exit statuses for the
# basic guest events, with tiny assembly guests built here.
#
#  - usage and --help of every command;
#  - every bad option or value: status 125 and one line naming it;
#  - every kind of bad ELF image: status 125 and one line naming the
#    problem (checked before KVM is touched, so these run without KVM);
#  - with KVM: caps, exit status pass-through, console, boot state and
#    command line, doorbell results, undefined port, bad doorbell size,
#    hlt, triple fault, --timeout, --stats=json, two vCPUs;
#  - with KVM, signals and a closed stdout: SIGTERM and SIGINT stop a
#    running guest with 143 and 130, after --stats and the final audit
#    (also with a second signal, and with the external DMA device getting
#    the same SIGINT, as from a terminal's ^C); an ignored SIGINT stays
#    ignored; `gmvm run ... | head -1` exits with the guest's status, not
#    141, and says once that the rest of the output was dropped.
#
# Run by tests/run-tests.sh with BUILD set and cwd = the repository root.
# Exit 0 pass, 1 fail, 77 skip.
set -u
. "$(dirname "$0")/lib/test_util.sh"
[ -x "$GMVM" ] || { echo "no $GMVM: build gmvm first"; exit 1; }

# ---------------------------------------------------------------- usage
expect 0 "" -- --help
grep -q 'run \[OPTIONS\] GUEST.elf' "$tmp/out" || fail "gmvm --help does not describe run"
expect 0 "" -- help
grep -q 'dma-device' "$tmp/out" || fail "gmvm help does not mention the internal dma-device"
expect 0 "" -- run --help
grep -q -- '--init-shared' "$tmp/out" || fail "gmvm run --help lacks --init-shared"
grep -q '^  130     stopped by SIGINT' "$tmp/out" &&
	grep -q '^  143     stopped by SIGTERM' "$tmp/out" ||
	fail "gmvm run --help lacks the signal exit statuses"
expect 0 "" -- run -h
expect 0 "" -- caps --help
grep -q -- '--json' "$tmp/out" || fail "gmvm caps --help lacks --json"
expect 125 "no command given" --
expect 125 "unknown command 'frobnicate'" -- frobnicate
expect 125 "unknown argument" -- caps --bogus

# ---------------------------------------------------------------- options
x=/nonexistent.elf
expect 125 "no guest image" -- run
expect 125 "no guest image" -- run --memory 16M
expect 125 "unknown option '--bogus'" -- run --bogus $x
expect 125 "unknown option '-x'" -- run -x $x
expect 125 "--memory needs a value" -- run --memory
expect 125 "--memory: 'lots'" -- run --memory lots $x
expect 125 "--memory: '12Q'" -- run --memory=12Q $x
expect 125 "--memory: '-4M'" -- run --memory -4M $x
expect 125 "not a multiple of 4 KiB" -- run --memory 4097K $x
expect 125 "not a multiple of 4 KiB" -- run --memory=3000000 $x
expect 125 "less than the minimum" -- run --memory 1M $x
expect 125 "less than the minimum" -- run --memory 0 $x
expect 125 "more than the maximum" -- run --memory 65G $x
expect 125 "--memory: '99999999999999999999G'" -- run --memory 99999999999999999999G $x
expect 125 "--memory: '17179869184G'" -- run --memory 17179869184G $x
expect 125 "--vcpus: '0'" -- run --vcpus 0 $x
expect 125 "--vcpus: '65'" -- run --vcpus=65 $x
expect 125 "--vcpus: 'two'" -- run --vcpus two $x
expect 125 "--vcpus: '1x'" -- run --vcpus 1x $x
expect 125 "--conversion: 'sideways'" -- run --conversion sideways $x
expect 125 "--implicit: 'maybe'" -- run --implicit=maybe $x
expect 125 "--init-shared takes no value" -- run --init-shared=yes $x
expect 125 "--timeout: '0'" -- run --timeout 0 $x
expect 125 "--timeout: '-1'" -- run --timeout=-1 $x
expect 125 "--timeout: 'soon'" -- run --timeout soon $x
expect 125 "--timeout: 'nan'" -- run --timeout nan $x
expect 125 "--stats: 'xml'" -- run --stats=xml $x
expect 125 "--dmatest: 'outside'" -- run --dmatest outside $x
expect 125 "--dmatest: ''" -- run --dmatest= $x
expect 125 "--dmatest needs a value" -- run --dmatest
expect 125 "--reclaim: 'later'" -- run --reclaim=later $x
expect 125 "--reclaim needs a value" -- run --reclaim
expect 125 "--audit: 'never'" -- run --audit never $x
expect 125 "--audit: 'EACH'" -- run --audit=EACH $x
expect 125 "--audit needs a value" -- run --audit
expect 125 "--dmatest external: needs --conversion discard" -- run --dmatest=external --conversion in-place $x
expect 125 "--reclaim deferred: only --conversion discard" -- run --conversion in-place --reclaim deferred $x
# Options are accepted in both forms and stop at the image: the image is
# what fails here, so the options were fine.
expect 125 "nonexistent.elf: cannot open" -- run --memory 16M --vcpus=2 \
	--conversion in-place --implicit deny --init-shared --timeout 1.5 \
	--stats $x --memory bogus
expect 125 "nonexistent.elf: cannot open" -- run --stats=json --memory=0x1000000 -- $x
expect 125 "nonexistent.elf: cannot open" -- run --reclaim deferred \
	--dmatest=external --audit each --reclaim=sync --dmatest internal \
	--audit=exit $x
expect 125 "internal command" -- dma-device
expect 125 "not a regular file" -- run /

# ---------------------------------------------------------------- images
cat >"$tmp/guest.S" <<'EOF'
	.section .text.entry, "ax"
	.globl	_start
_start:
#if V == 0		/* exit 42 */
	movl	$42, %eax
	outl	%eax, $0xf4
#elif V == 1		/* undefined port */
	outb	%al, $0x80
#elif V == 2		/* hlt */
	hlt
#elif V == 3		/* spin */
1:	jmp	1b
#elif V == 4		/* triple fault: no IDT */
	ud2
#elif V == 5		/* console */
	leaq	msg(%rip), %rsi
	movl	$msg_end - msg, %ecx
	movw	$0x3f8, %dx
	rep outsb
	movw	$0x3fd, %dx
	inb	%dx, %al
	cmpb	$0x60, %al
	jne	fail
	xorl	%eax, %eax
	outl	%eax, $0xf4
#elif V == 6		/* boot state: magic, version, vCPU, stack, cmdline */
	pushfq				/* first: anything else changes flags */
	popq	%rax
	cmpq	$2, %rax
	jne	fail
	cmpl	$0x49424d47, (%rdi)
	jne	fail
	cmpl	$1, 4(%rdi)
	jne	fail
	cmpl	$1, 32(%rdi)		/* nr_vcpus */
	jne	fail
	testq	%rsi, %rsi
	jnz	fail
	testq	$15, %rsp
	jnz	fail
	movq	24(%rdi), %rax		/* free_start >= stack top */
	cmpq	%rax, %rsp
	ja	fail
	testq	$0xfff, %rax
	jnz	fail
	movq	8(%rdi), %rbx		/* ram_size = 32M */
	cmpq	$0x2000000, %rbx
	jne	fail
	movq	16(%rdi), %rbx		/* shared_base: 0 or >= ram_size */
	testq	%rbx, %rbx
	jz	1f
	cmpq	$0x2000000, %rbx
	jb	fail
1:	movq	40(%rdi), %rbx		/* cmdline "a bc" */
	cmpl	$0x63622061, (%rbx)
	jne	fail
	cmpb	$0, 4(%rbx)
	jne	fail
	movq	%cr0, %rax		/* PE, MP, PG; not EM */
	andl	$0x80000007, %eax
	cmpl	$0x80000003, %eax
	jne	fail
	movq	%cr4, %rax		/* PAE, OSFXSR, OSXMMEXCPT */
	andq	$0x620, %rax
	cmpq	$0x620, %rax
	jne	fail
	movw	%cs, %ax
	cmpw	$0x08, %ax
	jne	fail
	movw	%ss, %ax
	cmpw	$0x10, %ax
	jne	fail
	xorl	%eax, %eax
	outl	%eax, $0xf4
#elif V == 7		/* doorbell results */
	movq	%rdi, %r12
	movl	$13, %eax		/* unknown number */
	outb	%al, $0xf5
	cmpq	$-1000, %rax
	jne	fail
	movl	$12, %eax		/* unaligned */
	movl	$1, %ebx
	movl	$1, %ecx
	xorl	%edx, %edx
	outb	%al, $0xf5
	cmpq	$-22, %rax
	jne	fail
	movl	$12, %eax		/* a1 = 0 */
	movq	24(%r12), %rbx
	xorl	%ecx, %ecx
	outb	%al, $0xf5
	cmpq	$-22, %rax
	jne	fail
	movl	$12, %eax		/* a1 * 4096 overflows */
	movabsq	$0x10000000000000, %rcx
	outb	%al, $0xf5
	cmpq	$-22, %rax
	jne	fail
	movl	$12, %eax		/* past the end of RAM */
	movq	8(%r12), %rcx
	shrq	$12, %rcx
	outb	%al, $0xf5
	cmpq	$-22, %rax
	jne	fail
	movl	$12, %eax		/* hint 3 */
	movl	$1, %ecx
	movl	$3, %edx
	outb	%al, $0xf5
	cmpq	$-22, %rax
	jne	fail
	movl	$12, %eax		/* reserved bit */
	movl	$0x20, %edx
	outb	%al, $0xf5
	cmpq	$-22, %rax
	jne	fail
	movl	$12, %eax		/* ok: to shared, then private */
	xorl	%edx, %edx
	outb	%al, $0xf5
	testq	%rax, %rax
	jnz	fail
	cmpq	24(%r12), %rbx		/* arguments preserved */
	jne	fail
	movl	$12, %eax
	movl	$0x10, %edx
	outb	%al, $0xf5
	testq	%rax, %rax
	jnz	fail
	xorl	%eax, %eax
	outl	%eax, $0xf4
#elif V == 8		/* 2-byte doorbell */
	movl	$12, %eax
	outw	%ax, $0xf5
#elif V == 9		/* two vCPUs: 1 parks, 0 exits 7 */
	testl	%esi, %esi
	jz	1f
	hlt
1:	movl	$7, %eax
	outl	%eax, $0xf4
#elif V == 10		/* access past the end of the shared view */
	movq	8(%rdi), %rbx
	addq	16(%rdi), %rbx
	movq	(%rbx), %rax
#elif V == 11		/* DMA device registers, statuses, PIN vs MAP_GPA_RANGE */
#define OUT(reg, val)	movl val, %eax; movw $reg, %dx; outl %eax, %dx
#define IN(reg)		movw $reg, %dx; inl %dx, %eax
#define STATUS(v)	IN(0x534); cmpl $v, %eax; jne fail
#define MAP(attr)	movl $12, %eax; movq %r12, %rbx; movl $1, %ecx; \
			movl $attr, %edx; outb %al, $0xf5
	movq	24(%rdi), %r12		/* free_start, made private */
	MAP(0x10)
	testq	%rax, %rax
	jnz	fail
	OUT(0x52c, $0x1234abcd)		/* registers read back */
	IN(0x52c)
	cmpl	$0x1234abcd, %eax
	jne	fail
	movw	$0x534, %dx		/* wrong size: all ones */
	inw	%dx, %ax
	cmpw	$0xffff, %ax
	jne	fail
	IN(0x53c)			/* no register: all ones */
	cmpl	$-1, %eax
	jne	fail
	OUT(0x520, %r12d)
	movq	%r12, %rax
	shrq	$32, %rax
	movw	$0x524, %dx
	outl	%eax, %dx
	OUT(0x528, $0)			/* LEN 0: bad */
	OUT(0x530, $1)
	STATUS(2)
	OUT(0x528, $0x1000001)		/* LEN 16 MiB + 1: bad */
	OUT(0x530, $1)
	STATUS(2)
	OUT(0x528, $4096)
	OUT(0x530, $9)			/* unknown command: bad */
	STATUS(2)
	OUT(0x530, $1)			/* FILL a private page: fault */
	STATUS(1)
	OUT(0x530, $3)			/* PIN a private page: fault */
	STATUS(1)
	OUT(0x530, $4)			/* UNPIN what is not pinned: bad */
	STATUS(2)
	MAP(0)				/* to shared */
	testq	%rax, %rax
	jnz	fail
	OUT(0x52c, $0x5a)
	OUT(0x530, $1)			/* FILL */
	STATUS(0)
	OUT(0x530, $2)			/* CHECKSUM */
	STATUS(0)
	IN(0x538)
	cmpl	$0x5a000, %eax
	jne	fail
	movl	$64, %r13d		/* 64 pins fit, the 65th does not: */
1:	OUT(0x530, $3)
	STATUS(0)
	decl	%r13d
	jnz	1b
	OUT(0x530, $3)
	STATUS(3)			/* no resources (ABI extension 2) */
	MAP(0x10)			/* to private while pinned: busy */
	cmpq	$-11, %rax
	jne	fail
	OUT(0x530, $2)			/* nothing changed: still readable */
	STATUS(0)
	movl	$64, %r13d
2:	OUT(0x530, $4)
	STATUS(0)
	decl	%r13d
	jnz	2b
	OUT(0x530, $4)
	STATUS(2)
	MAP(0x10)			/* now it converts */
	testq	%rax, %rax
	jnz	fail
	OUT(0x530, $2)
	STATUS(1)
	xorl	%eax, %eax
	outl	%eax, $0xf4
#elif V == 13		/* read of the exit port */
	inl	$0xf4, %eax
#elif V == 14		/* 128 KiB of console output, then exit 5 */
	movl	$32, %r12d
1:	leaq	lines(%rip), %rsi
	movl	$lines_end - lines, %ecx
	movw	$0x3f8, %dx
	rep outsb
	decl	%r12d
	jnz	1b
	movl	$5, %eax
	outl	%eax, $0xf4
#elif V == 15		/* vCPU 0 says "ready", then every vCPU spins */
	testl	%esi, %esi
	jnz	2f
	leaq	ready(%rip), %rsi
	movl	$ready_end - ready, %ecx
	movw	$0x3f8, %dx
	rep outsb
2:	jmp	2b
#endif
fail:
	movl	$1, %eax
	outl	%eax, $0xf4
msg:	.ascii	"hello from the guest\n"
msg_end:
ready:	.ascii	"ready\n"
ready_end:
#if V == 14
lines:	.rept	64			/* 4 KiB */
	.ascii	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\n"
	.endr
lines_end:
#endif
	/* Three PT_LOAD segments with contents, for the overlap test. */
	.section .rodata
	.quad	1
	.data
	.quad	2
EOF
for v in 0 1 2 3 4 5 6 7 8 9 10 11 13 14 15; do
	build_guest "$tmp/guest.S" "$tmp/g$v.elf" -DV="$v"
done
ok=$tmp/g0.elf
phoff=$(peek $ok 32 8)
phnum=$(peek $ok 56 2)
[ "$phnum" -ge 1 ] || { echo "test guest has no program headers"; exit 1; }

bad() {	# NAME: copy ok to NAME for the caller to patch
	cp $ok "$tmp/$1"
}
# patched NAME OFFSET NBYTES VALUE PATTERN [RUN-OPTIONS...]: ok with VALUE
# poked at OFFSET is refused (125) with "NAME: PATTERN".
patched() {
	local name=$1
	bad "$name"
	poke "$tmp/$name" "$2" "$3" "$4"
	expect 125 "$name: $5" -- run "${@:6}" "$tmp/$name"
}
patched magic 0 1 0 "not an ELF file"
printf 'EL' >"$tmp/tiny"
expect 125 "tiny: not an ELF file" -- run "$tmp/tiny"
: >"$tmp/empty"
expect 125 "empty: not an ELF file" -- run "$tmp/empty"
truncate -s 65M "$tmp/huge"	# sparse: refused before it is read
expect 125 "huge: too large: 68157440 bytes, the limit for a guest image is 64 MiB" -- run "$tmp/huge"
head -c 6 $ok >"$tmp/six"
expect 125 "six: truncated" -- run "$tmp/six"
patched class 4 1 1 "not a 64-bit ELF"
patched endian 5 1 2 "not a little-endian ELF"
patched machine 18 2 3 "machine 3 is not x86-64"
patched type 16 2 3 "not an executable: type 3 \\(ET_DYN"
patched rel 16 2 1 "not an executable"
head -c 40 $ok >"$tmp/trunc_ehdr"
expect 125 "trunc_ehdr: truncated" -- run "$tmp/trunc_ehdr"
head -c $((phoff + 20)) $ok >"$tmp/trunc_phdr"
expect 125 "trunc_phdr: truncated: program headers" -- run "$tmp/trunc_phdr"
head -c $((phoff + phnum * 56 + 8)) $ok >"$tmp/trunc_seg"
expect 125 "trunc_seg: truncated: segment" -- run "$tmp/trunc_seg"
patched phoff 32 8 0x7fffffffffffffff "truncated: program headers"
patched phentsize 54 2 32 "program header entry size 32"
patched nophdr 56 2 0 "no program headers"
bad noload
for ((i = 0; i < phnum; i++)); do poke "$tmp/noload" $((phoff + i * 56)) 4 4; done
expect 125 "noload: no PT_LOAD segment" -- run "$tmp/noload"
patched low $((phoff + 24)) 8 0x1000 "segment 0 .* is outside guest RAM \\[1 MiB"
patched high $((phoff + 24)) 8 0x7ffff000 "segment 0 .* is outside guest RAM" --memory 32M
patched wrap $((phoff + 24)) 8 0xfffffffffffff000 "segment 0 .* is outside guest RAM"
patched huge $((phoff + 40)) 8 0x7fffffffffffffff "segment 0 .* is outside guest RAM"
patched filesz $((phoff + 40)) 8 1 "segment 0: p_filesz .* is larger than p_memsz"
patched entry 24 8 0x50 "entry point 0x50 is not inside an executable PT_LOAD segment"
if [ "$phnum" -ge 2 ]; then
	p0=$(peek $ok $((phoff + 24)) 8)
	patched overlap $((phoff + 56 + 24)) 8 "$p0" "segments .* overlap"
fi

# ---------------------------------------------------------------- --incoming
# Its streams are tests/test_gmvm_migrate_wire.c's; here the command line
# and the socket path, all refused before anything listens.
expect 125 "option --incoming needs a value" -- run --incoming
expect 125 "--incoming: 'tcp:host:4444' is not unix:SOCKET" -- run --incoming tcp:host:4444
expect 125 "--incoming: 'unix:' is not unix:SOCKET" -- run --incoming unix:
expect 125 "--incoming: '/tmp/x.sock' is not unix:SOCKET" -- run --incoming=/tmp/x.sock
expect 125 "--incoming takes no guest image \('$x'\)" -- run --incoming "unix:$tmp/in.sock" $x
for o in "--memory 16M" "--memory-layout pc" "--vcpus 2" "--conversion in-place" \
	 "--implicit deny" "--init-shared" "--reclaim deferred" "--dmatest external"; do
	expect 125 "run: option ${o%% *} is not for --incoming: the migration stream's run options describe the VM" \
		-- run $o --incoming "unix:$tmp/in.sock"
	expect 125 "run: option ${o%% *} is not for --incoming" \
		-- run --incoming "unix:$tmp/in.sock" $o
done
expect 125 "restore: option --incoming is not for restore" -- restore --incoming "unix:$tmp/in.sock" f.snap
: >"$tmp/in.file"
expect 125 "--incoming unix:$tmp/in.file: exists and is not a socket" -- run --incoming "unix:$tmp/in.file"
[ -f "$tmp/in.file" ] || fail "--incoming removed a file that was not its socket"
# --control is tried before anything listens (it is made after the COMMIT).
expect 125 "--control $tmp/in.file: exists and is not a socket" -- run --control "$tmp/in.file" --incoming "unix:$tmp/in.sock"
[ -e "$tmp/in.sock" ] && fail "--incoming listened although --control was refused"
# SIGTERM while waiting for the source: 143, one line, the socket removed.
"$GMVM" run --incoming "unix:$tmp/in.sock" >"$tmp/out" 2>"$tmp/err" </dev/null &
in_pid=$!
for ((i = 0; i < 200; i++)); do [ -S "$tmp/in.sock" ] && break; sleep 0.05; done
[ -S "$tmp/in.sock" ] || fail "--incoming never listened: $(cat "$tmp/err")"
kill -TERM "$in_pid"
wait "$in_pid"
st=$?
[ "$st" = 143 ] || fail "--incoming stopped by SIGTERM exited $st: $(cat "$tmp/err")"
grep -q "^gmvm: --incoming unix:$tmp/in.sock: stopped by SIGTERM while waiting for the source$" "$tmp/err" ||
	fail "--incoming stopped by SIGTERM: $(cat "$tmp/err")"
[ -e "$tmp/in.sock" ] && fail "--incoming left its socket after SIGTERM"
# --timeout bounds the wait for the source as well: 124, the socket gone.
expect 124 "^gmvm: --incoming unix:$tmp/in.sock: --timeout: no source connected within 0.3 s$" \
	-- run --incoming "unix:$tmp/in.sock" --timeout 0.3
[ -e "$tmp/in.sock" ] && fail "--incoming left its socket after --timeout"
long=$(printf '%0200d' 0)
expect 125 "too long for a unix socket path" -- run --incoming "unix:$tmp/$long"
expect 0 "" -- run --help
grep -q -- '--incoming unix:SOCKET' "$tmp/out" || fail "gmvm run --help lacks --incoming"
expect 0 "" -- ctl --help
grep -q 'migrate unix:SOCKET      move the VM live' "$tmp/out" || fail "gmvm ctl --help does not describe migrate"

# ---------------------------------------------------------------- with KVM
skip_without_kvm

expect 0 "" -- caps
grep -q '^guest_memfd:' "$tmp/out" || fail "caps does not report guest_memfd"
grep -q '^vmcall comes back:' "$tmp/out" || fail "caps does not report vmcall"
grep -Eq '^page-state runs: +about [0-9]+: vm.max_map_count [0-9]+' "$tmp/out" ||
	fail "caps does not estimate the runs vm.max_map_count allows"
grep -Eq '^migration tracking:  (uffd-wp|none)$' "$tmp/out" &&
	grep -Eq '^  uffd-wp: +(yes|no): ' "$tmp/out" &&
	grep -Eq '^  KVM dirty log: +(yes|no): .*; not used: ' "$tmp/out" &&
	grep -Eq '^  soft-dirty: +(yes|no): ' "$tmp/out" ||
	fail "caps does not say which migration tracker gmvm uses and why not the others"
expect 0 "" -- caps --json
grep -q '"hypercall_transport"' "$tmp/out" || fail "caps --json lacks hypercall_transport"
grep -Eq '"max_runs": [0-9]+' "$tmp/out" || fail "caps --json lacks max_runs"
grep -Eq '"migration": \{"tracker": "(uffd-wp|none)", "uffd_wp": (true|false), "uffd_wp_why": ' "$tmp/out" ||
	fail "caps --json lacks the migration tracker"

to="--timeout 60"
expect 42 "" -- run $to "$tmp/g0.elf"
expect 126 "vcpu 0: 1-byte write at I/O port 0x80, which no device defines \\(RIP 0x1" -- run $to "$tmp/g1.elf"
expect 126 "all 1 vCPU halted" -- run $to "$tmp/g2.elf"
expect 124 "timeout" -- run --timeout 0.5 "$tmp/g3.elf"
expect 126 "vcpu 0: triple fault" -- run $to "$tmp/g4.elf"
expect 0 "" -- run $to "$tmp/g5.elf"
grep -qx 'hello from the guest' "$tmp/out" || fail "console output: $(cat "$tmp/out")"
expect 0 "" -- run $to --memory 32M "$tmp/g6.elf" a bc
expect 0 "" -- run $to --memory 32M --init-shared "$tmp/g6.elf" a bc
expect 0 "" -- run $to --memory 32M --conversion in-place "$tmp/g6.elf" a bc
expect 0 "" -- run $to "$tmp/g7.elf"
expect 0 "" -- run $to --init-shared --conversion in-place "$tmp/g7.elf"
expect 126 "2-byte write at the doorbell port 0xf5" -- run $to "$tmp/g8.elf"
expect 7 "" -- run $to --vcpus 2 "$tmp/g9.elf"
# An MMIO exit (outside guest RAM) or, on hosts whose KVM injects a fault
# for a GPA without a memslot (PVM), a triple fault: 126 either way.
expect 126 "outside guest RAM|triple fault" -- run $to "$tmp/g10.elf"
expect 0 "" -- run $to "$tmp/g11.elf"
expect 0 "" -- run $to --conversion in-place --init-shared "$tmp/g11.elf"
expect 126 "read of the write-only exit port" -- run $to "$tmp/g13.elf"
expect 0 "" -- run $to --stats=json "$tmp/g7.elf"
grep -q '"hypercalls": {"count": 9' "$tmp/out" || fail "--stats=json: $(cat "$tmp/out")"
expect 42 "" -- run $to --stats "$tmp/g0.elf"
grep -q '^--- gmvm stats ---' "$tmp/out" || fail "--stats: $(cat "$tmp/out")"

# ---------------------------------------------------------------- signals
# signalled SIGNAL STATUS PREFIX -- GMVM-RUN-OPTIONS: run the guest that
# prints "ready" and spins (g15) as PREFIX gmvm run OPTIONS, send SIGNAL
# once it is ready, and expect STATUS with the stop message and the
# audit line on stderr.  PREFIX is a command that execs gmvm (so that $!
# is gmvm's pid): env resetting SIGINT, which bash makes background jobs
# of a non-interactive shell ignore (gmvm keeps an inherited ignore).
# SIGNAL "group:SIG" sends SIG to gmvm's process group (PREFIX starts
# with setsid), as a terminal's ^C does; "twice:SIG" sends SIG twice.
signalled() {
	local sig=$1 want=$2 prefix=$3 pid st to_group=0 twice=0 name
	shift 4
	case "$sig" in
	group:*) to_group=1; sig=${sig#group:} ;;
	twice:*) twice=1; sig=${sig#twice:} ;;
	esac
	name="gmvm run $* with $sig"
	$prefix "$GMVM" run --timeout 60 "$@" "$tmp/g15.elf" \
		>"$tmp/out" 2>"$tmp/err" </dev/null &
	pid=$!
	bg_pid=$pid
	if ! wait_for "$tmp/out" '^ready$' 30; then
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		bg_pid=""
		fail "$name: the guest never said ready; stderr: $(head -c 300 "$tmp/err")"
		return 1
	fi
	if [ "$to_group" = 1 ]; then
		# setsid runs gmvm in place as the leader of a new group,
		# unless it already led one: then it forks, and $! is not it.
		[ "$(awk '{ print $5 }' "/proc/$pid/stat")" = "$pid" ] ||
			fail "$name: gmvm is not a process group leader"
		kill -s "$sig" -- "-$pid"
	else
		kill -s "$sig" "$pid"
		[ "$twice" = 1 ] && kill -s "$sig" "$pid" 2>/dev/null
	fi
	wait "$pid"
	st=$?
	bg_pid=""
	if [ "$st" != "$want" ]; then
		fail "$name exited $st, expected $want; stderr: $(head -c 400 "$tmp/err")"
		return 1
	fi
	grep -q "^gmvm: stopped by SIG$sig while the guest was running" "$tmp/err" ||
		fail "$name: no stop message: $(head -c 400 "$tmp/err")"
	grep -q '^gmvm: audit after the run: every invariant holds' "$tmp/err" ||
		fail "$name: no audit line: $(head -c 400 "$tmp/err")"
	if grep -v '^gmvm: stopped by\|^gmvm: audit after the run' "$tmp/err" |
	   grep -q .; then
		fail "$name: unexpected stderr: $(head -c 400 "$tmp/err")"
	fi
	return 0
}

dflt="env --default-signal=INT,TERM"
signalled TERM 143 "$dflt" -- --vcpus 2 --stats &&
	{ grep -q '^--- gmvm stats ---' "$tmp/out" &&
	  grep -q '^run: .*2 vCPUs' "$tmp/out" ||
	  fail "SIGTERM with --stats: $(cat "$tmp/out")"; }
signalled INT 130 "$dflt" -- --stats=json &&
	{ grep -q '^{"vcpus": 1,' "$tmp/out" ||
	  fail "SIGINT with --stats=json: $(cat "$tmp/out")"; }
signalled twice:TERM 143 "$dflt" -- --vcpus 2
signalled twice:INT 130 "$dflt" --
# A terminal's ^C reaches the external DMA device too: it must leave the
# stop to gmvm, so the run ends with 130 and no device death.
signalled group:INT 130 "setsid $dflt" -- --dmatest external --stats &&
	{ grep -q '^dma backend:  external, device process pid [0-9]*, died no' \
		"$tmp/out" || fail "^C with an external device: $(cat "$tmp/out")"; }

# SIGINT ignored when gmvm starts stays ignored; SIGTERM still stops it.
env --ignore-signal=INT --default-signal=TERM "$GMVM" run --timeout 60 \
	"$tmp/g15.elf" >"$tmp/out" 2>"$tmp/err" </dev/null &
pid=$!
bg_pid=$pid
wait_for "$tmp/out" '^ready$' 30
kill -s INT "$pid"
sleep 0.5
if ! kill -0 "$pid" 2>/dev/null; then
	wait "$pid"
	st=$?
	bg_pid=""
	fail "an ignored SIGINT stopped gmvm (status $st)"
else
	kill -s TERM "$pid"
	wait "$pid"
	st=$?
	bg_pid=""
	[ "$st" = 143 ] || fail "SIGTERM after an ignored SIGINT: status $st, expected 143"
fi

# ---------------------------------------------------------------- stdout
# A reader that goes away: no SIGPIPE death (141), the guest runs to its
# own status, the rest of its output is dropped with one line saying so.
"$GMVM" run $to "$tmp/g14.elf" 2>"$tmp/err" </dev/null | head -n 1 >"$tmp/out"
st=${PIPESTATUS[0]}
[ "$st" = 5 ] || fail "gmvm run | head -1 exited $st, expected 5 (the guest's); stderr: $(head -c 300 "$tmp/err")"
grep -qx '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd' "$tmp/out" ||
	fail "gmvm run | head -1 printed: $(head -c 100 "$tmp/out")"
[ "$(grep -c 'the rest of it is dropped' "$tmp/err")" = 1 ] ||
	fail "gmvm run | head -1: expected one line about the dropped output: $(head -c 300 "$tmp/err")"

finish
