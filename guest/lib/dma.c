/* SPDX-License-Identifier: MIT */
/*
 * Driver of the DMA test device (ports 0x520..0x53f, 32-bit accesses).
 * One register set serves the whole VM: a command is a short sequence of
 * port accesses that must not interleave with another vCPU's, hence the
 * lock.  Registers are written in full before every command; the ABI does
 * not promise that they keep their values between commands.
 */
#include "guest.h"

static spinlock_t dma_lock = SPINLOCK_INIT;

int dma_command(uint64_t gpa, uint32_t len, uint32_t pattern, uint32_t cmd,
		uint32_t *result)
{
	uint32_t status;

	spin_lock(&dma_lock);
	outl(GM_DMA_ADDR_LO, (uint32_t)gpa);
	outl(GM_DMA_ADDR_HI, (uint32_t)(gpa >> 32));
	outl(GM_DMA_LEN, len);
	if (cmd == GM_DMA_CMD_FILL)
		outl(GM_DMA_PATTERN, pattern);
	outl(GM_DMA_CMD, cmd);
	status = inl(GM_DMA_STATUS);
	/* RESULT only means something after a command that succeeded. */
	if (result && status == GM_DMA_OK)
		*result = inl(GM_DMA_RESULT);
	spin_unlock(&dma_lock);
	return (int)status;
}

int dma_fill(uint64_t gpa, uint32_t len, uint8_t pattern)
{
	return dma_command(gpa, len, pattern, GM_DMA_CMD_FILL, NULL);
}

int dma_checksum(uint64_t gpa, uint32_t len, uint32_t *sum)
{
	uint32_t res = 0;
	int st = dma_command(gpa, len, 0, GM_DMA_CMD_CHECKSUM, &res);

	if (sum)
		*sum = res;
	return st;
}

int dma_pin(uint64_t gpa, uint32_t len)
{
	return dma_command(gpa, len, 0, GM_DMA_CMD_PIN, NULL);
}

int dma_unpin(uint64_t gpa, uint32_t len)
{
	return dma_command(gpa, len, 0, GM_DMA_CMD_UNPIN, NULL);
}

int dma_fill_range(uint64_t gpa, uint64_t len, uint8_t pattern)
{
	while (len) {
		uint32_t n = (uint32_t)MIN(len, GM_DMA_MAX_LEN);
		int st = dma_fill(gpa, n, pattern);

		if (st)
			return st;
		gpa += n;
		len -= n;
	}
	return GM_DMA_OK;
}

int dma_checksum_range(uint64_t gpa, uint64_t len, uint32_t *sum)
{
	uint32_t total = 0;

	while (len) {
		uint32_t n = (uint32_t)MIN(len, GM_DMA_MAX_LEN), s;
		int st = dma_checksum(gpa, n, &s);

		if (st)
			return st;
		total += s;
		gpa += n;
		len -= n;
	}
	if (sum)
		*sum = total;
	return GM_DMA_OK;
}
