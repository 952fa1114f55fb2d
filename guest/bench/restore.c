/* SPDX-License-Identifier: MIT */
/*
 * The guest of bench/bench_guest_restore.c: a large guest with a little
 * memory resident, snapshotted while it spins, then restored.
 *
 * resident=MIB (default 0): that much memory made resident, in 64 KiB
 * pieces spread evenly over the test area, by the DMA device's FILL (a
 * guest writing it itself, at about a microsecond per emulated
 * instruction, would take a minute); every other piece is converted back
 * to private, which keeps its content in-place mode (run with
 * --conversion in-place).  Then "ready", then a newline to COM1 per loop
 * iteration for ever: one `out` each, so the first thing a restored guest
 * does shows as the first byte of output, within a few instructions (a
 * newline, because gmvm flushes its console at each: a '.' would sit in
 * stdout's buffer for 4096 of them when stdout is a pipe).
 */
#include "bench.h"

#define PIECE SZ_64K

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	uint64_t pieces = arg_u64("resident", 0) * (1ULL << 20) / PIECE;
	uint64_t start = test_area_start(), span = test_area_end() - start;
	uint64_t i, stride, gpa;

	if (cpu != 0)
		for (;;)
			asm volatile("hlt");
	if (pieces) {
		stride = span / pieces / PIECE * PIECE;
		GUEST_ASSERT(stride >= PIECE);
		for (i = 0; i < pieces; i++) {
			gpa = start + i * stride;
			must_to_shared(gpa, PIECE);
			GUEST_ASSERT_EQ(dma_fill(gpa, PIECE, (uint8_t)(i | 1)),
					GM_DMA_OK);
			if (i & 1)
				must_to_private(gpa, PIECE);
		}
	}
	puts("ready");
	for (;;)
		outb(GM_PORT_COM1, '\n');
	return 0;
}
