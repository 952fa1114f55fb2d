/* SPDX-License-Identifier: MIT */
//@ run: 0 -- seed=1 calls=100000
//@ run: 0 --conversion in-place -- seed=2 calls=100000
//@ run: 0 --init-shared --memory 128M -- seed=3 calls=100000
/*
 * MAP_GPA_RANGE fuzzer.  Makes CALLS hypercalls (argument calls=, default
 * 100000) with random registers, seeded by seed= (default 1):
 *  - about 80% valid: a random range inside a 64 MiB fuzz area (single
 *    pages, short runs, up to 2 MiB, up to the end of the area), random
 *    direction, random size hint: must return 0;
 *  - about 15% invalid MAP_GPA_RANGE: unaligned GPA, a1 = 0, a1 so large
 *    the range leaves RAM or wraps, a GPA beyond RAM, a reserved attribute
 *    bit, a size hint of 3..15: must return -22;
 *  - about 5% unknown hypercall numbers (random 64-bit values) with
 *    otherwise valid arguments: must return -1000.
 * The guest keeps a bitmap of the state every page of the area should be
 * in.  Every 25000 calls a random sample of pages, and at the end every
 * page, is checked against the model with the DMA device: CHECKSUM of a
 * shared run succeeds (and in discard mode reads zero: nothing is ever
 * written), each private page faults on its own.
 * A failing call is printed with its seed and index, to replay it.
 */
#include "guest.h"

#define FUZZ_SIZE	(64 * SZ_1M)
#define FUZZ_PAGES	(FUZZ_SIZE >> PAGE_SHIFT)
#define CHECK_EVERY	25000

static uint64_t area;
static uint64_t shared_bits[FUZZ_PAGES / 64];	/* 1 = shared */
static uint64_t seed, nr_calls;
static uint64_t nr_invalid, nr_unknown;

static bool page_shared(uint64_t pg)
{
	return shared_bits[pg / 64] >> (pg % 64) & 1;
}

/* Bits [lo, hi) of a word, 0 <= lo < hi <= 64. */
static uint64_t bit_range(unsigned int lo, unsigned int hi)
{
	uint64_t upto_hi = hi == 64 ? ~0ULL : (1ULL << hi) - 1;

	return upto_hi & ~((1ULL << lo) - 1);
}

/*
 * Partial words with masks, whole words with one `rep stosq` (memset):
 * guest instructions are expensive here, a loop over 256 words is not.
 */
static void model_set(uint64_t first, uint64_t n, bool shared)
{
	uint64_t end = first + n;
	uint64_t w0 = first / 64, w1 = end / 64;	/* w1: word of end */
	unsigned int lo = first % 64, hi = end % 64;

	if (w0 == w1) {
		uint64_t m = bit_range(lo, hi);

		shared_bits[w0] = shared ? shared_bits[w0] | m :
					   shared_bits[w0] & ~m;
		return;
	}
	if (lo) {
		uint64_t m = bit_range(lo, 64);

		shared_bits[w0] = shared ? shared_bits[w0] | m :
					   shared_bits[w0] & ~m;
		w0++;
	}
	if (w1 > w0)
		memset(&shared_bits[w0], shared ? 0xff : 0, (w1 - w0) * 8);
	if (hi) {
		uint64_t m = bit_range(0, hi);

		shared_bits[w1] = shared ? shared_bits[w1] | m :
					   shared_bits[w1] & ~m;
	}
}

static __attribute__((noinline, cold)) void
call_failed(uint64_t i, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2,
	    long r, long want, const char *kind)
{
	GUEST_FAIL("seed %llu call #%llu (%s): hypercall(0x%llx, 0x%llx, "
		   "0x%llx, 0x%llx) = %ld, expected %ld",
		   (unsigned long long)seed, (unsigned long long)i, kind,
		   (unsigned long long)nr, (unsigned long long)a0,
		   (unsigned long long)a1, (unsigned long long)a2, r, want);
}

static inline __attribute__((always_inline)) void
check_call(uint64_t i, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2,
	   long want, const char *kind)
{
	long r = gm_hypercall(nr, a0, a1, a2);

	if (unlikely(r != want))
		call_failed(i, nr, a0, a1, a2, r, want, kind);
}

/*
 * A valid call from the bits of one random number: guest instructions are
 * expensive where KVM emulates them, and valid calls are most of the run.
 *   bits  7..20: first page; 21..24: size class; 25..33: size;
 *   bit  34: direction; 35..36: size hint (3 folds to 0).
 */
