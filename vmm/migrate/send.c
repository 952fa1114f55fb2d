/* SPDX-License-Identifier: MIT */
/*
 * The source of a live migration: see migrate.h, docs/MIGRATION.md.
 *
 * A round: collect what to send (the pages the tracker saw written, the
 * pages libgmem told us it converted or punched, the pages devices have
 * mapped), take the maps (IMAGE), then per backing send the content of
 * those pages that it serves and holds (DATA) and name those it serves
 * but no longer holds (HOLES: punched, the destination must punch too).
 * Round 0 sends every resident page instead.  The maps are taken after
 * the collection, so a change after the image is either already in this
 * round's set or lands in the next one; a page that changed state between
 * the image and its read (gmem_access() says -EACCES) is retried next
 * round.  The last round runs with the world stopped, so it is exact.
 *
 * Locking: @lock guards @changed only, which libgmem's invalidation
 * callback fills from whatever thread converts or punches; it is never
 * held across a libgmem call (the callback may run inside one).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image.h"
#include "migrate.h"
#include "pages.h"
#include "resident.h"
#include "stream.h"

#define PG GMEM_PAGE_SIZE
#define ULL(x) ((unsigned long long)(x))
#define MIG_CONVERGED (64ULL << 20)
#define MIG_MAX_ROUNDS 30
#define MIG_TIMEOUT_MS 30000
#define SEND_PIECE (128u << 10)

struct sender {
	struct gmem_vm *vm;
	const struct mig_send_opts *o;
	struct mig_stats *st;
	struct snap_msg *m;
	struct mig_out out;
	struct mig_tracker t;
	struct snap_mem_image img;	/* this round's maps */
	struct ivals regions;		/* at the start: must not change */
	struct gmem_region_info *ri;
	struct mig_pages todo, retry, changed;
	pthread_mutex_t lock;		/* guards @changed */
	struct gmem_subscription *sub;
	struct mig_buf doc;
	struct ivals holes;
	/* the pass in progress */
	enum gmem_backing_id backing;
	int want_state;
	bool in_data, final;
	bool round0;		/* the destination holds nothing yet */
	struct snap_cursor c;
	uint64_t round_pages;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_inval(void *data, enum gmem_inval_reason reason,
		     enum gmem_backing_id backing, uint64_t gpa, uint64_t len)
{
	struct sender *s = data;

	pthread_mutex_lock(&s->lock);
	mig_pages_add(&s->changed, gpa, len);
	pthread_mutex_unlock(&s->lock);
}

static int add_device_range(void *arg, uint64_t gpa, uint64_t len)
{
	mig_pages_add(arg, gpa, len);
	return 0;
}

/* What this round sends: everything written, changed or device-mapped. */
static int collect(struct sender *s)
{
	int err;

	mig_pages_move(&s->todo, &s->retry);
	pthread_mutex_lock(&s->lock);
	mig_pages_move(&s->todo, &s->changed);
	pthread_mutex_unlock(&s->lock);
	err = mig_track_collect(&s->t, &s->todo, s->m);
	if (!err && s->o->device_ranges)
		err = s->o->device_ranges(s->o->data, add_device_range,
					  &s->todo);
	if (err)
		return snap_err(s->m, err, "collecting dirty pages: %s",
				strerror(-err));
	return 0;
}

static int send_image(struct sender *s)
{
	int err;

	snap_image_free(&s->img);
	err = snap_image_from_vm(s->vm, s->o->initial_state, &s->img, s->m);
	if (err)
		return err;
	if (snap_ivals_diff(&s->regions, &s->img.regions) != SIZE_MAX)
		return snap_err(s->m, -EBUSY, "the VM's regions changed "
				"during the migration");
	err = mig_image_encode(&s->img, &s->doc, s->m);
	if (!err)
		err = mig_out_section(&s->out, MIG_SEC_IMAGE, 0, s->doc.p,
				      s->doc.len);
	return err;
}

/* ---- DATA and HOLES ------------------------------------------------------ */

static int data_end(struct sender *s)
{
	if (!s->in_data)
		return 0;
	s->in_data = false;
	return mig_out_end(&s->out);
}

static int data_begin(struct sender *s)
{
	uint8_t head[SNAP_DATA_HEAD_SIZE];

	if (s->in_data && mig_out_pending(&s->out) < MIG_DATA_CHUNK)
		return 0;
	if (data_end(s))
		return s->out.err;
	snap_put_le32(head, s->backing);
	snap_put_le32(head + 4, 0);
	s->in_data = true;
	if (!mig_out_begin(&s->out, MIG_SEC_DATA, 0))
		mig_out_put(&s->out, head, sizeof(head));
	return s->out.err;
}

