/* SPDX-License-Identifier: MIT */
/*
 * RAM regions: adding, removing and finding them, their memslots, and the
 * walks and punches that must never cross one.
 *
 * Invariants (checked by gmem_audit() through gmem_regions_validate()):
 *  1. regions are page aligned, non-empty, inside [0, max_gpa), sorted by
 *     GPA and never overlap;
 *  2. the page-state map holds GMEM_V_HOLE on exactly the pages outside
 *     every region;
 *  3. every region's slots are live, with ids unique among live slots.
 *
 * Order of a region add (all or nothing; each step undone in reverse on a
 * failure): open or dup the backings, reserve map nodes and array room,
 * map the views (gated to the initial state), prepare initial private
 * pages, register the memslots, let listeners map the initial reachable
 * pages, then commit the array and the map under vm->lock.
 * A remove runs the same steps backwards after flushing queued punches of
 * the region, so that no punch ever targets a closed fd.
 * Both hold the whole space in the range lock: no change is in flight and
 * every reader of the array (a range holder) is excluded.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "kvm_compat.h"
#include "vec.h"
#include "violation.h"

/* ---- lookup and walks ----------------------------------------------------- */

struct gmem_region *gmem_region_of(const struct gmem_vm *vm, uint64_t page)
{
	unsigned int lo = 0, hi = vm->nr_regions;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;
		struct gmem_region *r = &vm->regions[mid];

