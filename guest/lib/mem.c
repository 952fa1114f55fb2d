/* SPDX-License-Identifier: MIT */
/*
 * Byte checks over guest memory.  Plain loads: only for pages known to be
 * in the view the pointer belongs to.
 *
 * Guest instructions can be expensive (on the project's machines KVM
 * emulates guest code at about 1 us per instruction), so these touch whole
 * words and use string instructions where one does the work of a loop.
 */
#include "guest.h"

/* Word loads over byte buffers must not fall foul of type-based aliasing. */
typedef uint64_t __attribute__((may_alias)) u64_alias;

#define LANES	0x00ff00ff00ff00ffULL

static uint32_t fold16(uint64_t acc)
{
	return (uint32_t)((acc & 0xffff) + ((acc >> 16) & 0xffff) +
			  ((acc >> 32) & 0xffff) + (acc >> 48));
}

uint32_t checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint32_t sum = 0;

	while (len && ((uintptr_t)b & 7)) {
		sum += *b++;
		len--;
	}
	/*
	 * Eight bytes per load, summed in four 16-bit lanes: each word adds
	 * at most 2 * 255 to a lane, so 128 words fit before a fold.
	 */
	while (len >= 8) {
		size_t n = MIN(len / 8, (size_t)128);
		uint64_t acc = 0;

		for (size_t i = 0; i < n; i++) {
			uint64_t w = ((const u64_alias *)(const void *)b)[i];

			acc += (w & LANES) + ((w >> 8) & LANES);
		}
		sum += fold16(acc);
		b += n * 8;
		len -= n * 8;
	}
	while (len--)
		sum += *b++;
	return sum;
}

long find_mismatch(const void *p, uint8_t byte, size_t len)
{
	const uint8_t *b = p;
	uint64_t word = 0x0101010101010101ULL * byte;
	size_t i = 0, words;

	while (i < len && ((uintptr_t)(b + i) & 7)) {
		if (b[i] != byte)
			return (long)i;
		i++;
	}
	words = (len - i) / 8;
	if (words) {
		const void *d = b + i;
		size_t left = words;

		asm volatile("repe scasq"
			     : "+D"(d), "+c"(left)
			     : "a"(word)
			     : "memory", "cc");
		if (left || *((const u64_alias *)d - 1) != word)
			i = (size_t)((const uint8_t *)d - b) - 8;
		else
			i += words * 8;
	}
	for (; i < len; i++) {
		if (b[i] != byte)
			return (long)i;
	}
	return -1;
}