static inline __attribute__((always_inline)) void
valid_call(uint64_t r, uint64_t i)
{
	uint64_t first = (r >> 7) & (FUZZ_PAGES - 1), n;
	unsigned int size_class = (r >> 21) & 15;
	bool shared = (r >> 34) & 1;
	uint64_t hint = (r >> 35) & 3;

	if (size_class < 6)
		n = 1;
	else if (size_class < 11)
		n = 1 + ((r >> 25) & 15);
	else if (size_class < 15)
		n = 1 + ((r >> 25) & 511);
	else
		n = FUZZ_PAGES - first;
	n = MIN(n, FUZZ_PAGES - first);
	if (hint == 3)
		hint = GM_MAP_PAGE_SZ_4K;

	check_call(i, GM_HC_MAP_GPA_RANGE, area + (first << PAGE_SHIFT), n,
		   hint | (shared ? 0 : GM_MAP_PRIVATE), 0, "valid");
	if (n == 1) {
		uint64_t bit = 1ULL << (first % 64);

		if (shared)
			shared_bits[first / 64] |= bit;
		else
			shared_bits[first / 64] &= ~bit;
	} else {
		model_set(first, n, shared);
	}
}

static uint64_t random_hint(struct rng *rng)
{
	return rng_below(rng, 3);	/* 0 = 4K, 1 = 2M, 2 = 1G */
}

static void invalid_call(struct rng *rng, uint64_t i)
{
	uint64_t first = rng_below(rng, FUZZ_PAGES);
	uint64_t gpa = area + (first << PAGE_SHIFT);
	uint64_t n = 1 + rng_below(rng, MIN(FUZZ_PAGES - first, 64));
	uint64_t attrs = random_hint(rng) |
			 (rng_below(rng, 2) ? GM_MAP_PRIVATE : 0);
	const char *kind;

	switch (rng_below(rng, 7)) {
	case 0:
		gpa += 1 + rng_below(rng, PAGE_SIZE - 1);
		kind = "unaligned GPA";
		break;
	case 1:
		n = 0;
		kind = "a1 = 0";
		break;
	case 2:
		/* Leaves RAM; sometimes by a lot, sometimes by one page. */
		n = ((gm_ram_size - gpa) >> PAGE_SHIFT) + 1;
		if (rng_below(rng, 2))
			n += rng_next(rng) >> (12 + rng_below(rng, 40));
		kind = "range leaves RAM";
		break;
	case 3:
		gpa = ALIGN_DOWN(gm_ram_size + (rng_next(rng) >>
						 rng_below(rng, 64)),
				 PAGE_SIZE);
		if (gpa < gm_ram_size)
			gpa = gm_ram_size;
		kind = "GPA beyond RAM";
		break;
	case 4:
		attrs |= 1ULL << (5 + rng_below(rng, 59));
		if (rng_below(rng, 4) == 0)
			attrs |= rng_next(rng) & GM_MAP_RESERVED_MASK;
		kind = "reserved attribute bit";
		break;
	case 5:
		attrs = (attrs & ~GM_MAP_PAGE_SZ_MASK) |
			(3 + rng_below(rng, 13));
		kind = "bad size hint";
		break;
	default:
		/* gpa + n * 4K overflows 64 bits. */
		n = ((~0ULL - gpa) >> PAGE_SHIFT) + 1 + rng_below(rng, 1000);
		kind = "range wraps";
		break;
	}
	check_call(i, GM_HC_MAP_GPA_RANGE, gpa, n, attrs, GM_HC_EINVAL, kind);
	nr_invalid++;
}

static void unknown_call(struct rng *rng, uint64_t i)
{
	uint64_t nr = rng_next(rng) >> rng_below(rng, 64);
	uint64_t first = rng_below(rng, FUZZ_PAGES);

	if (nr == GM_HC_MAP_GPA_RANGE)
		nr++;
	check_call(i, nr, area + (first << PAGE_SHIFT), 1,
		   rng_below(rng, 2) ? GM_MAP_PRIVATE : 0, GM_HC_ENOSYS,
		   "unknown number");
	nr_unknown++;
}