		if (page < r->first)
			hi = mid;
		else if (page >= r->first + r->npages)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

struct walk {
	struct gmem_vm *vm;
	int hole_err;
	int (*fn)(void *arg, uint64_t start, uint64_t npages, uint8_t value);
	void *arg;
};

static int walk_run(void *arg, uint64_t start, uint64_t npages, uint8_t value)
{
	struct walk *w = arg;
	uint64_t end = start + npages;
	int err;

	if (value & GMEM_V_HOLE)
		return w->hole_err;
	/* A run of equal value may span adjacent regions: cut it. */
	while (start < end) {
		struct gmem_region *r = gmem_region_of(w->vm, start);
		uint64_t stop = r ? r->first + r->npages : end;

		if (!r)		/* map and array disagree: audit reports */
			return -EUCLEAN;
		if (stop > end)
			stop = end;
		err = w->fn(w->arg, start, stop - start, value);
		if (err)
			return err;
		start = stop;
	}
	return 0;
}

int gmem_walk_ex(struct gmem_vm *vm, uint64_t start, uint64_t npages,
		 int (*fn)(void *arg, uint64_t start, uint64_t npages,
			   uint8_t value),
		 void *arg, int hole_err)
{
	struct walk w = { .vm = vm, .hole_err = hole_err, .fn = fn,
			  .arg = arg };

	return gmem_range_map_for_each(vm->map, start, npages, walk_run, &w);
}

int gmem_walk(struct gmem_vm *vm, uint64_t start, uint64_t npages,
	      int (*fn)(void *arg, uint64_t start, uint64_t npages,
			uint8_t value),
	      void *arg)
{
	return gmem_walk_ex(vm, start, npages, fn, arg, 0);
}

int gmem_check_range(const struct gmem_vm *vm, uint64_t gpa, uint64_t len)
{
	if (len == 0 || (gpa | len) & GMEM_PAGE_MASK)
		return -EINVAL;
	if (gpa >= vm->max_gpa || len > vm->max_gpa - gpa)
		return -EINVAL;
	return 0;
}

int gmem_punch_range(struct gmem_vm *vm, enum gmem_backing_id backing,
		     uint64_t gpa, uint64_t len)
{
	uint64_t page = gpa / GMEM_PAGE_SIZE, end = page + len / GMEM_PAGE_SIZE;
	unsigned int i;
	int err;

	for (i = 0; i < vm->nr_regions; i++) {
		struct gmem_region *r = &vm->regions[i];
		uint64_t s = page > r->first ? page : r->first;
		uint64_t e = end < r->first + r->npages ? end :
			     r->first + r->npages;
		uint64_t off;
		int fd;

		if (s >= e)
			continue;
		fd = gmem_region_fd(r, backing, s, &off);
		err = gmem_punch(vm, fd, off, (e - s) * GMEM_PAGE_SIZE);
		if (err)
			return err;
	}
	return 0;
}

/* ---- memslots ------------------------------------------------------------- */

int gmem_slot_apply(struct gmem_vm *vm, const struct gmem_slot *slot)
{
	int err = gmem_fault_check(vm, GMEM_FAULT_SLOT);

	if (err)
		return err;
	if (vm->set_slot) {
		err = vm->set_slot(vm->slot_data, slot);
		return err > 0 ? -EIO : err;
	}
	return gmem_set_memslot(vm->vm_fd, vm->slot_base + slot->id,
				slot->kvm_flags, slot->gpa, slot->len,
				slot->userspace_addr, slot->guest_memfd,
				slot->guest_memfd_offset);
}

static bool slot_id_used(const struct gmem_vm *vm, uint32_t id)
{
	unsigned int i, k;

	for (i = 0; i < vm->nr_regions; i++)
		for (k = 0; k < GMEM_SLOTS_PER_REGION; k++)
			if (vm->regions[i].slot_live[k] &&
			    vm->regions[i].slot_id[k] == id)
				return true;
	return false;
}

/* Lowest free ids, so that hot-plug churn never exhausts KVM's slots. */
static void pick_slot_ids(const struct gmem_vm *vm, struct gmem_region *r,
			  int n)
{
	uint32_t id = 0;
	int k;

	for (k = 0; k < n; k++, id++) {
		while (slot_id_used(vm, id) || (k && id == r->slot_id[0]))
			id++;
		r->slot_id[k] = id;
	}
}

static void delete_slots(struct gmem_vm *vm, struct gmem_region *r)
{
	struct gmem_slot slots[GMEM_SLOTS_PER_REGION];
	int n, k;

	n = vm->backend->region_slots(vm, r, slots);
	for (k = n - 1; k >= 0; k--) {
		if (!r->slot_live[k])
			continue;
		slots[k].id = r->slot_id[k];
		slots[k].len = 0;
		/* Deleting a slot cannot fail for a live slot; a VMM callback
		 * that says otherwise has nothing to roll back to. */
		(void)gmem_slot_apply(vm, &slots[k]);
		r->slot_live[k] = false;
	}
}

static int register_slots(struct gmem_vm *vm, struct gmem_region *r)
{
	struct gmem_slot slots[GMEM_SLOTS_PER_REGION];
	int n, k, err;

	n = vm->backend->region_slots(vm, r, slots);
	pick_slot_ids(vm, r, n);
	for (k = 0; k < n; k++) {
		slots[k].id = r->slot_id[k];
		err = gmem_slot_apply(vm, &slots[k]);
		if (err) {
			delete_slots(vm, r);
			return err;
		}
		r->slot_live[k] = true;
	}
	return 0;
}

/* ---- backings ------------------------------------------------------------- */

/* Adopt the VMM's fd (a dup we own) or create a file of @len bytes. */
static int open_backing(struct gmem_vm *vm, int fd, uint64_t offset,
			uint64_t len, bool private_backing)
{
	struct stat st;
	int dup_fd, err;

	if (fd < 0) {
		if (!private_backing)
			return gmem_backing_create_memfd("gmem-shared", len);
		if (vm->vm_fd < 0)
			return -EINVAL;
		return gmem_backing_create_gmem(vm->vm_fd, len,
						vm->gmem_flags);
	}
	if (offset & GMEM_PAGE_MASK)
		return -EINVAL;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < offset || (uint64_t)st.st_size - offset < len)
		return -EINVAL;
	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dup_fd < 0) {
		err = -errno;
		return err;
	}
	return dup_fd;
}

static void close_backings(struct gmem_region *r)
{
	if (r->shared_fd >= 0 && r->shared_fd != r->private_fd)
		close(r->shared_fd);
	if (r->private_fd >= 0)
		close(r->private_fd);
	r->shared_fd = r->private_fd = -1;
}

static int open_backings(struct gmem_vm *vm, struct gmem_region *r,
			 const struct gmem_region_config *rc)
{
	int fd;

	fd = open_backing(vm, rc->private_fd, rc->private_offset, rc->len, true);
	if (fd < 0)
		return fd;
	r->private_fd = fd;
	r->private_offset = rc->private_fd < 0 ? 0 : rc->private_offset;
	if (vm->mode == GMEM_MODE_IN_PLACE) {
		r->shared_fd = r->private_fd;
		r->shared_offset = r->private_offset;
		return 0;
	}
	fd = open_backing(vm, rc->shared_fd, rc->shared_offset, rc->len, false);
	if (fd < 0) {
		close_backings(r);
		return fd;
	}
	r->shared_fd = fd;
	r->shared_offset = rc->shared_fd < 0 ? 0 : rc->shared_offset;
	return 0;
}

