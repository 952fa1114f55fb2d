/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the DMA device process (`gmvm dma-device`, vmm/devices/
 * dma_process.c) with the messages gmvm would send it: the device is a
 * separate trust domain and must answer anything with an ack, never crash
 * or touch memory outside its reservation.
 *
 * Each input is a sequence of messages (see decode()): well-formed ones
 * with sane page-granular fields, raw ones with any bits, wrong lengths,
 * and any number of fds (the memfd standing for the shared backing, a
 * pipe, too many).  They are queued on a SEQPACKET socketpair whose other
 * end is fd 3 (DMADEV_FD), the write side is shut, and dma_process_main() runs
 * here, in this process, until the queue is drained or BYE.
 *
 * Then every ack is checked against a model: type and seq echoed, the
 * error the protocol (dma_protocol.h) prescribes, DMA STATUS from the model's
 * mapped pages and pins, CHECKSUM from a shadow of the memfd that FILLs
 * are applied to, and at the end the memfd itself must equal the shadow
 * (so the device maps IOVA x at file offset x, and writes nothing else).
 * The device must leave no fd behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_vm.h"
#include "devices/devices.h"
#include "devices/dma_protocol.h"
#include "devices/swiommu.h"

#define MAX_MSGS 40		/* acks must fit the socket buffer */
#define PAGE 4096ULL
#define MAX_MEMFD (4ULL << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int null_fd;
static uint8_t *shadow, *real;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int fd;

	/* Hold DMADEV_FD so that nothing else gets it between inputs. */
	if (fcntl(DMADEV_FD, F_GETFD) >= 0)
		fuzz_fail("fd %d is taken: the device needs it", DMADEV_FD);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	FUZZ_ASSERT(fd == DMADEV_FD);	/* the lowest free one: held */
	null_fd = fcntl(fd, F_DUPFD_CLOEXEC, DMADEV_FD + 1);
	FUZZ_ASSERT(null_fd > DMADEV_FD);
	shadow = malloc(MAX_MEMFD);
	real = malloc(MAX_MEMFD);
	FUZZ_ASSERT(shadow && real);
	return 0;
}

