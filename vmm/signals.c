/* SPDX-License-Identifier: MIT */
/*
 * Signals that must not end `gmvm run`.
 *
 * SIGPIPE is ignored: a reader of gmvm's stdout that goes away (`gmvm run
 * ... | head -1`) must not kill gmvm with 141 before the guest's status,
 * the final audit and the teardown.  Writes to the closed pipe fail with
 * EPIPE instead, and the console (devices/serial.c) drops the rest of the
 * guest's output.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "gmvm.h"

int signals_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &sa, NULL))
		return -errno;
	return 0;
}
