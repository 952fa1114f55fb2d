/* SPDX-License-Identifier: MIT */
/*
 * CRC32C of the snapshot files (vmm/snapshot/crc32c.c): the check value,
 * and the hardware and table paths agree on random buffers, whole and in
 * two pieces.
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

int main(void)
{
	rng = test_seed("SNAPSHOT_SEED", 0x5eed);
	crc();
	printf("all passed\n");
	return T_EXIT_PASS;
}