/* Pre-copy only: the last round, the world stopped, goes to its end. */
static int check_cancel(struct sender *s)
{
	if (s->final || !s->o->cancelled || !s->o->cancelled(s->o->data))
		return 0;
	return snap_err(s->m, -ECANCELED, "the VM is stopping");
}

/* Records for [gpa, end) (one state, plugged, resident), read through
 * the view of @view; a page that changed since the image is retried. */
static int send_content(struct sender *s, uint64_t gpa, uint64_t end,
			enum gmem_state view)
{
	uint64_t n;
	uint8_t *p;
	int err;

	for (; gpa < end; gpa += n) {
		if (!mig_out_pending(&s->out) && check_cancel(s))
			return -ECANCELED;
		if (data_begin(s))
			return s->out.err;
		/* Fill the section up to MIG_DATA_CHUNK, a page at least, in
		 * records of at most SEND_PIECE: each is copied and then
		 * checksummed while still in the cache. */
		n = (MIG_DATA_CHUNK - mig_out_pending(&s->out)) & ~(PG - 1);
		if (n == 0)
			n = PG;
		if (n > SEND_PIECE)
			n = SEND_PIECE;
		if (n > end - gpa)
			n = end - gpa;
		p = mig_out_space(&s->out, SNAP_RECORD_SIZE + n);
		if (!p)
			return s->out.err;
		err = gmem_access(s->vm, gpa, p + SNAP_RECORD_SIZE, n, false,
				  view);
		if (err == -EACCES && !s->final) {
			mig_pages_add(&s->retry, gpa, n);
			continue;
		}
		if (err)
			return snap_err(s->m, err == -EACCES ? -EAGAIN : err,
					"reading guest memory at %#llx: %s%s",
					ULL(gpa), strerror(-err),
					err == -EACCES ? " (changed with the "
					"world stopped)" : "");
		snap_put_le64(p, gpa);
		snap_put_le64(p + 8, n);
		mig_out_commit(&s->out, SNAP_RECORD_SIZE + n);
		s->st->data_bytes += n;
	}
	return 0;
}

struct piece {
	struct sender *s;
	enum gmem_state state;
	uint64_t next;		/* first page not yet covered */
};

static int resident_piece(void *arg, uint64_t start, uint64_t end)
{
	struct piece *pc = arg;
	struct sender *s = pc->s;
	int err = 0;

	if (start > pc->next && !s->round0)
		err = ivals_push_joined(&s->holes, pc->next, start);
	pc->next = end;
	if (err)
		return snap_err(s->m, err, "no memory");
	return send_content(s, start, end, pc->state);
}

/* [start, end) of region @ri, clipped: its resident pages in the backing
 * of the pass are sent, the others named as holes. */
static int send_range(struct sender *s, const struct gmem_region_info *ri,
		      uint64_t start, uint64_t end, enum gmem_state state)
{
	struct gmem_region_info part = *ri;
	uint64_t d = start - ri->gpa;
	struct piece pc = { .s = s, .state = state, .next = start };
	int err;

	part.gpa = start;
	part.len = end - start;
	part.private_offset += d;
	part.shared_offset += d;
	part.private_addr = (uint8_t *)part.private_addr + d;
	part.shared_addr = (uint8_t *)part.shared_addr + d;
	/* Round 0 walks whole regions; later rounds small ranges. */
	if (s->round0)
		err = snap_resident_walk(&part, s->backing, s->o->find,
					 resident_piece, &pc, s->m);
	else
		err = mig_resident_range(ri, s->backing, start, end,
					 resident_piece, &pc, s->m);
	if (!err && pc.next < end && !s->round0 &&
	    ivals_push_joined(&s->holes, pc.next, end))
		err = snap_err(s->m, -ENOMEM, "no memory");
	return err;
}

static const struct gmem_region_info *region_of(struct sender *s, uint64_t gpa)
{
	size_t i;

	for (i = 0; i < s->regions.nr; i++)
		if (gpa >= s->ri[i].gpa && gpa < s->ri[i].gpa + s->ri[i].len)
			return &s->ri[i];
	return NULL;
}

