/* SPDX-License-Identifier: MIT */
/*
 * A live migration that fails must cost the source nothing
 * (docs/MIGRATION.md): the source VM keeps running its guest (writer
 * threads through the host views all along) while migrations to it fail
 *  - because the destination process is killed (SIGKILL) at random
 *    moments of the migration (0-150 ms: while the VM is being created,
 *    in round 0 or in later rounds);
 *  - because the stream is cut after N bytes by a relay (every phase: the
 *    header, the first IMAGE, the middle of a DATA section, a later
 *    round), or the destination's ACK never reaches the source;
 *  - because a region was hot-plugged during pre-copy (-EBUSY);
 *  - because the destination cannot build the VM: its errno reaches the
 *    source in a negative ACK;
 *  - because the VM stops during pre-copy (-ECANCELED at the next round
 *    or DATA section, not after the rounds converge).
 * Each time: mig_send() fails with -errno and a message naming the
 * failure, the world it stopped is resumed (the writers go on), no
 * page is write-protected by the tracking any more, the audit passes,
 * and a destination that saw a cut stream refuses it (-EBADMSG) and
 * leaves no VM.  At the end every page holds its writer's last write
 * (nothing lost), and the same VM then migrates successfully.
 *
 * //@ concurrency (threads write, convert and receive while it migrates)
 */
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "migrate_fixture.h"

static struct load l;

static int h_stop(void *data)
{
	return load_stop(&l);
}

static void h_resume(void *data)
{
	load_resume(&l);
}

static struct gmem_vm *hotplug_vm;

static void between_rounds(void *data, unsigned int round, uint64_t pages)
{
	struct gmem_region_config rc = GMEM_INIT(struct gmem_region_config,
		.gpa = 15 * MiB, .len = MiB, .shared_fd = -1);

	usleep(5000);
	/* A region hot-plugged during pre-copy: the migration gives up. */
	if (hotplug_vm && round == 1) {
		rc.private_fd = test_memfd(MiB);
		TEST_ASSERT_EQ(gmem_region_add(hotplug_vm, &rc), 0);
		close(rc.private_fd);
	}
}


static struct mig_send_opts send_opts(enum gmem_state initial)
{
	struct mig_send_opts o = {
		.initial_state = initial,
		.stop = h_stop,
		.resume = h_resume,
		.on_round = between_rounds,
		.max_rounds = 12,
		.converged_bytes = PG,
		.timeout_ms = 10000,
	};

	return o;
}

/* The source after a failed migration: unharmed and still running. */
static void check_unharmed(struct gmem_vm *vm, int err, const char *msg)
{
	uint64_t before = __atomic_load_n(&l.writes, __ATOMIC_RELAXED);
	int tries = 0;

	TEST_ASSERT(err < 0);
	TEST_ASSERT(msg[0]);
	TEST_ASSERT_EQ(__atomic_load_n(&l.pause_req, __ATOMIC_RELAXED), 0);
	check_untracked(vm);
	check_audit(vm, "source");
	while (__atomic_load_n(&l.writes, __ATOMIC_RELAXED) < before + 100) {
		TEST_ASSERT(++tries < 5000);
		usleep(1000);
	}
}

/* The VM "stops" after this many cancel checks (0: never). */
static unsigned int cancel_after, cancel_checks;

static bool cancel_cb(void *data)
{
	return cancel_after && ++cancel_checks >= cancel_after;
}

/* A migration to a destination refusing with @refuse (0: none): its
 * mig_send() return and message. */
static int fail_once(struct gmem_vm *vm, enum gmem_state initial,
		     uint32_t flags, int refuse, char *msg, size_t len)
{
	struct mig_send_opts o = send_opts(initial);
	struct dest d;

	o.cancelled = cancel_cb;
	cancel_checks = 0;
	int sv[2], err;

	sock_pair(sv);
	dest_start_refusing(&d, sv[1], flags, refuse);
	err = mig_send(vm, sv[0], &o, NULL, msg, len);
	close(sv[0]);
	dest_join(&d);
	close(sv[1]);
	TEST_ASSERT(!d.vm);
	check_unharmed(vm, err, msg);
	return err;
}

