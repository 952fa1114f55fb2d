/* SPDX-License-Identifier: MIT */
/*
 * The memory image of a snapshot: built from a live VM (save, verify),
 * written as the CONFIG, REGIONS, STATE and PLUG sections, and read back
 * from them with every value checked (mem_image.h states the invariants an
 * accepted image keeps).  Decoding checks each field on its own (range,
 * alignment, reserved zeros) so that no later sum can overflow; the
 * invariant checks below then work on the decoded image, and the same
 * checks guard an image taken from a VM that changed under the walk.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mem_image.h"

#define PG GMEM_PAGE_SIZE
#define ULL(x) ((unsigned long long)(x))

static bool aligned(uint64_t v)
{
	return !(v & (PG - 1));
}

void snap_image_free(struct snap_mem_image *img)
{
	ivals_free(&img->regions);
	ivals_free(&img->unplugged);
	free(img->runs);
	memset(img, 0, sizeof(*img));
}

static int push_run(struct snap_mem_image *img, uint64_t start, uint64_t end,
		    enum gmem_state state)
{
	if (vec_reserve((void **)&img->runs, &img->cap_runs, img->nr_runs,
			sizeof(*img->runs)))
		return -ENOMEM;
	img->runs[img->nr_runs].start = start;
	img->runs[img->nr_runs].end = end;
	img->runs[img->nr_runs].state = state;
	img->nr_runs++;
	return 0;
}

/* ---- invariants ----------------------------------------------------------- */

/* NULL, or why the regions break the invariants (*bad: which). */
static const char *check_regions(const struct snap_mem_image *img, size_t *bad)
{
	const struct ivals *r = &img->regions;
	size_t i;

	if (!r->nr || r->nr > SNAP_MAX_REGIONS) {
		*bad = r->nr;
		return "number of regions out of range";
	}
	for (i = 0; i < r->nr; i++) {
		*bad = i;
		if (!aligned(r->v[i].start) || !aligned(r->v[i].end))
			return "not page aligned";
		if (r->v[i].end <= r->v[i].start)
			return "empty";
		if (r->v[i].end > img->max_gpa)
			return "past max_gpa";
		if (i && r->v[i].start < r->v[i - 1].end)
			return "overlaps or precedes the region before it";
	}
	return NULL;
}

/* The runs tile every region exactly, neighbours in a region differ. */
static const char *check_runs(const struct snap_mem_image *img, size_t *bad)
{
	const struct ivals *r = &img->regions;
	size_t i, j = 0;
	uint64_t pos;

	for (i = 0; i < r->nr; i++) {
		for (pos = r->v[i].start; pos < r->v[i].end; j++) {
			const struct snap_run *run = &img->runs[j];

			*bad = j;
			if (j == img->nr_runs)
				return "missing: the runs end inside a region";
			if (run->start != pos)
				return pos == r->v[i].start ?
					"does not start where its region does" :
					"leaves a gap or overlaps the run before it";
			if (run->end > r->v[i].end)
				return "crosses the end of its region";
			if (pos != r->v[i].start &&
			    run->state == img->runs[j - 1].state)
				return "has the state of the run before it "
				       "(runs must be maximal)";
			pos = run->end;
		}
	}
	*bad = j;
	return j == img->nr_runs ? NULL : "outside every region";
}

/* Index of the region holding [start, end) whole, or -1. */
static long region_holding(const struct ivals *r, size_t *cursor,
			   uint64_t start, uint64_t end)
{
	while (*cursor < r->nr && r->v[*cursor].end <= start)
		(*cursor)++;
	if (*cursor == r->nr || r->v[*cursor].start > start ||
	    end > r->v[*cursor].end)
		return -1;
	return (long)*cursor;
}

static const char *check_unplugged(const struct snap_mem_image *img,
				   size_t *bad)
{
	const struct ivals *u = &img->unplugged;
	size_t i, rc = 0;
	long reg, prev_reg = -1;

	for (i = 0; i < u->nr; i++) {
		*bad = i;
		if (i && u->v[i].start < u->v[i - 1].end)
			return "overlaps or precedes the run before it";
		reg = region_holding(&img->regions, &rc, u->v[i].start,
				     u->v[i].end);
		if (reg < 0)
			return "not inside one region";
		if (i && reg == prev_reg && u->v[i].start == u->v[i - 1].end)
			return "touches the run before it (runs must be maximal)";
		prev_reg = reg;
	}
	return NULL;
}

