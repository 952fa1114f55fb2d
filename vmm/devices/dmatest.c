/* SPDX-License-Identifier: MIT */
/*
 * The DMA test device (guest ABI section 7), ports 0x520..0x53f.
 *
 * It behaves like a device behind an IOMMU: it can reach only what its own
 * IOMMU (swiommu) maps, and that IOMMU is fed only by a libgmem listener
 * (populate = map, discard = unmap).  A command checks the IOMMU, never the
 * page-state map, so a wrong or missing notification from libgmem shows up
 * as a wrong device result (or as the inconsistency error below), not as a
 * silently correct one.
 *
 * Registers are 32 bits wide at 4-byte aligned ports.  An access of
 * another size or alignment is not defined by the ABI; like a bus with no
 * target, it reads as all ones and a write is ignored (counted in
 * --stats).  ADDR_LO/ADDR_HI/LEN/PATTERN read back what was written; CMD
 * reads 0; STATUS and RESULT ignore writes; 0x53c reads all ones.
 *
 * A FILL or CHECKSUM is atomic with respect to conversions: after the
 * IOMMU check, the whole range is copied with one gmem_access(...,
 * GMEM_SHARED), which holds off conversions while it copies and copies
 * nothing if any page is not shared.  A conversion to private on another
 * vCPU can still slip in between the check and the copy; the conversion
 * then simply happened first, and the command faults (STATUS 1, nothing
 * written), as it would have if it had started later.  Such a race always
 * unmaps something in the IOMMU first (libgmem tells listeners before a
 * page stops being shared), so -EACCES with no unmap since the check
 * means a page stopped being shared without its listener being told:
 * libgmem and the listener disagree, and gmvm says so and exits 125.
 *
 * Only PIN holds pages: a conversion to private fails with -EAGAIN (-11 to
 * the guest) only while a PIN covers one of its pages, never because of a
 * transfer on another vCPU, which a guest could not avoid.
 *
 * Locking: dev->lock protects the registers and serialises commands (a
 * command runs to completion before the `out` to CMD returns).  It is held
 * across gmem_access(); libgmem never takes it (the listener callbacks
 * take only the IOMMU's leaf lock), so there is no cycle.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../gmvm.h"
#include "devices.h"
#include "swiommu.h"

struct dmatest {
	struct vm *vm;
	pthread_mutex_t lock;	/* registers, buf, stats; held by commands */
	uint32_t addr_lo;
	uint32_t addr_hi;
	uint32_t len;
	uint32_t pattern;
	uint32_t status;
	uint32_t result;
	uint8_t *buf;		/* bounce buffer, grown up to GM_DMA_MAX_LEN */
	size_t buf_len;
	struct swiommu iommu;
	struct gmem_listener *listener;
	struct dmatest_stats stats;
};

static int dma_populate(void *data, uint64_t offset, uint64_t len)
{
	struct dmatest *d = data;

	return swiommu_map(&d->iommu, offset, len);
}

static int dma_discard(void *data, uint64_t offset, uint64_t len,
		       unsigned int flags)
{
	struct dmatest *d = data;

	return swiommu_unmap(&d->iommu, offset, len);
}

static int dma_report(void *data,
		      int (*fn)(void *arg, uint64_t offset, uint64_t len),
		      void *arg)
{
	struct dmatest *d = data;

	return swiommu_report(&d->iommu, fn, arg);
}

static const struct gmem_listener_ops dma_listener_ops = {
	.populate = dma_populate,
	.discard = dma_discard,
	.report = dma_report,
};

