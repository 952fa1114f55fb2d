/* SPDX-License-Identifier: MIT */
//@ run: 0
//@ run: 0 --conversion in-place
//@ run: 0 --init-shared
//@ run: 0 --memory 32M
/*
 * MAP_GPA_RANGE with bad arguments (ABI section 5): every kind of bad
 * request returns -22, every unknown hypercall number -1000, and a failed
 * call changes nothing.  Three witnesses are checked after every call:
 *   A: 8 shared pages holding PA: the device still reads PA from them;
 *   B: 8 private pages holding PB: each still faults in the device alone,
 *      and the private view still reads PB;
 *   C: the last 2 pages of RAM, shared, holding PC.
 * Each bad call aims at A with "make private" or at B with "make shared",
 * so that a call that half-worked would show.  Also: valid size hints are
 * accepted, a request for the state a range is already in leaves it (and
 * its bytes) alone, and every register but RAX is preserved by valid, bad
 * and unknown calls alike.
 */
#include "guest.h"

#define PA	0xa5
#define PB	0xb6
#define PC	0xc7
#define NPAGES	8
#define LEN	(NPAGES * PAGE_SIZE)

static uint64_t A, B, C, D;
static unsigned int nr_checked;

static void check_witnesses(const char *what)
{
	uint32_t sum;
	int st;

	st = dma_checksum(A, LEN, &sum);
	GUEST_ASSERT_MSG(st == GM_DMA_OK && sum == pattern_checksum(PA, LEN),
			 "after %s: shared range A: status %d sum 0x%x", what,
			 st, sum);
	for (uint64_t a = B; a < B + LEN; a += PAGE_SIZE) {
		st = dma_checksum(a, PAGE_SIZE, NULL);
		GUEST_ASSERT_MSG(st == GM_DMA_FAULT,
				 "after %s: private page 0x%llx: status %d",
				 what, (unsigned long long)a, st);
	}
	GUEST_ASSERT_MSG(find_mismatch(gpa_private(B), PB, LEN) < 0,
			 "after %s: private range B lost its bytes", what);
	st = dma_checksum(C, 2 * PAGE_SIZE, &sum);
	GUEST_ASSERT_MSG(st == GM_DMA_OK &&
			 sum == pattern_checksum(PC, 2 * PAGE_SIZE),
			 "after %s: shared range C: status %d sum 0x%x", what,
			 st, sum);
	nr_checked++;
}

static void expect(long want, uint64_t nr, uint64_t a0, uint64_t a1,
		   uint64_t a2, const char *what)
{
	long r = gm_hypercall(nr, a0, a1, a2);

	GUEST_ASSERT_MSG(r == want,
			 "%s: hypercall(nr 0x%llx, a0 0x%llx, a1 0x%llx, "
			 "a2 0x%llx) = %ld, expected %ld", what,
			 (unsigned long long)nr, (unsigned long long)a0,
			 (unsigned long long)a1, (unsigned long long)a2, r,
			 want);
	check_witnesses(what);
}

#define BAD(a0, a1, a2, what) \
	expect(GM_HC_EINVAL, GM_HC_MAP_GPA_RANGE, a0, a1, a2, what)

static void bad_alignment(void)
{
	static const uint64_t offs[] = { 1, 8, 0x800, 0xfff };

	for (unsigned int i = 0; i < ARRAY_SIZE(offs); i++) {
		BAD(A + offs[i], 1, GM_MAP_PRIVATE, "unaligned GPA");
		BAD(B + offs[i], NPAGES - 1, GM_MAP_SHARED, "unaligned GPA");
	}
}

static void bad_count(void)
{
	BAD(A, 0, GM_MAP_PRIVATE, "a1 = 0");
	BAD(B, 0, GM_MAP_SHARED, "a1 = 0");
	BAD(A, 0, GM_MAP_PRIVATE | GM_MAP_PAGE_SZ_2M, "a1 = 0");
}

