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
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "../gmvm.h"
#include "devices.h"

struct console {
	pthread_mutex_t lock;
	uint64_t bytes;
};

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
		putc_unlocked(data[i], stdout);
		/* Line by line, so that whoever reads a pipe sees a guest's
		 * progress while it runs (stdout to a file is block
		 * buffered). */
		if (data[i] == '\n')
			fflush_unlocked(stdout);
		con->bytes++;
		pthread_mutex_unlock(&con->lock);
	}
	return EXIT_RESUME;
}

int console_init(struct vm *vm)
{
	struct port_handler h = {
		.first = GM_PORT_COM1,
		.last = GM_PORT_COM1_LAST,
		.name = "console",
		.fn = serial_port,
	};
	struct console *con;
	int ret;

	con = calloc(1, sizeof(*con));
	if (!con)
		return -ENOMEM;
	ret = -pthread_mutex_init(&con->lock, NULL);
	if (ret)
		goto err_con;
	h.opaque = con;
	ret = vm_register_ports(vm, &h);
	if (ret)
		goto err_lock;
	vm->console = con;
	return 0;

err_lock:
	pthread_mutex_destroy(&con->lock);
err_con:
	free(con);
	return ret;
}

void console_flush(struct vm *vm)
{
	struct console *con = vm->console;

	if (!con) {
		fflush(stdout);
		return;
	}
	pthread_mutex_lock(&con->lock);
	fflush(stdout);
	pthread_mutex_unlock(&con->lock);
}

void console_destroy(struct vm *vm)
{
	struct console *con = vm->console;

	if (!con)
		return;
	console_flush(vm);
	pthread_mutex_destroy(&con->lock);
	free(con);
	vm->console = NULL;
}
