/* SPDX-License-Identifier: MIT */
/*
 * The control socket's server (vmm/control/server.c) with a fake command
 * table on a socket in a temporary directory; no KVM, no VM.
 *
 *  1. the socket: mode 0600 whatever the umask (which is left as it was);
 *     a regular file, a symlink, a live socket are never replaced; a
 *     stale socket is; bad paths are refused with a reason;
 *  2. requests: replies in order, pipelined requests, malformed JSON,
 *     unknown commands, an oversized line (error, dropped up to its
 *     newline, the connection still served), a client that disconnects
 *     mid-line (the half request never runs);
 *  3. clients that must not hold anyone up: one sending a byte at a time,
 *     one connected and silent, one that never reads its replies (its
 *     requests wait, the others are answered), a slow reader of a large
 *     reply (it gets all of it);
 *  4. many clients at once: max_clients served concurrently by threads,
 *     one more told "too many clients", a freed slot served again;
 *  5. peer credentials: another uid is refused with one error line (as
 *     root: a child with uid 65534 on a socket opened to it; otherwise: a
 *     server that owns another uid refuses us);
 *  6. shutdown: ctl_server_close() joins promptly with clients in every
 *     state, they see EOF, the socket file is removed, but not a file that
 *     replaced it.
 *  7. a job (a command that runs on the server's worker thread, as
 *     migrate does): while it runs, every other request of every client,
 *     new ones too, is answered "busy" at once (a malformed one is told
 *     what is wrong) and runs nothing; its own client's pipelined request
 *     waits and is answered after the job's reply, in order; a job whose
 *     client hung up does not stop the server, one whose client sent EOF
 *     still replies to it; closing the server waits for a running job,
 *     still sends its reply, and starts no job pipelined behind it.
 * Threads: the server's, the job's worker and the clients'; the command
 * table's state is the server thread's alone, the job's gate is atomic
 * (TSan subset: //@ concurrency).
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"
#include "../vmm/control/server.h"

#define REPLY_WAIT_MS 5000
#define BIG_REPLY (256 * 1024)

static char dir[64];
static char path[128];

/* ---- the fake commands (server thread only) ----------------------------- */

static unsigned long counter;
static char *big;

static void cmd_count(void *ctx, const struct ctl_json_object *req,
		      struct ctl_reply *r)
{
	char n[32];

	snprintf(n, sizeof(n), "%lu", ++counter);
	ctl_reply_ok(r);
	ctl_reply_raw(r, "count", n, strlen(n));
}

static void cmd_echo(void *ctx, const struct ctl_json_object *req,
		     struct ctl_reply *r)
{
	ctl_reply_ok(r);
	ctl_reply_string(r, "text", ctl_json_get(req, "text")->str);
}

static void cmd_big(void *ctx, const struct ctl_json_object *req,
		    struct ctl_reply *r)
{
	ctl_reply_ok(r);
	ctl_reply_string(r, "data", big);
}

/* The job: holds its worker until the test opens the gate. */
static int hold_started, hold_gate;

static void cmd_hold(void *ctx, const struct ctl_json_object *req,
		     struct ctl_reply *r)
{
	__atomic_add_fetch(&hold_started, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&hold_gate, __ATOMIC_SEQ_CST))
		usleep(1000);
	ctl_reply_ok(r);
	ctl_reply_bool(r, "held", true);
}

static const struct ctl_command cmds[] = {
	{ "count", { { NULL } }, cmd_count },
	{ "echo", { { "text", CTL_JSON_STRING, true } }, cmd_echo },
	{ "big", { { NULL } }, cmd_big },
	{ "hold", { { NULL } }, cmd_hold, true },
};

static struct ctl_server *start_server(uid_t owner, unsigned int max)
{
	struct ctl_server_config cfg = {
		.path = path,
		.cmds = cmds,
		.nr_cmds = sizeof(cmds) / sizeof(cmds[0]),
		.owner = owner,
		.max_clients = max,
	};
	struct ctl_server *s;
	char why[256];