/* ---- from a VM ------------------------------------------------------------ */

struct build {
	struct snap_mem_image *img;
	uint64_t region_start;
};

static int add_extent(void *arg, const struct gmem_extent *e)
{
	struct build *b = arg;
	struct snap_mem_image *img = b->img;
	struct snap_run *last = img->nr_runs ? &img->runs[img->nr_runs - 1] :
					       NULL;
	struct ivals *u = &img->unplugged;
	uint64_t end = e->gpa + e->len;

	/* Extents split where either bit changes; the maps are maximal in
	 * their own bit, never across a region boundary. */
	if (last && last->end == e->gpa && e->gpa != b->region_start &&
	    last->state == e->state)
		last->end = end;
	else if (push_run(img, e->gpa, end, e->state))
		return -ENOMEM;
	if (e->plugged)
		return 0;
	if (u->nr && u->v[u->nr - 1].end == e->gpa &&
	    e->gpa != b->region_start) {
		u->v[u->nr - 1].end = end;
		return 0;
	}
	return ivals_push(u, e->gpa, end);
}

int snap_image_from_vm(struct gmem_vm *vm, enum gmem_state initial,
		       struct snap_mem_image *img, struct snap_msg *m)
{
	struct gmem_region_info info = { .size = sizeof(info) };
	struct build b = { .img = img };
	const char *why = NULL;
	int n, i, err = 0;
	size_t bad = 0;

	memset(img, 0, sizeof(*img));
	img->mode = gmem_get_mode(vm);
	img->initial = initial;
	img->max_gpa = gmem_max_gpa(vm);
	n = gmem_region_count(vm);
	for (i = 0; n >= 0 && i < n && !err; i++) {
		err = gmem_region_get(vm, (unsigned int)i, &info);
		if (!err)
			err = ivals_push(&img->regions, info.gpa,
					 info.gpa + info.len);
	}
	if (n < 0)
		err = n;
	for (i = 0; !err && (size_t)i < img->regions.nr; i++) {
		b.region_start = img->regions.v[i].start;
		err = gmem_for_each_extent(vm, b.region_start,
					   img->regions.v[i].end -
						   b.region_start,
					   add_extent, &b);
	}
	if (err) {
		snap_image_free(img);
		return snap_err(m, err, "reading the VM's regions and maps: %s",
				strerror(-err));
	}
	/* A region added or removed under the walk leaves an image that is
	 * not one: the caller held off changes, so it asks again. */
	if (!why)
		why = check_regions(img, &bad);
	if (!why)
		why = check_runs(img, &bad);
	if (!why)
		why = check_unplugged(img, &bad);
	if (why) {
		snap_image_free(img);
		return snap_err(m, -EAGAIN, "the VM's memory changed while "
				"being read (%s): hold off changes during a "
				"snapshot", why);
	}
	return 0;
}

/* ---- writing --------------------------------------------------------------- */

int snap_image_write(struct snap_writer *w, const struct snap_mem_image *img)
{
	uint8_t b[SNAP_RUN_SIZE];
	size_t i;

	snap_put_le32(b, img->mode);
	snap_put_le32(b + 4, img->initial);
	snap_put_le32(b + 8, PG);
	snap_put_le32(b + 12, (uint32_t)img->regions.nr);
	snap_put_le64(b + 16, img->max_gpa);
	snap_writer_begin(w, SNAP_SEC_CONFIG, 0);
	snap_writer_put(w, b, SNAP_CONFIG_SIZE);
	snap_writer_end(w);

	snap_writer_begin(w, SNAP_SEC_REGIONS, 0);
	for (i = 0; i < img->regions.nr; i++) {
		snap_put_le64(b, img->regions.v[i].start);
		snap_put_le64(b + 8, img->regions.v[i].end -
				     img->regions.v[i].start);
		snap_writer_put(w, b, SNAP_REGION_SIZE);
	}
	snap_writer_end(w);

	snap_writer_begin(w, SNAP_SEC_STATE, 0);
	for (i = 0; i < img->nr_runs; i++) {
		const struct snap_run *run = &img->runs[i];

		snap_put_le64(b, run->start);
		snap_put_le64(b + 8, (run->end - run->start) / PG);
		snap_put_le32(b + 16, run->state);
		snap_put_le32(b + 20, 0);
		snap_writer_put(w, b, SNAP_RUN_SIZE);
	}
	snap_writer_end(w);

	snap_writer_begin(w, SNAP_SEC_PLUG, 0);
	for (i = 0; i < img->unplugged.nr; i++) {
		snap_put_le64(b, img->unplugged.v[i].start);
		snap_put_le64(b + 8, (img->unplugged.v[i].end -
				      img->unplugged.v[i].start) / PG);
		snap_writer_put(w, b, SNAP_PLUG_SIZE);
	}
	/* The writer's errors are sticky: the last call reports any. */
	return snap_writer_end(w);
}