static void check_page(uint64_t pg)
{
	uint64_t gpa = area + (pg << PAGE_SHIFT);
	int st = dma_checksum(gpa, PAGE_SIZE, NULL);
	int want = page_shared(pg) ? GM_DMA_OK : GM_DMA_FAULT;

	GUEST_ASSERT_MSG(st == want, "seed %llu: page %llu (GPA 0x%llx) "
			 "should be %s; device status %d",
			 (unsigned long long)seed, (unsigned long long)pg,
			 (unsigned long long)gpa,
			 page_shared(pg) ? "shared" : "private", st);
}

/* Every page of the area against the model, one run at a time. */
static uint64_t check_all(void)
{
	uint64_t pg = 0, nr_shared = 0;

	while (pg < FUZZ_PAGES) {
		bool shared = page_shared(pg);
		uint64_t end = pg + 1;

		while (end < FUZZ_PAGES) {
			uint64_t word = shared_bits[end / 64];

			/* Skip whole words of the same state. */
			if (end % 64 == 0 && word == (shared ? ~0ULL : 0)) {
				end += 64;
				continue;
			}
			if (page_shared(end) != shared)
				break;
			end++;
		}
		end = MIN(end, FUZZ_PAGES);
		if (shared) {
			uint64_t gpa = area + (pg << PAGE_SHIFT);
			uint64_t len = (end - pg) << PAGE_SHIFT;
			uint32_t sum;
			int st = dma_checksum_range(gpa, len, &sum);

			GUEST_ASSERT_MSG(st == GM_DMA_OK,
					 "seed %llu: pages [%llu, %llu) should "
					 "be shared; device status %d",
					 (unsigned long long)seed,
					 (unsigned long long)pg,
					 (unsigned long long)end, st);
			if (!gm_in_place())
				GUEST_ASSERT_MSG(sum == 0,
						 "seed %llu: pages [%llu, %llu)"
						 " hold non-zero bytes",
						 (unsigned long long)seed,
						 (unsigned long long)pg,
						 (unsigned long long)end);
			nr_shared += end - pg;
		} else {
			/* One private page makes a whole range fault, so
			 * private pages are checked one by one. */
			for (uint64_t p = pg; p < end; p++)
				check_page(p);
		}
		pg = end;
	}
	return nr_shared;
}

int guest_main(const struct gm_boot_info *bi, unsigned int cpu)
{
	uint64_t nr_shared, nr_valid = 0, next_check = CHECK_EVERY;
	struct rng rng;

	if (cpu)
		return 0;
	seed = arg_u64("seed", 1);
	nr_calls = arg_u64("calls", 100000);
	rng_seed(&rng, seed);
	test_area_require(FUZZ_SIZE);
	area = test_alloc(FUZZ_SIZE, SZ_2M);
	printf("fuzz: seed %llu, %llu calls over [0x%llx, 0x%llx), %s mode\n",
	       (unsigned long long)seed, (unsigned long long)nr_calls,
	       (unsigned long long)area,
	       (unsigned long long)(area + FUZZ_SIZE),
	       gm_in_place() ? "in-place" : "discard");

	/* Start from a known state: all private, nothing written. */
	must_to_private(area, FUZZ_SIZE);
	memset(shared_bits, 0, sizeof(shared_bits));

	for (uint64_t i = 0; i < nr_calls; i++) {
		uint64_t r = rng_next(&rng);
		unsigned int kind = r & 127;

		if (likely(kind < 102)) {	/* 80% */
			valid_call(r, i);
			nr_valid++;
		} else if (kind < 122) {	/* 15.6% */
			invalid_call(&rng, i);
		} else {			/* 4.7% */
			unknown_call(&rng, i);
		}

		if (unlikely(i + 1 == next_check) && i + 1 < nr_calls) {
			for (int k = 0; k < 256; k++)
				check_page(rng_below(&rng, FUZZ_PAGES));
			printf("fuzz: %llu calls, sample of 256 pages agrees\n",
			       (unsigned long long)(i + 1));
			next_check += CHECK_EVERY;
		}
	}
	nr_shared = check_all();
	printf("fuzz: %llu valid, %llu invalid, %llu unknown; "
	       "%llu of %llu pages shared, all as the model says\n",
	       (unsigned long long)nr_valid, (unsigned long long)nr_invalid,
	       (unsigned long long)nr_unknown, (unsigned long long)nr_shared,
	       (unsigned long long)FUZZ_PAGES);
	puts("fuzz: PASS");
	return 0;
}