/* A run of pages to send: its pieces this pass's backing serves. */
static int send_run(void *arg, uint64_t start, uint64_t end)
{
	const struct gmem_region_info *ri;
	struct sender *s = arg;
	enum gmem_state st;
	uint64_t next;
	bool plugged;
	int err;

	ri = region_of(s, start);
	if (!ri)
		return 0;
	for (; start < end; start = next) {
		next = snap_cursor_piece(&s->c, start, end, &st, &plugged);
		if (!plugged || (s->want_state >= 0 && (int)st != s->want_state))
			continue;
		s->round_pages += (next - start) / PG;
		err = send_range(s, ri, start, next, st);
		if (err)
			return err;
	}
	return 0;
}

static int send_holes(struct sender *s)
{
	uint8_t e[SNAP_PLUG_SIZE];
	size_t i;

	if (!s->holes.nr)
		return 0;
	mig_out_begin(&s->out, MIG_SEC_HOLES, 0);
	for (i = 0; i < s->holes.nr; i++) {
		snap_put_le64(e, s->holes.v[i].start);
		snap_put_le64(e + 8,
			      (s->holes.v[i].end - s->holes.v[i].start) / PG);
		mig_out_put(&s->out, e, sizeof(e));
		s->st->hole_pages +=
			(s->holes.v[i].end - s->holes.v[i].start) / PG;
	}
	s->holes.nr = 0;
	return mig_out_end(&s->out);
}

/* Round 0 sends every page of every region: the destination is empty. */
static void add_all(struct sender *s)
{
	size_t i;

	for (i = 0; i < s->regions.nr; i++)
		mig_pages_add(&s->todo, s->regions.v[i].start,
			      s->regions.v[i].end - s->regions.v[i].start);
}

static int send_round(struct sender *s, unsigned int round)
{
	unsigned int i;
	int err;

	s->round0 = round == 0;
	err = collect(s);
	if (!err && round == 0)
		add_all(s);
	if (!err && s->o->on_round)
		s->o->on_round(s->o->data, round, mig_pages_count(&s->todo));
	if (!err)
		err = send_image(s);
	s->round_pages = 0;
	for (i = 0; !err && i < snap_data_sections(s->img.mode); i++) {
		s->backing = snap_data_backing(s->img.mode, i);
		s->want_state = snap_backing_state(s->img.mode, s->backing);
		snap_cursor_init(&s->c, &s->img);
		err = mig_pages_for_each(&s->todo, send_run, s);
		if (!err)
			err = data_end(s);
		if (!err)
			err = send_holes(s);
	}
	mig_pages_clear(&s->todo);
	s->st->rounds = round + 1;
	return err;
}

static int send_final(struct sender *s)
{
	uint8_t f[MIG_FINAL_SIZE];

	snap_put_le32(f, s->st->rounds);
	snap_put_le32(f + 4, 0);
	snap_put_le64(f + 8, s->out.bytes);
	if (mig_out_section(&s->out, MIG_SEC_FINAL, 0, f, sizeof(f)))
		return s->out.err;
	if (s->o->final_sections) {
		int err = s->o->final_sections(s->o->data, &s->out);

		if (err)
			return snap_err(s->m, err, "the VMM's sections: %s",
					strerror(-err));
	}
	return mig_out_section(&s->out, SNAP_SEC_END, 0, NULL, 0);
}

/* ---- setup and the whole migration ------------------------------------- */

static int setup(struct sender *s)
{
	struct snap_mem_image first;
	size_t i;
	int err;

	if (gmem_get_backend(s->vm) != GMEM_BACKEND_EMULATED)
		return snap_err(s->m, -EOPNOTSUPP, "the %s backend has no host "
				"view of private memory to send",
				gmem_backend_name(gmem_get_backend(s->vm)));
	err = snap_image_from_vm(s->vm, s->o->initial_state, &first, s->m);
	if (err)
		return err;
	s->regions = first.regions;
	memset(&first.regions, 0, sizeof(first.regions));
	snap_image_free(&first);
	s->ri = calloc(s->regions.nr ? s->regions.nr : 1, sizeof(*s->ri));
	if (!s->ri || mig_pages_init(&s->todo, &s->regions) ||
	    mig_pages_init(&s->retry, &s->regions) ||
	    mig_pages_init(&s->changed, &s->regions))
		return snap_err(s->m, -ENOMEM, "no memory");
	for (i = 0; i < s->regions.nr; i++) {
		s->ri[i].size = sizeof(s->ri[i]);
		err = gmem_region_get(s->vm, (unsigned int)i, &s->ri[i]);
		if (err)
			return snap_err(s->m, err, "region %zu: %s", i,
					strerror(-err));
	}
	/* Subscribe before tracking starts: a punch is never missed. */
	err = gmem_subscribe(s->vm, on_inval, s, &s->sub);
	if (err)
		return snap_err(s->m, err, "subscribing to invalidations: %s",
				strerror(-err));
	err = mig_track_start(s->vm, &s->o->track, &s->t, s->m);
	if (!err)
		s->st->tracker = mig_track_name(s->t.kinds);
	return err;
}

