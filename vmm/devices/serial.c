/* SPDX-License-Identifier: MIT */
/*
 * COM1 (0x3f8..0x3ff), output only: a byte written to THR (0x3f8) goes to
 * gmvm's stdout; LSR (0x3fd) reads 0x60 (transmitter empty, so a polling
 * driver never waits); every other register reads 0 and ignores writes.
 * A 2- or 4-byte access is treated as that many byte accesses at
 * consecutive ports, as the bus would split it.
 *
 * Locking: console->lock serialises output between vCPUs, so a `rep outsb`
 * string from one vCPU is never interleaved with another's bytes; the
 * bytes themselves go through stdio's buffer (flushed at exit and before
 * gmvm prints a message of its own).
 *
 * A write error on stdout (EPIPE when its reader went away, as in
 * `gmvm run ... | head -1`; gmvm ignores SIGPIPE, see signals.c) must
 * neither kill nor stall the VM, and the guest has no way to learn of it:
 * the console says so once on stderr and drops the rest of the output.
 * The VM goes on, and its exit status is still the guest's.  (A reader
 * that stays but stops reading blocks the writing vCPU, as it would any
 * writer; the kick of vm_stop(), for --timeout or a stop signal,
 * interrupts that write.)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices.h"

struct console {
	pthread_mutex_t lock;
	uint64_t bytes;
	bool broken;		/* stdout failed: drop everything */
};

/* stdout failed (errno says how), with con->lock held. */
static void console_broken(struct console *con)
{
	int err = errno;

	/*
	 * A vCPU kick (vm_stop()) interrupted a write blocked on a full
	 * pipe: stdout itself is fine, the VM is stopping.
	 */
	if (err == EINTR) {
		clearerr_unlocked(stdout);
		return;
	}
	if (con->broken)
		return;
	con->broken = true;
	gmvm_err("writing the guest's console output to stdout: %s; the rest of it is dropped (the guest runs on)",
		 strerror(err));
}

static enum exit_action serial_port(struct vcpu *vcpu, void *opaque,
				    uint16_t port, bool out,
				    unsigned int size, uint8_t *data)
{
	struct console *con = opaque;
	unsigned int i;

	if (!out) {
		for (i = 0; i < size; i++)
			data[i] = port + i == GM_PORT_COM1_LSR ? 0x60 : 0;
		return EXIT_RESUME;
	}
	for (i = 0; i < size; i++) {
		if (port + i != GM_PORT_COM1)
			continue;
		pthread_mutex_lock(&con->lock);
		con->bytes++;
		if (con->broken)
			goto next;
		/* Line by line, so that whoever reads a pipe sees a guest's
		 * progress while it runs (stdout to a file is block
		 * buffered). */
		if (putc_unlocked(data[i], stdout) == EOF ||
		    (data[i] == '\n' && fflush_unlocked(stdout) == EOF))
			console_broken(con);
next:
		pthread_mutex_unlock(&con->lock);
	}
	return EXIT_RESUME;
}

static int console_init(struct vm *vm, void **state)
{
	struct console *con;
	int ret;

	con = calloc(1, sizeof(*con));
	if (!con)
		return -ENOMEM;
	ret = -pthread_mutex_init(&con->lock, NULL);
	if (ret) {
		free(con);
		return ret;
	}
	*state = con;
	return 0;
}

static void console_flush(void *state)
{
	struct console *con = state;

	pthread_mutex_lock(&con->lock);
	if (!con->broken && fflush(stdout) == EOF)
		console_broken(con);
	pthread_mutex_unlock(&con->lock);
}

static void console_destroy(void *state)
{
	struct console *con = state;

	console_flush(con);
	pthread_mutex_destroy(&con->lock);
	free(con);
}

const struct device serial_device = {
	DEVICE_PORTS("console", GM_PORT_COM1, GM_PORT_COM1_LAST),
	.io = serial_port,
	.init = console_init,
	.flush = console_flush,
	.destroy = console_destroy,
};
