/* SPDX-License-Identifier: MIT */
/*
 * The userfaultfd gate's helpers: opening a userfaultfd for minor and
 * missing faults on shmem, registering a view, mapping (granting) a page,
 * and the handler thread that grants or refuses each fault by the page's
 * state.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gating.h"

/*
 * A userfaultfd for minor and missing faults on shmem, or -1 with the
 * reason.  Not UFFD_USER_MODE_ONLY: KVM's accesses (GUP) are the kernel's
 * faults, and a gate must catch them too.
 */
int gating_uffd_open(const char **why)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_MISSING_SHMEM |
			    UFFD_FEATURE_MINOR_SHMEM,
	};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		/* Without CAP_SYS_PTRACE, /dev/userfaultfd may allow it. */
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW,
				   O_CLOEXEC | O_NONBLOCK);
			close(dev);
		}
		if (fd < 0) {
			*why = "userfaultfd() refused (not root, "
			       "vm.unprivileged_userfaultfd 0, no usable "
			       "/dev/userfaultfd)";
			return -1;
		}
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		*why = "userfaultfd has no minor or missing faults on shmem "
		       "(UFFD_FEATURE_MINOR_SHMEM: Linux 5.14)";
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Register [addr, +len) for minor faults (a page in the memfd without a
 * PTE: a revoked page) and missing ones (a hole: a revoked page whose
 * backing was punched, which minor mode alone would let the kernel fill
 * with a fresh zero page).  Returns the ioctls the range supports.
 */
uint64_t gating_uffd_register(int uffd, uint8_t *addr, uint64_t len)
{
	struct uffdio_register r = {
		.range = { (uintptr_t)addr, len },
		.mode = UFFDIO_REGISTER_MODE_MISSING |
			UFFDIO_REGISTER_MODE_MINOR,
	};

	return ioctl(uffd, UFFDIO_REGISTER, &r) ? 0 : r.ioctls;
}

void gating_uffd_wake(int uffd, uint8_t *addr, uint64_t len)
{
	struct uffdio_range r = { (uintptr_t)addr, len };

	gating_must(ioctl(uffd, UFFDIO_WAKE, &r), "UFFDIO_WAKE");
}

/*
 * Map [addr, +len) of a view from its backing: a page of the memfd with
 * UFFDIO_CONTINUE, a hole with UFFDIO_ZEROPAGE (CONTINUE refuses a hole
 * with EFAULT, ZEROPAGE a page with EEXIST, each stopping there); @zero
 * says which to try first.  Both wake the accesses waiting on the range.
 * CONTINUE's EEXIST means the PTE is there already (a fault of its own
 * raced with us): wake its waiters and go on.  0 or -errno.
 */
int gating_uffd_map(int uffd, uint8_t *addr, uint64_t len, bool zero)
{
	int flips = 0;

	while (len) {
		int64_t done;

		if (zero) {
			struct uffdio_zeropage z = {
				.range = { (uintptr_t)addr, len },
			};

			done = ioctl(uffd, UFFDIO_ZEROPAGE, &z) ? z.zeropage :
								   (int64_t)len;
		} else {
			struct uffdio_continue c = {
				.range = { (uintptr_t)addr, len },
			};

			done = ioctl(uffd, UFFDIO_CONTINUE, &c) ? c.mapped :
								   (int64_t)len;
		}
		if (done > 0) {
			addr += done;
			len -= (uint64_t)done;
			flips = 0;
		} else if ((zero ? done == -EEXIST : done == -EFAULT) &&
			   !flips++) {
			zero = !zero;
		} else if (!zero && done == -EEXIST) {
			gating_uffd_wake(uffd, addr, PAGE);
			addr += PAGE;
			len -= PAGE;
		} else {
			return done ? (int)done : -EIO;
		}
	}
	return 0;
}

/* Map one page of a view, or end the program: a grant cannot fail here. */
void gating_uffd_grant(const struct gate *g, uint8_t *addr)
{
	/* With the punch, the page's backing was punched when the view was
	 * last revoked: most likely a hole. */
	int err = gating_uffd_map(g->uffd, addr, PAGE, g->punch);

	if (err)
		bench_die("%s: grant: %s", gating_methods[g->m].key,
			  strerror(-err));
}

static enum view view_of(const struct gate *g, uintptr_t a, uint64_t *page)
{
	enum view v = a >= (uintptr_t)g->view[SHARED] &&
		      a < (uintptr_t)g->view[SHARED] + RAM ? SHARED : PRIV;

	*page = (a - (uintptr_t)g->view[v]) / PAGE;
	return v;
}

/*
 * The fault handler: an access to a page in the view of its state is
 * granted (lazily), any other is refused and waits until a conversion
 * grants the page.  libgmem would hold the page's range lock around the
 * check and the grant, so that no conversion revokes in between; the
 * benchmark never converts a page while it is being accessed.  A refusal
 * is where libgmem would report the access (interrupt the vCPU out of
 * KVM_RUN: UFFD_FEATURE_THREAD_ID says which thread faulted).
 */
static void *uffd_handler(void *arg)
{
	struct gate *g = arg;
	struct pollfd p[2] = {
		{ .fd = g->uffd, .events = POLLIN },
		{ .fd = g->stop, .events = POLLIN },
	};

	for (;;) {
		struct uffd_msg msg;
		uintptr_t a;
		uint64_t page;
		enum view v;

		if (poll(p, 2, -1) < 0) {
			gating_must(errno == EINTR ? 0 : -1,
				    "poll(userfaultfd)");
			continue;
		}
		if (p[1].revents)
			return NULL;
		if (read(g->uffd, &msg, sizeof(msg)) != sizeof(msg)) {
			gating_must(errno == EAGAIN ? 0 : -1,
				    "read(userfaultfd)");
			continue;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			bench_die("userfaultfd: unexpected event %u",
				  msg.event);
		a = (uintptr_t)msg.arg.pagefault.address &
		    ~(uintptr_t)(PAGE - 1);
		v = view_of(g, a, &page);
		if (atomic_load(&g->state[page]) == v) {
			/* Counted first: the grant wakes the access, whose
			 * thread may look at the count at once. */
			atomic_fetch_add(&g->lazy_grants, 1);
			gating_uffd_grant(g, (uint8_t *)a);
		} else {
			atomic_store(&g->refused_addr, a);
			atomic_store(&g->refused_flags,
				     msg.arg.pagefault.flags);
			atomic_fetch_add(&g->refused, 1);
		}
	}
}

/* Start @g's fault handler, on g->uffd. */
void gating_uffd_start(struct gate *g)
{
	g->stop = eventfd(0, EFD_CLOEXEC);
	gating_must(g->stop, "eventfd");
	if (pthread_create(&g->handler, NULL, uffd_handler, g))
		bench_die("pthread_create failed");
}

/* Stop the handler and close the userfaultfd. */
void gating_uffd_stop(struct gate *g)
{
	gating_must((int)write(g->stop, &(uint64_t){ 1 }, sizeof(uint64_t)),
		    "eventfd write");
	pthread_join(g->handler, NULL);
	close(g->stop);
	close(g->uffd);
}