/* FILL or CHECKSUM, with dev->lock held. */
static enum exit_action dma_transfer(struct vcpu *vcpu, struct dmatest *d,
				     uint32_t cmd, uint64_t addr,
				     uint64_t len)
{
	struct vm *vm = vcpu->vm;
	uint32_t sum = 0;
	uint64_t seq, i;
	int ret;

	if (!swiommu_is_mapped(&d->iommu, addr, len, &seq))
		goto fault;
	if (d->buf_len < len) {
		void *p = realloc(d->buf, len);

		if (!p)
			return vm_stop(vm, GM_EXIT_HOST_ERROR,
				       "DMA device: out of memory for a %llu-byte transfer",
				       (unsigned long long)len);
		d->buf = p;
		d->buf_len = len;
	}
	if (cmd == GM_DMA_CMD_FILL)
		memset(d->buf, (int)(d->pattern & 0xff), len);
	ret = gmem_access(vm->gmem, addr, d->buf, len, cmd == GM_DMA_CMD_FILL,
			  GMEM_SHARED);
	if (ret == -EACCES && swiommu_unmap_seq(&d->iommu) != seq)
		goto fault;	/* a conversion to private came first */
	if (ret == -EACCES)
		return vm_stop(vm, GM_EXIT_HOST_ERROR,
			       "DMA device: internal inconsistency: its IOMMU maps [%#llx, %#llx) and saw no unmap since it checked, but libgmem says a page of it is not shared (gmem_access: %s): libgmem's listener notifications disagree with its page states",
			       (unsigned long long)addr,
			       (unsigned long long)(addr + len),
			       strerror(-ret));
	if (ret < 0)
		return vm_stop(vm, GM_EXIT_HOST_ERROR,
			       "DMA device: %s of [%#llx, %#llx): gmem_access: %s",
			       cmd == GM_DMA_CMD_FILL ? "FILL" : "CHECKSUM",
			       (unsigned long long)addr,
			       (unsigned long long)(addr + len),
			       strerror(-ret));
	if (cmd == GM_DMA_CMD_CHECKSUM) {
		for (i = 0; i < len; i++)
			sum += d->buf[i];
		d->result = sum;
	}
	d->status = GM_DMA_OK;
	d->stats.bytes += len;
	return EXIT_RESUME;

fault:
	d->status = GM_DMA_FAULT;
	d->stats.faults++;
	return EXIT_RESUME;
}

/* A write to CMD, with dev->lock held. */
static enum exit_action dma_command(struct vcpu *vcpu, struct dmatest *d,
				    uint32_t cmd)
{
	uint64_t addr = ((uint64_t)d->addr_hi << 32) | d->addr_lo;
	uint64_t len = d->len;
	uint64_t ram = vcpu->vm->ram_size;
	int ret;

	d->stats.commands[cmd >= 1 && cmd <= 4 ? cmd : 0]++;
	if (cmd < GM_DMA_CMD_FILL || cmd > GM_DMA_CMD_UNPIN || len == 0 ||
	    len > GM_DMA_MAX_LEN || addr >= ram || len > ram - addr) {
		d->status = GM_DMA_BAD;
		d->stats.bad++;
		return EXIT_RESUME;
	}
	switch (cmd) {
	case GM_DMA_CMD_FILL:
	case GM_DMA_CMD_CHECKSUM:
		return dma_transfer(vcpu, d, cmd, addr, len);
	case GM_DMA_CMD_PIN:
		ret = swiommu_pin(&d->iommu, addr, len);
		if (ret == -EFAULT) {
			d->status = GM_DMA_FAULT;
			d->stats.faults++;
		} else if (ret) {
			d->status = GM_DMA_BAD;	/* pin table full */
			d->stats.bad++;
		} else {
			d->status = GM_DMA_OK;
		}
		return EXIT_RESUME;
	default:	/* GM_DMA_CMD_UNPIN */
		ret = swiommu_unpin(&d->iommu, addr, len);
		if (ret) {
			d->status = GM_DMA_BAD;
			d->stats.bad++;
		} else {
			d->status = GM_DMA_OK;
		}
		return EXIT_RESUME;
	}
}

static enum exit_action dma_port(struct vcpu *vcpu, void *opaque,
				 uint16_t port, bool out, unsigned int size,
				 uint8_t *data)
{
	struct dmatest *d = opaque;
	enum exit_action act = EXIT_RESUME;
	uint32_t val = 0;

	pthread_mutex_lock(&d->lock);
	if (size != 4 || ((port - GM_PORT_DMA) & 3)) {
		d->stats.bad_accesses++;
		if (!out)
			memset(data, 0xff, size);
		goto out;
	}
	if (out) {
		memcpy(&val, data, 4);
		switch (port) {
		case GM_DMA_ADDR_LO: d->addr_lo = val; break;
		case GM_DMA_ADDR_HI: d->addr_hi = val; break;
		case GM_DMA_LEN: d->len = val; break;
		case GM_DMA_PATTERN: d->pattern = val; break;
		case GM_DMA_CMD: act = dma_command(vcpu, d, val); break;
		default: break;
		}
		goto out;
	}
	switch (port) {
	case GM_DMA_ADDR_LO: val = d->addr_lo; break;
	case GM_DMA_ADDR_HI: val = d->addr_hi; break;
	case GM_DMA_LEN: val = d->len; break;
	case GM_DMA_PATTERN: val = d->pattern; break;
	case GM_DMA_CMD: val = 0; break;
	case GM_DMA_STATUS: val = d->status; break;
	case GM_DMA_RESULT: val = d->result; break;
	default: val = 0xffffffff; break;
	}
	memcpy(data, &val, 4);
out:
	pthread_mutex_unlock(&d->lock);
	return act;
}

