/* SPDX-License-Identifier: MIT */
/*
 * `gmvm run --incoming unix:SOCKET`: the destination of a live migration
 * (docs/MIGRATION.md).  The VM comes from the stream and starts exactly
 * as a restored one does, through restore.c's own code path:
 *
 *  1. Listen on SOCKET by the control socket's rules (control/listen.c:
 *     mode 0600, only a stale socket replaced), wait for one connection
 *     (SIGINT/SIGTERM end the wait: 128 + the signal, nothing left; so
 *     does --timeout, which bounds the wait too: 124), then remove the
 *     socket file: nobody else can connect.
 *  2. mig_receive() builds the VM's memory in a staging VM without KVM
 *     (libgmem's emulated backend on memfds: KVM is not opened until the
 *     stream is done) and hands over the VMM sections (vCPUs, clock, DMA
 *     device, run options) after the last round.
 *  3. Those sections are the snapshot's; with RUNOPTS, which the
 *     snapshot format orders last, the staging VM's memory and the
 *     sections are written as one whole-VM snapshot into a memfd and
 *     restore_open_fd() checks all of it (framing, memory, every machine
 *     section, gmvm's own rules) -- before the ACK, so a VM gmvm cannot
 *     run is refused and the source keeps its guest.
 *     KVM is asked whether this host can run a VM at all at the first
 *     IMAGE (create(), while the source's guest still runs), and its
 *     answer and the vCPU count are given before the ACK (before_ack()),
 *     so that a refusal leaves the source its guest.
 *  4. After the COMMIT, vm_run() runs it as `gmvm restore` would: KVM
 *     memory filled from the memfd, devices, every vCPU where it stopped.
 *
 * The cost of sharing restore.c's path: the guest's resident memory is
 * held twice for a moment (staging VM and memfd), and copied once more
 * after the COMMIT, before the first instruction.
 *
 * Everything from the stream is untrusted: mig_receive() checks the
 * memory, restore_open_fd() the machine; a section kept here is bounded
 * (SEC_MAX bytes, MAX_SECS of them).  Any refusal: one line, status 125,
 * no socket file, no VM.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gmvm.h"
#include "control/listen.h"
#include "migrate/migrate.h"
#include "snapshot/machine.h"
#include "snapshot/snapshot.h"

/* A section that is not whole this long after it was waited for (per
 * started 16 MiB of it) has failed: a quiet or trickling stream. */
#define INCOMING_TIMEOUT_MS 30000
/* vCPUs, CLOCK, DMADEV, RUNOPTS. */
#define MAX_SECS (SNAP_MAX_VCPUS + 3)
/* The largest machine section: a VCPU with the most XSAVE and MSRs. */
#define SEC_MAX (SNAP_VCPU_FIXED + SNAP_XSAVE_MAX + \
		 SNAP_MAX_MSRS * SNAP_MSR_SIZE)

struct incoming {
	const char *uri;
	struct vm_config *cfg;
	struct gmem_vm *vm;		/* the staging VM, once created */
	enum gmem_state initial_state;	/* its config's */
	struct {
		uint32_t type, flags;
		void *p;
		size_t len;
	} sec[MAX_SECS];
	unsigned int nr;
	bool opened;			/* restore_open_fd() took it */
	/* KVM, asked at the first IMAGE whether it can run a VM here (so
	 * that the question costs no downtime), kept for the vCPU count;
	 * its answer is given before the ACK, after every check of the
	 * stream (which hosts without KVM test). */
	int kvm_fd, vm_fd;
	bool kvm_asked;
	int kvm_ret;
	char kvm_why[640];
	bool said;			/* a line was printed already */
	char why[256];			/* why a section was refused */
};

int incoming_uri(const char *uri, const char **path)
{
	if (strncmp(uri, "unix:", 5) || !uri[5])
		return -EINVAL;
	*path = uri + 5;
	return 0;
}

/* The staging VM has no KVM memslots: there is nothing to register. */
static int no_slot(void *data, const struct gmem_slot *slot)
{
	return 0;
}

/*
 * The staging VM: without KVM there is no guest_memfd, so the private
 * backing is one memfd for every region (the region at GPA g at offset g,
 * sparse); libgmem makes the shared one.
 */
static int create(void *data, const struct gmem_config *cfg_in,
		  struct gmem_vm **out)
{
	struct incoming *in = data;
	struct gmem_config cfg = *cfg_in;
	struct gmem_region_config *rc;
	uint64_t top = 0;
	unsigned int i;
	int fd, ret;

