/* SPDX-License-Identifier: MIT */
/*
 * CRC32C of the snapshot files (vmm/snapshot/crc32c.c): the check value,
 * and the hardware and table paths agree on random buffers, whole and in
 * two pieces, short and long (the hardware path's three-block loops).
 */
#include "test_util.h"
#include "crc32c.h"

static uint64_t rng;

static uint64_t rnd(uint64_t n)
{
	return n ? test_rand(&rng) % n : 0;
}

static void crc(void)
{
	uint8_t buf[4096 + 16];
	unsigned int i;

	TEST_ASSERT_EQ(crc32c(0, "123456789", 9), 0xe3069283);
	TEST_ASSERT_EQ(crc32c_sw(0, "123456789", 9), 0xe3069283);
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rnd(256);
	for (i = 0; i < 2000; i++) {
		size_t off = rnd(16), len = rnd(4096), cut = rnd(len + 1);
		uint32_t whole = crc32c(0, buf + off, len);

		TEST_ASSERT_EQ(whole, crc32c_sw(0, buf + off, len));
		/* In two pieces: the same CRC. */
		TEST_ASSERT_EQ(crc32c(crc32c(0, buf + off, cut),
				      buf + off + cut, len - cut), whole);
	}
}

/* Long buffers: the hardware path's three blocks side by side (3 x 256
 * and 3 x 8192 bytes at a time) and the tails after them. */
static void crc_long(void)
{
	size_t size = 128 << 10;
	uint8_t *buf = malloc(size + 16);
	unsigned int i;

	TEST_ASSERT(buf);
	for (i = 0; i < size + 16; i++)
		buf[i] = (uint8_t)rnd(256);
	for (i = 0; i < 300; i++) {
		size_t off = rnd(16), len = i < 100 ? rnd(4 * 8192) :
						      rnd(size + 1);
		size_t cut = rnd(len + 1);
		uint32_t whole = crc32c(0, buf + off, len);

		TEST_ASSERT_EQ(whole, crc32c_sw(0, buf + off, len));
		TEST_ASSERT_EQ(crc32c(crc32c(0, buf + off, cut),
				      buf + off + cut, len - cut), whole);
		/* A running CRC carried in (not zero). */
		TEST_ASSERT_EQ(crc32c(0x12345678, buf + off, len),
			       crc32c_sw(0x12345678, buf + off, len));
	}
	free(buf);
}

int main(void)
{
	rng = test_seed("SNAPSHOT_SEED", 0x5eed);
	crc();
	crc_long();
	printf("all passed\n");
	return T_EXIT_PASS;
}
