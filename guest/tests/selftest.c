/* SPDX-License-Identifier: MIT */
//@ run: 0
//@ run: 0 --memory 64M -- alpha beta=0x10 gamma=42
//@ run: 0 --init-shared --conversion in-place
//@ run: 0 --vcpus 4
//@ concurrency
/*
 * Runtime self-test and boot-info conformance (ABI sections 3 and 4): the
 * boot info is where RDI said and holds sane values; every vCPU starts and
 * gets its own index (RSI) and (through crt0) a 16-byte aligned stack; the
 * command line arrives as words joined by single spaces; the runtime's
 * printf, string and PRNG helpers do what the other guests rely on.
 * Touches no memory outside the image.
 */
#include "guest.h"

#define CHECK_FMT(want, fmt, ...)					\
	do {								\
		char b_[128];						\
		int n_ = snprintf(b_, sizeof(b_), fmt, ##__VA_ARGS__);	\
		GUEST_ASSERT_MSG(!strcmp(b_, want) &&			\
				 n_ == (int)strlen(want),		\
				 "format \"%s\" gave \"%s\", want \"%s\"", \
				 fmt, b_, want);			\
	} while (0)

static void check_printf(void)
{
	char small[8];
	int n;

	CHECK_FMT("42 -42 42", "%d %i %u", 42, -42, 42u);
	CHECK_FMT("ff FF 0xff 17", "%x %X %#x %o", 255u, 255u, 255u, 15u);
	CHECK_FMT("-9223372036854775808", "%lld",
		  (long long)(-0x7fffffffffffffffLL - 1));
	CHECK_FMT("18446744073709551615", "%llu", ~0ULL);
	CHECK_FMT("ffffffffffffffff", "%llx", ~0ULL);
	CHECK_FMT("123456789012", "%lu", 123456789012UL);
	CHECK_FMT("-5", "%ld", -5L);
	CHECK_FMT("4096", "%zu", (size_t)4096);
	CHECK_FMT("0x1000", "%p", (void *)0x1000);
	CHECK_FMT("[   7] [7   ] [0007] [-007]", "[%4d] [%-4d] [%04d] [%04d]",
		  7, 7, 7, -7);
	CHECK_FMT("00000000deadbeef", "%016llx", 0xdeadbeefULL);
	CHECK_FMT("[  ab] [ab  ] [a]", "[%4s] [%-4s] [%.1s]", "ab", "ab", "ab");
	CHECK_FMT("x% c", "%c%% %c", 'x', 'c');
	CHECK_FMT("[  -3]", "[%*d]", 4, -3);

	n = snprintf(small, sizeof(small), "%s", "0123456789");
	GUEST_ASSERT_EQ(n, 10);
	GUEST_ASSERT(!strcmp(small, "0123456"));
}

static void check_strings(void)
{
	char buf[32];
	char *end;

	memset(buf, 'a', sizeof(buf));
	GUEST_ASSERT_EQ(find_mismatch(buf, 'a', sizeof(buf)), -1);
	buf[17] = 'b';
	GUEST_ASSERT_EQ(find_mismatch(buf, 'a', sizeof(buf)), 17);
	GUEST_ASSERT_EQ(checksum(buf, sizeof(buf)), 31 * 'a' + 'b');
	GUEST_ASSERT_EQ(pattern_checksum(0xff, SZ_16M), 0xff000000u);

	memcpy(buf, "hello, world", 13);
	GUEST_ASSERT_EQ(strlen(buf), 12);
	GUEST_ASSERT(!memcmp(buf, "hello", 5));
	GUEST_ASSERT(memcmp(buf, "help", 4) < 0);
	memmove(buf + 2, buf, 13);
	GUEST_ASSERT(!strcmp(buf + 2, "hello, world"));
	memmove(buf, buf + 2, 13);
	GUEST_ASSERT(!strcmp(buf, "hello, world"));
	GUEST_ASSERT(strcmp("abc", "abd") < 0);
	GUEST_ASSERT(!strncmp("abcx", "abcy", 3));
	GUEST_ASSERT(strchr("abc", 'c') != NULL && !strchr("abc", 'z'));

	GUEST_ASSERT_EQ(strtoull("12345", &end, 10), 12345);
	GUEST_ASSERT_EQ(*end, 0);
	GUEST_ASSERT_EQ(strtoull("0x1fz", &end, 0), 0x1f);
	GUEST_ASSERT_EQ(*end, 'z');
	GUEST_ASSERT_EQ(strtoull("017", NULL, 0), 15);
	GUEST_ASSERT_EQ(strtoull("ffffffffffffffff", NULL, 16), ~0ULL);
	GUEST_ASSERT_EQ(strtoull("99999999999999999999", NULL, 10), ~0ULL);
	GUEST_ASSERT_EQ(strtoull("x", &end, 0), 0);
}

/* The word-at-a-time helpers against byte loops, at every alignment. */
static void check_word_helpers(void)
{
	static uint8_t buf[256] __attribute__((aligned(8)));
	static uint8_t other[256] __attribute__((aligned(8)));
	struct rng r;

	rng_seed(&r, 3);
	for (unsigned int i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rng_next(&r);
	for (unsigned int off = 0; off < 9; off++) {
		for (unsigned int len = 0; len < 80; len += 7) {
			uint32_t want = 0;

			for (unsigned int i = 0; i < len; i++)
				want += buf[off + i];
			GUEST_ASSERT_MSG(checksum(buf + off, len) == want,
					 "checksum off %u len %u", off, len);
		}
	}
	/* Lane overflow: 200 words of 0xff bytes. */
	memset(buf, 0xff, sizeof(buf));
	GUEST_ASSERT_EQ(checksum(buf, sizeof(buf)), 255 * sizeof(buf));

	memset(buf, 0x77, sizeof(buf));
	for (unsigned int off = 0; off < 9; off++) {
		for (unsigned int at = off; at < 100; at += 5) {
			long want = (long)(at - off);

			buf[at] = 0x78;
			GUEST_ASSERT_MSG(find_mismatch(buf + off, 0x77, 120) ==
					 want, "find_mismatch off %u at %u",
					 off, at);
			GUEST_ASSERT_EQ(find_mismatch(buf + off, 0x77,
						      at - off), -1);
			buf[at] = 0x77;
		}
	}

	memcpy(other, buf, sizeof(buf));
	GUEST_ASSERT_EQ(memcmp(buf, other, sizeof(buf)), 0);
	for (unsigned int at = 0; at < 200; at += 13) {
		other[at] = 0x76;
		GUEST_ASSERT_MSG(memcmp(buf, other, sizeof(buf)) > 0 &&
				 memcmp(other, buf, sizeof(buf)) < 0 &&
				 !memcmp(buf, other, at),
				 "memcmp with a difference at %u", at);
		GUEST_ASSERT(memcmp(buf + 3, other + 3, 190) ==
			     (at >= 3 && at < 193 ? 1 : 0));
		other[at] = 0x77;
	}
	/* memset and memcpy at odd alignments and lengths. */
	for (unsigned int off = 0; off < 9; off++) {
		memset(buf, 0, sizeof(buf));
		memset(buf + off, 0x5c, 37 + off);
		GUEST_ASSERT(off == 0 || buf[off - 1] == 0);
		GUEST_ASSERT_EQ(find_mismatch(buf + off, 0x5c, 37 + off), -1);
		GUEST_ASSERT_EQ(buf[off + 37 + off], 0);
		memcpy(other + off + 1, buf + off, 37 + off);
		GUEST_ASSERT(!memcmp(other + off + 1, buf + off, 37 + off));
	}
}

static void check_rng(void)
{
	struct rng a, b;
	uint64_t x = 0;

	rng_seed(&a, 1);
	rng_seed(&b, 1);
	for (int i = 0; i < 1000; i++) {
		uint64_t v = rng_next(&a);

		GUEST_ASSERT_EQ(v, rng_next(&b));
		x |= v;
	}
	GUEST_ASSERT_EQ(x, ~0ULL);	/* every bit seen set */
	for (int i = 0; i < 1000; i++)
		GUEST_ASSERT_LT(rng_below(&a, 10), 10);
	rng_seed(&b, 2);
	GUEST_ASSERT_NE(rng_next(&a), rng_next(&b));
}

static void check_boot_info(const struct gm_boot_info *bi)
{
	uint64_t img_end = (uint64_t)(uintptr_t)__image_end;

	GUEST_ASSERT_EQ(bi->magic, GM_BOOT_MAGIC);
	GUEST_ASSERT_EQ(bi->version, GM_BOOT_VERSION);
	GUEST_ASSERT_EQ(bi, gm_boot);
	GUEST_ASSERT_LT((uint64_t)(uintptr_t)bi, bi->ram_size);
	GUEST_ASSERT(IS_ALIGNED(bi->ram_size, PAGE_SIZE));
	GUEST_ASSERT(IS_ALIGNED(bi->free_start, PAGE_SIZE));
	GUEST_ASSERT_GE(bi->free_start, img_end);
	GUEST_ASSERT_LE(bi->free_start, bi->ram_size);
	GUEST_ASSERT_GE(bi->nr_vcpus, 1);
	/* shared_base: 0, or a power of two >= ram_size. */
	if (bi->shared_base) {
		GUEST_ASSERT_EQ(bi->shared_base & (bi->shared_base - 1), 0);
		GUEST_ASSERT_GE(bi->shared_base, bi->ram_size);
	}
	GUEST_ASSERT_EQ(bi->flags & ~(15u | GM_BOOT_F_REGIONS), 0);
	GUEST_ASSERT(bi->flags & GM_BOOT_F_REGIONS);	/* extension 4 */
	GUEST_ASSERT(bi->flags & GM_BOOT_F_PLUG);	/* extension 1 */
	/* Started private or started shared, as the flag says; the image
	 * itself is always loaded private (ABI section 1). */
	if (bi->cmdline)
		GUEST_ASSERT_LT(bi->cmdline, bi->ram_size);
}

static void check_cmdline(void)
{
	const char *c = cmdline();

	if (!*c)
		return;
	GUEST_ASSERT_MSG(c[0] != ' ' && c[strlen(c) - 1] != ' ' &&
			 !strchr(c, '\t'), "cmdline \"%s\"", c);
	for (const char *p = c; *p; p++)
		GUEST_ASSERT_MSG(!(p[0] == ' ' && p[1] == ' '),
				 "double space in \"%s\"", c);
	if (arg_present("alpha")) {
		/* The second run line's arguments. */
		GUEST_ASSERT(!strcmp(c, "alpha beta=0x10 gamma=42"));
		GUEST_ASSERT_EQ(arg_u64("beta", 0), 0x10);
		GUEST_ASSERT_EQ(arg_u64("gamma", 0), 42);
		GUEST_ASSERT_EQ(arg_u64("delta", 7), 7);
		GUEST_ASSERT(arg_is("gamma", "42"));
		GUEST_ASSERT(!arg_is("gamma", "4"));
		GUEST_ASSERT(!arg_present("alph"));
		GUEST_ASSERT_EQ(gm_ram_size, 64 * SZ_1M);
	}
}

static uint64_t arrived;	/* bit i: vCPU i ran guest_main */

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	uint64_t all, old;
	char probe __attribute__((aligned(16)));

	GUEST_ASSERT_LT(cpu, bi->nr_vcpus);
	GUEST_ASSERT_LT(cpu, 64);
	GUEST_ASSERT(((uintptr_t)&probe & 15) == 0);
	/* crt0 zeroed .bss before any vCPU got here: the bit is new. */
	old = __atomic_fetch_or(&arrived, 1ULL << cpu, __ATOMIC_SEQ_CST);
	GUEST_ASSERT_MSG(!(old & (1ULL << cpu)), "vCPU index %u twice", cpu);
	if (cpu)
		return 0;	/* parks (crt0); vCPU 0 decides the exit */
	all = bi->nr_vcpus == 64 ? ~0ULL : (1ULL << bi->nr_vcpus) - 1;
	while (__atomic_load_n(&arrived, __ATOMIC_ACQUIRE) != all)
		cpu_relax();
	check_boot_info(bi);
	check_cmdline();
	check_printf();
	check_strings();
	check_word_helpers();
	check_rng();
	printf("selftest: ram 0x%llx shared_base 0x%llx free_start 0x%llx "
	       "vcpus %u flags 0x%x cmdline \"%s\"\n",
	       (unsigned long long)bi->ram_size,
	       (unsigned long long)bi->shared_base,
	       (unsigned long long)bi->free_start, bi->nr_vcpus, bi->flags,
	       cmdline());
	return 0;
}
