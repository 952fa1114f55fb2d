/* SPDX-License-Identifier: MIT */
/*
 * Live migration of a VM's memory (vmm/migrate/), host side, no KVM: a
 * 1 GiB guest with 512 MiB resident (discard mode, half private, half
 * shared) is sent over a Unix socketpair to a destination thread of this
 * process while a writer thread keeps writing a 16 MiB working set
 * through the host views: that writer stands in for the guest during
 * pre-copy (no vCPU runs here).  The world is "stopped" by parking it.
 *
 * Reported (median of 3): total migration time, downtime (stop to the
 * destination's ACK), bytes sent against the resident bytes.  Baseline in
 * the same run, the I/O floor: the resident bytes copied once, source
 * backing to destination memfd, with a plain read()/write() loop over
 * the same kind of socketpair.
 * Goals (issue 11): stream <= 1.05x resident + 1 MiB; migration time <=
 * 1.5x the I/O floor; downtime <= 10% of the migration time.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "migrate.h"

#define PG 4096ULL
#define RAM (1ULL << 30)
#define RESIDENT (512ULL << 20)
#define HOT (16ULL << 20)
#define RUNS 3

struct writer {
	struct gmem_vm *vm;
	pthread_t th;
	int stop_req, parked, quit;
	uint64_t writes;
};

/*
 * The guest's stand-in: bursts of 16 page writes straight through the
 * views (as a vCPU writes, without a system call; no page changes state
 * here, so no write can hit a closed view), then 1 ms of rest: about
 * 64 MB/s into the working set.
 */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint8_t *priv = gmem_private_view(w->vm), *shared = gmem_shared_view(w->vm);
	uint64_t x = 88172645463325252ULL, gpa;
	int i;

	while (!__atomic_load_n(&w->quit, __ATOMIC_ACQUIRE)) {
		if (__atomic_load_n(&w->stop_req, __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&w->parked, 1, __ATOMIC_RELEASE);
			while (__atomic_load_n(&w->stop_req, __ATOMIC_ACQUIRE) &&
			       !__atomic_load_n(&w->quit, __ATOMIC_ACQUIRE))
				usleep(100);
			__atomic_store_n(&w->parked, 0, __ATOMIC_RELEASE);
			continue;
		}
		for (i = 0; i < 16; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			/* The first 16 MiB of each half. */
			gpa = (x % (HOT / PG)) * PG;
			if (x & 1)
				shared[RAM / 2 + gpa + (x & 0xff8)]++;
			else
				priv[gpa + (x & 0xff8)]++;
			w->writes++;
		}
		usleep(1000);
	}
	return NULL;
}

static int w_stop(void *data)
{
	struct writer *w = data;

	__atomic_store_n(&w->stop_req, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&w->parked, __ATOMIC_ACQUIRE))
		usleep(50);
	return 0;
}

static void w_resume(void *data)
{
	__atomic_store_n(&((struct writer *)data)->stop_req, 0,
			 __ATOMIC_RELEASE);
}

struct dest {
	int fd, err;
	struct gmem_config base;
	struct gmem_vm *vm;
	char msg[256];
};

static void *dest_main(void *arg)
{
	struct dest *d = arg;
	struct mig_recv_opts o = {
		.restore = { .base = &d->base, .create = bench_create_memfd_vm,
			     .create_data = (void *)"dst-private" },
	};

	d->err = mig_receive(d->fd, &o, &d->vm, d->msg, sizeof(d->msg));
	return NULL;
}

static struct gmem_vm *make_source(void)
{
	struct gmem_region_config rc;
	struct gmem_config cfg;
	struct gmem_vm *vm;
	uint8_t *buf = malloc(1 << 20);
	uint64_t gpa;