/* ---- reading ---------------------------------------------------------------- */

static int read_config(struct snap_reader *r, struct snap_mem_image *img,
		       uint32_t *nr_regions)
{
	const struct snap_section *s = snap_reader_find(r, SNAP_SEC_CONFIG, 0);
	uint8_t b[SNAP_CONFIG_SIZE];
	uint32_t mode, initial, page;
	int err;

	if (s->len != SNAP_CONFIG_SIZE)
		return snap_sec_err(r, s, -EBADMSG,
				    "%llu bytes, version %u has %u",
				    ULL(s->len), SNAP_VERSION, SNAP_CONFIG_SIZE);
	err = snap_payload_read(r, s, 0, b, sizeof(b));
	if (err)
		return err;
	mode = snap_get_le32(b);
	initial = snap_get_le32(b + 4);
	page = snap_get_le32(b + 8);
	*nr_regions = snap_get_le32(b + 12);
	img->max_gpa = snap_get_le64(b + 16);
	if (mode != GMEM_MODE_DISCARD && mode != GMEM_MODE_IN_PLACE)
		return snap_sec_err(r, s, -EBADMSG, "unknown mode %u", mode);
	if (initial != GMEM_PRIVATE && initial != GMEM_SHARED)
		return snap_sec_err(r, s, -EBADMSG, "unknown initial state %u",
				    initial);
	if (page != PG)
		return snap_sec_err(r, s, -EBADMSG,
				    "page size %u, not %llu", page, ULL(PG));
	if (!*nr_regions || *nr_regions > SNAP_MAX_REGIONS)
		return snap_sec_err(r, s, -EBADMSG,
				    "%u regions, not 1..%u", *nr_regions,
				    SNAP_MAX_REGIONS);
	if (!img->max_gpa || !aligned(img->max_gpa) ||
	    img->max_gpa > SNAP_MAX_GPA)
		return snap_sec_err(r, s, -EBADMSG,
				    "max_gpa %#llx is not a page multiple in "
				    "(0, %#llx]", ULL(img->max_gpa),
				    ULL(SNAP_MAX_GPA));
	img->mode = mode;
	img->initial = initial;
	return 0;
}

const char *snap_decode_range(uint64_t gpa, uint64_t len, uint64_t *start,
			      uint64_t *end)
{
	if (!aligned(gpa) || !aligned(len))
		return "not page aligned";
	if (!len)
		return "empty";
	if (gpa >= SNAP_MAX_GPA || len > SNAP_MAX_GPA - gpa)
		return "past the largest guest-physical address";
	*start = gpa;
	*end = gpa + len;
	return NULL;
}

/* A (gpa u64, npages u64) pair of a payload. */
static const char *decode_pages(const uint8_t *p, uint64_t *start,
				uint64_t *end)
{
	uint64_t npages = snap_get_le64(p + 8);

	if (npages > SNAP_MAX_GPA / PG)
		return "past the largest guest-physical address";
	return snap_decode_range(snap_get_le64(p), npages * PG, start, end);
}

/* What an entry decoder returns when it could not store the entry. */
static const char no_memory[] = "no memory";

static const char *add_region(struct snap_mem_image *img, const uint8_t *e)
{
	uint64_t start = 0, end = 0;
	const char *why;

	/* A region is (gpa, length in bytes). */
	why = snap_decode_range(snap_get_le64(e), snap_get_le64(e + 8), &start,
				&end);
	if (!why && ivals_push(&img->regions, start, end))
		why = no_memory;
	return why;
}

static const char *add_run(struct snap_mem_image *img, const uint8_t *e)
{
	uint32_t state = snap_get_le32(e + 16);
	uint64_t start = 0, end = 0;
	const char *why;

	why = decode_pages(e, &start, &end);
	if (!why && state != GMEM_PRIVATE && state != GMEM_SHARED)
		why = "unknown state";
	if (!why && snap_get_le32(e + 20))
		why = "reserved field is not zero";
	if (!why && push_run(img, start, end, (enum gmem_state)state))
		why = no_memory;
	return why;
}