/* ---- add and remove ------------------------------------------------------- */

static bool overlaps_region(const struct gmem_vm *vm, uint64_t gpa,
			    uint64_t len)
{
	unsigned int i;

	for (i = 0; i < vm->nr_regions; i++)
		if (gpa < vm->regions[i].gpa + vm->regions[i].len &&
		    vm->regions[i].gpa < gpa + len)
			return true;
	return false;
}

static int check_region(const struct gmem_vm *vm,
			const struct gmem_region_config *rc)
{
	if (rc->flags || gmem_check_range(vm, rc->gpa, rc->len))
		return -EINVAL;
	if (vm->mode == GMEM_MODE_IN_PLACE && rc->shared_fd >= 0)
		return -EINVAL;
	if (overlaps_region(vm, rc->gpa, rc->len))
		return -EINVAL;
	return 0;
}

/* Listeners map (or, undoing, drop) the reachable pages of a new region. */
static int listeners_region(struct gmem_vm *vm, const struct gmem_region *r,
			    bool populate, struct gmem_listener *stop)
{
	struct gmem_listener *l;
	int err;

	if (vm->initial_state != GMEM_SHARED)
		return 0;
	for (l = vm->listeners; l && l != stop; l = l->next) {
		if (!populate) {
			l->ops_copy.discard(l->data, r->gpa, r->len,
					    GMEM_DISCARD_FORCED);
			continue;
		}
		err = l->ops_copy.populate(l->data, r->gpa, r->len);
		if (err) {
			listeners_region(vm, r, false, l);
			return err < 0 ? err : -EIO;
		}
	}
	return 0;
}

/* Insert @r in GPA order; room was reserved (vec_reserve()). */
static void insert_region(struct gmem_vm *vm, const struct gmem_region *r)
{
	unsigned int i;

	for (i = vm->nr_regions; i > 0 && vm->regions[i - 1].gpa > r->gpa; i--)
		vm->regions[i] = vm->regions[i - 1];
	vm->regions[i] = *r;
	vm->nr_regions++;
}

/*
 * Add a region; the caller holds the whole space in the range lock (or is
 * gmem_create(), before anyone else can see the VM).
 */
int gmem_region_add_locked(struct gmem_vm *vm,
			   const struct gmem_region_config *rc_in);
int gmem_region_add_locked(struct gmem_vm *vm,
			   const struct gmem_region_config *rc_in)
{
	struct gmem_region_config rc;
	struct gmem_region r = { .private_fd = -1, .shared_fd = -1 };
	uint8_t value = (uint8_t)vm->initial_state;
	bool reserved = false;
	int err;

	/* Every version has gpa and len; later fields read as zero... */
	err = gmem_copy_in(&rc, sizeof(rc), rc_in,
			   gmem_offsetofend(struct gmem_region_config, len));
	/* ...but "no fd" is -1, not 0: a caller that did not have a field
	 * asks for libgmem's own backing. */
	if (!err && rc_in->size <= offsetof(struct gmem_region_config,
					      private_fd))
		rc.private_fd = -1;
	if (!err && rc_in->size <= offsetof(struct gmem_region_config,
					      shared_fd))
		rc.shared_fd = -1;
	if (err)
		return err;
	err = check_region(vm, &rc);
	if (err)
		return err;
	r.gpa = rc.gpa;
	r.len = rc.len;
	r.first = rc.gpa / GMEM_PAGE_SIZE;
	r.npages = rc.len / GMEM_PAGE_SIZE;

	err = open_backings(vm, &r, &rc);
	if (err)
		return err;
	/* Everything that can fail for lack of memory comes first. */
	pthread_mutex_lock(&vm->lock);
	err = gmem_range_map_reserve(vm->map);
	reserved = !err;
	if (!err)
		err = vec_reserve((void **)&vm->regions, &vm->cap_regions,
				  vm->nr_regions, sizeof(*vm->regions));
	pthread_mutex_unlock(&vm->lock);
	if (err)
		goto err_reserved;

	err = vm->backend->map_region(vm, &r, value);
	if (err)
		goto err_reserved;
	if (value == GMEM_PRIVATE && vm->has_platform &&
	    vm->platform.prepare) {
		err = vm->platform.prepare(vm->platform_data, r.gpa, r.len);
		if (err) {
			err = err < 0 ? err : -EIO;
			goto err_mapped;
		}
	}
	err = register_slots(vm, &r);
	if (err)
		goto err_prepared;
	/*
	 * In the array before listeners hear of it (its pages are still
	 * holes in the map): a listener that asks which region a page is in
	 * (the DMA mapper clips its mappings to regions) must find it.
	 */
	pthread_mutex_lock(&vm->lock);
	insert_region(vm, &r);		/* room reserved above */
	pthread_mutex_unlock(&vm->lock);
	err = listeners_region(vm, &r, true, NULL);
	if (err)
		goto err_inserted;

	pthread_mutex_lock(&vm->lock);
	gmem_range_map_set(vm->map, r.first, r.npages, value, NULL, NULL);
	gmem_range_map_unreserve(vm->map);
	pthread_mutex_unlock(&vm->lock);
	return 0;

err_inserted:
	pthread_mutex_lock(&vm->lock);
	{
		struct gmem_region *in = gmem_region_of(vm, r.first);
		unsigned int idx = (unsigned int)(in - vm->regions);

		memmove(&vm->regions[idx], &vm->regions[idx + 1],
			(vm->nr_regions - idx - 1) * sizeof(*in));
		vm->nr_regions--;
	}
	pthread_mutex_unlock(&vm->lock);
	delete_slots(vm, &r);
err_prepared:
	if (value == GMEM_PRIVATE && vm->has_platform &&
	    vm->platform.invalidate)
		vm->platform.invalidate(vm->platform_data, r.gpa, r.len);
err_mapped:
	vm->backend->unmap_region(vm, &r);
err_reserved:
	if (reserved) {
		pthread_mutex_lock(&vm->lock);
		gmem_range_map_unreserve(vm->map);
		pthread_mutex_unlock(&vm->lock);
	}
	close_backings(&r);
	return err;
}

