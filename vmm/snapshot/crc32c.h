/* SPDX-License-Identifier: MIT */
/*
 * CRC32C (Castagnoli, reflected polynomial 0x82f63b78), the checksum of
 * every snapshot section: the one iSCSI, ext4 and btrfs use, because x86
 * computes it in hardware (SSE4.2 crc32), so checking a multi-GiB DATA
 * section costs little beside reading it.
 */
#ifndef GMVM_SNAPSHOT_CRC32C_H
#define GMVM_SNAPSHOT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Continue a CRC32C over @len bytes: crc32c(crc32c(0, a), b) is the CRC of
 * a followed by b; crc32c(0, "123456789", 9) is 0xe3069283.  Uses the
 * crc32 instruction where the CPU has it.
 */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The table-driven path alone, so that tests can compare the two. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif
