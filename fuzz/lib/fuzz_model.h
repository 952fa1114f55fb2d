/* SPDX-License-Identifier: MIT */
/*
 * What a guest should see, page by page: state, plug state, content, and
 * the DMA test device's pins.  The fuzzers drive gmvm and this model with
 * the same operations and compare every answer.
 *
 * The rules modelled (README, docs/GUEST_ABI.md, include/gmem/gmem.h):
 *  - a range touching the hole between RAM regions is refused like one
 *    past the top of RAM (-EINVAL, guest -22, DMA STATUS 2);
 *  - a conversion or plug change is all or nothing; it returns the pages
 *    whose state changed, or -EAGAIN (nothing changed) when a page that
 *    would stop being reachable (shared and plugged) lies in a page a PIN
 *    holds;
 *  - discard mode: a page whose state changes reads zeros; in-place mode
 *    keeps content; a page unplugged reads zeros when plugged back;
 *  - the device reaches exactly the reachable pages: FILL and CHECKSUM
 *    fault (STATUS 1) unless every page they touch is reachable; PIN
 *    likewise, and answers a 65th pin STATUS 3 (no resources, guest ABI
 *    extension 2); UNPIN needs the exact range.
 */
#ifndef GMVM_FUZZ_MODEL_H
#define GMVM_FUZZ_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include <gmem/gmem.h>
#include <gmvm/abi.h>

#define FUZZ_MAX_PINS GM_DMA_MAX_PINS

struct fuzz_model {
	uint64_t ram;		/* the top of RAM */
	uint64_t hole_start;	/* [hole_start, hole_end) is not RAM */
	uint64_t hole_end;
	uint64_t npages;
	bool in_place;
	uint8_t *shared;	/* per page: 1 shared, 0 private */
	uint8_t *unplugged;	/* per page */
	uint8_t **mem;		/* content per page; NULL: zeros */
	struct { uint64_t addr, len; } pins[FUZZ_MAX_PINS];
	unsigned int nr_pins;
};

/* RAM [0, @ram), except @hole bytes at @hole_start (0: no hole). */
void model_init(struct fuzz_model *m, uint64_t ram, uint64_t hole_start,
		uint64_t hole, bool in_place, bool init_shared);

/*
 * Are the bytes [off, off + len) RAM: not empty, not wrapping, below the
 * top and not touching the hole?  (Hypercalls, conversions and DMA
 * commands on anything else are refused.)
 */
bool model_in_ram(const struct fuzz_model *m, uint64_t off, uint64_t len);
void model_free(struct fuzz_model *m);

/* The expected return of gmem_convert() / gmem_set_plugged(), applied. */
int64_t model_convert(struct fuzz_model *m, uint64_t off, uint64_t len,
		      enum gmem_state to);
int64_t model_plug(struct fuzz_model *m, uint64_t off, uint64_t len,
		   bool plugged);

/*
 * A DMA command as the device gets it (registers already combined): the
 * expected STATUS, and *sum for a CHECKSUM that succeeds.  Applied.
 */
uint32_t model_dma(struct fuzz_model *m, uint32_t cmd, uint64_t addr,
		   uint64_t len, uint8_t pattern, uint32_t *sum);

/*
 * Would making page @p private be refused (-EAGAIN)?  It is reachable
 * (shared and plugged) and a PIN holds it.  Batches (guest ABI extension
 * 3) are all or nothing on this, as single conversions are.
 */
bool model_page_busy(const struct fuzz_model *m, uint64_t p);

#endif /* GMVM_FUZZ_MODEL_H */
