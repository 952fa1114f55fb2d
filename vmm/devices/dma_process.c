/* SPDX-License-Identifier: MIT */
/*
 * The DMA test device as a process of its own (`gmvm dma-device`, started
 * by `gmvm run --dmatest=external`; protocol in dma_protocol.h).
 *
 * It is a separate trust domain: it gets only its socket (fd DMADEV_FD)
 * and, in HELLO, the fd of the shared backing (a memfd).  It reaches guest
 * memory only through its own mappings of that memfd, one per DMA mapping
 * the mapper asked for, inside a PROT_NONE reservation as large as the top
 * of guest RAM (HELLO's a; a hole between RAM regions is never mapped):
 * IOVA x lives at base + x, and the memfd is mapped only where the mapper
 * said the pages are shared.  Every change is one mmap(MAP_FIXED) call, so
 * it is atomic: UNMAP and CUT put an anonymous PROT_NONE placeholder over
 * the range, MERGE maps the union over its tiles with no hole in between.
 *
 * Invariants:
 *  - iommu (a strict swiommu) holds exactly the ranges where the memfd is
 *    mapped, at file offset = HELLO's offset + IOVA; every op is validated in iommu first
 *    (SWIOMMU_CHECK), then done with one mmap, then committed to iommu, so
 *    a refused or failed op changes neither;
 *  - a DMA command touches only ranges iommu says are mapped;
 *  - everything received is validated: a bad message gets an error ack,
 *    never a crash or an access outside the reservation.
 *
 * Single-threaded: messages are handled one at a time, in order.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices.h"
#include "dma_protocol.h"
#include "swiommu.h"

#define MAX_FDS 4	/* fds accepted per message (only HELLO has one) */

struct dev {
	int sock;
	int memfd;
	uint64_t ram_size;
	uint64_t mem_offset;	/* file offset of IOVA 0 */
	uint8_t *base;
	struct swiommu iommu;
	bool iommu_ready;
};

static bool range_in_ram(const struct dev *d, uint64_t addr, uint64_t len)
{
	return len && addr < d->ram_size && len <= d->ram_size - addr;
}