	/* Before the thread exists: its commands own the counter after. */
	counter = 0;
	if (ctl_server_open(&cfg, &s, why, sizeof(why)))
		TEST_FAIL("ctl_server_open(%s): %s", path, why);
	TEST_ASSERT_EQ(ctl_server_start(s), 0);
	return s;
}

/* ---- a client ----------------------------------------------------------- */

struct conn {
	int fd;
	size_t len;
	char buf[BIG_REPLY + 4096];
	char line[BIG_REPLY + 4096];
};

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int connect_to(const char *p)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	TEST_ASSERT(fd >= 0 && strlen(p) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, p, strlen(p));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -errno;
	}
	return fd;
}

static struct conn *conn_open(void)
{
	struct conn *c = calloc(1, sizeof(*c));

	TEST_ASSERT(c);
	c->fd = connect_to(path);
	if (c->fd < 0)
		TEST_FAIL("connect %s: %s", path, strerror(-c->fd));
	return c;
}

static void conn_close(struct conn *c)
{
	close(c->fd);
	free(c);
}

static void conn_send(struct conn *c, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			TEST_FAIL("send: %s", strerror(errno));
		s += w;
		n -= (size_t)w;
	}
}

static void conn_puts(struct conn *c, const char *s)
{
	conn_send(c, s, strlen(s));
}

/*
 * The next line (without its newline) within @ms, or NULL at EOF (or a
 * reset, which is how a peer closing with unread input ends).
 */
static char *conn_line_within(struct conn *c, int ms)
{
	char *line = c->line;
	uint64_t deadline = ms_now() + (uint64_t)ms;

	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		ssize_t n;
		int left;

		if (nl) {
			size_t ll = (size_t)(nl - c->buf);

			memcpy(line, c->buf, ll);
			line[ll] = '\0';
			c->len -= ll + 1;
			memmove(c->buf, nl + 1, c->len);
			return line;
		}
		left = (int)(deadline - ms_now());
		if ((int64_t)(deadline - ms_now()) <= 0 || !poll(&p, 1, left))
			TEST_FAIL("no reply line within %d ms (have %zu bytes)",
				  ms, c->len);
		TEST_ASSERT(c->len < sizeof(c->buf));
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			TEST_ASSERT_EQ(c->len, 0);
			return NULL;
		}
		if (n < 0)
			TEST_FAIL("recv: %s", strerror(errno));
		c->len += (size_t)n;
	}
}

static char *conn_line(struct conn *c)
{
	char *l = conn_line_within(c, REPLY_WAIT_MS);

	if (!l)
		TEST_FAIL("EOF where a reply was due");
	return l;
}

static void expect_line(struct conn *c, const char *want)
{
	char *l = conn_line(c);

	if (strcmp(l, want))
		TEST_FAIL("reply '%s', want '%s'", l, want);
}

static void expect_prefix(struct conn *c, const char *want)
{
	char *l = conn_line(c);

	if (strncmp(l, want, strlen(want)))
		TEST_FAIL("reply '%.200s', want '%s...'", l, want);
}

static void expect_eof(struct conn *c)
{
	char *l = conn_line_within(c, REPLY_WAIT_MS);

	if (l)
		TEST_FAIL("'%s' where EOF was due", l);
}

static unsigned long count_now(struct conn *c)
{
	char *l;

	conn_puts(c, "{\"cmd\": \"count\"}\n");
	l = conn_line(c);
	if (strncmp(l, "{\"ok\": true, \"count\": ", 22))
		TEST_FAIL("count: %s", l);
	return strtoul(l + 22, NULL, 10);
}

/* ---- 1. the socket file ------------------------------------------------- */

