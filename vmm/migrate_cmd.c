/* SPDX-License-Identifier: MIT */
/*
 * The source of a live migration (docs/MIGRATION.md): the control
 * socket's `migrate` command calls vm_migrate(), which connects to the
 * destination (`gmvm run --incoming unix:SOCKET`) and runs mig_send()
 * with gmvm's pieces:
 *  - stop/resume: pause.c, every vCPU parked at an instruction boundary
 *    (devices are quiet then: the DMA device runs commands only inside a
 *    vCPU's exit); a VM paused by a pause request stays paused;
 *  - device_ranges: the DMA device's live mappings (its process writes
 *    guest memory behind this process's back);
 *  - final_sections: the snapshot's machine sections, gathered and
 *    written exactly as snapshot_save.c writes them (snap_machine_write
 *    into memory), then sent one by one as the stream's VMM sections.
 * Dirty tracking: uffd-wp on the host views.  It sees gmvm's own writes,
 * and the guest's wherever KVM faults pages in through the views, which
 * depends on the host's KVM and the memslot layout: guest_writes_seen()
 * asks KVM (mig_uffd_probe_guest(), a scratch VM) before anything
 * happens, and a VM whose guest writes would go unseen is refused.  KVM's
 * own dirty log is not used: libgmem registers gmvm's memslots and gmvm
 * keeps no slot table to hand over (and the kernels we know refuse
 * logging on guest_memfd-bound slots anyway).
 *
 * It runs on the control server's worker thread (a job, server.c): the
 * server goes on answering, every other request with a "busy" error
 * until the migration has replied; docs/CONTROL.md says so.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gmvm.h"
#include "devices/devices.h"
#include "migrate/image.h"
#include "migrate/migrate.h"
#include "migrate/stream.h"
#include "snapshot/machine.h"

/* How long vCPUs may take to park, as for a pause. */
#define MIGRATE_PAUSE_MS 10000
/* The longest a send or the wait for the ACK may take. */
#define MIGRATE_TIMEOUT_MS 30000

struct src {
	struct vm *vm;
	bool paused;			/* by a pause request, before */
	char *why;			/* the caller's message buffer */
	size_t why_len;
};

static int stop(void *data)
{
	struct src *s = data;

	if (!s->paused && vm_pause(s->vm, MIGRATE_PAUSE_MS)) {
		snprintf(s->why, s->why_len, "not every vCPU stopped within %d s",
			 MIGRATE_PAUSE_MS / 1000);
		return -ETIMEDOUT;
	}
	/* A stop that came meanwhile ended the pause: its vCPUs may run. */
	if (vm_stopping(s->vm)) {
		if (!s->paused)
			vm_resume(s->vm);
		snprintf(s->why, s->why_len, "the VM is stopping");
		return -ECANCELED;
	}
	return 0;
}

static bool cancelled(void *data)
{
	return vm_stopping(((struct src *)data)->vm);
}

static void resume(void *data)
{
	struct src *s = data;

	if (!s->paused)
		vm_resume(s->vm);
}

static int device_ranges(void *data,
			 int (*fn)(void *arg, uint64_t gpa, uint64_t len),
			 void *arg)
{
	struct src *s = data;

	return devices_dma_ranges(s->vm, fn, arg);
}

int vm_machine_send(const struct snap_machine *m, struct mig_out *o,
		    char *why, size_t why_len)
{
	struct mig_buf mo = { NULL, 0, 0 };
	struct snap_io io = { .write_at = mig_buf_write_at, .data = &mo };
	struct snap_writer w;
	struct snap_msg msg;
	int64_t total;
	size_t pos;
	int ret;

	snap_msg_init(&msg, why, why_len);
	ret = snap_writer_init(&w, -1, &io, &msg);
	if (ret)
		goto out;
	ret = snap_machine_write(&w, m);
	total = ret ? ret : snap_writer_finish(&w);
	snap_writer_free(&w);
	if (total < 0) {
		ret = (int)total;
		goto out;
	}
	/* Our own output, framed as the stream frames: forwarded as is. */
	for (pos = SNAP_HEADER_SIZE; pos + SNAP_SEC_HEADER_SIZE <= mo.len;) {
		const uint8_t *h = mo.p + pos;
		uint32_t type = snap_get_le32(h);
		uint64_t len = snap_get_le64(h + 8);

		if (type == SNAP_SEC_END)
			break;
		ret = mig_out_section(o, type, snap_get_le32(h + 4),
				      h + SNAP_SEC_HEADER_SIZE, (size_t)len);
		if (ret)
			break;
		pos += SNAP_SEC_HEADER_SIZE + len;
	}
out:
	free(mo.p);
	return ret;
}