static void teardown(struct sender *s)
{
	mig_track_stop(&s->t);
	if (s->sub)
		gmem_unsubscribe(s->vm, s->sub);
	mig_pages_free(&s->todo);
	mig_pages_free(&s->retry);
	mig_pages_free(&s->changed);
	snap_image_free(&s->img);
	ivals_free(&s->regions);
	ivals_free(&s->holes);
	free(s->ri);
	free(s->doc.p);
	mig_out_free(&s->out);
	pthread_mutex_destroy(&s->lock);
}

static int precopy(struct sender *s)
{
	uint64_t converged = s->o->converged_bytes ? s->o->converged_bytes :
						     MIG_CONVERGED;
	unsigned int max = s->o->max_rounds ? s->o->max_rounds :
					      MIG_MAX_ROUNDS;
	unsigned int round;
	int err = 0;

	for (round = 0; !err && round < max; round++) {
		err = check_cancel(s);
		if (!err)
			err = send_round(s, round);
		/* Round 0 sent everything: its size says nothing. */
		if (!err && round > 0 && s->round_pages * PG <= converged)
			break;
	}
	return err;
}

static int finish(struct sender *s, double *t_stop)
{
	int status = 0, err;

	if (s->o->stop) {
		err = s->o->stop(s->o->data);
		if (err)
			return snap_err(s->m, err, "stopping the VM for the "
					"last round: %s", strerror(-err));
	}
	*t_stop = now();
	s->final = true;
	err = send_round(s, s->st->rounds);
	s->st->last_round_pages = s->round_pages;
	if (!err)
		err = send_final(s);
	if (!err)
		err = mig_wait_ack(s->out.fd, s->out.timeout_ms, &status,
				   s->m);
	if (!err && status)
		err = snap_err(s->m, status, "the destination refused the VM: "
			       "%s", strerror(-status));
	/* The point of no return: once COMMIT is sent the destination runs
	 * the guest, and this side must not. */
	if (!err) {
		err = mig_send_commit(s->out.fd, s->out.timeout_ms);
		if (err)
			snap_err(s->m, err, "sending the COMMIT: %s",
				 strerror(-err));
	}
	return err;
}

/*
 * The stream broke: a destination that refused the VM said why (its
 * errno in a negative ACK) before it closed; that is the failure.
 */
static int nack_reason(struct sender *s, int err, struct snap_msg *m,
		       char *msg, size_t msg_len)
{
	struct snap_msg quiet;
	int status = 0;

	snap_msg_init(&quiet, NULL, 0);
	if (mig_wait_ack(s->out.fd, 100, &status, &quiet) || !status)
		return err;
	snap_msg_init(m, msg, msg_len);
	return snap_err(m, status, "the destination refused the VM: %s",
			strerror(-status));
}

int mig_send(struct gmem_vm *vm, int fd, const struct mig_send_opts *o,
	     struct mig_stats *st, char *msg, size_t msg_len)
{
	struct mig_stats local;
	struct snap_msg m;
	struct sender s;
	double t0 = now(), t_stop = 0;
	int err;

	snap_msg_init(&m, msg, msg_len);
	memset(&s, 0, sizeof(s));
	memset(&local, 0, sizeof(local));
	s.vm = vm;
	s.o = o;
	s.m = &m;
	s.st = st ? st : &local;
	memset(s.st, 0, sizeof(*s.st));
	s.st->tracker = "none";
	pthread_mutex_init(&s.lock, NULL);
	mig_out_init(&s.out, fd, &m);
	s.out.timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : MIG_TIMEOUT_MS;
	err = setup(&s);
	if (!err)
		err = mig_out_header(&s.out);
	if (!err)
		err = precopy(&s);
	if (!err)
		err = finish(&s, &t_stop);
	if (err && s.final && o->resume)
		o->resume(o->data);
	if (err == -EPIPE || err == -ECONNRESET)
		err = nack_reason(&s, err, &m, msg, msg_len);
	s.st->bytes = s.out.bytes;
	s.st->total_s = now() - t0;
	s.st->downtime_s = t_stop ? now() - t_stop : 0;
	teardown(&s);
	if (err)
		snap_err(&m, err, "migration failed: %s", strerror(-err));
	return err;
}
