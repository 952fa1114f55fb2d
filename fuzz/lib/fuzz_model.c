/* SPDX-License-Identifier: MIT */
/*
 * The fuzzers' page model (fuzz_model.h).  Deliberately naive: one byte
 * per page, loops over every page, so that it is obviously right and
 * shares nothing with libgmem's range maps.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_model.h"
#include "fuzz_vm.h"

#define PAGE GMEM_PAGE_SIZE

void model_init(struct fuzz_model *m, uint64_t ram, uint64_t hole_start,
		uint64_t hole, bool in_place, bool init_shared)
{
	memset(m, 0, sizeof(*m));
	m->ram = ram;
	m->hole_start = hole_start;
	m->hole_end = hole_start + hole;
	m->npages = ram / PAGE;
	m->in_place = in_place;
	m->shared = malloc(m->npages);
	m->unplugged = calloc(m->npages, 1);
	m->mem = calloc(m->npages, sizeof(*m->mem));
	FUZZ_ASSERT(m->shared && m->unplugged && m->mem);
	memset(m->shared, init_shared, m->npages);
}

/* Page @p reads zeros again. */
static void zero_page(struct fuzz_model *m, uint64_t p)
{
	free(m->mem[p]);
	m->mem[p] = NULL;
}

static uint8_t byte_at(const struct fuzz_model *m, uint64_t a)
{
	const uint8_t *pg = m->mem[a / PAGE];

	return pg ? pg[a % PAGE] : 0;
}

static void fill(struct fuzz_model *m, uint64_t a, uint64_t len, uint8_t v)
{
	while (len) {
		uint64_t p = a / PAGE, in = a % PAGE;
		uint64_t n = PAGE - in < len ? PAGE - in : len;

		if (!m->mem[p]) {
			m->mem[p] = calloc(1, PAGE);
			FUZZ_ASSERT(m->mem[p]);
		}
		memset(m->mem[p] + in, v, n);
		a += n;
		len -= n;
	}
}

void model_free(struct fuzz_model *m)
{
	uint64_t p;

	for (p = 0; p < m->npages; p++)
		free(m->mem[p]);
	free(m->shared);
	free(m->unplugged);
	free(m->mem);
}

static bool reachable(const struct fuzz_model *m, uint64_t p)
{
	return m->shared[p] && !m->unplugged[p];
}

/* Does a pin hold page @p (pins hold every page they touch)? */
static bool pinned(const struct fuzz_model *m, uint64_t p)
{
	unsigned int k;

	for (k = 0; k < m->nr_pins; k++)
		if (p >= m->pins[k].addr / PAGE &&
		    p < (m->pins[k].addr + m->pins[k].len + PAGE - 1) / PAGE)
			return true;
	return false;
}

bool model_in_ram(const struct fuzz_model *m, uint64_t off, uint64_t len)
{
	if (!len || off >= m->ram || len > m->ram - off)
		return false;
	return off + len <= m->hole_start || off >= m->hole_end;
}

static bool range_ok(const struct fuzz_model *m, uint64_t off, uint64_t len)
{
	return !(off % PAGE) && !(len % PAGE) && model_in_ram(m, off, len);
}

int64_t model_convert(struct fuzz_model *m, uint64_t off, uint64_t len,
		      enum gmem_state to)
{
	uint64_t p, first = off / PAGE, end = (off + len) / PAGE;
	int64_t n = 0;

	if (!range_ok(m, off, len))
		return -EINVAL;
	for (p = first; p < end; p++)
		if (to == GMEM_PRIVATE && reachable(m, p) && pinned(m, p))
			return -EAGAIN;
	for (p = first; p < end; p++) {
		if (m->shared[p] == (to == GMEM_SHARED))
			continue;
		m->shared[p] = to == GMEM_SHARED;
		if (!m->in_place)
			zero_page(m, p);
		n++;
	}
	return n;
}

int64_t model_plug(struct fuzz_model *m, uint64_t off, uint64_t len,
		   bool plugged)
{
	uint64_t p, first = off / PAGE, end = (off + len) / PAGE;
	int64_t n = 0;

	if (!range_ok(m, off, len))
		return -EINVAL;
	for (p = first; p < end; p++)
		if (!plugged && reachable(m, p) && pinned(m, p))
			return -EAGAIN;
	for (p = first; p < end; p++) {
		if (m->unplugged[p] == !plugged)
			continue;
		m->unplugged[p] = !plugged;
		zero_page(m, p);
		n++;
	}
	return n;
}

uint32_t model_dma(struct fuzz_model *m, uint32_t cmd, uint64_t addr,
		   uint64_t len, uint8_t pattern, uint32_t *sum)
{
	uint64_t p, i;
	unsigned int k;
	uint32_t s = 0;

	if (cmd < GM_DMA_CMD_FILL || cmd > GM_DMA_CMD_UNPIN ||
	    len > GM_DMA_MAX_LEN || !model_in_ram(m, addr, len))
		return GM_DMA_BAD;
	if (cmd == GM_DMA_CMD_UNPIN) {
		for (k = 0; k < m->nr_pins; k++) {
			if (m->pins[k].addr == addr && m->pins[k].len == len) {
				m->pins[k] = m->pins[--m->nr_pins];
				return GM_DMA_OK;
			}
		}
		return GM_DMA_BAD;
	}
	for (p = addr / PAGE; p < (addr + len + PAGE - 1) / PAGE; p++)
		if (!reachable(m, p))
			return GM_DMA_FAULT;
	switch (cmd) {
	case GM_DMA_CMD_FILL:
		fill(m, addr, len, pattern);
		return GM_DMA_OK;
	case GM_DMA_CMD_CHECKSUM:
		for (i = 0; i < len; i++)
			s += byte_at(m, addr + i);
		*sum = s;
		return GM_DMA_OK;
	default:	/* PIN */
		/* Guest ABI extension 2: a full pin table. */
		if (m->nr_pins == FUZZ_MAX_PINS)
			return GM_DMA_NO_RESOURCES;
		m->pins[m->nr_pins].addr = addr;
		m->pins[m->nr_pins].len = len;
		m->nr_pins++;
		return GM_DMA_OK;
	}
}

/* Called by the harnesses' own rules (CONVERT_BATCH's -11). */
bool model_page_busy(const struct fuzz_model *m, uint64_t p)
{
	return reachable(m, p) && pinned(m, p);
}