static int hello(struct dev *d, const struct dmadev_msg *m, int *fds,
		 unsigned int nr_fds, struct dmadev_ack *ack)
{
	struct stat st;
	void *p;

	if (d->base)
		return -EPROTO;	/* said twice */
	if (nr_fds != 1)
		return -EBADMSG;
	if (!m->a || m->a % GMEM_PAGE_SIZE || m->a > GMVM_MAX_RAM_TOP ||
	    m->b % GMEM_PAGE_SIZE || m->b > INT64_MAX - m->a)
		return -EINVAL;
	if (fstat(fds[0], &st) || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size < m->b + m->a)
		return -EBADF;	/* not a backing of ram_size bytes */
	p = mmap(NULL, m->a, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (swiommu_init(&d->iommu, m->a)) {
		munmap(p, m->a);
		return -ENOMEM;
	}
	d->iommu_ready = true;
	d->base = p;
	d->ram_size = m->a;
	d->mem_offset = m->b;
	d->memfd = fds[0];
	fds[0] = -1;	/* ours now */
	ack->v0 = (uint64_t)(uintptr_t)p;
	return 0;
}

/* The memfd at [iova, iova + len), over whatever is there. */
static int map_backing(struct dev *d, uint64_t iova, uint64_t len)
{
	void *p = mmap(d->base + iova, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_FIXED, d->memfd,
		       (off_t)(d->mem_offset + iova));

	return p == MAP_FAILED ? -errno : 0;
}

/* The PROT_NONE placeholder at [iova, iova + len). */
static int map_placeholder(struct dev *d, uint64_t iova, uint64_t len)
{
	void *p = mmap(d->base + iova, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
		       -1, 0);

	return p == MAP_FAILED ? -errno : 0;
}

/* A swiommu op on one range: map, unmap or merge. */
typedef int (*range_op)(struct swiommu *s, uint64_t iova, uint64_t len,
			unsigned int flags);

/*
 * Check @op with @check flags, change the mappings with one mmap (the
 * backing, or the placeholder), then commit @op with @commit flags: a
 * refused or failed op changes neither the table nor the mappings.
 */
static int check_mmap_commit(struct dev *d, range_op op, unsigned int check,
			     unsigned int commit, bool backing, uint64_t iova,
			     uint64_t len)
{
	int ret;

	ret = op(&d->iommu, iova, len, check | SWIOMMU_CHECK);
	if (!ret)
		ret = backing ? map_backing(d, iova, len) :
				map_placeholder(d, iova, len);
	if (!ret)
		ret = op(&d->iommu, iova, len, commit);
	return ret;
}

/* MAP, UNMAP, CUT, MERGE: check, one mmap, commit. */
static int mapping_op(struct dev *d, const struct dmadev_msg *m)
{
	unsigned int flags = m->flags & GMEM_DISCARD_FORCED;
	int ret;

	if (m->flags & ~GMEM_DISCARD_FORCED)
		return -EINVAL;
	switch (m->type) {
	case DMADEV_MAP:
		return check_mmap_commit(d, swiommu_map, 0, 0, true, m->a,
					 m->b);
	case DMADEV_UNMAP:
		return check_mmap_commit(d, swiommu_unmap, flags,
					 GMEM_DISCARD_FORCED, false, m->a,
					 m->b);
	case DMADEV_CUT:
		ret = swiommu_cut(&d->iommu, m->a, m->b, m->c, m->d,
				  flags | SWIOMMU_CHECK);
		if (!ret)
			ret = map_placeholder(d, m->c, m->d);
		if (!ret)
			ret = swiommu_cut(&d->iommu, m->a, m->b, m->c, m->d,
					  GMEM_DISCARD_FORCED);
		return ret;
	default:	/* DMADEV_MERGE */
		return check_mmap_commit(d, swiommu_merge, 0, 0, true, m->a,
					 m->b);
	}
}

/* A DMA command: STATUS in v0, RESULT in v1. */
static void dma(struct dev *d, const struct dmadev_msg *m,
		struct dmadev_ack *ack)
{
	uint32_t cmd = m->flags, sum = 0;
	uint64_t addr = m->a, len = m->b, i;
	const uint8_t *p;
	int ret;

	ack->v0 = GM_DMA_BAD;
	if (cmd < GM_DMA_CMD_FILL || cmd > GM_DMA_CMD_UNPIN ||
	    len > GM_DMA_MAX_LEN || !range_in_ram(d, addr, len) ||
	    m->c > 0xff)
		return;
	switch (cmd) {
	case GM_DMA_CMD_FILL:
	case GM_DMA_CMD_CHECKSUM:
		if (!swiommu_is_mapped(&d->iommu, addr, len, NULL)) {
			ack->v0 = GM_DMA_FAULT;
			return;
		}
		if (cmd == GM_DMA_CMD_FILL) {
			memset(d->base + addr, (int)m->c, len);
		} else {
			p = d->base + addr;
			for (i = 0; i < len; i++)
				sum += p[i];
			ack->v1 = sum;
		}
		ack->v0 = GM_DMA_OK;
		return;
	case GM_DMA_CMD_PIN:
		ret = swiommu_pin(&d->iommu, addr, len);
		ack->v0 = ret == -EFAULT ? GM_DMA_FAULT :
			  ret == -ENOSPC ? GM_DMA_NO_RESOURCES :
			  ret ? GM_DMA_BAD : GM_DMA_OK;
		return;
	default:	/* GM_DMA_CMD_UNPIN */
		ack->v0 = swiommu_unpin(&d->iommu, addr, len) ? GM_DMA_BAD :
								GM_DMA_OK;
		return;
	}
}

/* Handle one well-formed message into @ack.  Returns false after BYE. */
static bool handle(struct dev *d, const struct dmadev_msg *m, int *fds,
		   unsigned int nr_fds, struct dmadev_ack *ack)
{
	struct swiommu_stats st;

	ack->type = m->type;
	ack->seq = m->seq;
	if (m->type == DMADEV_HELLO) {
		ack->err = hello(d, m, fds, nr_fds, ack);
		return true;
	}
	if (nr_fds) {
		ack->err = -EBADMSG;	/* only HELLO carries an fd */
		return true;
	}
	if (!d->base && m->type != DMADEV_BYE) {
		ack->err = -EPROTO;	/* nothing before HELLO */
		return true;
	}
	switch (m->type) {
	case DMADEV_MAP:
	case DMADEV_UNMAP:
	case DMADEV_CUT:
	case DMADEV_MERGE:
		ack->err = mapping_op(d, m);
		/* A pin refused it: name the first pinned page. */
		if (ack->err == -EAGAIN)
			ack->v0 = swiommu_busy_gpa(&d->iommu);
		return true;
	case DMADEV_DMA:
		dma(d, m, ack);
		return true;
	case DMADEV_STATE:
		swiommu_get_stats(&d->iommu, &st);
		ack->v0 = st.nr_maps;
		ack->v1 = d->iommu.nr_pins;
		return true;
	case DMADEV_BYE:
		return false;
	default:
		ack->err = -EBADMSG;
		return true;
	}
}

/*
 * Receive one message and its fds.  Returns the message length (a bad
 * length is the caller's to refuse), 0 at EOF, or -errno.
 */
static ssize_t receive(int sock, struct dmadev_msg *m, int *fds,
		       unsigned int *nr_fds, bool *ctrunc)
{
	union {
		char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = sizeof(ctl.buf),
	};
	struct cmsghdr *cm;
	ssize_t n;

	*nr_fds = 0;
	memset(m, 0, sizeof(*m));
	do {
		n = recvmsg(sock, &mh, MSG_TRUNC | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k, nr;

		if (cm->cmsg_level != SOL_SOCKET ||
		    cm->cmsg_type != SCM_RIGHTS)
			continue;
		nr = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < nr; k++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int),
			       sizeof(fd));
			if (*nr_fds < MAX_FDS)
				fds[(*nr_fds)++] = fd;
			else
				close(fd);
		}
	}
	*ctrunc = mh.msg_flags & MSG_CTRUNC;
	return n;
}