static void expect_open_fails(const char *p, const char *reason)
{
	struct ctl_server_config cfg = {
		.path = p, .cmds = cmds, .nr_cmds = 1, .owner = getuid(),
	};
	struct ctl_server *s = (void *)1;
	char why[256];

	if (!ctl_server_open(&cfg, &s, why, sizeof(why)))
		TEST_FAIL("opened %s, expected: %s", p, reason);
	TEST_ASSERT(s == NULL);
	if (!strstr(why, reason))
		TEST_FAIL("%s: '%s' lacks '%s'", p, why, reason);
}

static void test_socket_file(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char other[160], longp[200];
	struct ctl_server *s;
	struct stat st;
	mode_t old;
	int fd;

	/* A permissive umask does not make the socket readable by others,
	 * and stays the process's umask. */
	old = umask(0);
	s = start_server(getuid(), 0);
	TEST_ASSERT_EQ(umask(old), 0);
	TEST_ASSERT_EQ(lstat(path, &st), 0);
	TEST_ASSERT(S_ISSOCK(st.st_mode));
	TEST_ASSERT_EQ(st.st_mode & 07777, 0600);
	TEST_ASSERT_EQ(st.st_uid, geteuid());

	/* Someone listens there: refused, and left alone. */
	expect_open_fails(path, "another process is listening");
	ctl_server_close(s);
	TEST_ASSERT(lstat(path, &st) && errno == ENOENT);

	/* A regular file, a symlink (even to nothing), a directory. */
	snprintf(other, sizeof(other), "%s/file", dir);
	fd = open(other, O_CREAT | O_WRONLY, 0644);
	TEST_ASSERT(fd >= 0);
	TEST_ASSERT_EQ(write(fd, "keep", 4), 4);
	close(fd);
	expect_open_fails(other, "exists and is not a socket; refusing to replace it");
	TEST_ASSERT(!lstat(other, &st) && S_ISREG(st.st_mode) && st.st_size == 4);
	unlink(other);
	TEST_ASSERT_EQ(symlink("/nonexistent/target", other), 0);
	expect_open_fails(other, "exists and is not a socket");
	TEST_ASSERT(!lstat(other, &st) && S_ISLNK(st.st_mode));
	unlink(other);
	expect_open_fails(dir, "exists and is not a socket");

	/* A stale socket (bound, nobody listening) is replaced. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memcpy(sa.sun_path, path, strlen(path));
	TEST_ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	TEST_ASSERT(!lstat(path, &st) && S_ISSOCK(st.st_mode));
	s = start_server(getuid(), 0);
	{
		struct conn *c = conn_open();

		TEST_ASSERT_EQ(count_now(c), 1);
		conn_close(c);
	}
	ctl_server_close(s);

	/* Paths that cannot be. */
	expect_open_fails("", "the socket path is empty");
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	expect_open_fails(longp, "too long for a unix socket path");
	snprintf(other, sizeof(other), "%s/no/such/dir/sock", dir);
	expect_open_fails(other, "bind: No such file or directory");

	/* At close, a file that replaced the socket is not removed. */
	s = start_server(getuid(), 0);
	TEST_ASSERT_EQ(unlink(path), 0);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	TEST_ASSERT(fd >= 0);
	close(fd);
	ctl_server_close(s);
	TEST_ASSERT(!lstat(path, &st) && S_ISREG(st.st_mode));
	unlink(path);
}

/* ---- 2. requests -------------------------------------------------------- */

