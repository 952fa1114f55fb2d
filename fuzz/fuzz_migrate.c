/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the live migration receiver (vmm/migrate/, docs/MIGRATION.md): a
 * migration stream is untrusted input, like a snapshot file.
 *
 * The input is one flags byte and then the stream:
 *  - bit 0: reseal first (the stream header's and every section's
 *    checksum, and each IMAGE's inner snapshot document, made to agree
 *    with the bytes), so that mutations reach the checks behind the
 *    checksums; without it the checksums themselves are fuzzed.
 * The stream, followed by the source's COMMIT, is written into a
 * socketpair by a thread while mig_receive() builds a VM with no KVM
 * (libgmem on memfds, fuzz/lib/fuzz_restore.c).  A refusal must be a
 * negative errno with a message and leave no VM and no memslot; an
 * accepted stream's VM must
 * pass the audit, and a snapshot of it must verify against it.
 */
#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_restore.h"
#include "fuzz_vm.h"
#include "migrate/migrate.h"
#include "migrate/stream.h"

#define FLAG_RESEAL 1

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

struct feed {
	int fd;
	const uint8_t *p;
	size_t len;
};

static void *feed_main(void *arg)
{
	struct feed *f = arg;

	if (!mig_send_bytes(f->fd, f->p, f->len, 0))
		mig_send_commit(f->fd, 0);
	shutdown(f->fd, SHUT_WR);
	return NULL;
}

/* Reseal each IMAGE's document, then the stream's framing. */
static void reseal(uint8_t *p, size_t len)
{
	uint64_t off = MIG_HEADER_SIZE, slen;

	while (off <= len && len - off >= SNAP_SEC_HEADER_SIZE) {
		slen = snap_get_le64(p + off + 8);
		if (slen > len - off - SNAP_SEC_HEADER_SIZE)
			break;
		if (snap_get_le32(p + off) == MIG_SEC_IMAGE)
			snap_reseal(p + off + SNAP_SEC_HEADER_SIZE, slen);
		off += SNAP_SEC_HEADER_SIZE + slen;
	}
	mig_reseal(p, len);
}

/* An accepted VM: audited, and a snapshot of it verifies against it. */
static void check(struct gmem_vm *vm)
{
	char msg[512];

	if (gmem_audit(vm, msg, sizeof(msg)))
		fuzz_fail("audit of a received VM: %s", msg);
	fuzz_restore_resave(vm, GMEM_PRIVATE, SNAP_FIND_AUTO);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gmem_config base = GMEM_INIT(struct gmem_config, .vm_fd = -1);
	struct mig_recv_opts o = {
		.restore = { .base = &base, .create = fuzz_restore_create },
		.timeout_ms = 10000,
	};
	struct gmem_vm *vm = NULL;
	struct feed f;
	pthread_t th;
	char msg[512] = "";
	uint8_t *stream;
	int sv[2], err;

	if (!size)
		return 0;
	stream = malloc(size);
	FUZZ_ASSERT(stream);
	memcpy(stream, data + 1, size - 1);
	if (data[0] & FLAG_RESEAL)
		reseal(stream, size - 1);
	FUZZ_ASSERT(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	f = (struct feed){ .fd = sv[0], .p = stream, .len = size - 1 };
	FUZZ_ASSERT(!pthread_create(&th, NULL, feed_main, &f));
	err = mig_receive(sv[1], &o, &vm, msg, sizeof(msg));
	pthread_join(th, NULL);
	close(sv[0]);
	close(sv[1]);
	if (err) {
		FUZZ_ASSERT(err < 0 && !vm);
		if (!msg[0])
			fuzz_fail("refused with %s but no message",
				  strerror(-err));
	} else {
		check(vm);
		gmem_destroy(vm);
	}
	if (fuzz_restore_live_slots())
		fuzz_fail("%ld memslots left behind (%s)",
			  fuzz_restore_live_slots(), err ? msg : "accepted");
	free(stream);
	return 0;
}