static void bad_wrap(void)
{
	/* GPA + a1 * 4 KiB overflows 64 bits, in several ways. */
	BAD(A, 1ULL << 52, GM_MAP_PRIVATE, "range wraps (exactly 2^64)");
	BAD(A, (1ULL << 52) + 1, GM_MAP_PRIVATE, "range wraps");
	BAD(A, ~0ULL, GM_MAP_PRIVATE, "range wraps (a1 = ~0)");
	BAD(B, ~0ULL >> PAGE_SHIFT, GM_MAP_SHARED, "range wraps");
	BAD(B, 1ULL << 63, GM_MAP_SHARED, "range wraps (a1 * 4K = 0)");
	BAD(0xfffffffffffff000ULL, 2, GM_MAP_SHARED, "range wraps at top");
	BAD(0xfffffffffffff000ULL, 1, GM_MAP_SHARED, "range at 2^64 - 4K");
}

static void bad_bounds(void)
{
	uint64_t ram = gm_ram_size;

	BAD(ram, 1, GM_MAP_PRIVATE, "range at ram_size");
	BAD(ram - PAGE_SIZE, 2, GM_MAP_PRIVATE, "range leaves RAM by 1 page");
	/* C is shared: a private request covering it and beyond fails
	 * whole, C must stay shared. */
	BAD(C - PAGE_SIZE, 4, GM_MAP_PRIVATE, "range over C leaves RAM");
	BAD(C, 3, GM_MAP_PRIVATE, "range from C leaves RAM");
	BAD(A, ((ram - A) >> PAGE_SHIFT) + 1, GM_MAP_PRIVATE,
	    "range from A leaves RAM");
	BAD(B, ((ram - B) >> PAGE_SHIFT) + 1, GM_MAP_SHARED,
	    "range from B leaves RAM");
	BAD(ram + SZ_1G, 1, GM_MAP_SHARED, "range far beyond RAM");
	BAD(1ULL << 51, 1, GM_MAP_SHARED, "range at 2^51");
	/* a0 is a private-view GPA; a shared-view address is outside RAM. */
	if (gm_shared_base) {
		BAD(gm_shared_base + A, NPAGES, GM_MAP_PRIVATE,
		    "shared-view address of A");
		BAD(gm_shared_base + B, NPAGES, GM_MAP_SHARED,
		    "shared-view address of B");
	}
}

static void bad_attrs(void)
{
	char what[64];

	for (int bit = 5; bit < 64; bit++) {
		snprintf(what, sizeof(what), "reserved attribute bit %d", bit);
		BAD(A, NPAGES, GM_MAP_PRIVATE | (1ULL << bit), what);
		BAD(B, NPAGES, GM_MAP_SHARED | (1ULL << bit), what);
	}
	BAD(A, NPAGES, ~0ULL, "all attribute bits");
	BAD(B, NPAGES, GM_MAP_RESERVED_MASK, "all reserved bits");
	for (uint64_t hint = 3; hint <= GM_MAP_PAGE_SZ_MASK; hint++) {
		snprintf(what, sizeof(what), "size hint %llu",
			 (unsigned long long)hint);
		BAD(A, NPAGES, GM_MAP_PRIVATE | hint, what);
		BAD(B, NPAGES, GM_MAP_SHARED | hint, what);
	}
}

static void unknown_numbers(void)
{
	static const uint64_t nrs[] = {
		0, 1, 5, 9, 10, 11, 13, 14, 100, 0xff, 0x10c, 0xffffffff,
		(1ULL << 32) | GM_HC_MAP_GPA_RANGE,
		(1ULL << 63) | GM_HC_MAP_GPA_RANGE, ~0ULL,
	};
	char what[64];

	for (unsigned int i = 0; i < ARRAY_SIZE(nrs); i++) {
		snprintf(what, sizeof(what), "hypercall number 0x%llx",
			 (unsigned long long)nrs[i]);
		/* Arguments that would be a valid MAP_GPA_RANGE... */
		expect(GM_HC_ENOSYS, nrs[i], A, NPAGES, GM_MAP_PRIVATE, what);
		expect(GM_HC_ENOSYS, nrs[i], B, NPAGES, GM_MAP_SHARED, what);
		/* ...and ones that would not: the number decides first. */
		expect(GM_HC_ENOSYS, nrs[i], A + 1, 0, ~0ULL, what);
	}
}