static void test_requests(void)
{
	struct ctl_server *s = start_server(getuid(), 0);
	struct conn *c = conn_open(), *d;
	unsigned long n;
	char *line;

	TEST_ASSERT_EQ(count_now(c), 1);
	/* Pipelined in one write: answered in order. */
	conn_puts(c, "{\"cmd\":\"count\"}\n{\"cmd\":\"echo\",\"text\":\"x\\ty\"}\r\n{\"cmd\":\"count\"}\n");
	expect_line(c, "{\"ok\": true, \"count\": 2}");
	expect_line(c, "{\"ok\": true, \"text\": \"x\\ty\"}");
	expect_line(c, "{\"ok\": true, \"count\": 3}");

	/* Malformed, unknown, empty: an error each, the connection goes on. */
	conn_puts(c, "{\"cmd\": \"count\",}\n");
	expect_prefix(c, "{\"error\": \"malformed request: at byte 17:");
	conn_puts(c, "{\"cmd\": \"frob\"}\n");
	expect_line(c, "{\"error\": \"unknown command 'frob' (commands: count, echo, big, hold)\"}");
	conn_puts(c, "\n");
	expect_prefix(c, "{\"error\": \"malformed request: empty request");
	conn_puts(c, "{\"cmd\": \"echo\"}\n");
	expect_line(c, "{\"error\": \"echo: 'text' (a string) is required\"}");
	conn_send(c, "{\"cmd\":\0\"count\"}\n", 17);
	expect_prefix(c, "{\"error\": \"malformed request: at byte 8: member 'cmd': byte 0x00 does not start");
	TEST_ASSERT_EQ(count_now(c), 4);

	/* Oversized: one error, the rest of the line dropped, then served. */
	line = malloc(3 * CTL_MAX_LINE);
	TEST_ASSERT(line);
	memset(line, '{', 3 * CTL_MAX_LINE);
	conn_send(c, line, CTL_MAX_LINE);
	expect_line(c, "{\"error\": \"request too long: no newline within 4096 bytes (the line is dropped up to its newline)\"}");
	/* ... however long it goes on, and whatever it holds. */
	conn_send(c, line, 2 * CTL_MAX_LINE);
	conn_puts(c, "{\"cmd\":\"count\"}\n{\"cmd\":\"count\"}\n{\"cmd\":\"count\"}\n");
	expect_line(c, "{\"ok\": true, \"count\": 5}");
	expect_line(c, "{\"ok\": true, \"count\": 6}");
	/* The longest line that fits is a request. */
	memset(line, ' ', CTL_MAX_LINE);
	memcpy(line, "{\"cmd\":\"count\"}", 15);
	line[CTL_MAX_LINE - 1] = '\n';
	conn_send(c, line, CTL_MAX_LINE);
	expect_line(c, "{\"ok\": true, \"count\": 7}");
	free(line);

	/* A client gone mid-line: its half request never runs. */
	d = conn_open();
	conn_puts(d, "{\"cmd\": \"cou");
	n = count_now(c);
	conn_close(d);
	usleep(50000);
	TEST_ASSERT_EQ(count_now(c), n + 1);
	/* One gone after a whole request but before its reply: no harm. */
	d = conn_open();
	conn_puts(d, "{\"cmd\": \"big\"}\n");
	conn_close(d);
	TEST_ASSERT(count_now(c) >= n + 2);

	conn_close(c);
	ctl_server_close(s);
}

/* ---- 3. clients that must not hold anyone up ---------------------------- */

struct dribbler {
	pthread_t t;
	int delay_us;
	bool ok;
};

/* Sends a request a byte at a time, then reads its reply. */
static void *dribble(void *arg)
{
	struct dribbler *d = arg;
	const char *req = "{\"cmd\": \"echo\", \"text\": \"slowly\"}\n";
	struct conn *c = conn_open();
	size_t i;

	for (i = 0; req[i]; i++) {
		conn_send(c, req + i, 1);
		usleep((useconds_t)d->delay_us);
	}
	d->ok = !strcmp(conn_line(c), "{\"ok\": true, \"text\": \"slowly\"}");
	conn_close(c);
	return NULL;
}

