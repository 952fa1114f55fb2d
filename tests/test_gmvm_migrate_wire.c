/* SPDX-License-Identifier: MIT */
/*
 * gmvm's live-migration wiring that needs no KVM:
 *  - `gmvm run --incoming unix:SOCKET` (vmm/incoming.c), a real gmvm
 *    process fed by this test over SOCKET: foreign bytes, a damaged
 *    header, a stream cut after its header, a damaged section, and a
 *    whole stream (sent by mig_send() from the fuzzers' VM, real libgmem)
 *    whose machine sections disagree with its memory, or that has no VMM
 *    sections at all, are each one line on stderr and status 125 with
 *    SOCKET removed; the last two are refused before the ACK, so the
 *    source fails and keeps its VM.  A whole, consistent stream on a
 *    host without /dev/kvm is refused before the ACK too (125, "this
 *    host cannot run the VM: /dev/kvm: ..."), and the source keeps its
 *    VM; with KVM this case is left to tests/test_gmvm_migrate.sh.
 *  - the control socket's migrate (vmm/control/commands.c and
 *    vmm/migrate_cmd.c) through gmvm's own command table on the fuzzers'
 *    VM: a URI that is not unix:SOCKET, a socket nobody listens on, a
 *    destination that refuses the VM (its errno in the reply), a source
 *    that cannot gather its vCPUs (no KVM) after it stopped the world,
 *    and a stopping VM each get the documented error reply, and the VM
 *    is left running (not paused, not stopping, tracking removed: the
 *    audit passes).  While a migration runs (its destination not
 *    reading), another client's request is answered "busy" at once and
 *    runs nothing; the migration then fails when the destination goes
 *    away, and the VM runs on (docs/CONTROL.md).
 * //@ concurrency (the control server, its migrate worker, a client)
 */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"
#include "fuzz_vm.h"

#include "control/listen.h"
#include "migrate/migrate.h"
#include "migrate/stream.h"
#include "snapshot/crc32c.h"
#include "snapshot/machine.h"

#define MiB (1ULL << 20)
/* The VM's memory, all of it written: more than the socket buffers of
 * a migration (the source asks for a 4 MiB send buffer), so that a
 * destination that reads nothing keeps the source waiting. */
#define RAM (32 * MiB)

static char gmvm[PATH_MAX];
static char dir[] = "/tmp/test_gmvm_migrate_wire.XXXXXX";
static struct fuzz_vm a;
static struct snap_machine mach;

/* build/tests/THIS -> build/gmvm */
static void find_gmvm(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	TEST_ASSERT(n > 0);
	self[n] = '\0';
	snprintf(gmvm, sizeof(gmvm), "%s/../gmvm", dirname(self));
	if (access(gmvm, X_OK))
		test_skip("no gmvm at %s", gmvm);
}

static void sock_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* `gmvm run --incoming unix:@sock`, stderr into @err; once it listens. */
static pid_t start_incoming(const char *sock, const char *err)
{
	char uri[PATH_MAX + 8];
	struct stat st;
	pid_t pid;
	int i;

	snprintf(uri, sizeof(uri), "unix:%s", sock);
	pid = fork();
	TEST_ASSERT(pid >= 0);
	if (!pid) {
		int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int nul = open("/dev/null", O_WRONLY);

		if (fd < 0 || nul < 0 || dup2(fd, 2) < 0 || dup2(nul, 1) < 0)
			_exit(99);
		execl(gmvm, "gmvm", "run", "--incoming", uri, (char *)NULL);
		_exit(98);
	}
	for (i = 0; i < 500 && stat(sock, &st); i++)
		usleep(10000);
	TEST_ASSERT(!stat(sock, &st) && S_ISSOCK(st.st_mode));
	TEST_ASSERT_EQ(st.st_mode & 0777, 0600);
	return pid;
}