/* A region hot-plugged during pre-copy: -EBUSY. */
static void region_changed(struct gmem_vm *vm, enum gmem_state initial,
			   uint32_t flags)
{
	char msg[512];

	hotplug_vm = vm;
	TEST_ASSERT_EQ(fail_once(vm, initial, flags, 0, msg, sizeof(msg)),
		       -EBUSY);
	hotplug_vm = NULL;
	printf("region hot-plugged during pre-copy: %s\n", msg);
	TEST_ASSERT_EQ(gmem_region_remove(vm, 15 * MiB), 0);
}

/*
 * The VM stops during pre-copy (gmvm: vm_stopping()): the migration ends
 * at the next round or DATA section with -ECANCELED rather than running
 * its rounds to the end, whether at the first check, in round 0's data
 * or in a later round.
 */
static void cancelled(struct gmem_vm *vm, enum gmem_state initial,
		      uint32_t flags)
{
	static const unsigned int after[] = { 1, 2, 5 };
	char msg[512];
	unsigned int i;

	for (i = 0; i < sizeof(after) / sizeof(after[0]); i++) {
		cancel_after = after[i];
		TEST_ASSERT_EQ(fail_once(vm, initial, flags, 0, msg,
					 sizeof(msg)), -ECANCELED);
		TEST_ASSERT(strstr(msg, "stopping"));
		TEST_ASSERT_EQ(cancel_checks, after[i]);
	}
	cancel_after = 0;
	printf("cancelled during pre-copy: %s\n", msg);
}

/* The destination cannot build the VM: the source says why. */
static void dest_refuses(struct gmem_vm *vm, enum gmem_state initial,
			 uint32_t flags)
{
	char msg[512];

	TEST_ASSERT_EQ(fail_once(vm, initial, flags, -ENOSPC, msg,
				 sizeof(msg)), -ENOSPC);
	printf("destination refusing: %s\n", msg);
	TEST_ASSERT(strstr(msg, "refused"));
}

/* ---- the destination killed ---------------------------------------------- */

static void kill_dest(struct gmem_vm *vm, enum gmem_state initial,
		      uint32_t flags, unsigned int delay_us)
{
	struct mig_send_opts o = send_opts(initial);
	char msg[512];
	int sv[2], err, status;
	pid_t pid;
	struct dest d;

	sock_pair(sv);
	pid = fork();
	TEST_ASSERT(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		dest_start(&d, sv[1], flags);
		_exit(dest_join(&d) ? 1 : 0);
	}
	close(sv[1]);
	if (!fork()) {
		usleep(delay_us);
		kill(pid, SIGKILL);
		_exit(0);
	}
	err = mig_send(vm, sv[0], &o, NULL, msg, sizeof(msg));
	TEST_ASSERT_EQ(waitpid(pid, &status, 0), pid);
	TEST_ASSERT(wait(NULL) > 0);
	close(sv[0]);
	if (!err)
		TEST_FAIL("the destination was killed after %u us but the "
			  "migration succeeded", delay_us);
	printf("destination killed after %6u us: %s\n", delay_us, msg);
	check_unharmed(vm, err, msg);
}

/* ---- the stream cut --------------------------------------------------- */

struct relay {
	int src, dst;		/* the relay's ends */
	uint64_t limit;		/* source bytes forwarded before the cut */
	bool drop_ack;		/* forward everything but the ACK */
	pthread_t th[2];
};

static void cut(struct relay *r)
{
	shutdown(r->src, SHUT_RDWR);
	shutdown(r->dst, SHUT_RDWR);
}

static void *forward_main(void *arg)
{
	struct relay *r = arg;
	uint64_t done = 0;
	uint8_t buf[65536];
	ssize_t n;
	size_t want;

	for (;;) {
		want = sizeof(buf);
		if (r->limit - done < want)
			want = (size_t)(r->limit - done);
		if (!want)
			break;
		n = read(r->src, buf, want);
		if (n <= 0 || write(r->dst, buf, (size_t)n) != n)
			break;
		done += (uint64_t)n;
	}
	cut(r);
	return NULL;
}