int gmem_region_add(struct gmem_vm *vm, const struct gmem_region_config *rc)
{
	struct range_lock_waiter w;
	int err;

	if (!vm || !rc)
		return -EINVAL;
	gmem_range_lock_acquire(&vm->rlock, &w, 0, vm->npages);
	err = vm->broken ? -EIO : gmem_region_add_locked(vm, rc);
	if (!err) {
		pthread_mutex_lock(&vm->lock);
		vm->stats.regions_added++;
		pthread_mutex_unlock(&vm->lock);
	}
	gmem_range_lock_release(&vm->rlock, &w);
	return err;
}

/* Release the pages of a region: listeners, platform (one call per run). */
static void release_run(struct gmem_vm *vm, uint64_t start, uint64_t npages,
			uint8_t value)
{
	uint64_t gpa = start * GMEM_PAGE_SIZE, len = npages * GMEM_PAGE_SIZE;
	struct gmem_listener *l;

	if (value == GMEM_SHARED) {
		for (l = vm->listeners; l; l = l->next)
			l->ops_copy.discard(l->data, gpa, len,
					    GMEM_DISCARD_FORCED);
	} else if (value == GMEM_PRIVATE && vm->has_platform &&
		   vm->platform.invalidate) {
		/* Unplugged pages were invalidated when unplugged. */
		vm->platform.invalidate(vm->platform_data, gpa, len);
	}
}

static int list_run(void *arg, uint64_t start, uint64_t npages, uint8_t value)
{
	struct gmem_run_list *l = arg;

	if (l->only >= 0 && value != l->only)
		return 0;
	if (vec_reserve((void **)&l->v, &l->cap, l->nr, sizeof(*l->v)))
		return -ENOMEM;
	l->v[l->nr].start = start;
	l->v[l->nr].npages = npages;
	l->v[l->nr].value = value;
	l->v[l->nr].region_start = gmem_region_of(l->vm, start)->first == start;
	l->nr++;
	return 0;
}

int gmem_snapshot_runs(struct gmem_vm *vm, uint64_t start, uint64_t npages,
		       struct gmem_run_list *l)
{
	int err;

	l->vm = vm;
	pthread_mutex_lock(&vm->lock);
	err = gmem_walk(vm, start, npages, list_run, l);
	pthread_mutex_unlock(&vm->lock);
	return err;
}

/*
 * Callbacks run without vm->lock: snapshot the runs, then call.  Out of
 * memory for the snapshot, walk the region page run by page run under no
 * lock at all: the whole space is held, so the map cannot change.
 */