/* Open fds of this process (the device must not leave any behind). */
static unsigned int count_fds(void)
{
	unsigned int n = 0;
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");

	FUZZ_ASSERT(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

struct sent {
	struct dmadev_msg m;
	size_t len;		/* bytes sent */
	unsigned int nr_fds;
	bool memfd;		/* the first fd is the memfd */
	bool pipe;		/* ... or a pipe */
};

struct model {
	uint64_t memfd_size;
	uint64_t offset;	/* HELLO's file offset of IOVA 0 */
	bool hello;
	uint64_t ram;
	uint8_t *mapped;	/* per page of ram, when ram <= MAX_MEMFD */
	struct { uint64_t a, len; } pins[SWIOMMU_MAX_PINS];
	unsigned int nr_pins;
};

/* Every page touched by [a, a + len) mapped (len > 0, inside ram). */
static bool model_mapped(const struct model *md, uint64_t a, uint64_t len)
{
	uint64_t p;

	for (p = a / PAGE; p < (a + len + PAGE - 1) / PAGE; p++)
		if (!md->mapped[p])
			return false;
	return true;
}

static void model_set(struct model *md, uint64_t a, uint64_t len, bool v)
{
	memset(md->mapped + a / PAGE, v, len / PAGE);
}

static bool model_pinned(const struct model *md, uint64_t a, uint64_t len)
{
	unsigned int k;

	for (k = 0; k < md->nr_pins; k++) {
		uint64_t s = md->pins[k].a & ~(PAGE - 1);
		uint64_t e = (md->pins[k].a + md->pins[k].len + PAGE - 1) &
			     ~(PAGE - 1);

		if (s < a + len && e > a)
			return true;
	}
	return false;
}

/* A field in pages of the memfd (sane mode) or any 64 bits (raw). */
static uint64_t field(struct fuzz_in *in, bool raw, uint64_t pages)
{
	return raw ? fuzz_u64(in) : (fuzz_u16(in) % (pages + 2)) * PAGE;
}

/*
 * One message: ctl = type (bits 0-3), fds (bits 4-5: none, the memfd,
 * a pipe, six fds), raw fields (bit 6), a wrong length (bit 7).
 */
static void decode(struct fuzz_in *in, uint64_t pages, uint64_t *seq,
		   struct sent *s)
{
	uint8_t ctl = fuzz_u8(in);
	bool raw = ctl & 0x40;
	struct dmadev_msg *m = &s->m;

	memset(s, 0, sizeof(*s));
	m->type = ctl & 0xf;
	m->seq = raw ? fuzz_u64(in) : ++*seq;
	s->len = ctl & 0x80 ? fuzz_u8(in) : sizeof(*m);
	switch ((ctl >> 4) & 3) {
	case 1: s->nr_fds = 1; s->memfd = true; break;
	case 2: s->nr_fds = 1; s->pipe = true; break;
	case 3: s->nr_fds = 6; break;
	default: break;
	}
	if (raw) {
		m->flags = fuzz_u32(in);
		m->a = fuzz_u64(in);
		m->b = fuzz_u64(in);
		m->c = fuzz_u64(in);
		m->d = fuzz_u64(in);
		return;
	}
	m->flags = fuzz_u8(in);
	switch (m->type) {
	case DMADEV_HELLO:
		m->a = m->flags & 1 ? pages * PAGE : field(in, false, pages);
		m->flags = 0;
		break;
	case DMADEV_DMA:
		m->flags %= 6;
		m->a = field(in, false, pages) + fuzz_u16(in) % PAGE;
		m->b = (uint64_t)fuzz_u16(in) * 16;
		m->c = fuzz_u16(in) % 0x110;
		break;
	default:
		m->flags &= 3;	/* GMEM_DISCARD_FORCED, and one bad bit */
		m->a = field(in, false, pages);
		m->b = field(in, false, pages);
		m->c = field(in, false, pages);
		m->d = field(in, false, pages);
		break;
	}
}

static bool send_one(int sock, const struct sent *s, int memfd, int pipefd)
{
	union {
		char buf[CMSG_SPACE(6 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	uint8_t buf[256] = { 0 };
	struct iovec iov = { .iov_base = buf, .iov_len = s->len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[6], k;

	memcpy(buf, &s->m, sizeof(s->m));
	if (s->nr_fds) {
		struct cmsghdr *cm;

		for (k = 0; k < (int)s->nr_fds; k++)
			fds[k] = null_fd;
		fds[0] = s->memfd ? memfd : s->pipe ? pipefd : null_fd;
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(s->nr_fds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(s->nr_fds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, s->nr_fds * sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) ==
	       (ssize_t)s->len;
}

static void check_mapping_op(struct model *md, const struct dmadev_msg *m,
			     int err)
{
	bool forced = m->flags & GMEM_DISCARD_FORCED;
	bool model = md->mapped != NULL;
	uint64_t p;

	if (err && err != -EINVAL && err != -EAGAIN)
		fuzz_fail("mapping op %u: err %d", m->type, err);
	if (m->flags & ~GMEM_DISCARD_FORCED)
		FUZZ_ASSERT(err == -EINVAL);
	if (err == -EAGAIN) {
		/* Only a discard refuses, and only over a pin. */
		FUZZ_ASSERT(!forced && (m->type == DMADEV_UNMAP ||
					m->type == DMADEV_CUT));
		if (model)
			FUZZ_ASSERT(m->type == DMADEV_UNMAP ?
				    model_pinned(md, m->a, m->b) :
				    model_pinned(md, m->c, m->d));
		return;
	}
	if (err || !model)
		return;
	switch (m->type) {
	case DMADEV_MAP:
		for (p = m->a / PAGE; p < (m->a + m->b) / PAGE; p++)
			FUZZ_ASSERT(!md->mapped[p]);
		model_set(md, m->a, m->b, true);
		break;
	case DMADEV_UNMAP:
		FUZZ_ASSERT(model_mapped(md, m->a, m->b));
		model_set(md, m->a, m->b, false);
		break;
	case DMADEV_CUT:
		FUZZ_ASSERT(model_mapped(md, m->a, m->b));
		FUZZ_ASSERT(m->c >= m->a && m->c + m->d <= m->a + m->b);
		model_set(md, m->c, m->d, false);
		break;
	default:
		FUZZ_ASSERT(model_mapped(md, m->a, m->b));
		break;
	}
}

static void check_dma(struct model *md, const struct dmadev_msg *m,
		      const struct dmadev_ack *ack)
{
	uint64_t addr = m->a, len = m->b, i;
	uint32_t cmd = m->flags, sum = 0;
	uint64_t want;
	unsigned int k;

	FUZZ_ASSERT(ack->err == 0);
	if (cmd < GM_DMA_CMD_FILL || cmd > GM_DMA_CMD_UNPIN || !len ||
	    len > GM_DMA_MAX_LEN || addr >= md->ram ||
	    len > md->ram - addr || m->c > 0xff) {
		FUZZ_ASSERT(ack->v0 == GM_DMA_BAD);
		return;
	}
	FUZZ_ASSERT(ack->v0 <= GM_DMA_BAD && ack->v1 <= UINT32_MAX);
	if (!md->mapped)
		return;
	switch (cmd) {
	case GM_DMA_CMD_FILL:
	case GM_DMA_CMD_CHECKSUM:
		want = model_mapped(md, addr, len) ? GM_DMA_OK : GM_DMA_FAULT;
		if (ack->v0 != want)
			fuzz_fail("DMA cmd %u [%#llx, +%#llx): status %llu, the model says %llu",
				  cmd, (unsigned long long)addr,
				  (unsigned long long)len,
				  (unsigned long long)ack->v0,
				  (unsigned long long)want);
		if (want != GM_DMA_OK)
			return;
		if (cmd == GM_DMA_CMD_FILL) {
			memset(shadow + md->offset + addr, (int)m->c, len);
			return;
		}
		for (i = 0; i < len; i++)
			sum += shadow[md->offset + addr + i];
		if (ack->v1 != sum)
			fuzz_fail("CHECKSUM [%#llx, +%#llx) = %#llx, the shadow says %#x",
				  (unsigned long long)addr,
				  (unsigned long long)len,
				  (unsigned long long)ack->v1, sum);
		return;
	case GM_DMA_CMD_PIN:
		want = !model_mapped(md, addr, len) ? GM_DMA_FAULT :
		       md->nr_pins == SWIOMMU_MAX_PINS ? GM_DMA_BAD : GM_DMA_OK;
		FUZZ_ASSERT(ack->v0 == want);
		if (want == GM_DMA_OK) {
			md->pins[md->nr_pins].a = addr;
			md->pins[md->nr_pins].len = len;
			md->nr_pins++;
		}
		return;
	default:
		want = GM_DMA_BAD;
		for (k = 0; k < md->nr_pins; k++) {
			if (md->pins[k].a == addr && md->pins[k].len == len) {
				md->pins[k] = md->pins[--md->nr_pins];
				want = GM_DMA_OK;
				break;
			}
		}
		FUZZ_ASSERT(ack->v0 == want);
		return;
	}
}

/* Check one ack; false once the device has stopped (after BYE). */
static bool check_ack(struct model *md, const struct sent *s,
		      const struct dmadev_ack *ack)
{
	const struct dmadev_msg *m = &s->m;
	bool fds_ok = !s->nr_fds;

	if (s->len != sizeof(*m) || s->nr_fds > 4) {
		FUZZ_ASSERT(ack->type == 0 && ack->seq == 0 &&
			    ack->err == -EBADMSG);
		return true;
	}
	if (ack->type != m->type || ack->seq != m->seq)
		fuzz_fail("message type %u seq %#llx (%zu bytes, %u fds): ack type %u seq %#llx err %d",
			  m->type, (unsigned long long)m->seq, s->len,
			  s->nr_fds, ack->type, (unsigned long long)ack->seq,
			  ack->err);
	FUZZ_ASSERT(ack->err <= 0 && ack->err >= -4095);
	if (m->type == DMADEV_HELLO) {
		int want = md->hello ? -EPROTO :
			   s->nr_fds != 1 ? -EBADMSG :
			   !m->a || m->a % PAGE || m->a > GMVM_MAX_RAM_TOP ||
			   m->b % PAGE || m->b > INT64_MAX - m->a ? -EINVAL :
			   !s->memfd || md->memfd_size < m->b ||
			   md->memfd_size - m->b < m->a ? -EBADF : 0;

		if (ack->err != want)
			fuzz_fail("HELLO a=%#llx fds=%u: err %d, expected %d",
				  (unsigned long long)m->a, s->nr_fds,
				  ack->err, want);
		if (!want) {
			FUZZ_ASSERT(ack->v0 && ack->v0 % PAGE == 0);
			md->hello = true;
			md->ram = m->a;
			md->offset = m->b;
			if (md->ram <= MAX_MEMFD)
				md->mapped = calloc(md->ram / PAGE, 1);
		}
		return true;
	}
	if (!fds_ok) {
		FUZZ_ASSERT(ack->err == -EBADMSG);
		return true;
	}
	if (!md->hello && m->type != DMADEV_BYE) {
		FUZZ_ASSERT(ack->err == -EPROTO);
		return true;
	}
	/* MAP, UNMAP, CUT and MERGE are the protocol's types 2 to 5. */
	if (m->type >= DMADEV_MAP && m->type <= DMADEV_MERGE) {
		check_mapping_op(md, m, ack->err);
		return true;
	}
	switch (m->type) {
	case DMADEV_DMA:
		check_dma(md, m, ack);
		return true;
	case DMADEV_STATE:
		FUZZ_ASSERT(ack->err == 0 && ack->v1 == md->nr_pins);
		return true;
	case DMADEV_BYE:
		FUZZ_ASSERT(ack->err == 0);
		return false;
	default:
		FUZZ_ASSERT(ack->err == -EBADMSG);
		return true;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	static struct sent sent[MAX_MSGS];
	struct model md = { 0 };
	char arg0[] = "dma-device";
	char *argv[] = { arg0, NULL };
	unsigned int n = 0, i;
	int sv[2], memfd, pipefd[2], ret, fd;
	uint64_t pages, seq = 0;
	unsigned int open_fds = count_fds();

	pages = fuzz_u8(&in) % (MAX_MEMFD / PAGE / 16) * 16 + 1;
	md.memfd_size = pages * PAGE;
	memfd = memfd_create("fuzz-shared", MFD_CLOEXEC);
	FUZZ_ASSERT(memfd >= 0 && !ftruncate(memfd, (off_t)md.memfd_size));
	FUZZ_ASSERT(!pipe2(pipefd, O_CLOEXEC));
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		fuzz_fail("socketpair: %s", strerror(errno));
	FUZZ_ASSERT(dup2(sv[1], DMADEV_FD) == DMADEV_FD);
	close(sv[1]);

	while (in.left && n < MAX_MSGS) {
		struct sent *s = &sent[n];

		decode(&in, pages, &seq, s);
		if (!send_one(sv[0], s, memfd, pipefd[0]))
			break;
		n++;
		/*
		 * The device stops reading at an empty message (with the
		 * peer gone it is EOF) or a valid BYE; a message it left
		 * unread would make it close with data queued, which turns
		 * our reads of its acks into ECONNRESET.  So these are last.
		 */
		if (s->len == 0 || (s->len == sizeof(s->m) && !s->nr_fds &&
				    s->m.type == DMADEV_BYE))
			break;
	}
	shutdown(sv[0], SHUT_WR);
	ret = dma_process_main(1, argv);
	FUZZ_ASSERT(ret == 0);

	memset(shadow, 0, md.memfd_size);
	for (i = 0; i < n; i++) {
		struct dmadev_ack ack;
		ssize_t r;

		if (sent[i].len == 0)
			break;		/* taken for EOF: no ack */
		r = recv(sv[0], &ack, sizeof(ack), MSG_DONTWAIT | MSG_TRUNC);
		if (r != (ssize_t)sizeof(ack))
			fuzz_fail("message %u of %u (type %u, %zu bytes): %s ack of %zd bytes",
				  i, n, sent[i].m.type, sent[i].len,
				  r < 0 ? "no" : "an", r);
		if (!check_ack(&md, &sent[i], &ack))
			break;
	}
	FUZZ_ASSERT(recv(sv[0], &fd, sizeof(fd), MSG_DONTWAIT) <= 0);

	/* The device wrote exactly what the model's FILLs say. */
	if (md.mapped) {
		FUZZ_ASSERT(pread(memfd, real, md.memfd_size, 0) ==
			    (ssize_t)md.memfd_size);
		if (memcmp(real, shadow, md.memfd_size))
			fuzz_fail("the shared memfd differs from the FILLs the device acknowledged");
	}
	free(md.mapped);
	close(sv[0]);
	close(memfd);
	close(pipefd[0]);
	close(pipefd[1]);
	/* dma_process_main() closed its socket; hold the fd again. */
	FUZZ_ASSERT(dup2(null_fd, DMADEV_FD) == DMADEV_FD);
	if (count_fds() != open_fds)
		fuzz_fail("the device leaked fds: %u open, %u before it ran",
			  count_fds(), open_fds);
	return 0;
}
