/* SPDX-License-Identifier: MIT */
/*
 * String I/O that a pause must not cut (tests/test_gmvm_ctl.sh pauses and
 * resumes it many times): vCPU 0 prints "ready", then, until it is
 * stopped, writes one line of LINE_LEN bytes to COM1 with a single
 * `rep outsb`, which KVM hands to gmvm one exit per byte (its emulator
 * sends OUTS one iteration at a time), and reads COM1's LSR (always
 * 0x60) IN_LEN times with a single `rep insb`, which KVM reads ahead in
 * batches.  Nearly all of the loop's exits are those instructions', so
 * pauses land inside them.  A VMM that parks a vCPU with one of their
 * later exits unhandled (KVM raises it while completing the one before)
 * drops output (a short line) or input (a failed check).
 *
 * Lines: "rep-io NNNNNNNN " (the count, 8 hex digits) then 'a'..'z'
 * repeated, position i holding 'a' + i % 26, to LINE_LEN - 1 bytes, then
 * '\n'.  It never exits by itself (no //@ run line: the runner would only
 * watch it time out); a wrong input byte exits 1.
 */
#include "guest.h"

#define LINE_LEN 9000	/* more than two pages of output */
#define IN_LEN 9000
#define HEAD 16		/* "rep-io NNNNNNNN " */

static char line[LINE_LEN];
static uint8_t in[IN_LEN], want[IN_LEN];

static void rep_outsb(uint16_t port, const void *p, size_t n)
{
	asm volatile("rep outsb" : "+S"(p), "+c"(n) : "d"(port) : "memory");
}

static void rep_insb(uint16_t port, void *p, size_t n)
{
	asm volatile("rep insb" : "+D"(p), "+c"(n) : "d"(port) : "memory");
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	char head[HEAD + 1];
	uint64_t n;
	size_t i;

	if (cpu != 0)
		for (;;)
			asm volatile("hlt");
	for (i = HEAD; i < LINE_LEN - 1; i++)
		line[i] = (char)('a' + i % 26);
	line[LINE_LEN - 1] = '\n';
	memset(want, 0x60, sizeof(want));
	puts("ready");
	for (n = 0;; n++) {
		snprintf(head, sizeof(head), "rep-io %08llx ",
			 (unsigned long long)(n & 0xffffffff));
		memcpy(line, head, HEAD);
		rep_outsb(0x3f8, line, LINE_LEN);
		memset(in, 0, sizeof(in));
		rep_insb(0x3fd, in, IN_LEN);
		GUEST_ASSERT(!memcmp(in, want, IN_LEN));
	}
	return 0;
}
