/* SPDX-License-Identifier: MIT */
/*
 * The DMA test device (guest ABI section 7), ports 0x520..0x53f.
 *
 * It behaves like a device behind an IOMMU: it can reach only what its
 * DMA mappings cover, and those are made by a libgmem DMA mapper (exact
 * layout: one mapping per maximal shared-and-plugged run, changed by map,
 * unmap, cut and merge).  The mapper's backend is
 *  - internal (default): swiommu, gmvm's strict software IOMMU; commands
 *    run here, checked against it, copying with gmem_access();
 *  - external (--dmatest=external): a device process (dma_process.c,
 *    driven by dma_remote.c) that maps the shared backing only where the
 *    mapper says, and runs the commands itself on its own mappings.
 * A command checks the device's mappings, never the page-state map, so a
 * wrong or missing notification shows up as a wrong device result (or as
 * the inconsistency errors below), not as a silently correct one.
 *
 * Registers are 32 bits wide at 4-byte aligned ports.  An access of
 * another size or alignment is not defined by the ABI; like a bus with no
 * target, it reads as all ones and a write is ignored (counted in
 * --stats).  ADDR_LO/ADDR_HI/LEN/PATTERN read back what was written; CMD
 * reads 0; STATUS and RESULT ignore writes; 0x53c reads all ones.
 *
 * Internal: a FILL or CHECKSUM is atomic with respect to conversions:
 * after the IOMMU check, the whole range is copied with one
 * gmem_access(..., GMEM_SHARED), which holds off conversions while it
 * copies and copies nothing if any page is not shared.  A conversion to
 * private on another vCPU can still slip in between the check and the
 * copy; the conversion then simply happened first, and the command faults
 * (STATUS 1, nothing written), as it would have if it had started later.
 * Such a race always unmaps something in the IOMMU first (libgmem tells
 * listeners before a page stops being shared), so -EACCES with no unmap
 * since the check means a page stopped being shared without its listener
 * being told: libgmem and the listener disagree, and gmvm says so and
 * exits 125.
 * External: the device runs one message at a time, so a command and a
 * mapper op never overlap; an unmap is acknowledged only after the device
 * dropped the mapping, before libgmem revokes or punches the page.
 *
 * Only PIN holds pages: a conversion to private fails with -EAGAIN (-11 to
 * the guest) only while a PIN covers one of its pages, never because of a
 * transfer on another vCPU, which a guest could not avoid.  If the device
 * process dies, its pins go with it, and every command that is not a bad
 * request faults (STATUS 1).
 *
 * Locking: dev->lock protects the registers and serialises commands (a
 * command runs to completion before the `out` to CMD returns).  It is held
 * across gmem_access() and dma_remote_command(); libgmem never takes it (the
 * mapper's ops take only the IOMMU's or the device channel's leaf lock),
 * so there is no cycle.  mapper_lock guards the mapper pointer: readers
 * (dma_check, stats) hold it across their use, and the mapper is
 * destroyed only after it was taken out under the write lock, outside
 * it, and never from inside a mapper callback (libgmem's whole-RAM range
 * lock): by the device's death monitor, or at teardown.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "devices.h"
#include "dma_remote.h"
#include "../snapshot/machine.h"
#include "../stats.h"
#include "swiommu.h"

_Static_assert(SNAP_MAX_PINS == GM_DMA_MAX_PINS, "the DMADEV section's pins");
_Static_assert(SNAP_DMA_MAX_LEN == GM_DMA_MAX_LEN, "the DMADEV section's pins");

/* What --stats shows of the device (a snapshot, see dma_get_stats()). */
struct dma_stats {
	uint64_t commands[5];	/* by CMD 1..4; [0] unknown */
	uint64_t faults;	/* STATUS 1 */
	uint64_t bad;		/* STATUS 2 */
	uint64_t no_resources;	/* STATUS 3: PIN with the pin table full */
	uint64_t bytes;		/* FILLed or CHECKSUMed */
	uint64_t bad_accesses;	/* wrong size or alignment */
	bool external;		/* a device process */
	int pid;		/* external: its pid */
	bool died;		/* external: it died during the run */
	/* The mapper's counters (the last ones if it was destroyed). */
	struct gmem_dma_stats dma;
	/* How the text says it. */
	const char *backend;
	const char *backend_note;
	const char *died_note;
};