static void test_slow_clients(void)
{
	struct ctl_server *s = start_server(getuid(), 0);
	struct conn *silent = conn_open(), *c = conn_open(), *hog, *slow;
	struct dribbler d = { .delay_us = 5000 };
	uint64_t t0, worst = 0;
	char req[64], *l;
	unsigned long first, i, n;
	size_t sent = 0, got = 0;
	int k, fl;

	/* A byte at a time (~180 ms) while another client is answered. */
	TEST_ASSERT_EQ(pthread_create(&d.t, NULL, dribble, &d), 0);
	for (k = 0; k < 40; k++) {
		t0 = ms_now();
		count_now(c);
		if (ms_now() - t0 > worst)
			worst = ms_now() - t0;
		usleep(5000);
	}
	pthread_join(d.t, NULL);
	TEST_ASSERT(d.ok);
	/* Each reply comes at once; 2 s allows for a loaded machine. */
	if (worst > 2000)
		TEST_FAIL("a reply took %llu ms beside a dribbling client",
			  (unsigned long long)worst);

	/* A client that never reads: its requests wait, others do not. */
	hog = conn_open();
	fl = fcntl(hog->fd, F_GETFL);
	TEST_ASSERT_EQ(fcntl(hog->fd, F_SETFL, fl | O_NONBLOCK), 0);
	first = count_now(c) + 1;
	snprintf(req, sizeof(req), "{\"cmd\": \"count\"}\n");
	/* Until the server stops reading it: its replies fill its socket,
	 * so the requests fill the hog's, and stay unwritable. */
	for (n = 0; n < 1000000; n++) {
		struct pollfd p = { .fd = hog->fd, .events = POLLOUT };
		ssize_t w = send(hog->fd, req, strlen(req), MSG_NOSIGNAL);

		if (w < 0 && errno == EAGAIN) {
			if (!poll(&p, 1, 300))
				break;
			continue;
		}
		TEST_ASSERT_EQ(w, (ssize_t)strlen(req));
		sent++;
	}
	TEST_ASSERT(n < 1000000);
	TEST_ASSERT_EQ(fcntl(hog->fd, F_SETFL, fl), 0);
	/* Served meanwhile; the hog's requests ran only as far as its
	 * unread replies let them (else its socket would have drained). */
	t0 = ms_now();
	n = count_now(c);
	TEST_ASSERT(ms_now() - t0 < 2000);
	TEST_ASSERT(n > first && n - first < sent);
	/* Now the hog reads: every reply, in order, none lost. */
	for (i = 0, k = 0; got < sent; got++) {
		unsigned long v;

		l = conn_line(hog);
		TEST_ASSERT(!strncmp(l, "{\"ok\": true, \"count\": ", 22));
		v = strtoul(l + 22, NULL, 10);
		TEST_ASSERT(v > i);	/* increasing (c's counts interleave) */
		i = v;
	}
	conn_close(hog);

	/* A large reply to a slow reader arrives whole. */
	slow = conn_open();
	conn_puts(slow, "{\"cmd\": \"big\"}\n");
	usleep(100000);
	TEST_ASSERT_EQ(count_now(c), i + 1);
	l = conn_line(slow);
	TEST_ASSERT_EQ(strlen(l), strlen("{\"ok\": true, \"data\": \"\"}") +
				  BIG_REPLY);
	TEST_ASSERT(!strncmp(l + 22, big, BIG_REPLY));
	conn_close(slow);

	/* The silent client held its connection through all of it. */
	conn_puts(silent, "{\"cmd\": \"echo\", \"text\": \"still here\"}\n");
	expect_line(silent, "{\"ok\": true, \"text\": \"still here\"}");
	conn_close(silent);
	conn_close(c);
	ctl_server_close(s);
}

/* ---- 4. many clients ---------------------------------------------------- */

#define MANY 8
#define ROUNDS 200

struct worker {
	pthread_t t;
	struct conn *c;
	int id;
	bool ok;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	char req[96], want[96];
	int i;

	for (i = 0; i < ROUNDS; i++) {
		snprintf(req, sizeof(req),
			 "{\"cmd\": \"echo\", \"text\": \"%d.%d\"}\n", w->id, i);
		snprintf(want, sizeof(want),
			 "{\"ok\": true, \"text\": \"%d.%d\"}", w->id, i);
		conn_puts(w->c, req);
		if (strcmp(conn_line(w->c), want))
			return NULL;
	}
	w->ok = true;
	return NULL;
}

