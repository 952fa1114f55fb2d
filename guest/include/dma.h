/* SPDX-License-Identifier: MIT */
/*
 * Driver of the DMA test device (ABI section 7).  The device has one set of
 * registers for the whole VM, so a command (register writes, CMD, STATUS
 * and RESULT reads) runs under a lock shared by all vCPUs.
 *
 * Every function returns the device STATUS: GM_DMA_OK (0) done,
 * GM_DMA_FAULT (1) some page of the range is not shared (nothing was
 * written), GM_DMA_BAD (2) bad request, GM_DMA_NO_RESOURCES (3, ABI
 * extension 2) PIN with GM_DMA_MAX_PINS pins already held.  Addresses are
 * private-view GPAs.
 */
#ifndef GUEST_DMA_H
#define GUEST_DMA_H

#include <stdint.h>

/* Raw command, any CMD value; *@result (if not NULL) gets RESULT. */
int dma_command(uint64_t gpa, uint32_t len, uint32_t pattern, uint32_t cmd,
		uint32_t *result);

int dma_fill(uint64_t gpa, uint32_t len, uint8_t pattern);
int dma_checksum(uint64_t gpa, uint32_t len, uint32_t *sum);
int dma_pin(uint64_t gpa, uint32_t len);
int dma_unpin(uint64_t gpa, uint32_t len);

/*
 * Ranges longer than the device's 16 MiB limit, in chunks.  The checksum
 * is the wrapping sum over the whole range; the first non-zero STATUS is
 * returned and stops the walk.
 */
int dma_fill_range(uint64_t gpa, uint64_t len, uint8_t pattern);
int dma_checksum_range(uint64_t gpa, uint64_t len, uint32_t *sum);

#endif /* GUEST_DMA_H */