struct dma_dev {
	struct vm *vm;
	pthread_mutex_t lock;	/* registers, buf, stats; held by commands */
	struct snap_dma_regs regs;	/* as a snapshot holds them */
	uint8_t *buf;		/* bounce buffer, grown up to GM_DMA_MAX_LEN */
	size_t buf_len;
	struct dma_stats stats;
	/*
	 * The guest's pins, as the PINs and UNPINs that succeeded left them:
	 * what a snapshot saves (an external device holds its pins in its
	 * own process, out of gmvm's sight).
	 */
	struct snap_pin pins[GM_DMA_MAX_PINS];
	unsigned int nr_pins;

	bool external;
	struct swiommu iommu;	/* internal: the device's IOMMU */
	bool iommu_ready;
	struct dma_remote *ext;	/* external: the device process */

	pthread_rwlock_t mapper_lock;	/* mapper, last_dma */
	struct gmem_dma_mapper *mapper;
	struct gmem_dma_stats last_dma;
};

/* ---- the internal backend: swiommu -------------------------------------- */

static int iommu_map(void *data, uint64_t iova, uint64_t len)
{
	struct dma_dev *d = data;

	return swiommu_map(&d->iommu, iova, len, 0);
}

static int iommu_unmap(void *data, uint64_t iova, uint64_t len,
		       unsigned int flags)
{
	struct dma_dev *d = data;

	return swiommu_unmap(&d->iommu, iova, len,
			     flags & GMEM_DISCARD_FORCED);
}

static int iommu_cut(void *data, uint64_t m_iova, uint64_t m_len,
		     uint64_t iova, uint64_t len, unsigned int flags)
{
	struct dma_dev *d = data;

	return swiommu_cut(&d->iommu, m_iova, m_len, iova, len,
			   flags & GMEM_DISCARD_FORCED);
}

static int iommu_merge(void *data, uint64_t iova, uint64_t len)
{
	struct dma_dev *d = data;

	return swiommu_merge(&d->iommu, iova, len, 0);
}

static int iommu_report(void *data,
			int (*fn)(void *arg, uint64_t iova, uint64_t len),
			void *arg)
{
	struct dma_dev *d = data;

	return swiommu_report(&d->iommu, fn, arg);
}

static const struct gmem_dma_ops iommu_dma_ops = {
	.size = sizeof(struct gmem_dma_ops),
	.map = iommu_map,
	.unmap = iommu_unmap,
	.cut = iommu_cut,
	.merge = iommu_merge,
	.report = iommu_report,
};

/* ---- the mapper --------------------------------------------------------- */

/*
 * Take the mapper out (keeping its last counters) and destroy it.  Never
 * from a mapper or listener callback.
 */
static void drop_mapper(struct dma_dev *d)
{
	struct gmem_dma_mapper *m;

	pthread_rwlock_wrlock(&d->mapper_lock);
	m = d->mapper;
	d->mapper = NULL;
	if (m) {
		d->last_dma.size = sizeof(d->last_dma);
		gmem_dma_mapper_get_stats(m, &d->last_dma);
	}
	pthread_rwlock_unlock(&d->mapper_lock);
	if (m)
		gmem_dma_mapper_destroy(d->vm->gmem, m);
}

/* The device process died: its monitor thread calls this. */
static void device_died(void *arg)
{
	drop_mapper(arg);
}

/* ---- commands ----------------------------------------------------------- */

