/* SPDX-License-Identifier: MIT */
/*
 * CRC32C: slicing-by-8 tables in software, the SSE4.2 crc32 instruction
 * where the CPU has one (chosen once, at the first call), three blocks
 * at a time on long buffers.  Both compute the same function;
 * tests/test_snapshot_crc32c.c checks that they agree.
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "crc32c.h"

#define CRC32C_POLY 0x82f63b78u

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

/* table[k][b]: the CRC of byte b followed by k zero bytes. */
static void table_init(void)
{
	uint32_t c, i, k;

	for (i = 0; i < 256; i++) {
		c = i;
		for (k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		table[0][i] = c;
	}
	for (i = 0; i < 256; i++)
		for (k = 1; k < 8; k++)
			table[k][i] = (table[k - 1][i] >> 8) ^
				      table[0][table[k - 1][i] & 0xff];
}

uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t v;

	pthread_once(&table_once, table_init);
	crc = ~crc;
	while (len >= 8) {
		/* Little-endian load: the reflected CRC eats low bytes
		 * first. */
		v = (uint64_t)p[0] | (uint64_t)p[1] << 8 |
		    (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
		    (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
		    (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
		v ^= crc;
		crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^
		      table[5][(v >> 16) & 0xff] ^ table[4][(v >> 24) & 0xff] ^
		      table[3][(v >> 32) & 0xff] ^ table[2][(v >> 40) & 0xff] ^
		      table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

/*
 * The crc32 instruction has a latency of three cycles and a throughput
 * of one a cycle: one dependent chain runs at a third of its speed.  So
 * long buffers are cut into three blocks checksummed side by side, and
 * the three CRCs are joined: the CRC register is linear, so that of
 * A then B is that of A moved past len(B) zero bytes, XOR B's register
 * from zero.  Moving past N zero bytes is a fixed linear map, applied a
 * byte of the register at a time through zeros_*[4][256].
 */
#define HW_LONG 8192
#define HW_SHORT 256

static uint32_t zeros_long[4][256], zeros_short[4][256];

/* The raw register (no inversions) after @n zero bytes. */
static uint32_t raw_zeros(uint32_t c, size_t n)
{
	while (n--)
		c = (c >> 8) ^ table[0][c & 0xff];
	return c;
}

static void zeros_init(uint32_t z[4][256], size_t n)
{
	uint32_t col[32];
	unsigned int i, k, b;

	for (i = 0; i < 32; i++)
		col[i] = raw_zeros(1u << i, n);
	for (k = 0; k < 4; k++)
		for (b = 0; b < 256; b++) {
			z[k][b] = 0;
			for (i = 0; i < 8; i++)
				if (b & (1u << i))
					z[k][b] ^= col[8 * k + i];
		}
}

static uint32_t zeros_apply(const uint32_t z[4][256], uint32_t c)
{
	return z[0][c & 0xff] ^ z[1][(c >> 8) & 0xff] ^
	       z[2][(c >> 16) & 0xff] ^ z[3][c >> 24];
}

/* @c past three blocks of @n bytes at @p, side by side; @z moves a
 * register past @n zero bytes. */
__attribute__((target("sse4.2")))
static uint64_t hw_three(uint64_t c, const uint8_t *p, size_t n,
			 const uint32_t z[4][256])
{
	const uint8_t *end = p + n;
	uint64_t c1 = 0, c2 = 0, v0, v1, v2;

	for (; p < end; p += 8) {
		memcpy(&v0, p, 8);
		memcpy(&v1, p + n, 8);
		memcpy(&v2, p + 2 * n, 8);
		c = _mm_crc32_u64(c, v0);
		c1 = _mm_crc32_u64(c1, v1);
		c2 = _mm_crc32_u64(c2, v2);
	}
	c = zeros_apply(z, (uint32_t)c) ^ (uint32_t)c1;
	return zeros_apply(z, (uint32_t)c) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t c = ~crc, v;

	for (; len >= 3 * HW_LONG; p += 3 * HW_LONG, len -= 3 * HW_LONG)
		c = hw_three(c, p, HW_LONG, zeros_long);
	for (; len >= 3 * HW_SHORT; p += 3 * HW_SHORT, len -= 3 * HW_SHORT)
		c = hw_three(c, p, HW_SHORT, zeros_short);
	while (len >= 8) {
		memcpy(&v, p, 8);	/* unaligned, little-endian */
		c = _mm_crc32_u64(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}

static bool have_hw;
static pthread_once_t hw_once = PTHREAD_ONCE_INIT;

static void hw_init(void)
{
	/* Also right when first called from a constructor, before
	 * libgcc's own initialisation ran. */
	__builtin_cpu_init();
	have_hw = __builtin_cpu_supports("sse4.2");
	if (!have_hw)
		return;
	pthread_once(&table_once, table_init);
	zeros_init(zeros_long, HW_LONG);
	zeros_init(zeros_short, HW_SHORT);
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&hw_once, hw_init);
	return have_hw ? crc32c_hw(crc, buf, len) : crc32c_sw(crc, buf, len);
}
#else
uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	return crc32c_sw(crc, buf, len);
}
#endif