	if (!buf)
		bench_die("no memory");
	memset(buf, 0xa5, 1 << 20);
	bench_gmem_config(&cfg, &rc, -1, RAM, GMEM_MODE_DISCARD,
			  GMEM_PRIVATE);
	vm = bench_gmem_create(&cfg);
	BENCH_ASSERT_EQ(gmem_convert(vm, RAM / 2, RAM / 2, GMEM_SHARED) >= 0,
			1);
	/* 256 MiB of each half resident. */
	for (gpa = 0; gpa < RAM; gpa += 1 << 20) {
		if ((gpa % (RAM / 2)) >= RESIDENT / 2)
			continue;
		BENCH_ASSERT_EQ(gmem_access(vm, gpa, buf, 1 << 20, true,
					    gpa < RAM / 2 ? GMEM_PRIVATE :
							    GMEM_SHARED), 0);
	}
	free(buf);
	return vm;
}

struct result {
	double total_s, downtime_s;
	uint64_t bytes, resident;
	unsigned int rounds;
	uint64_t writes;
};

static void migrate_once(struct result *res, bool writing)
{
	struct writer w = { 0 };
	struct mig_send_opts o = {
		.initial_state = GMEM_PRIVATE, .stop = w_stop,
		.resume = w_resume, .data = &w,
	};

	if (!writing)
		o.stop = NULL, o.resume = NULL;
	struct gmem_region_config rc;
	struct mig_stats st;
	struct dest d = { 0 };
	pthread_t th;
	char msg[256];
	int sv[2], err;

	w.vm = make_source();
	res->resident =
		(uint64_t)gmem_backing_resident(w.vm, GMEM_BACKING_PRIVATE) +
		(uint64_t)gmem_backing_resident(w.vm, GMEM_BACKING_SHARED);
	bench_gmem_config(&d.base, &rc, -1, RAM, GMEM_MODE_DISCARD,
			  GMEM_PRIVATE);
	close(rc.private_fd);
	d.base.regions = NULL;
	d.base.nr_regions = 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		bench_die("socketpair");
	d.fd = sv[1];
	if (writing) {
		pthread_create(&w.th, NULL, writer_main, &w);
		usleep(100000);		/* the writer is running */
	}
	pthread_create(&th, NULL, dest_main, &d);
	err = mig_send(w.vm, sv[0], &o, &st, msg, sizeof(msg));
	pthread_join(th, NULL);
	__atomic_store_n(&w.quit, 1, __ATOMIC_RELEASE);
	if (writing)
		pthread_join(w.th, NULL);
	if (err || d.err)
		bench_die("migration: %s / %s", msg, d.msg);
	res->total_s = st.total_s;
	res->downtime_s = st.downtime_s;
	res->bytes = st.bytes;
	res->rounds = st.rounds;
	res->writes = w.writes;
	gmem_destroy(d.vm);
	gmem_destroy(w.vm);
	close(sv[0]);
	close(sv[1]);
}

/* ---- the I/O floor ---------------------------------------------------- */

struct sink {
	int sock, fd;
	uint64_t len;
};

static void *sink_main(void *arg)
{
	struct sink *s = arg;
	uint8_t *buf = malloc(1 << 20);
	uint64_t done = 0;
	ssize_t n;

	while (buf && done < s->len) {
		n = read(s->sock, buf, 1 << 20);
		if (n <= 0 || write(s->fd, buf, (size_t)n) != n)
			break;
		done += (uint64_t)n;
	}
	free(buf);
	return NULL;
}

/* The resident bytes once: backing -> read() -> socket -> read() ->
 * write() into a memfd, with the same buffer size as the stream. */