/* FILL or CHECKSUM in gmvm, with dev->lock held. */
static enum exit_action dma_transfer(struct vcpu *vcpu, struct dma_dev *d,
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
		memset(d->buf, (int)(d->regs.pattern & 0xff), len);
	ret = gmem_access(vm->gmem, addr, d->buf, len, cmd == GM_DMA_CMD_FILL,
			  GMEM_SHARED);
	if (ret == -EACCES && swiommu_unmap_seq(&d->iommu) != seq)
		goto fault;	/* a conversion to private came first */
	if (ret == -EACCES)
		return vm_stop(vm, GM_EXIT_HOST_ERROR,
			       "DMA device: internal inconsistency: its IOMMU maps [%#llx, %#llx) and saw no unmap since it checked, but libgmem says a page of it is not shared (gmem_access: %s): the DMA mapper's mappings disagree with the page states",
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
		d->regs.result = sum;
	}
	d->regs.status = GM_DMA_OK;
	d->stats.bytes += len;
	return EXIT_RESUME;

fault:
	d->regs.status = GM_DMA_FAULT;
	d->stats.faults++;
	return EXIT_RESUME;
}

/* PIN or UNPIN in gmvm's IOMMU: the STATUS. */
static uint32_t dma_pin(struct dma_dev *d, uint32_t cmd, uint64_t addr,
			uint64_t len)
{
	int ret;

	if (cmd == GM_DMA_CMD_PIN) {
		ret = swiommu_pin(&d->iommu, addr, len);
		return ret == -EFAULT ? GM_DMA_FAULT :
		       ret == -ENOSPC ? GM_DMA_NO_RESOURCES :
		       ret ? GM_DMA_BAD : GM_DMA_OK;
	}
	return swiommu_unpin(&d->iommu, addr, len) ? GM_DMA_BAD : GM_DMA_OK;
}

/* A PIN or UNPIN that succeeded, in the mirror of the pins. */
static void note_pin(struct dma_dev *d, uint32_t cmd, uint64_t addr,
		     uint64_t len)
{
	unsigned int k;

	if (cmd == GM_DMA_CMD_PIN && d->nr_pins < GM_DMA_MAX_PINS) {
		d->pins[d->nr_pins].addr = addr;
		d->pins[d->nr_pins].len = len;
		d->nr_pins++;
		return;
	}
	for (k = 0; cmd == GM_DMA_CMD_UNPIN && k < d->nr_pins; k++) {
		if (d->pins[k].addr == addr && d->pins[k].len == len) {
			d->pins[k] = d->pins[--d->nr_pins];
			return;
		}
	}
}

/* A write to CMD, with dev->lock held. */
static enum exit_action dma_command(struct vcpu *vcpu, struct dma_dev *d,
				    uint32_t cmd)
{
	uint64_t addr = ((uint64_t)d->regs.addr_hi << 32) | d->regs.addr_lo;
	uint64_t len = d->regs.len;
	uint32_t result = 0;

	d->stats.commands[cmd >= 1 && cmd <= 4 ? cmd : 0]++;
	/* A range touching a hole between RAM ranges is outside RAM. */
	if (cmd < GM_DMA_CMD_FILL || cmd > GM_DMA_CMD_UNPIN || len == 0 ||
	    len > GM_DMA_MAX_LEN ||
	    !ram_layout_contains(&vcpu->vm->ram, addr, len)) {
		d->regs.status = GM_DMA_BAD;
		d->stats.bad++;
		return EXIT_RESUME;
	}
	if (!d->external && (cmd == GM_DMA_CMD_FILL ||
			     cmd == GM_DMA_CMD_CHECKSUM))
		return dma_transfer(vcpu, d, cmd, addr, len);
	if (!d->external) {
		d->regs.status = dma_pin(d, cmd, addr, len);
	} else {
		d->regs.status = (uint32_t)dma_remote_command(d->ext, cmd, addr,
							 len,
							 (uint8_t)d->regs.pattern,
							 &result);
		if (d->regs.status == GM_DMA_OK && cmd == GM_DMA_CMD_CHECKSUM)
			d->regs.result = result;
		if (d->regs.status == GM_DMA_OK && cmd <= GM_DMA_CMD_CHECKSUM)
			d->stats.bytes += len;
	}
	if (d->regs.status == GM_DMA_OK)
		note_pin(d, cmd, addr, len);
	if (d->regs.status == GM_DMA_FAULT)
		d->stats.faults++;
	else if (d->regs.status == GM_DMA_BAD)
		d->stats.bad++;
	else if (d->regs.status == GM_DMA_NO_RESOURCES)
		d->stats.no_resources++;
	return EXIT_RESUME;
}