/* Requests for the state a range is in: 0, nothing moves, bytes stay. */
static void valid_noops(void)
{
	static const uint64_t hints[] = {
		GM_MAP_PAGE_SZ_4K, GM_MAP_PAGE_SZ_2M, GM_MAP_PAGE_SZ_1G,
	};

	for (unsigned int i = 0; i < ARRAY_SIZE(hints); i++) {
		expect(0, GM_HC_MAP_GPA_RANGE, A, NPAGES,
		       GM_MAP_SHARED | hints[i], "A to shared again");
		expect(0, GM_HC_MAP_GPA_RANGE, B, NPAGES,
		       GM_MAP_PRIVATE | hints[i], "B to private again");
		expect(0, GM_HC_MAP_GPA_RANGE, C, 2,
		       GM_MAP_SHARED | hints[i], "C to shared again");
	}
	/* And a real round trip with each hint. */
	for (unsigned int i = 0; i < ARRAY_SIZE(hints); i++) {
		GUEST_ASSERT_EQ(map_gpa_range(A, NPAGES,
					      GM_MAP_PRIVATE | hints[i]), 0);
		EXPECT_EACH_PAGE_PRIVATE(A, LEN);
		GUEST_ASSERT_EQ(map_gpa_range(A, NPAGES,
					      GM_MAP_SHARED | hints[i]), 0);
		GUEST_ASSERT_EQ(dma_fill(A, LEN, PA), GM_DMA_OK);
		check_witnesses("a round trip of A");
	}
}

/*
 * regs[] in and out: rax rbx rcx rdx rsi rdi rbp r8 .. r15.  Loads every
 * register, makes the call (vmcall if use_vmcall), stores every register.
 */
void hc_probe(uint64_t *regs, uint64_t use_vmcall);
asm(".pushsection .text\n"
    ".globl hc_probe\n"
    ".type hc_probe, @function\n"
    "hc_probe:\n"
    "	push %rbx\n	push %rbp\n	push %r12\n"
    "	push %r13\n	push %r14\n	push %r15\n"
    "	push %rdi\n"		/* 8(%rsp): regs */
    "	push %rsi\n"		/* (%rsp): use_vmcall */
    "	mov 0x08(%rdi), %rbx\n	mov 0x10(%rdi), %rcx\n"
    "	mov 0x18(%rdi), %rdx\n	mov 0x20(%rdi), %rsi\n"
    "	mov 0x30(%rdi), %rbp\n	mov 0x38(%rdi), %r8\n"
    "	mov 0x40(%rdi), %r9\n	mov 0x48(%rdi), %r10\n"
    "	mov 0x50(%rdi), %r11\n	mov 0x58(%rdi), %r12\n"
    "	mov 0x60(%rdi), %r13\n	mov 0x68(%rdi), %r14\n"
    "	mov 0x70(%rdi), %r15\n	mov 0x00(%rdi), %rax\n"
    "	mov 0x28(%rdi), %rdi\n"
    "	cmpq $0, (%rsp)\n"
    "	jne 1f\n"
    "	outb %al, $0xf5\n"
    "	jmp 2f\n"
    "1:	vmcall\n"
    "2:	xchg %rdi, 8(%rsp)\n"	/* rdi = regs, slot = guest rdi */
    "	mov %rax, 0x00(%rdi)\n	mov %rbx, 0x08(%rdi)\n"
    "	mov %rcx, 0x10(%rdi)\n	mov %rdx, 0x18(%rdi)\n"
    "	mov %rsi, 0x20(%rdi)\n	mov %rbp, 0x30(%rdi)\n"
    "	mov %r8, 0x38(%rdi)\n	mov %r9, 0x40(%rdi)\n"
    "	mov %r10, 0x48(%rdi)\n	mov %r11, 0x50(%rdi)\n"
    "	mov %r12, 0x58(%rdi)\n	mov %r13, 0x60(%rdi)\n"
    "	mov %r14, 0x68(%rdi)\n	mov %r15, 0x70(%rdi)\n"
    "	mov 8(%rsp), %rax\n	mov %rax, 0x28(%rdi)\n"
    "	add $16, %rsp\n"
    "	pop %r15\n	pop %r14\n	pop %r13\n"
    "	pop %r12\n	pop %rbp\n	pop %rbx\n"
    "	ret\n"
    ".size hc_probe, . - hc_probe\n"
    ".popsection\n");