static double io_floor(uint64_t len)
{
	int src = bench_memfd("floor-src", len), sv[2];
	struct sink s = { .fd = bench_memfd("floor-dst", len), .len = len };
	uint8_t *buf = malloc(1 << 20);
	uint64_t done = 0;
	pthread_t th;
	double t0;
	ssize_t n;

	if (!buf || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		bench_die("no memory or socketpair");
	memset(buf, 0xa5, 1 << 20);
	for (done = 0; done < len; done += 1 << 20)
		if (write(src, buf, 1 << 20) != 1 << 20)
			bench_die("filling the floor's source");
	lseek(src, 0, SEEK_SET);
	s.sock = sv[1];
	t0 = bench_now_us();
	pthread_create(&th, NULL, sink_main, &s);
	for (done = 0; done < len; done += (uint64_t)n) {
		n = read(src, buf, 1 << 20);
		if (n <= 0 || write(sv[0], buf, (size_t)n) != n)
			bench_die("the floor's copy");
	}
	pthread_join(th, NULL);
	t0 = (bench_now_us() - t0) / 1e6;
	free(buf);
	close(src);
	close(s.fd);
	close(sv[0]);
	close(sv[1]);
	return t0;
}

int main(void)
{
	double total[RUNS], down[RUNS], bytes[RUNS], floor_s[RUNS];
	double idle[RUNS], ti;
	struct mig_track_caps caps;
	struct result r = { 0 };
	double t, dt, b, f, goal_bytes;
	int i;

	if (mig_track_probe(-1, &caps))
		bench_skip("no dirty tracker here: %s", caps.uffd_why);
	for (i = 0; i < RUNS; i++) {
		bench_progress("run %d of %d", i + 1, RUNS);
		migrate_once(&r, false);
		idle[i] = r.total_s;
		migrate_once(&r, true);
		total[i] = r.total_s;
		down[i] = r.downtime_s;
		bytes[i] = (double)r.bytes;
		floor_s[i] = io_floor(r.resident);
	}
	t = bench_median(total, RUNS);
	dt = bench_median(down, RUNS);
	b = bench_median(bytes, RUNS);
	f = bench_median(floor_s, RUNS);
	ti = bench_median(idle, RUNS);
	goal_bytes = 1.05 * (double)r.resident + (1 << 20);
	printf("## Live migration (bench_migrate)\n\n");
	printf("Host side, no KVM: a 1 GiB guest, %llu MiB resident (discard "
	       "mode, half private, half shared), sent over a Unix socketpair "
	       "to a destination thread while a writer thread (standing in "
	       "for the guest: no vCPU runs) writes a 16 MiB working set "
	       "straight through the host views during pre-copy (bursts of 16 "
	       "pages, then 1 ms: about 64 MB/s).  Dirty tracking: %s.  "
	       "Median of %d runs; the I/O floor is the resident bytes "
	       "copied once with read()/write() over the same transport, in "
	       "the same run.\n\n", (unsigned long long)(r.resident >> 20),
	       mig_track_name(caps.kinds), RUNS);
	printf("| figure | value | baseline | ratio | goal | |\n");
	printf("|---|---|---|---|---|---|\n");
	printf("| bytes sent | %.0f | resident %llu | %.4fx | <= 1.05x + 1 MiB "
	       "| %s |\n", b, (unsigned long long)r.resident,
	       b / (double)r.resident, bench_goal_mark(b <= goal_bytes));
	printf("| migration time | %.3f s | I/O floor %.3f s | %.2fx | <= 1.5x "
	       "| %s |\n", t, f, t / f, bench_goal_mark(t <= 1.5 * f));
	printf("| migration time, idle guest (no writer) | %.3f s | I/O "
	       "floor %.3f s | %.2fx | (reference) | |\n", ti, f, ti / f);
	printf("| downtime | %.1f ms | migration time | %.1f%% | <= 10%% | "
	       "%s |\n", dt * 1e3, 100 * dt / t,
	       bench_goal_mark(dt <= 0.1 * t));
	printf("\nLast run: %u rounds, %llu writes by the writer during "
	       "pre-copy.\n", r.rounds, (unsigned long long)r.writes);
	printf("BENCH migrate_bytes %.0f\nBENCH migrate_resident %llu\n"
	       "BENCH migrate_total_s %.4f\nBENCH migrate_downtime_s %.4f\n"
	       "BENCH migrate_floor_s %.4f\nBENCH migrate_idle_s %.4f\n", b,
	       (unsigned long long)r.resident, t, dt, f, ti);
	return 0;
}