static const char *add_unplugged(struct snap_mem_image *img, const uint8_t *e)
{
	uint64_t start = 0, end = 0;
	const char *why;

	why = decode_pages(e, &start, &end);
	if (!why && ivals_push(&img->unplugged, start, end))
		why = no_memory;
	return why;
}

/*
 * Decode the @size-byte entries of @s one by one with @add, which returns
 * NULL or why the entry is bad ("@what N: why").
 */
static int read_entries(struct snap_reader *r, const struct snap_section *s,
			size_t size, const char *what,
			struct snap_mem_image *img,
			const char *(*add)(struct snap_mem_image *img,
					   const uint8_t *e))
{
	const char *why;
	uint8_t *p = NULL;
	size_t i;
	int err;

	if (s->len % size)
		return snap_sec_err(r, s, -EBADMSG,
				    "%llu bytes: not a multiple of its %zu-byte "
				    "entries", ULL(s->len), size);
	err = snap_payload_load(r, s, SNAP_META_MAX, &p);
	for (i = 0; !err && i < s->len / size; i++) {
		why = add(img, p + i * size);
		if (why)
			err = snap_sec_err(r, s, why == no_memory ? -ENOMEM :
								    -EBADMSG,
					   "%s %zu: %s", what, i, why);
	}
	free(p);
	return err;
}

/* An invariant broken by entry @i, [start, end), of what was read. */
static int broken(struct snap_reader *r, const struct snap_section *s,
		  const char *what, size_t i, uint64_t start, uint64_t end,
		  const char *why)
{
	return snap_sec_err(r, s, -EBADMSG, "%s %zu [%#llx, %#llx): %s", what,
			    i, ULL(start), ULL(end), why);
}

static int read_regions(struct snap_reader *r, struct snap_mem_image *img,
			uint32_t nr)
{
	const struct snap_section *s = snap_reader_find(r, SNAP_SEC_REGIONS, 0);
	const struct ivals *v = &img->regions;
	const char *why;
	size_t i = 0;
	int err;

	if (s->len != (uint64_t)nr * SNAP_REGION_SIZE)
		return snap_sec_err(r, s, -EBADMSG,
				    "%llu bytes, but CONFIG says %u regions "
				    "(%u bytes each)", ULL(s->len), nr,
				    SNAP_REGION_SIZE);
	err = read_entries(r, s, SNAP_REGION_SIZE, "region", img, add_region);
	if (err)
		return err;
	why = check_regions(img, &i);
	return why ? broken(r, s, "region", i, v->v[i].start, v->v[i].end,
			    why) : 0;
}

static int read_state(struct snap_reader *r, struct snap_mem_image *img)
{
	const struct snap_section *s = snap_reader_find(r, SNAP_SEC_STATE, 0);
	const char *why;
	size_t i = 0;
	int err;

	err = read_entries(r, s, SNAP_RUN_SIZE, "run", img, add_run);
	if (err)
		return err;
	why = check_runs(img, &i);
	if (!why)
		return 0;
	if (i == img->nr_runs)
		return snap_sec_err(r, s, -EBADMSG, "%zu runs: %s", i, why);
	return broken(r, s, "run", i, img->runs[i].start, img->runs[i].end,
		      why);
}

static int read_plug(struct snap_reader *r, struct snap_mem_image *img)
{
	const struct snap_section *s = snap_reader_find(r, SNAP_SEC_PLUG, 0);
	const struct ivals *v = &img->unplugged;
	const char *why;
	size_t i = 0;
	int err;

	err = read_entries(r, s, SNAP_PLUG_SIZE, "unplugged run", img,
			   add_unplugged);
	if (err)
		return err;
	why = check_unplugged(img, &i);
	return why ? broken(r, s, "unplugged run", i, v->v[i].start,
			    v->v[i].end, why) : 0;
}