static void release_region_runs(struct gmem_vm *vm, const struct gmem_region *r)
{
	struct gmem_run_list l = { .only = -1 };
	uint64_t p, rs, rn;
	size_t i;

	if (!gmem_snapshot_runs(vm, r->first, r->npages, &l)) {
		for (i = 0; i < l.nr; i++)
			release_run(vm, l.v[i].start, l.v[i].npages,
				    l.v[i].value);
		free(l.v);
		return;
	}
	free(l.v);
	for (p = r->first; p < r->first + r->npages; p = rs + rn) {
		uint8_t v = gmem_range_map_get(vm->map, p, &rs, &rn);

		if (rs < p) {
			rn -= p - rs;
			rs = p;
		}
		if (rs + rn > r->first + r->npages)
			rn = r->first + r->npages - rs;
		release_run(vm, rs, rn, v);
	}
}

/*
 * Tear region @idx down and drop it from the array; the whole space is
 * held (or the VM is being destroyed).  The map is set to holes only if
 * @set_hole (a reservation is held then).
 */
void gmem_region_release_locked(struct gmem_vm *vm, unsigned int idx,
				bool set_hole);
void gmem_region_release_locked(struct gmem_vm *vm, unsigned int idx,
				bool set_hole)
{
	struct gmem_region r = vm->regions[idx];
	struct range_map *map = vm->map;
	int b;

	/* The guest can reach nothing of it once its slots are gone. */
	delete_slots(vm, &vm->regions[idx]);
	for (b = 0; b < 2; b++)
		gmem_reclaim_flush_range(vm, (enum gmem_backing_id)b, r.gpa,
					 r.len);
	release_region_runs(vm, &r);
	gmem_notify_subscribers(vm, GMEM_INVAL_RELEASE, GMEM_BACKING_PRIVATE,
				r.gpa, r.len);
	if (vm->mode == GMEM_MODE_DISCARD)
		gmem_notify_subscribers(vm, GMEM_INVAL_RELEASE,
					GMEM_BACKING_SHARED, r.gpa, r.len);
	vm->backend->unmap_region(vm, &r);
	pthread_mutex_lock(&vm->lock);
	if (set_hole)
		gmem_range_map_set(map, r.first, r.npages, GMEM_V_HOLE, NULL,
				   NULL);
	memmove(&vm->regions[idx], &vm->regions[idx + 1],
		(vm->nr_regions - idx - 1) * sizeof(r));
	vm->nr_regions--;
	pthread_mutex_unlock(&vm->lock);
	close_backings(&r);
}

int gmem_region_remove(struct gmem_vm *vm, uint64_t gpa)
{
	struct range_lock_waiter w;
	unsigned int i;
	int err = -ENOENT;

	if (!vm)
		return -EINVAL;
	gmem_range_lock_acquire(&vm->rlock, &w, 0, vm->npages);
	for (i = 0; i < vm->nr_regions; i++) {
		if (vm->regions[i].gpa != gpa)
			continue;
		/* The only allocation comes first: then nothing can fail. */
		pthread_mutex_lock(&vm->lock);
		err = gmem_range_map_reserve(vm->map);
		pthread_mutex_unlock(&vm->lock);
		if (err)
			break;
		gmem_region_release_locked(vm, i, true);
		pthread_mutex_lock(&vm->lock);
		gmem_range_map_unreserve(vm->map);
		vm->stats.regions_removed++;
		pthread_mutex_unlock(&vm->lock);
		break;
	}
	gmem_range_lock_release(&vm->rlock, &w);
	return err;
}

/* ---- queries -------------------------------------------------------------- */

static void region_info(const struct gmem_vm *vm, unsigned int idx,
			struct gmem_region_info *info)
{
	const struct gmem_region *r = &vm->regions[idx];

	*info = (struct gmem_region_info){
		.size = sizeof(*info),
		.index = idx,
		.gpa = r->gpa,
		.len = r->len,
		.private_fd = r->private_fd,
		.private_offset = r->private_offset,
		.shared_fd = r->shared_fd,
		.shared_offset = r->shared_offset,
		.private_addr = vm->backend->host_addr(vm, GMEM_PRIVATE,
						       r->first),
		.shared_addr = vm->backend->host_addr(vm, GMEM_SHARED,
						      r->first),
	};
}