static void registers_preserved(uint64_t nr, uint64_t a0, uint64_t a1,
				uint64_t a2, long want)
{
	static const char *const names[16] = {
		"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8",
		"r9", "r10", "r11", "r12", "r13", "r14", "r15", "-",
	};
	uint64_t in[16], out[16];

	for (int i = 0; i < 15; i++)
		in[i] = 0x0101010101010101ULL * (uint64_t)(i + 1) ^
			0x8000000000000000ULL;
	in[0] = nr;
	in[1] = a0;
	in[2] = a1;
	in[3] = a2;
	memcpy(out, in, sizeof(in));
	hc_probe(out, !!(gm_flags & GM_BOOT_F_VMCALL));
	GUEST_ASSERT_MSG((long)out[0] == want,
			 "hypercall nr 0x%llx: rax = %ld, expected %ld",
			 (unsigned long long)nr, (long)out[0], want);
	for (int i = 1; i < 15; i++)
		GUEST_ASSERT_MSG(out[i] == in[i],
				 "hypercall nr 0x%llx changed %s: 0x%llx -> "
				 "0x%llx", (unsigned long long)nr, names[i],
				 (unsigned long long)in[i],
				 (unsigned long long)out[i]);
	check_witnesses("the register probe");
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	if (cpu)
		return 0;
	test_area_require(SZ_2M + 4 * PAGE_SIZE);
	A = test_alloc(LEN, SZ_2M);
	B = test_alloc(LEN, PAGE_SIZE);
	D = test_alloc(PAGE_SIZE, PAGE_SIZE);	/* for the register probe */
	C = gm_ram_size - 2 * PAGE_SIZE;
	GUEST_ASSERT_LE(D + PAGE_SIZE, C);

	must_to_shared(A, LEN);
	GUEST_ASSERT_EQ(dma_fill(A, LEN, PA), GM_DMA_OK);
	must_to_private(B, LEN);
	memset(gpa_private(B), PB, LEN);
	must_to_shared(C, 2 * PAGE_SIZE);
	GUEST_ASSERT_EQ(dma_fill(C, 2 * PAGE_SIZE, PC), GM_DMA_OK);
	check_witnesses("setup");

	bad_alignment();
	bad_count();
	bad_wrap();
	bad_bounds();
	bad_attrs();
	puts("bad_args: every bad request returned -22 and changed nothing");
	unknown_numbers();
	puts("bad_args: every unknown number returned -1000 and changed "
	     "nothing");
	valid_noops();
	puts("bad_args: repeated requests left ranges and bytes alone");

	registers_preserved(GM_HC_MAP_GPA_RANGE, A, NPAGES, GM_MAP_SHARED, 0);
	registers_preserved(GM_HC_MAP_GPA_RANGE, A + 1, NPAGES,
			    GM_MAP_PRIVATE, GM_HC_EINVAL);
	registers_preserved(GM_HC_MAP_GPA_RANGE, B, NPAGES, 1ULL << 40,
			    GM_HC_EINVAL);
	registers_preserved(13, A, NPAGES, GM_MAP_PRIVATE, GM_HC_ENOSYS);
	/* Calls that convert, both ways. */
	registers_preserved(GM_HC_MAP_GPA_RANGE, D, 1, GM_MAP_SHARED, 0);
	GUEST_ASSERT_EQ(dma_fill(D, PAGE_SIZE, 0x42), GM_DMA_OK);
	registers_preserved(GM_HC_MAP_GPA_RANGE, D, 1, GM_MAP_PRIVATE, 0);
	EXPECT_EACH_PAGE_PRIVATE(D, PAGE_SIZE);
	puts("bad_args: registers other than RAX preserved");

	printf("bad_args: PASS (%u calls checked)\n", nr_checked);
	return 0;
}