/* Its status; SOCKET gone; stderr exactly one line holding @want. */
static void finish(pid_t pid, const char *sock, const char *err, int status,
		   const char *want)
{
	char buf[4096];
	struct stat st;
	ssize_t n;
	int ws, fd, lines = 0;

	TEST_ASSERT_EQ(waitpid(pid, &ws, 0), pid);
	TEST_ASSERT(WIFEXITED(ws));
	fd = open(err, O_RDONLY);
	TEST_ASSERT(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	TEST_ASSERT(n > 0);
	buf[n] = '\0';
	for (fd = 0; fd < n; fd++)
		lines += buf[fd] == '\n';
	if (WEXITSTATUS(ws) != status || lines != 1 || !strstr(buf, want))
		TEST_FAIL("incoming: status %d (want %d), stderr '%s' (want one line with '%s')",
			  WEXITSTATUS(ws), status, buf, want);
	TEST_ASSERT(stat(sock, &st) && errno == ENOENT);
	printf("  %d: %s", status, buf);
}

/* Bytes to an --incoming gmvm, then end of stream. */
static void feed(const char *what, const void *p, size_t len,
		 const char *want)
{
	char sock[PATH_MAX], err[PATH_MAX];
	pid_t pid;
	int fd;

	printf("%s\n", what);
	sock_path(sock, sizeof(sock), "in.sock");
	sock_path(err, sizeof(err), "in.err");
	pid = start_incoming(sock, err);
	fd = test_connect_unix(sock);
	TEST_ASSERT_EQ(send(fd, p, len, MSG_NOSIGNAL), (ssize_t)len);
	shutdown(fd, SHUT_WR);
	finish(pid, sock, err, 125, want);
	close(fd);
}

static void header(uint8_t *h, uint32_t version)
{
	memset(h, 0, MIG_HEADER_SIZE);
	memcpy(h, MIG_MAGIC, 8);
	snap_put_le32(h + 8, version);
	snap_put_le32(h + 28, crc32c(0, h, 28));
}

/* A machine that matches the fuzz VM's memory when @ram is its size. */
static void make_machine(uint64_t ram)
{
	snap_machine_free(&mach);
	memset(&mach, 0, sizeof(mach));
	mach.opts.ram_size = ram;
	mach.opts.nr_vcpus = 1;
	mach.nr_vcpus = 1;
	mach.vcpu[0].xsave_size = SNAP_XSAVE_LEGACY;
	mach.vcpu[0].xsave = calloc(1, SNAP_XSAVE_LEGACY);
	TEST_ASSERT(mach.vcpu[0].xsave);
	mach.clock.clock = 12345;
}

static int send_machine(void *data, struct mig_out *o)
{
	char why[256];

	return vm_machine_send(&mach, o, why, sizeof(why));
}

/*
 * A whole stream of the fuzz VM with @ram in RUNOPTS: mig_send()'s; with
 * @machine false, with no VMM sections at all.
 */
static int whole_stream(uint64_t ram, bool machine, const char *want)
{
	struct mig_send_opts so = {
		.initial_state = GMEM_PRIVATE,
		.track = { .vm_fd = -1 },
		.final_sections = machine ? send_machine : NULL,
	};
	char sock[PATH_MAX], err[PATH_MAX], msg[256];
	struct mig_stats st;
	pid_t pid;
	int fd, ret;

	sock_path(sock, sizeof(sock), "in.sock");
	sock_path(err, sizeof(err), "in.err");
	make_machine(ram);
	pid = start_incoming(sock, err);
	fd = test_connect_unix(sock);
	ret = mig_send(a.vm.gmem, fd, &so, &st, msg, sizeof(msg));
	printf("  source: %d%s%s\n", ret, ret ? ": " : "", ret ? msg : "");
	finish(pid, sock, err, 125, want);
	close(fd);
	test_audit(a.vm.gmem);
	return ret;
}

static void incoming(void)
{
	uint8_t h[MIG_HEADER_SIZE + 16];
	char sock[PATH_MAX], err[PATH_MAX], msg[256];
	struct snap_msg m;
	struct mig_out o;
	pid_t pid;
	int fd;

	feed("foreign bytes", "this is no migration stream, not at all",
	     39, "not a gmvm migration stream");
	header(h, 1);
	h[28] ^= 1;
	feed("a damaged header", h, MIG_HEADER_SIZE, "--incoming unix:");
	header(h, 1);
	memset(h + MIG_HEADER_SIZE, 0x40, 10);
	feed("cut after the header", h, MIG_HEADER_SIZE + 10,
	     "--incoming unix:");

	printf("a damaged IMAGE section\n");
	sock_path(sock, sizeof(sock), "in.sock");
	sock_path(err, sizeof(err), "in.err");
	pid = start_incoming(sock, err);
	fd = test_connect_unix(sock);
	snap_msg_init(&m, msg, sizeof(msg));
	mig_out_init(&o, fd, &m);
	TEST_ASSERT_EQ(mig_out_header(&o), 0);
	TEST_ASSERT_EQ(mig_out_section(&o, MIG_SEC_IMAGE, 0, "garbage", 7), 0);
	mig_out_free(&o);
	shutdown(fd, SHUT_WR);
	finish(pid, sock, err, 125, "--incoming unix:");
	close(fd);

	printf("machine sections that disagree with the memory\n");
	TEST_ASSERT(whole_stream(2 * RAM, true, "RUNOPTS") != 0);

	/* Refused before the ACK too: the source keeps its VM. */
	printf("a stream without the VMM's sections\n");
	TEST_ASSERT(whole_stream(RAM, false,
				 "without the VMM's RUNOPTS section") != 0);

	if (!access("/dev/kvm", F_OK)) {
		printf("a whole stream: with /dev/kvm it would run (tests/test_gmvm_migrate.sh)\n");
		return;
	}
	/* A host that cannot run the VM says so before the ACK: the
	 * source keeps its guest rather than hand it to nobody. */
	printf("a whole stream, and no KVM here to run it: refused\n");
	TEST_ASSERT_EQ(whole_stream(RAM, true,
				    "this host cannot run the VM: /dev/kvm: "),
		       -ENOENT);
}

/* ---- the control socket's migrate ------------------------------------- */

/* The reply to migrate @uri: it starts with @start and holds @has. */
static void expect_migrate(const char *sock, const char *uri,
			   const char *start, const char *has)
{
	char line[PATH_MAX + 64], reply[2048];

	snprintf(line, sizeof(line), "{\"cmd\": \"migrate\", \"uri\": \"%s\"}\n",
		 uri);
	test_ctl_request(sock, line, reply, sizeof(reply));
	printf("  %s", reply);
	if (strncmp(reply, start, strlen(start)) || !strstr(reply, has))
		TEST_FAIL("migrate %s: got %s want %s...%s", uri, reply,
			  start, has);
	/* The VM runs on: not paused, not stopping, no tracking left. */
	TEST_ASSERT_EQ(__atomic_load_n(&a.vm.pause_req, __ATOMIC_ACQUIRE), 0);
	TEST_ASSERT(!vm_stopping(&a.vm));
	test_audit(a.vm.gmem);
}

struct dest {
	struct ctl_listener l;
	int fail;			/* creating the VM fails so */
	int ret;
	char msg[256];
	pthread_t th;
};

static int dest_create(void *data, const struct gmem_config *cfg,
		       struct gmem_vm **out)
{
	struct dest *d = data;

	return d->fail ? d->fail : fuzz_gmem_create(cfg, out);
}

static void *dest_main(void *arg)
{
	struct dest *d = arg;
	struct gmem_config base = GMEM_INIT(struct gmem_config, .vm_fd = -1);
	struct mig_recv_opts o = {
		.restore = { .base = &base, .create = dest_create,
			     .create_data = d },
		.timeout_ms = 20000,
	};
	struct gmem_vm *vm = NULL;
	struct pollfd p = { .fd = d->l.fd, .events = POLLIN };
	int fd;

	TEST_ASSERT_EQ(poll(&p, 1, 20000), 1);
	fd = accept4(d->l.fd, NULL, NULL, SOCK_CLOEXEC);
	TEST_ASSERT(fd >= 0);
	d->ret = mig_receive(fd, &o, &vm, d->msg, sizeof(d->msg));
	if (vm)
		gmem_destroy(vm);
	close(fd);
	return NULL;
}

static void dest_start(struct dest *d, const char *sock, int fail)
{
	char why[256];

	memset(d, 0, sizeof(*d));
	d->fail = fail;
	TEST_ASSERT_EQ(ctl_listen(&d->l, sock, 1, why, sizeof(why)), 0);
	TEST_ASSERT_EQ(pthread_create(&d->th, NULL, dest_main, d), 0);
}

static int dest_join(struct dest *d)
{
	TEST_ASSERT_EQ(pthread_join(d->th, NULL), 0);
	ctl_listen_close(&d->l);
	printf("  destination: %d: %s\n", d->ret, d->msg);
	return d->ret;
}

static bool starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

struct request {
	const char *sock;
	char line[PATH_MAX + 64], reply[2048];
	pthread_t th;
};

static void *request_main(void *arg)
{
	struct request *q = arg;

	test_ctl_request(q->sock, q->line, q->reply, sizeof(q->reply));
	return NULL;
}

/*
 * A destination that accepts nothing: the source fills the socket's
 * buffer and waits in send().  Meanwhile another client is told busy at
 * once; then (with @stop, after a quit) the destination goes away and
 * the migration fails: the VM runs on, or, stopped meanwhile, is said
 * to be stopping (not to run on).
 */
static void busy(const char *sock, const char *dst, const char *uri,
		 bool stop)
{
	struct request q = { .sock = sock };
	struct ctl_listener l;
	char reply[2048], why[256];
	int i;

	printf("migrate: others are told busy meanwhile\n");
	TEST_ASSERT_EQ(ctl_listen(&l, dst, 1, why, sizeof(why)), 0);
	snprintf(q.line, sizeof(q.line),
		 "{\"cmd\": \"migrate\", \"uri\": \"%s\"}\n", uri);
	TEST_ASSERT_EQ(pthread_create(&q.th, NULL, request_main, &q), 0);
	/* Until the migration has started, stats may still run. */
	for (i = 0;; i++) {
		test_ctl_request(sock, "{\"cmd\": \"stats\"}\n", reply,
				 sizeof(reply));
		if (starts(reply, "{\"error\": \"busy: migrate is running"))
			break;
		if (!starts(reply, "{\"ok\": true,"))
			TEST_FAIL("stats before the migration began: %s", reply);
		if (i == 2000)
			TEST_FAIL("never busy: did the migration end at once?");
		usleep(10000);
	}
	printf("  %s", reply);
	TEST_ASSERT(strstr(reply, "stats was not run"));
	if (stop)
		vm_quit(&a.vm);
	ctl_listen_close(&l);	/* the pending connection is reset */
	TEST_ASSERT_EQ(pthread_join(q.th, NULL), 0);
	printf("  %s", q.reply);
	if (stop) {
		if (!starts(q.reply, "{\"error\": \"migrate: ") ||
		    !strstr(q.reply, "the VM is stopping") ||
		    strstr(q.reply, "runs on"))
			TEST_FAIL("migrate ended by a stop: %s", q.reply);
		TEST_ASSERT(vm_stopping(&a.vm));
		return;
	}
	if (!starts(q.reply, "{\"error\": \"migrate: ") ||
	    !strstr(q.reply, "the VM runs on"))
		TEST_FAIL("migrate to a vanished destination: %s", q.reply);
	TEST_ASSERT_EQ(__atomic_load_n(&a.vm.pause_req, __ATOMIC_ACQUIRE), 0);
	TEST_ASSERT(!vm_stopping(&a.vm));
	test_audit(a.vm.gmem);
}

static void migrate_command(void)
{
	char sock[PATH_MAX], dst[PATH_MAX], uri[PATH_MAX + 8];
	struct dest d;

	sock_path(sock, sizeof(sock), "ctl");
	sock_path(dst, sizeof(dst), "dst");
	snprintf(uri, sizeof(uri), "unix:%s", dst);
	a.cfg.control_path = sock;
	TEST_ASSERT_EQ(control_open(&a.vm), 0);
	control_start(&a.vm);

	printf("migrate: refusals\n");
	expect_migrate(sock, "tcp:localhost:4444",
		       "{\"error\": \"migrate: the destination is not unix:SOCKET; the VM runs on\"}",
		       "");
	expect_migrate(sock, uri,
		       "{\"error\": \"migrate: cannot connect to the destination: No such file or directory; the VM runs on\"}",
		       "");

	/* Refused at the first IMAGE: the destination's errno comes back. */
	dest_start(&d, dst, -ENOSPC);
	expect_migrate(sock, uri, "{\"error\": \"migrate: ",
		       "No space left on device; the VM runs on\"}");
	TEST_ASSERT_EQ(dest_join(&d), -ENOSPC);

	/* The world stopped, then no vCPU state to gather (no KVM). */
	dest_start(&d, dst, 0);
	expect_migrate(sock, uri, "{\"error\": \"migrate: ",
		       "KVM_GET_REGS");
	TEST_ASSERT(dest_join(&d) != 0);

	busy(sock, dst, uri, false);
	busy(sock, dst, uri, true);

	test_ctl_request(sock, "{\"cmd\": \"migrate\", \"uri\": \"unix:/x\"}\n", uri,
		sizeof(uri));
	TEST_ASSERT(!strcmp(uri, "{\"error\": \"migrate: the VM is stopping\"}\n"));
	control_close(&a.vm);
}

/*
 * Every page written (more than a socket's buffer: a source whose
 * destination refused at the first IMAGE is still sending, and hears
 * the refusal), 64 KiB of it shared.
 */
static void fill(void)
{
	static uint8_t page[4096];
	uint64_t gpa;

	for (gpa = 0; gpa < RAM; gpa += sizeof(page)) {
		memset(page, (int)(gpa >> 12) | 1, sizeof(page));
		TEST_ASSERT_EQ(gmem_access(a.vm.gmem, gpa, page, sizeof(page),
					   true, GMEM_PRIVATE), 0);
	}
	TEST_ASSERT_EQ(gmem_convert(a.vm.gmem, 1 * MiB, 64 << 10, GMEM_SHARED),
		       16);
}

int main(void)
{
	struct fuzz_vm_opts o = { .ram_size = RAM };
	struct mig_track_caps c;
	char sock[PATH_MAX];

	find_gmvm();
	if (mig_track_probe(-1, &c))
		test_skip("no dirty tracker on this host: %s", c.uffd_why);
	TEST_ASSERT(mkdtemp(dir));
	signal(SIGPIPE, SIG_IGN);
	fuzz_vm_init(&a, &o, true);
	fill();
	incoming();
	migrate_command();
	fuzz_vm_destroy(&a);
	snap_machine_free(&mach);
	sock_path(sock, sizeof(sock), "in.err");
	unlink(sock);
	TEST_ASSERT_EQ(rmdir(dir), 0);
	printf("all passed\n");
	return T_EXIT_PASS;
}
