/* SPDX-License-Identifier: MIT */
//@ concurrency
//@ run: 0 --vcpus 2 --implicit deny
//@ run: 0 --vcpus 2 --implicit deny --conversion in-place
//@ run: 0 --vcpus 2
/*
 * An access that races a conversion of its page *to* the view it uses is
 * legal under --implicit deny (ABI section 6): ordered after the
 * conversion, it used the right view.  gmvm must decide on the page's
 * state once the conversion is done, not on the state the exit reported.
 *
 * Each round, vCPU 0 makes a 2 MiB range R shared, fills it with the DMA
 * device (so that revoking its shared view takes a while), then converts
 * R to private.  vCPU 1 polls the device on R until a CHECKSUM faults:
 * the device's mapping of R is gone, which libgmem does first in a
 * conversion to private, under its range lock, so the conversion has
 * started (and it cannot fail: nothing is pinned).  Only then does vCPU 1
 * touch a page of R through the private view: a read (it must see the
 * page's new content: zeros in discard mode, the fill in place) or a
 * write (vCPU 0 must read it back afterwards).  Whether the touch lands
 * before the private view is granted is up to timing; when it does, the
 * old gmvm denied it with 126.  In convert mode the same touch must be a
 * no-op conversion.
 *
 *   iterations=N   rounds (default 200)
 */
#include "guest.h"

#define R_LEN		SZ_2M
#define TOUCH_OFF	(SZ_1M + 8)	/* a page in the middle of R */

static uint64_t R;
static uint32_t go;		/* round vCPU 1 may race, 1-based */
static uint32_t done;		/* round vCPU 1 has touched */
/* Rounds in which vCPU 1 saw R mapped, then not: it was polling when the
 * conversion began, so its touch followed closely. */
static uint32_t caught;

static uint8_t fill_byte(uint32_t round)
{
	return (uint8_t)(0x40 + round % 64);
}

static uint64_t marker(uint32_t round)
{
	return 0x5ace000000000000ULL | round;
}

static void toucher(uint32_t rounds)
{
	uint64_t p = R + TOUCH_OFF, want, got;
	uint32_t round;
	bool polled;
	int st;

	for (round = 1; round <= rounds; round++) {
		while (load_acquire(&go) != round)
			cpu_relax();
		polled = false;
		while ((st = dma_checksum(R, PAGE_SIZE, NULL)) == GM_DMA_OK)
			polled = true;
		GUEST_ASSERT_EQ(st, GM_DMA_FAULT);
		/* R's conversion to private has begun: touch it now. */
		if (round & 1) {
			got = gm_read64(gpa_private(p));
			want = gm_in_place() ?
			       0x0101010101010101ULL * fill_byte(round) : 0;
			GUEST_ASSERT_MSG(got == want,
					 "round %u: read 0x%llx, expected 0x%llx",
					 round, (unsigned long long)got,
					 (unsigned long long)want);
		} else {
			gm_write64(gpa_private(p), marker(round));
		}
		if (polled)
			WRITE_ONCE(caught, READ_ONCE(caught) + 1);
		store_release(&done, round);
	}
}

static void converter(uint32_t rounds)
{
	uint64_t p = R + TOUCH_OFF;
	uint32_t round;

	for (round = 1; round <= rounds; round++) {
		must_to_shared(R, R_LEN);
		GUEST_ASSERT_EQ(dma_fill(R, R_LEN, fill_byte(round)),
				GM_DMA_OK);
		store_release(&go, round);
		GUEST_ASSERT_EQ(to_private(R, R_LEN / PAGE_SIZE), 0);
		while (load_acquire(&done) != round)
			cpu_relax();
		if (!(round & 1))
			GUEST_ASSERT_EQ(gm_read64(gpa_private(p)),
					marker(round));
	}
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	uint32_t rounds = (uint32_t)arg_u64("iterations", 200);

	if (gm_nr_vcpus < 2)
		GUEST_FAIL("needs --vcpus 2 or more");
	if (!gm_shared_base) {
		/* No wrong view exists: nothing can race. */
		if (cpu == 0)
			puts("implicit_race: shared_base is 0, no wrong view to race");
		return 0;
	}
	if (cpu > 1)
		return 0;
	if (cpu == 1) {
		while (!load_acquire(&R))
			cpu_relax();
		toucher(rounds);
		return 0;
	}
	test_area_require(R_LEN);
	store_release(&R, test_alloc(R_LEN, SZ_2M));
	converter(rounds);
	printf("implicit_race: %u rounds, in %u the touch closely followed the "
	       "start of the conversion: PASS\n", rounds, READ_ONCE(caught));
	return 0;
}