static enum exit_action dma_port(struct vcpu *vcpu, void *opaque,
				 uint16_t port, bool out, unsigned int size,
				 uint8_t *data)
{
	struct dma_dev *d = opaque;
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
		case GM_DMA_ADDR_LO: d->regs.addr_lo = val; break;
		case GM_DMA_ADDR_HI: d->regs.addr_hi = val; break;
		case GM_DMA_LEN: d->regs.len = val; break;
		case GM_DMA_PATTERN: d->regs.pattern = val; break;
		case GM_DMA_CMD: act = dma_command(vcpu, d, val); break;
		default: break;
		}
		goto out;
	}
	switch (port) {
	case GM_DMA_ADDR_LO: val = d->regs.addr_lo; break;
	case GM_DMA_ADDR_HI: val = d->regs.addr_hi; break;
	case GM_DMA_LEN: val = d->regs.len; break;
	case GM_DMA_PATTERN: val = d->regs.pattern; break;
	case GM_DMA_CMD: val = 0; break;
	case GM_DMA_STATUS: val = d->regs.status; break;
	case GM_DMA_RESULT: val = d->regs.result; break;
	default: val = 0xffffffff; break;
	}
	memcpy(data, &val, 4);
out:
	pthread_mutex_unlock(&d->lock);
	return act;
}

/*
 * The device process maps one file at IOVA = file offset - base: every
 * region's shared backing must be that one file with its region at the
 * same base.  Region 0's is returned, with shared_offset made the file
 * offset of IOVA 0.  -EINVAL if gmvm's memory is not built so.
 */
static int one_shared_file(struct vm *vm, struct gmem_region_info *first)
{
	struct gmem_region_info r = GMEM_INIT(struct gmem_region_info);
	struct stat st0, st;
	int i, n, ret;

	n = gmem_region_count(vm->gmem);
	ret = n > 0 ? gmem_region_get(vm->gmem, 0, first) : -EINVAL;
	if (ret)
		return ret;
	if (first->shared_offset < first->gpa || fstat(first->shared_fd, &st0))
		return -EINVAL;
	for (i = 1; i < n; i++) {
		ret = gmem_region_get(vm->gmem, (unsigned int)i, &r);
		if (ret)
			return ret;
		if (fstat(r.shared_fd, &st) || st.st_dev != st0.st_dev ||
		    st.st_ino != st0.st_ino ||
		    r.shared_offset - r.gpa != first->shared_offset - first->gpa)
			return -EINVAL;
	}
	first->shared_offset -= first->gpa;
	return 0;
}