static void test_many_clients(void)
{
	struct ctl_server *s = start_server(getuid(), MANY);
	struct worker w[MANY];
	struct conn *extra, *again;
	uint64_t t0;
	int i;

	for (i = 0; i < MANY; i++) {
		w[i].c = conn_open();
		w[i].id = i;
		w[i].ok = false;
	}
	/* Every slot is taken (make sure the server has seen them all). */
	for (i = 0; i < MANY; i++) {
		conn_puts(w[i].c, "{\"cmd\": \"echo\", \"text\": \"hi\"}\n");
		expect_line(w[i].c, "{\"ok\": true, \"text\": \"hi\"}");
	}
	extra = conn_open();
	expect_line(extra, "{\"error\": \"too many clients: this control socket serves at most 8 at once\"}");
	expect_eof(extra);
	conn_close(extra);

	for (i = 0; i < MANY; i++)
		TEST_ASSERT_EQ(pthread_create(&w[i].t, NULL, work, &w[i]), 0);
	for (i = 0; i < MANY; i++) {
		pthread_join(w[i].t, NULL);
		if (!w[i].ok)
			TEST_FAIL("client %d got a wrong reply", i);
	}

	/* A slot freed is served again (once the server saw the close). */
	conn_close(w[0].c);
	t0 = ms_now();
	for (;;) {
		char *l;

		again = conn_open();
		conn_puts(again, "{\"cmd\": \"echo\", \"text\": \"in\"}\n");
		l = conn_line_within(again, REPLY_WAIT_MS);
		if (l && !strcmp(l, "{\"ok\": true, \"text\": \"in\"}"))
			break;
		TEST_ASSERT(l && strstr(l, "too many clients"));
		conn_close(again);
		TEST_ASSERT(ms_now() - t0 < 5000);
		usleep(10000);
	}
	conn_close(again);
	for (i = 1; i < MANY; i++)
		conn_close(w[i].c);
	ctl_server_close(s);
}

/* ---- 5. peer credentials ------------------------------------------------ */