static void *backward_main(void *arg)
{
	struct relay *r = arg;
	uint8_t buf[4096];
	ssize_t n;

	while ((n = read(r->dst, buf, sizeof(buf))) > 0) {
		if (r->drop_ack)
			break;
		if (write(r->src, buf, (size_t)n) != n)
			break;
	}
	cut(r);
	return NULL;
}

static void cut_stream(struct gmem_vm *vm, enum gmem_state initial,
		       uint32_t flags, uint64_t limit, bool drop_ack)
{
	struct mig_send_opts o = send_opts(initial);
	struct relay r = { .limit = limit, .drop_ack = drop_ack };
	int a[2], b[2], err;
	char msg[512];
	struct dest d;

	sock_pair(a);		/* source - relay */
	sock_pair(b);		/* relay - destination */
	r.src = a[1];
	r.dst = b[0];
	dest_start(&d, b[1], flags);
	TEST_ASSERT_EQ(pthread_create(&r.th[0], NULL, forward_main, &r), 0);
	TEST_ASSERT_EQ(pthread_create(&r.th[1], NULL, backward_main, &r), 0);
	err = mig_send(vm, a[0], &o, NULL, msg, sizeof(msg));
	cut(&r);
	pthread_join(r.th[0], NULL);
	pthread_join(r.th[1], NULL);
	dest_join(&d);
	if (!err)
		TEST_FAIL("the stream was cut but the migration succeeded");
	if (d.vm || !d.err)
		TEST_FAIL("the destination kept a VM from a cut stream");
	if (!drop_ack)
		TEST_ASSERT_EQ(d.err, -EBADMSG);
	printf("cut after %8llu bytes%s: source: %s; destination: %d %s\n",
	       ULL(limit), drop_ack ? " (ACK dropped)" : "", msg, d.err,
	       d.msg);
	check_unharmed(vm, err, msg);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}

static void one_mode(enum gmem_mode mode, enum gmem_state initial,
		     uint32_t flags)
{
	static const uint64_t cuts[] = { 0, 20, 32, 60, 4096, 300000 };
	struct creator cr = { .own_shared = true };
	struct gmem_vm *vm;
	struct model m;
	struct dest d;
	char msg[512];
	int sv[2], err;
	size_t i;

	printf("-- %s mode\n", gmem_mode_name(mode));
	model_init(&m, mode, initial, 16 * MiB);
	vm = create_model_vm(&m, flags, &cr);
	load_start(&l, vm, &m, 2, false, false, false);
	for (i = 0; i < 3; i++)
		kill_dest(vm, initial, flags, (unsigned int)rnd(150000));
	for (i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		cut_stream(vm, initial, flags, cuts[i], false);
	cut_stream(vm, initial, flags, 1 + rnd(8 * MiB), false);
	cut_stream(vm, initial, flags, UINT64_MAX, true);
	region_changed(vm, initial, flags);
	dest_refuses(vm, initial, flags);
	cancelled(vm, initial, flags);
	/* And now it moves. */
	{
		struct mig_send_opts o = send_opts(initial);

		sock_pair(sv);
		dest_start(&d, sv[1], flags);
		err = mig_send(vm, sv[0], &o, NULL, msg, sizeof(msg));
		if (err || dest_join(&d))
			TEST_FAIL("the last migration: %d %s / %d %s", err,
				  msg, d.err, d.msg);
	}
	/* Its writers parked by the last round's stop: nothing lost. */
	load_check_written(&l);
	load_end(&l);
	check_same(vm, d.vm, initial);
	gmem_destroy(d.vm);
	gmem_destroy(vm);
	close(sv[0]);
	close(sv[1]);
	model_free(&m);
}

int main(void)
{
	double t0;

	signal(SIGPIPE, SIG_IGN);
	mig_fixture_init("test_migrate_fail");
	t0 = now_s();
	one_mode(GMEM_MODE_DISCARD, GMEM_PRIVATE, GMEM_CONFIG_DEFERRED_RECLAIM);
	t0 = lap(t0, "discard");
	one_mode(GMEM_MODE_IN_PLACE, GMEM_SHARED, 0);
	lap(t0, "in-place");
	snap_fixture_fini();
	printf("PASS\n");
	return 0;
}