static int dma_init(struct vm *vm, void **state)
{
	struct gmem_dma_mapper_config mc = {
		.size = sizeof(mc),
	};
	struct gmem_region_info ram = GMEM_INIT(struct gmem_region_info);
	const char *step = "out of memory";
	struct gmem_dma_mapper *m;
	struct dma_dev *d;
	int ret = -ENOMEM;

	/* Every failure prints one line, here or in dma_remote_start(). */
	d = calloc(1, sizeof(*d));
	if (!d)
		goto err_print;
	d->vm = vm;
	d->external = vm->cfg->dmatest == DMATEST_EXTERNAL;
	step = "locks";
	ret = -pthread_mutex_init(&d->lock, NULL);
	if (ret)
		goto err_dev;
	ret = -pthread_rwlock_init(&d->mapper_lock, NULL);
	if (ret)
		goto err_lock;
	if (d->external) {
		/*
		 * The device gets the shared backing of guest RAM: gmvm's
		 * one memfd, GPA g of every region at offset g (vm.c).
		 */
		step = "the shared backing";
		ret = one_shared_file(vm, &ram);
		if (ret)
			goto err_rwlock;
		ret = dma_remote_start(ram.shared_fd, ram.shared_offset,
				       vm->ram.top, device_died, d, &d->ext);
		if (ret) {
			step = NULL;	/* said */
			goto err_rwlock;
		}
		mc.ops = &dma_remote_ops;
		mc.data = d->ext;
	} else {
		step = "its IOMMU";
		ret = swiommu_init(&d->iommu, vm->ram.top);
		if (ret)
			goto err_rwlock;
		d->iommu_ready = true;
		mc.ops = &iommu_dma_ops;
		mc.data = d;
	}
	/* Maps the current reachable runs now. */
	step = "gmem_dma_mapper_create";
	ret = gmem_dma_mapper_create(vm->gmem, &mc, &m);
	if (ret)
		goto err_backend;
	pthread_rwlock_wrlock(&d->mapper_lock);
	d->mapper = m;
	pthread_rwlock_unlock(&d->mapper_lock);
	/* Died while the mapper was made: its monitor found none to drop. */
	if (d->ext && dma_remote_died(d->ext))
		drop_mapper(d);
	*state = d;
	return 0;

err_backend:
	if (d->ext)
		dma_remote_stop(d->ext);
	if (d->iommu_ready)
		swiommu_destroy(&d->iommu);
err_rwlock:
	pthread_rwlock_destroy(&d->mapper_lock);
err_lock:
	pthread_mutex_destroy(&d->lock);
err_dev:
	free(d);
err_print:
	if (step)
		gmvm_err("setting up the DMA test device: %s: %s", step,
			 strerror(-ret));
	return ret;
}

/* The backend's violation counters and what they say, for dma_check(). */
static void backend_stats(struct dma_dev *d, struct swiommu_stats *st,
			  uint64_t *device_refused)
{
	*device_refused = 0;
	if (d->external)
		dma_remote_get_stats(d->ext, st, device_refused);
	else
		swiommu_get_stats(&d->iommu, st);
}

static int dma_check(void *state)
{
	struct dma_dev *d = state;
	uint64_t device_refused;
	struct swiommu_stats st;
	char msg[512];
	int ret = 0, err;

	if (!d)
		return 0;
	backend_stats(d, &st, &device_refused);
	if (swiommu_violations(&st)) {
		gmvm_err("DMA device: the DMA mapper asked its %s for what a correct mapper never does (refused): %s",
			 d->external ? "device process" : "IOMMU",
			 swiommu_describe(&st, msg, sizeof(msg)));
		ret = -EUCLEAN;
	}
	if (device_refused) {
		gmvm_err("DMA device process (pid %d) refused %llu mapping requests that gmvm's mirror of its mappings allowed: the two disagree",
			 (int)dma_remote_pid(d->ext),
			 (unsigned long long)device_refused);
		ret = -EUCLEAN;
	}
	pthread_rwlock_rdlock(&d->mapper_lock);
	err = d->mapper ? gmem_dma_mapper_validate(d->mapper, msg,
						   sizeof(msg)) : 0;
	pthread_rwlock_unlock(&d->mapper_lock);
	if (err) {
		gmvm_err("DMA device: gmem_dma_mapper_validate: %s",
			 msg[0] ? msg : strerror(-err));
		ret = -EUCLEAN;
	}
	return ret;
}

static int dma_teardown(void *state)
{
	struct dma_dev *d = state;
	struct swiommu_stats before, after;
	uint64_t refused;
	int ret = 0;

	if (!d)
		return 0;
	if (d->external)
		dma_remote_stop_monitor(d->ext);
	else
		swiommu_teardown(&d->iommu);
	backend_stats(d, &before, &refused);
	/* Unmaps every mapping (forced), then unregisters. */
	drop_mapper(d);
	backend_stats(d, &after, &refused);
	if (after.nr_maps || swiommu_violations(&after) !=
			     swiommu_violations(&before)) {
		gmvm_err("DMA device: after the DMA mapper was destroyed its %s still holds %llu mappings (%llu requests refused on the way): the mapper did not unmap exactly its mappings",
			 d->external ? "device process" : "IOMMU",
			 (unsigned long long)after.nr_maps,
			 (unsigned long long)(swiommu_violations(&after) -
					      swiommu_violations(&before)));
		ret = -EUCLEAN;
	}
	if (d->external) {
		if (dma_remote_check_empty(d->ext))
			ret = -EUCLEAN;
		d->stats.died = dma_remote_died(d->ext);
		d->stats.pid = (int)dma_remote_pid(d->ext);
		if (dma_remote_stop(d->ext))
			ret = -EUCLEAN;
		d->ext = NULL;
	}
	return ret;
}