/*
 * recvmsg() returns 0 both for an empty message and at EOF: only a hangup
 * is the end.
 */
static bool peer_closed(int sock)
{
	struct pollfd p = { .fd = sock, .events = POLLRDHUP };

	return poll(&p, 1, 0) != 0;
}

static void dev_cleanup(struct dev *d)
{
	if (d->base)
		munmap(d->base, d->ram_size);
	if (d->iommu_ready)
		swiommu_destroy(&d->iommu);
	if (d->memfd >= 0)
		close(d->memfd);
	close(d->sock);
}

int dma_process_main(int argc, char **argv)
{
	struct dev d = { .sock = DMADEV_FD, .memfd = -1 };
	int type = 0, domain = 0;
	socklen_t len = sizeof(type);
	bool more = true;

	(void)argv;
	if (argc != 1 ||
	    getsockopt(DMADEV_FD, SOL_SOCKET, SO_TYPE, &type, &len) ||
	    type != SOCK_SEQPACKET ||
	    getsockopt(DMADEV_FD, SOL_SOCKET, SO_DOMAIN, &domain, &len) ||
	    domain != AF_UNIX) {
		gmvm_err_about("dma-device",
			       "internal command: gmvm run --dmatest=external starts it with its socket at fd %d",
			       DMADEV_FD);
		return GM_EXIT_HOST_ERROR;
	}
	fcntl(DMADEV_FD, F_SETFD, FD_CLOEXEC);
	while (more) {
		struct dmadev_ack ack = { 0 };
		struct dmadev_msg m;
		int fds[MAX_FDS];
		unsigned int nr_fds, k;
		bool ctrunc = false;
		ssize_t n;

		n = receive(d.sock, &m, fds, &nr_fds, &ctrunc);
		if (n == 0 && peer_closed(d.sock)) {
			/* gmvm went away: nothing to serve.  The empty
			 * message may still have carried fds. */
			for (k = 0; k < nr_fds; k++)
				close(fds[k]);
			break;
		}
		if (n < 0) {
			gmvm_err_about("dma-device", "receiving: %s",
				       strerror((int)-n));
			dev_cleanup(&d);
			return 1;
		}
		if (n != (ssize_t)sizeof(m) || ctrunc) {
			ack.err = -EBADMSG;	/* type 0, seq 0 */
		} else {
			more = handle(&d, &m, fds, nr_fds, &ack);
		}
		for (k = 0; k < nr_fds; k++)
			if (fds[k] >= 0)
				close(fds[k]);
		if (send(d.sock, &ack, sizeof(ack), MSG_NOSIGNAL) !=
		    (ssize_t)sizeof(ack))
			break;	/* gmvm went away */
	}
	dev_cleanup(&d);
	return 0;
}