static void test_other_uid(void)
{
	const char *want = "{\"error\": \"permission denied: uid 65534 may not use this control socket (only its owner and root may)\"}";
	struct ctl_server *s;
	struct conn *c;
	pid_t pid;
	int st;

	if (geteuid() != 0) {
		/* A server owned by someone else refuses us. */
		char w[256];

		s = start_server(getuid() + 1, 0);
		c = conn_open();
		snprintf(w, sizeof(w), "{\"error\": \"permission denied: uid %u may not use this control socket (only its owner and root may)\"}",
			 (unsigned int)getuid());
		expect_line(c, w);
		expect_eof(c);
		conn_close(c);
		ctl_server_close(s);
		return;
	}
	/* As root: open the socket (and its directory) to everyone, so that
	 * only the credential check stands in the way of uid 65534. */
	s = start_server(0, 0);
	TEST_ASSERT_EQ(chmod(dir, 0755), 0);
	TEST_ASSERT_EQ(chmod(path, 0666), 0);
	fflush(stdout);
	pid = fork();
	TEST_ASSERT(pid >= 0);
	if (pid == 0) {
		if (setgid(65534) || setuid(65534))
			_exit(3);
		c = conn_open();
		/* The request may meet a closed socket: the line came first. */
		if (send(c->fd, "{\"cmd\": \"count\"}\n", 17, MSG_NOSIGNAL) < 0 &&
		    errno != EPIPE && errno != ECONNRESET)
			_exit(4);
		expect_line(c, want);
		expect_eof(c);
		_exit(0);
	}
	TEST_ASSERT_EQ(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		TEST_FAIL("the uid 65534 client failed (status %#x)", st);
	/* Root itself is served, and nothing the refused peer sent ran. */
	c = conn_open();
	TEST_ASSERT_EQ(count_now(c), 1);
	conn_close(c);
	ctl_server_close(s);
	TEST_ASSERT_EQ(chmod(dir, 0700), 0);
}

/* ---- 6. shutdown -------------------------------------------------------- */

static void test_shutdown(void)
{
	struct ctl_server *s = start_server(getuid(), 0);
	struct conn *silent = conn_open(), *half = conn_open(),
		    *unread = conn_open(), *idle = conn_open();
	struct stat st;
	uint64_t t0;

	conn_puts(half, "{\"cmd\": ");
	conn_puts(unread, "{\"cmd\": \"big\"}\n{\"cmd\": \"big\"}\n");
	TEST_ASSERT(count_now(idle) > 0);
	usleep(50000);
	t0 = ms_now();
	ctl_server_close(s);
	if (ms_now() - t0 > 2000)
		TEST_FAIL("ctl_server_close took %llu ms",
			  (unsigned long long)(ms_now() - t0));
	TEST_ASSERT(lstat(path, &st) && errno == ENOENT);
	expect_eof(silent);
	expect_eof(half);
	expect_eof(idle);
	/* What was sent of the reply may arrive; then the end. */
	for (;;) {
		char buf[65536];
		ssize_t n = recv(unread->fd, buf, sizeof(buf), 0);

		if (n <= 0)
			break;
	}
	TEST_ASSERT_EQ(connect_to(path), -ENOENT);
	conn_close(silent);
	conn_close(half);
	conn_close(unread);
	conn_close(idle);
}

/* ---- 7. a job ----------------------------------------------------------- */

#define BUSY "{\"error\": \"busy: hold is running (commands run one at a time); "

static void hold_reset(void)
{
	__atomic_store_n(&hold_started, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&hold_gate, 0, __ATOMIC_SEQ_CST);
}

static void wait_hold_started(int n)
{
	uint64_t t0 = ms_now();

	while (__atomic_load_n(&hold_started, __ATOMIC_SEQ_CST) < n) {
		if (ms_now() - t0 > REPLY_WAIT_MS)
			TEST_FAIL("the job did not start within %d ms",
				  REPLY_WAIT_MS);
		usleep(1000);
	}
}

/* Nothing from @c for @ms: no line buffered, none arriving. */
static void expect_nothing(struct conn *c, int ms)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };

	TEST_ASSERT(!memchr(c->buf, '\n', c->len));
	if (poll(&p, 1, ms) != 0)
		TEST_FAIL("a reply (or EOF) came where none was due");
}