static void dma_get_stats(struct dma_dev *d, struct dma_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	*st = d->stats;
	pthread_mutex_unlock(&d->lock);
	st->external = d->external;
	if (d->ext) {
		st->pid = (int)dma_remote_pid(d->ext);
		st->died = dma_remote_died(d->ext);
	}
	pthread_rwlock_rdlock(&d->mapper_lock);
	if (d->mapper) {
		st->dma.size = sizeof(st->dma);
		gmem_dma_mapper_get_stats(d->mapper, &st->dma);
	} else {
		st->dma = d->last_dma;
	}
	pthread_rwlock_unlock(&d->mapper_lock);
}

#define F(kind, pre, post, json, member) \
	{ kind, pre, post, json, offsetof(struct dma_stats, member) }
#define F_EXTERNAL(kind, pre, json, member) \
	{ kind, pre, "", json, offsetof(struct dma_stats, member), \
	  .has_when = true, .when = offsetof(struct dma_stats, external) }

static const struct stat_field dma_fields[] = {
	{ .kind = STAT_OBJ, .json = "dma" },
	{ STAT_LINE, "dma device:   " },
	F(STAT_U64, "fill ", "", "fill", commands[GM_DMA_CMD_FILL]),
	F(STAT_U64, ", checksum ", "", "checksum",
	  commands[GM_DMA_CMD_CHECKSUM]),
	F(STAT_U64, ", pin ", "", "pin", commands[GM_DMA_CMD_PIN]),
	F(STAT_U64, ", unpin ", "", "unpin", commands[GM_DMA_CMD_UNPIN]),
	F(STAT_U64, ", unknown ", "", "unknown", commands[0]),
	F(STAT_U64, "; fault ", "", "fault", faults),
	F(STAT_U64, ", bad ", "", "bad", bad),
	F(STAT_U64, ", no resources ", "", "no_resources", no_resources),
	F(STAT_U64, ", bad accesses ", "", "bad_accesses", bad_accesses),
	F(STAT_MIB, ", ", " MiB moved", "bytes", bytes),
	{ STAT_LINE, "dma backend:  " },
	F(STAT_STR, "", "", "backend", backend),
	F(STAT_STR, "", "", NULL, backend_note),
	F_EXTERNAL(STAT_INT, ", device process pid ", "pid", pid),
	F_EXTERNAL(STAT_BOOL, ", died ", "died", died),
	{ .kind = STAT_OBJ, .json = "mapper" },
	{ STAT_LINE, "dma mapper:   " },
	F(STAT_U64, "", " live mappings", "live", dma.live),
	F(STAT_U64, " (max ", ")", "max_live", dma.max_live),
	F(STAT_U64, ", ", " maps", "maps", dma.maps),
	F(STAT_U64, ", ", " unmaps", "unmaps", dma.unmaps),
	F(STAT_U64, ", ", " cuts", "cuts", dma.cuts),
	F(STAT_U64, ", ", " merges", "merges", dma.merges),
	F(STAT_U64, ", ", " splits", "splits", dma.splits),
	F(STAT_U64, ", ", " refused (pinned)", "refused", dma.refused),
	F(STAT_STR, "", "", NULL, died_note),
	{ .kind = STAT_END },
	{ .kind = STAT_END },
};

static void dma_stats(void *state, struct stats_out *out)
{
	struct dma_stats st;

	dma_get_stats(state, &st);
	st.backend = st.external ? "external" : "internal";
	st.backend_note = st.external ? "" : " (gmvm's software IOMMU)";
	st.died_note = st.died ? " (when the device died)" : "";
	stats_emit(out, dma_fields, ARRAY_SIZE(dma_fields), &st);
}