int dmatest_init(struct vm *vm)
{
	struct port_handler h = {
		.first = GM_PORT_DMA,
		.last = GM_PORT_DMA_LAST,
		.name = "dmatest",
		.fn = dma_port,
	};
	struct dmatest *d;
	int ret;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->vm = vm;
	ret = -pthread_mutex_init(&d->lock, NULL);
	if (ret)
		goto err_dev;
	ret = swiommu_init(&d->iommu);
	if (ret)
		goto err_lock;
	/* Replays the current shared runs into the IOMMU. */
	ret = gmem_listener_register(vm->gmem, &dma_listener_ops, d,
				     &d->listener);
	if (ret)
		goto err_iommu;
	h.opaque = d;
	ret = vm_register_ports(vm, &h);
	if (ret)
		goto err_listener;
	vm->dma = d;
	return 0;

err_listener:
	gmem_listener_unregister(vm->gmem, d->listener);
err_iommu:
	swiommu_destroy(&d->iommu);
err_lock:
	pthread_mutex_destroy(&d->lock);
err_dev:
	free(d);
	return ret;
}

int dmatest_check(struct vm *vm)
{
	struct dmatest *d = vm->dma;
	uint64_t overlaps, holes;

	if (!d)
		return 0;
	pthread_mutex_lock(&d->iommu.lock);
	overlaps = d->iommu.map_overlaps;
	holes = d->iommu.unmap_holes;
	pthread_mutex_unlock(&d->iommu.lock);
	if (!overlaps && !holes)
		return 0;
	gmvm_err("DMA device's IOMMU got %llu populate notifications for already mapped pages and %llu discards of unmapped pages: libgmem's listener notifications disagree with its page states",
		 (unsigned long long)overlaps, (unsigned long long)holes);
	return -EUCLEAN;
}

int dmatest_teardown(struct vm *vm)
{
	struct dmatest *d = vm->dma;
	unsigned int left;
	uint64_t holes;

	if (!d || !d->listener)
		return 0;
	swiommu_teardown(&d->iommu);
	pthread_mutex_lock(&d->iommu.lock);
	holes = d->iommu.unmap_holes;
	pthread_mutex_unlock(&d->iommu.lock);
	gmem_listener_unregister(vm->gmem, d->listener);
	d->listener = NULL;
	pthread_mutex_lock(&d->iommu.lock);
	left = d->iommu.nr_maps;
	holes = d->iommu.unmap_holes - holes;
	pthread_mutex_unlock(&d->iommu.lock);
	if (!left && !holes)
		return 0;
	gmvm_err("DMA device: after unregistering its listener the IOMMU still holds %u mappings (%llu discards of unmapped pages): libgmem's unregister did not replay the removal of exactly the shared runs",
		 left, (unsigned long long)holes);
	return -EUCLEAN;
}

void dmatest_get_stats(struct vm *vm, struct dmatest_stats *st)
{
	struct dmatest *d = vm->dma;

	memset(st, 0, sizeof(*st));
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	*st = d->stats;
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_lock(&d->iommu.lock);
	st->nr_maps = d->iommu.nr_maps;
	st->max_maps = d->iommu.max_maps;
	st->map_calls = d->iommu.nr_map_calls;
	st->unmap_calls = d->iommu.nr_unmap_calls;
	st->refused = d->iommu.nr_refused;
	pthread_mutex_unlock(&d->iommu.lock);
}

void dmatest_destroy(struct vm *vm)
{
	struct dmatest *d = vm->dma;

	if (!d)
		return;
	if (d->listener)
		gmem_listener_unregister(vm->gmem, d->listener);
	swiommu_destroy(&d->iommu);
	pthread_mutex_destroy(&d->lock);
	free(d->buf);
	free(d);
	vm->dma = NULL;
}
