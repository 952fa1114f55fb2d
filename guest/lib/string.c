/* SPDX-License-Identifier: MIT */
/*
 * The string functions a freestanding guest needs.  The compiler emits
 * calls to memset/memcpy/memmove/memcmp on its own (struct copies, loops it
 * recognises), so these must exist.  They use string instructions, word
 * sized where possible: the compiler cannot turn those back into calls to
 * themselves, and on hosts whose KVM emulates guest code instruction by
 * instruction (about 1 us each on the project's machines) one `rep stosq`
 * iteration costs what one loop instruction does.  String instructions are
 * fine on pages in the right view; never use these on a page through the
 * wrong view (ABI section 6).
 */
#include "guest.h"

void *memset(void *s, int c, size_t n)
{
	uint64_t v = 0x0101010101010101ULL * (uint8_t)c;
	void *d = s;
	size_t head, words;

	/* Bytes up to an 8-byte boundary, then words, then the tail. */
	head = MIN(n, (size_t)(-(uintptr_t)d & 7));
	n -= head;
	words = n / 8;
	n %= 8;
	asm volatile("rep stosb" : "+D"(d), "+c"(head) : "a"(v) : "memory");
	asm volatile("rep stosq" : "+D"(d), "+c"(words) : "a"(v) : "memory");
	asm volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(v) : "memory");
	return s;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	size_t words = n / 8, tail = n % 8;
	void *d = dst;

	asm volatile("rep movsq"
		     : "+D"(d), "+S"(src), "+c"(words) : : "memory");
	asm volatile("rep movsb"
		     : "+D"(d), "+S"(src), "+c"(tail) : : "memory");
	return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
	uintptr_t d = (uintptr_t)dst, s = (uintptr_t)src;

	if (d <= s || d >= s + n)
		return memcpy(dst, src, n);
	/* Overlap with dst above src: copy backwards. */
	d += n - 1;
	s += n - 1;
	asm volatile("std; rep movsb; cld"
		     : "+D"(d), "+S"(s), "+c"(n) : : "memory");
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *p = a, *q = b;
	size_t words = n / 8;

	/*
	 * Skip equal words with one string instruction: on hosts that
	 * emulate guest instructions one by one, that is several times
	 * cheaper than a loop.
	 */
	if (words) {
		const void *x = p, *y = q;
		size_t left = words;

		asm volatile("repe cmpsq"
			     : "+S"(x), "+D"(y), "+c"(left) : : "memory", "cc");
		/* x, y are one word past the last compared pair. */
		if (left || *((const uint64_t *)x - 1) !=
			    *((const uint64_t *)y - 1)) {
			p = (const unsigned char *)x - 8;
			q = (const unsigned char *)y - 8;
			n = 8;
		} else {
			p = x;
			q = y;
			n -= words * 8;
		}
	}
	for (; n; n--, p++, q++) {
		if (*p != *q)
			return *p - *q;
	}
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

int strcmp(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return (unsigned char)*a - (unsigned char)*b;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b || !*a)
			return (unsigned char)*a - (unsigned char)*b;
	}
	return 0;
}

char *strchr(const char *s, int c)
{
	for (;; s++) {
		if (*s == (char)c)
			return (char *)s;
		if (!*s)
			return NULL;
	}
}

static int digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 10;
	return 99;
}

/*
 * As C's strtoull for bases 0 and 2..36, without errno: an overflowing
 * value saturates at ULLONG_MAX.
 */
unsigned long long strtoull(const char *s, char **end, int base)
{
	const char *p = s, *digits;
	unsigned long long v = 0;
	bool neg = false, overflow = false;
	int d;

	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	if ((base == 0 || base == 16) && p[0] == '0' &&
	    (p[1] == 'x' || p[1] == 'X') && digit_value(p[2]) < 16) {
		p += 2;
		base = 16;
	} else if (base == 0) {
		base = p[0] == '0' ? 8 : 10;
	}
	digits = p;
	while ((d = digit_value(*p)) < base) {
		if (v > (~0ULL - (unsigned long long)d) / (unsigned)base)
			overflow = true;
		v = v * (unsigned)base + (unsigned)d;
		p++;
	}
	if (p == digits)
		p = s;	/* no digits: nothing converted */
	if (end)
		*end = (char *)p;
	if (overflow)
		return ~0ULL;
	return neg ? 0ULL - v : v;
}