	/* The first IMAGE: can this host run a VM at all?  Asked now, while
	 * the source's guest still runs, not in the downtime. */
	if (!in->kvm_asked) {
		in->kvm_asked = true;
		in->kvm_ret = kvm_host_check(&in->kvm_fd, &in->vm_fd, 1,
					     in->kvm_why,
					     sizeof(in->kvm_why));
	}
	rc = calloc(cfg.nr_regions ? cfg.nr_regions : 1, sizeof(*rc));
	if (!rc)
		return -ENOMEM;
	for (i = 0; i < cfg.nr_regions; i++) {
		rc[i] = cfg_in->regions[i];
		if (rc[i].gpa + rc[i].len > top)
			top = rc[i].gpa + rc[i].len;
	}
	fd = memfd_create("gmvm-incoming-private", MFD_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	if (ftruncate(fd, (off_t)top)) {
		ret = -errno;
		goto out_fd;
	}
	for (i = 0; i < cfg.nr_regions; i++) {
		rc[i].private_fd = fd;
		rc[i].private_offset = rc[i].gpa;
	}
	cfg.regions = rc;
	ret = gmem_create(&cfg, out);
	if (!ret) {
		in->vm = *out;
		in->initial_state = cfg.initial_state;
	}
out_fd:
	close(fd);	/* libgmem holds its own dups */
out:
	free(rc);
	return ret;
}

/*
 * The staging VM and the sections kept, as one whole-VM snapshot in a
 * memfd, checked by restore_open_fd() into in->cfg.
 */
static int materialize(struct incoming *in)
{
	struct snap_save_opts so = { .initial_state = in->initial_state };
	struct snap_writer w;
	struct snap_msg msg;
	unsigned int i;
	int64_t size;
	int fd, ret;

	snap_msg_init(&msg, in->why, sizeof(in->why));
	if (!in->vm)
		return snap_err(&msg, -EBADMSG, "machine sections without a VM");
	fd = memfd_create("gmvm-incoming", MFD_CLOEXEC);
	if (fd < 0)
		return snap_err(&msg, -errno, "memfd_create: %s",
				strerror(errno));
	ret = snap_writer_init(&w, fd, NULL, &msg);
	if (ret)
		goto err_fd;
	ret = snap_mem_save(in->vm, &w, &so, NULL);
	for (i = 0; !ret && i < in->nr; i++) {
		ret = snap_writer_begin(&w, in->sec[i].type, in->sec[i].flags);
		if (!ret)
			ret = snap_writer_put(&w, in->sec[i].p, in->sec[i].len);
		if (!ret)
			ret = snap_writer_end(&w);
	}
	size = ret ? ret : snap_writer_finish(&w);
	snap_writer_free(&w);
	if (size < 0) {
		ret = (int)size;
		goto err_fd;
	}
	/* It prints its own line when it refuses the VM. */
	ret = restore_open_fd(fd, "the migration stream", in->cfg);
	in->said = ret != 0;
	in->opened = !ret;
	return ret;

err_fd:
	close(fd);
	return ret;
}

/* One VMM section after the last round: kept, then checked with RUNOPTS. */
static int section(void *data, uint32_t type, uint32_t flags, const void *p,
		   size_t len)
{
	struct incoming *in = data;
	struct snap_msg msg;
	void *copy;

	snap_msg_init(&msg, in->why, sizeof(in->why));
	switch (type) {
	case SNAP_SEC_VCPU:
	case SNAP_SEC_CLOCK:
	case SNAP_SEC_DMADEV:
	case SNAP_SEC_RUNOPTS:
		break;
	default:
		if (flags & SNAP_SEC_OPTIONAL)
			return 0;
		return snap_err(&msg, -EPROTO, "VMM section type %#x: unknown and not optional (a newer gmvm?)",
				type);
	}
	/* RUNOPTS is the snapshot's last machine section. */
	if (in->opened)
		return snap_err(&msg, -EBADMSG, "VMM section %#x after RUNOPTS",
				type);
	if (in->nr == MAX_SECS)
		return snap_err(&msg, -EBADMSG, "more than %d VMM sections",
				MAX_SECS);
	if (len > SEC_MAX)
		return snap_err(&msg, -EBADMSG, "VMM section %#x: %zu bytes, more than any holds",
				type, len);
	copy = malloc(len ? len : 1);
	if (!copy)
		return snap_err(&msg, -ENOMEM, "out of memory");
	memcpy(copy, p, len);
	in->sec[in->nr].type = type;
	in->sec[in->nr].flags = flags;
	in->sec[in->nr].p = copy;
	in->sec[in->nr].len = len;
	in->nr++;
	return type == SNAP_SEC_RUNOPTS ? materialize(in) : 0;
}

/*
 * Before the ACK, the last moment at which a refusal leaves the source
 * its guest: the VM must have been checked whole, with RUNOPTS, and this
 * host must be able to run it (KVM there, with what gmvm needs and
 * enough vCPUs: kvm_host_check(), as vm_run() will ask again).  Without
 * that a destination on a host without KVM took the guest and lost it.
 */
static int before_ack(void *data)
{
	struct incoming *in = data;
	struct snap_msg msg;
	long max;

	snap_msg_init(&msg, in->why, sizeof(in->why));
	if (!in->opened)
		return snap_err(&msg, -EBADMSG,
				"the stream ended without the VMM's RUNOPTS section");
	if (!in->kvm_asked)	/* create() asks: it always ran */
		return snap_err(&msg, -EBADMSG, "a stream without memory");
	if (in->kvm_ret)
		return snap_err(&msg, in->kvm_ret,
				"this host cannot run the VM: %s",
				in->kvm_why);
	max = kvm_max_vcpus(in->vm_fd);
	if (in->cfg->nr_vcpus > max)
		return snap_err(&msg, -ENOTSUP,
				"this host cannot run the VM: %u vCPUs, this host's KVM allows at most %ld",
				in->cfg->nr_vcpus, max);
	return 0;
}

/*
 * Wait for one connection on @l, at most @timeout seconds (0: no limit):
 * its fd, or -errno (a signal: -EINTR; the time ran out: -ETIMEDOUT).
 */
static int accept_one(struct ctl_listener *l, double timeout)
{
	uint64_t end = now_ns() + (uint64_t)(timeout * 1e9), t;
	struct timespec ts;
	int fd, ret;

	for (;;) {
		t = now_ns();
		if (timeout > 0 && t >= end)
			return -ETIMEDOUT;
		ts.tv_sec = (time_t)((end - t) / 1000000000ULL);
		ts.tv_nsec = (long)((end - t) % 1000000000ULL);
		ret = signals_wait(l->fd, timeout > 0 ? &ts : NULL);
		if (ret)
			return ret;
		if (signals_caught())
			return -EINTR;
		fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			return -errno;
	}
}

int incoming_receive(const char *uri, struct vm_config *cfg)
{
	struct gmem_config base = GMEM_INIT(struct gmem_config, .vm_fd = -1,
					    .set_slot = no_slot);
	struct mig_recv_opts o = {
		.restore = { .base = &base, .create = create },
		.timeout_ms = INCOMING_TIMEOUT_MS,
		.section = section,
		.before_ack = before_ack,
	};
	struct ctl_listener l;
	struct gmem_vm *vm = NULL;
	struct incoming *in;
	const char *path;
	char msg[512];
	unsigned int i;
	int fd, ret, status = GM_EXIT_HOST_ERROR;

	if (incoming_uri(uri, &path))
		return GM_EXIT_HOST_ERROR;	/* main.c checked it */
	in = calloc(1, sizeof(*in));
	if (!in) {
		gmvm_err("--incoming %s: out of memory", uri);
		return GM_EXIT_HOST_ERROR;
	}
	in->uri = uri;
	in->cfg = cfg;
	in->kvm_fd = -1;
	in->vm_fd = -1;
	o.restore.create_data = in;
	o.section_data = in;
	ret = signals_init();
	if (ret) {
		gmvm_err("setting up signal handling: %s", strerror(-ret));
		goto out;
	}
	/*
	 * --control is made only once the VM runs, after the COMMIT, when a
	 * failure would lose the guest: try its path now, as run would.
	 */
	if (cfg->control_path) {
		ret = ctl_listen(&l, cfg->control_path, 1, msg, sizeof(msg));
		if (ret) {
			gmvm_err("--control %s: %s", cfg->control_path, msg);
			goto out;
		}
		ctl_listen_close(&l);
	}
	ret = ctl_listen(&l, path, 1, msg, sizeof(msg));
	if (ret) {
		gmvm_err("--incoming %s: %s", uri, msg);
		goto out;
	}
	fd = accept_one(&l, cfg->timeout);
	/* One connection: nobody else may connect, and nothing is left. */
	ctl_listen_close(&l);
	if (fd < 0) {
		if (fd == -EINTR) {
			gmvm_err("--incoming %s: stopped by %s while waiting for the source",
				 uri, signal_name(signals_caught()));
			status = 128 + signals_caught();
		} else if (fd == -ETIMEDOUT) {
			gmvm_err("--incoming %s: --timeout: no source connected within %g s",
				 uri, cfg->timeout);
			status = GM_EXIT_TIMEOUT;
		} else {
			gmvm_err("--incoming %s: accept: %s", uri,
				 strerror(-fd));
		}
		goto out;
	}
	msg[0] = '\0';
	ret = mig_receive(fd, &o, &vm, msg, sizeof(msg));
	close(fd);
	if (vm)
		gmem_destroy(vm);
	if (ret) {
		if (!in->said)
			gmvm_err("--incoming %s: %s", uri,
				 in->why[0] ? in->why :
				 msg[0] ? msg : strerror(-ret));
		if (in->opened)
			restore_close(cfg);
		goto out;
	}
	status = 0;
out:
	if (in->vm_fd >= 0)
		close(in->vm_fd);
	if (in->kvm_fd >= 0)
		close(in->kvm_fd);
	for (i = 0; i < in->nr; i++)
		free(in->sec[i].p);
	free(in);
	return status;
}