int gmem_region_count(struct gmem_vm *vm)
{
	int n;

	pthread_mutex_lock(&vm->lock);
	n = (int)vm->nr_regions;
	pthread_mutex_unlock(&vm->lock);
	return n;
}

static int region_get(struct gmem_vm *vm, unsigned int index, uint64_t gpa,
		      bool by_gpa, struct gmem_region_info *out)
{
	struct gmem_region_info info;
	struct gmem_region *r;
	int err = 0;

	pthread_mutex_lock(&vm->lock);
	if (by_gpa) {
		r = gpa < vm->max_gpa ? gmem_region_of(vm, gpa / GMEM_PAGE_SIZE) :
					NULL;
		if (r)
			index = (unsigned int)(r - vm->regions);
	}
	if ((by_gpa && !r) || index >= vm->nr_regions)
		err = -ENOENT;
	else
		region_info(vm, index, &info);
	pthread_mutex_unlock(&vm->lock);
	return err ? err : gmem_copy_out(out, &info, sizeof(info));
}

int gmem_region_get(struct gmem_vm *vm, unsigned int index,
		    struct gmem_region_info *info)
{
	return region_get(vm, index, 0, false, info);
}

int gmem_region_find(struct gmem_vm *vm, uint64_t gpa,
		     struct gmem_region_info *info)
{
	return region_get(vm, 0, gpa, true, info);
}

/* ---- validation (audit) --------------------------------------------------- */

struct hole_check {
	struct gmem_vm *vm;
	char *msg;
	size_t msg_len;
};

static int check_hole_run(void *arg, uint64_t start, uint64_t npages,
			  uint8_t value)
{
	struct hole_check *h = arg;
	uint64_t p;

	/* Runs are few; regions are few: checking both ends and the
	 * boundaries inside is enough, since regions are sorted. */
	for (p = start; p < start + npages;) {
		struct gmem_region *r = gmem_region_of(h->vm, p);
		uint64_t next;
		unsigned int i;

		if (!r) {
			next = start + npages;
			for (i = 0; i < h->vm->nr_regions; i++)
				if (h->vm->regions[i].first > p &&
				    h->vm->regions[i].first < next)
					next = h->vm->regions[i].first;
		} else {
			next = r->first + r->npages;
			if (next > start + npages)
				next = start + npages;
		}
		if (!r != !!(value & GMEM_V_HOLE))
			return gmem_violation(h->msg, h->msg_len,
				"page-state map: pages [%#llx, %#llx) are %s "
				"but %s a region",
				(unsigned long long)(p * GMEM_PAGE_SIZE),
				(unsigned long long)(next * GMEM_PAGE_SIZE),
				value & GMEM_V_HOLE ? "a hole" : "RAM",
				r ? "inside" : "outside");
		p = next;
	}
	return 0;
}

/* Invariants 1-3 above; vm->lock held. */
int gmem_regions_validate(struct gmem_vm *vm, char *msg, size_t msg_len);
int gmem_regions_validate(struct gmem_vm *vm, char *msg, size_t msg_len)
{
	struct hole_check h = { .vm = vm, .msg = msg, .msg_len = msg_len };
	unsigned int i, k;

	for (i = 0; i < vm->nr_regions; i++) {
		const struct gmem_region *r = &vm->regions[i];

		if (!r->len || (r->gpa | r->len) & GMEM_PAGE_MASK ||
		    r->gpa + r->len > vm->max_gpa ||
		    (i && vm->regions[i - 1].gpa + vm->regions[i - 1].len >
			  r->gpa))
			return gmem_violation(msg, msg_len,
					      "region %u [%#llx, +%#llx) is "
					      "misplaced", i,
					      (unsigned long long)r->gpa,
					      (unsigned long long)r->len);
		for (k = 0; k < GMEM_SLOTS_PER_REGION; k++) {
			if (!r->slot_live[k])
				continue;
			/* ids unique: no other live slot has it */
			unsigned int j, kk;

			for (j = 0; j < vm->nr_regions; j++)
				for (kk = 0; kk < GMEM_SLOTS_PER_REGION; kk++)
					if ((j != i || kk != k) &&
					    vm->regions[j].slot_live[kk] &&
					    vm->regions[j].slot_id[kk] ==
						    r->slot_id[k])
						return gmem_violation(msg,
							msg_len,
							"memslot id %u used "
							"twice",
							r->slot_id[k]);
		}
	}
	return gmem_range_map_for_each(vm->map, 0, vm->npages, check_hole_run,
				       &h);
}