int snap_image_read(struct snap_reader *r, struct snap_mem_image *img)
{
	unsigned int i, want;
	uint32_t nr_regions = 0;
	int err;

	memset(img, 0, sizeof(*img));
	err = read_config(r, img, &nr_regions);
	if (!err)
		err = read_regions(r, img, nr_regions);
	if (!err)
		err = read_state(r, img);
	if (!err)
		err = read_plug(r, img);
	want = snap_data_sections(img->mode);
	if (!err && snap_reader_count(r, SNAP_SEC_DATA) != want)
		err = snap_err(&r->msg, -EBADMSG,
			       "%u DATA sections: %s mode has %u",
			       snap_reader_count(r, SNAP_SEC_DATA),
			       gmem_mode_name(img->mode), want);
	for (i = 0; !err && i < want; i++)
		err = snap_data_walk(r, img, i, NULL, NULL);
	if (err)
		snap_image_free(img);
	return err;
}

/* ---- comparing ---------------------------------------------------------------- */

size_t snap_ivals_diff(const struct ivals *a, const struct ivals *b)
{
	size_t i;

	for (i = 0; i < a->nr && i < b->nr; i++)
		if (a->v[i].start != b->v[i].start || a->v[i].end != b->v[i].end)
			return i;
	return a->nr == b->nr ? SIZE_MAX : i;
}

int snap_image_compare(const struct snap_mem_image *a,
		       const struct snap_mem_image *b, const char *a_name,
		       const char *b_name, struct snap_msg *m)
{
	size_t i;

	if (a->mode != b->mode)
		return snap_err(m, -EUCLEAN, "mode: %s in %s, %s in %s",
				gmem_mode_name(a->mode), a_name,
				gmem_mode_name(b->mode), b_name);
	if (a->max_gpa != b->max_gpa)
		return snap_err(m, -EUCLEAN, "max_gpa: %#llx in %s, %#llx in %s",
				ULL(a->max_gpa), a_name, ULL(b->max_gpa),
				b_name);
	i = snap_ivals_diff(&a->regions, &b->regions);
	if (i != SIZE_MAX)
		return snap_err(m, -EUCLEAN, "region %zu differs between %s "
				"(%zu regions) and %s (%zu)", i, a_name,
				a->regions.nr, b_name, b->regions.nr);
	for (i = 0; i < a->nr_runs || i < b->nr_runs; i++)
		if (i == a->nr_runs || i == b->nr_runs ||
		    a->runs[i].start != b->runs[i].start ||
		    a->runs[i].end != b->runs[i].end ||
		    a->runs[i].state != b->runs[i].state)
			return snap_err(m, -EUCLEAN,
					"page-state run %zu differs between "
					"%s (%zu runs) and %s (%zu)", i, a_name,
					a->nr_runs, b_name, b->nr_runs);
	i = snap_ivals_diff(&a->unplugged, &b->unplugged);
	if (i != SIZE_MAX)
		return snap_err(m, -EUCLEAN, "unplugged run %zu differs "
				"between %s (%zu runs) and %s (%zu)", i, a_name,
				a->unplugged.nr, b_name, b->unplugged.nr);
	return 0;
}

/* ---- DATA helpers ---------------------------------------------------------------- */

unsigned int snap_data_sections(enum gmem_mode mode)
{
	return mode == GMEM_MODE_IN_PLACE ? 1 : 2;
}

enum gmem_backing_id snap_data_backing(enum gmem_mode mode, unsigned int idx)
{
	return mode == GMEM_MODE_DISCARD && idx == 1 ? GMEM_BACKING_SHARED :
						       GMEM_BACKING_PRIVATE;
}

int snap_backing_state(enum gmem_mode mode, enum gmem_backing_id id)
{
	if (mode == GMEM_MODE_IN_PLACE)
		return -1;
	return id == GMEM_BACKING_SHARED ? GMEM_SHARED : GMEM_PRIVATE;
}

uint64_t snap_cursor_piece(struct snap_cursor *c, uint64_t gpa, uint64_t end,
			   enum gmem_state *state, bool *plugged)
{
	const struct snap_mem_image *img = c->img;
	const struct ivals *u = &img->unplugged;
	const struct snap_run *run;

	/* The runs tile every region and gpa is in one: a run holds it. */
	while (img->runs[c->run].end <= gpa)
		c->run++;
	run = &img->runs[c->run];
	*state = run->state;
	if (run->end < end)
		end = run->end;
	while (c->plug < u->nr && u->v[c->plug].end <= gpa)
		c->plug++;
	*plugged = c->plug == u->nr || u->v[c->plug].start > gpa;
	if (!*plugged && u->v[c->plug].end < end)
		end = u->v[c->plug].end;
	else if (*plugged && c->plug < u->nr && u->v[c->plug].start < end)
		end = u->v[c->plug].start;
	return end;
}