/* The machine sections, gathered as a snapshot gathers them. */
static int final_sections(void *data, struct mig_out *o)
{
	struct src *s = data;
	struct snap_machine *m;
	int ret;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	ret = vm_machine_gather(s->vm, m, s->why, s->why_len);
	if (!ret)
		ret = vm_machine_send(m, o, s->why, s->why_len);
	snap_machine_free(m);
	free(m);
	return ret;
}

/* A connected stream socket to @path, or -errno with the reason. */
static int connect_to(const char *path, char *why, size_t why_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, err;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(why, why_len, "the socket path is too long");
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = errno;
		snprintf(why, why_len, "socket: %s", strerror(err));
		return -err;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		err = errno;
		snprintf(why, why_len, "cannot connect to the destination: %s",
			 strerror(err));
		close(fd);
		return -err;
	}
	return fd;
}

/*
 * uffd-wp on the views must see the guest's writes through this VM's
 * memslots; whether it does depends on how this host's KVM maps them, so
 * KVM is asked once per process (track_guest.c) for the layout in use.
 */
static int guest_writes_seen(struct vm *vm, char *why, size_t why_len)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static enum gmem_layout asked = GMEM_LAYOUT_AUTO;
	static const char *answer;
	static int answer_ret;
	enum gmem_layout layout = gmem_get_layout(vm->gmem);
	enum gmem_backend backend = gmem_get_backend(vm->gmem);
	int ret;

	if (backend != GMEM_BACKEND_EMULATED) {
		snprintf(why, why_len, "the %s backend keeps private memory out of this process's views, so there is nothing to send it from",
			 gmem_backend_name(backend));
		return -EOPNOTSUPP;
	}
	/* A VM without KVM (the tests' and fuzzers'): nothing writes its
	 * memory behind the views. */
	if (vm->vm_fd < 0)
		return 0;
	pthread_mutex_lock(&lock);
	if (asked != layout) {
		answer_ret = mig_uffd_probe_guest(vm->kvm_fd, layout, &answer);
		/* An answer is kept; a probe that could not run (no memory,
		 * no fd) is asked again next time. */
		asked = answer_ret == 0 || answer_ret == -EOPNOTSUPP ?
			layout : GMEM_LAYOUT_AUTO;
	}
	ret = answer_ret;
	if (ret)
		snprintf(why, why_len, "dirty tracking for the %s layout: %s%s%s",
			 gmem_layout_name(layout), answer,
			 ret == -EOPNOTSUPP ? "" : ": ",
			 ret == -EOPNOTSUPP ? "" : strerror(-ret));
	pthread_mutex_unlock(&lock);
	return ret;
}

int vm_migrate(struct vm *vm, const char *uri, bool paused,
	       struct mig_stats *st, char *why, size_t why_len)
{
	struct src s = { vm, paused, why, why_len };
	struct mig_send_opts o = {
		.initial_state = vm->cfg->init_shared ? GMEM_SHARED :
							GMEM_PRIVATE,
		.track = { .vm_fd = -1 },
		.stop = stop,
		.resume = resume,
		.device_ranges = device_ranges,
		.final_sections = final_sections,
		.cancelled = cancelled,
		.data = &s,
		.timeout_ms = MIGRATE_TIMEOUT_MS,
	};
	const char *path;
	char msg[512];
	int fd, ret;

	why[0] = '\0';
	if (incoming_uri(uri, &path)) {
		snprintf(why, why_len, "the destination is not unix:SOCKET");
		return -EINVAL;
	}
	ret = guest_writes_seen(vm, why, why_len);
	if (ret)
		return ret;
	fd = connect_to(path, why, why_len);
	if (fd < 0)
		return fd;
	msg[0] = '\0';
	ret = mig_send(vm->gmem, fd, &o, st, msg, sizeof(msg));
	close(fd);
	/* A callback's own reason first (it is the more precise). */
	if (ret && !why[0])
		snprintf(why, why_len, "%s", msg[0] ? msg : strerror(-ret));
	return ret;
}