static void dma_destroy(void *state)
{
	struct dma_dev *d = state;

	if (!d)
		return;
	if (d->ext)
		dma_remote_stop_monitor(d->ext);
	drop_mapper(d);
	if (d->ext)
		dma_remote_stop(d->ext);
	if (d->iommu_ready)
		swiommu_destroy(&d->iommu);
	pthread_rwlock_destroy(&d->mapper_lock);
	pthread_mutex_destroy(&d->lock);
	free(d->buf);
	free(d);
}

/* ---- snapshots ----------------------------------------------------------- */

/* vCPUs paused: no command runs, so the registers and pins hold still. */
static int dma_snap_save(void *state, struct snap_machine *m, char *why,
			 size_t why_len)
{
	struct dma_dev *d = state;
	struct snap_dmadev *s = &m->dma;
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	if (d->ext && dma_remote_died(d->ext)) {
		snprintf(why, why_len, "the DMA device process (pid %d) died: its pins and mappings are gone",
			 (int)dma_remote_pid(d->ext));
		ret = -EIO;
	} else {
		s->regs = d->regs;
		s->nr_pins = d->nr_pins;
		memcpy(s->pins, d->pins, sizeof(d->pins));
	}
	pthread_mutex_unlock(&d->lock);
	return ret;
}

/*
 * After init, whose mapper mapped the restored shared-and-plugged runs:
 * the registers, then each pin again, as the guest's PIN made it.  A pin
 * that does not lie in RAM or is not mapped now (the file's pins disagree
 * with its page and plug maps) refuses the file.
 */
static int dma_snap_restore(void *state, const struct snap_machine *m,
			    char *why, size_t why_len)
{
	struct dma_dev *d = state;
	const struct snap_dmadev *s = &m->dma;
	uint32_t st, result;
	unsigned int i;

	d->regs = s->regs;
	for (i = 0; i < s->nr_pins; i++) {
		const struct snap_pin *p = &s->pins[i];

		st = GM_DMA_BAD;
		if (ram_layout_contains(&d->vm->ram, p->addr, p->len))
			st = d->external ?
			     (uint32_t)dma_remote_command(d->ext,
							  GM_DMA_CMD_PIN,
							  p->addr, p->len, 0,
							  &result) :
			     dma_pin(d, GM_DMA_CMD_PIN, p->addr, p->len);
		if (st != GM_DMA_OK) {
			snprintf(why, why_len, "the DMA device's pin %u [%#llx, +%#llx): %s",
				 i, (unsigned long long)p->addr,
				 (unsigned long long)p->len,
				 st == GM_DMA_FAULT ? "not all of it is shared and plugged" :
				 st == GM_DMA_BAD ? "not inside RAM" :
				 "refused by the device");
			return -EBADMSG;
		}
		note_pin(d, GM_DMA_CMD_PIN, p->addr, p->len);
	}
	return 0;
}

/* Its mapper's live mappings: what it (or its process) may write. */
static int dma_ranges(void *state,
		      int (*fn)(void *arg, uint64_t gpa, uint64_t len),
		      void *arg)
{
	struct dma_dev *d = state;
	int ret = 0;

	pthread_rwlock_rdlock(&d->mapper_lock);
	if (d->mapper)
		ret = gmem_dma_mapper_for_each(d->mapper, fn, arg);
	pthread_rwlock_unlock(&d->mapper_lock);
	return ret;
}

const struct device dma_test_device = {
	DEVICE_PORTS("dmatest", GM_PORT_DMA, GM_PORT_DMA_LAST),
	.io = dma_port,
	.init = dma_init,
	.says_why = true,	/* the device process may say more */
	.check = dma_check,
	.stats = dma_stats,
	.teardown = dma_teardown,
	.destroy = dma_destroy,
	.snap_save = dma_snap_save,
	.snap_restore = dma_snap_restore,
	.dma_ranges = dma_ranges,
};