static void *open_gate_later(void *arg)
{
	usleep(100000);
	__atomic_store_n(&hold_gate, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void test_job(void)
{
	struct ctl_server *s;
	struct conn *a, *b, *c, *d;
	pthread_t th;
	char *l;

	hold_reset();
	s = start_server(getuid(), 0);
	a = conn_open();
	b = conn_open();
	/* A's job, and a request pipelined behind it. */
	conn_puts(a, "{\"cmd\": \"hold\"}\n{\"cmd\": \"count\"}\n");
	wait_hold_started(1);
	/* Everyone else is answered at once, and nothing runs. */
	conn_puts(b, "{\"cmd\": \"count\"}\n");
	expect_prefix(b, BUSY "count was not run");
	conn_puts(b, "{\"cmd\": \"hold\"}\n");
	expect_prefix(b, BUSY "hold was not run");
	conn_puts(b, "{\"cmd\": \"echo\"}\n");
	expect_prefix(b, "{\"error\": \"echo: 'text' (a string) is required");
	conn_puts(b, "{\"cmd\"\n");
	expect_prefix(b, "{\"error\": \"malformed request");
	c = conn_open();	/* accepted while the job runs */
	conn_puts(c, "{\"cmd\": \"big\"}\n");
	expect_prefix(c, BUSY "big was not run");
	expect_nothing(a, 100);
	TEST_ASSERT_EQ(__atomic_load_n(&hold_started, __ATOMIC_SEQ_CST), 1);
	/* The job replies, then A's next request runs: the first count. */
	__atomic_store_n(&hold_gate, 1, __ATOMIC_SEQ_CST);
	expect_line(a, "{\"ok\": true, \"held\": true}");
	expect_line(a, "{\"ok\": true, \"count\": 1}");
	TEST_ASSERT_EQ(count_now(b), 2);
	TEST_ASSERT_EQ(count_now(c), 3);

	/* A job whose client hangs up: the server carries on. */
	hold_reset();
	d = conn_open();
	conn_puts(d, "{\"cmd\": \"hold\"}\n");
	wait_hold_started(1);
	conn_close(d);
	conn_puts(b, "{\"cmd\": \"count\"}\n");
	expect_prefix(b, BUSY);
	__atomic_store_n(&hold_gate, 1, __ATOMIC_SEQ_CST);
	/* Once its reply went nowhere, the next job can run. */
	for (;;) {
		conn_puts(b, "{\"cmd\": \"count\"}\n");
		l = conn_line(b);
		if (!strncmp(l, "{\"ok\": true, \"count\": 4}", 26))
			break;
		if (strncmp(l, BUSY, strlen(BUSY)))
			TEST_FAIL("count: %s", l);
		usleep(1000);
	}

	/* A client that sends its job and then EOF still gets the reply
	 * (its slot is not freed while the job runs). */
	hold_reset();
	d = conn_open();
	conn_puts(d, "{\"cmd\": \"hold\"}\n");
	TEST_ASSERT_EQ(shutdown(d->fd, SHUT_WR), 0);
	wait_hold_started(1);
	usleep(50000);
	conn_close(conn_open());	/* would take a freed slot */
	__atomic_store_n(&hold_gate, 1, __ATOMIC_SEQ_CST);
	expect_line(d, "{\"ok\": true, \"held\": true}");
	expect_eof(d);
	conn_close(d);

	/* Closing the server while a job runs: it waits, the reply goes
	 * out, then EOF; a job pipelined behind it never starts. */
	hold_reset();
	conn_puts(a, "{\"cmd\": \"hold\"}\n{\"cmd\": \"hold\"}\n");
	wait_hold_started(1);
	TEST_ASSERT_EQ(pthread_create(&th, NULL, open_gate_later, NULL), 0);
	ctl_server_close(s);
	TEST_ASSERT_EQ(pthread_join(th, NULL), 0);
	expect_line(a, "{\"ok\": true, \"held\": true}");
	expect_eof(a);
	TEST_ASSERT_EQ(__atomic_load_n(&hold_started, __ATOMIC_SEQ_CST), 1);
	expect_eof(b);
	conn_close(a);
	conn_close(b);
	conn_close(c);
}

static pid_t main_pid;

static void cleanup(void)
{
	if (getpid() != main_pid)
		return;		/* a forked client failing */
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_control.XXXXXX");
	if (!mkdtemp(dir))
		TEST_FAIL("mkdtemp: %s", strerror(errno));
	main_pid = getpid();
	atexit(cleanup);
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	big = malloc(BIG_REPLY + 1);
	TEST_ASSERT(big);
	memset(big, 'z', BIG_REPLY);
	big[BIG_REPLY] = '\0';

	test_socket_file();
	printf("socket file: mode 0600, never replaces what is not a stale socket\n");
	test_requests();
	printf("requests: in order, malformed, unknown, oversized, cut short\n");
	test_slow_clients();
	printf("slow clients: a dribbler, a silent one, one that does not read, a slow reader\n");
	test_many_clients();
	printf("many clients: %d at once, one too many refused, a freed slot served\n",
	       MANY);
	test_other_uid();
	printf("peer credentials: another uid refused with one line\n");
	test_shutdown();
	printf("shutdown: joins at once, clients see EOF, the socket is gone\n");
	test_job();
	printf("a job: others told busy at once, its client's next request after its reply, closing waits for it\n");
	free(big);
	return 0;
}
