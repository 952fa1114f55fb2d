/* SPDX-License-Identifier: MIT */
/*
 * Signals that end `gmvm run` from outside, and the one that must not.
 *
 * SIGPIPE is ignored: a reader of gmvm's stdout that goes away (`gmvm run
 * ... | head -1`) must not kill gmvm with 141 before the guest's status,
 * the final audit and the teardown.  Writes to the closed pipe fail with
 * EPIPE instead, and the console (devices/serial.c) drops the rest of the
 * guest's output.
 *
 * SIGINT and SIGTERM stop the VM like the --timeout watchdog does, with
 * status 128 + the signal's number (guest ABI section 8), and gmvm still
 * prints --stats and runs the final audit.  None of that is done in a
 * handler: both signals are blocked in the main thread before it creates
 * any thread, so every thread inherits the block, and the main thread
 * unblocks them only inside ppoll() while it waits for the vCPUs
 * (signals_wait()).  The handler therefore runs only there, in the main
 * thread, and only notes the signal; the main thread sees the note when
 * ppoll() returns and calls vm_stop().  A signal that arrives while gmvm
 * starts stays pending until that first wait; one that arrives while gmvm
 * is already stopping (a second ^C) or after the vCPUs are gone stays
 * blocked and changes nothing: the audit and the teardown run to the end.
 *
 * A stop signal that was ignored when gmvm started (a background job of a
 * non-interactive shell ignores SIGINT) stays ignored, as the shell meant.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>

#include "gmvm.h"

static const int stop_signals[] = { SIGINT, SIGTERM };

/* Written only by the handler, which runs only in the main thread. */
static volatile sig_atomic_t caught;
/* The main thread's mask with the stop signals unblocked, for ppoll(). */
static sigset_t wait_mask;

static void stop_handler(int sig)
{
	if (!caught)
		caught = sig;
}

int signals_init(void)
{
	struct sigaction sa, old;
	sigset_t block;
	unsigned int i;
	int ret;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &sa, NULL))
		return -errno;

	sigemptyset(&block);
	for (i = 0; i < ARRAY_SIZE(stop_signals); i++)
		sigaddset(&block, stop_signals[i]);
	ret = pthread_sigmask(SIG_BLOCK, &block, &wait_mask);
	if (ret)
		return -ret;
	sa.sa_handler = stop_handler;
	sa.sa_mask = block;	/* one handler at a time */
	for (i = 0; i < ARRAY_SIZE(stop_signals); i++) {
		int sig = stop_signals[i];

		if (sigaction(sig, NULL, &old))
			return -errno;
		if (old.sa_handler == SIG_IGN)
			continue;
		if (sigaction(sig, &sa, NULL))
			return -errno;
		sigdelset(&wait_mask, sig);
	}
	return 0;
}

int signals_caught(void)
{
	return caught;
}

const char *signal_name(int sig)
{
	return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" :
	       "a signal";
}

int signals_wait(int fd, const struct timespec *timeout)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (ppoll(&p, 1, timeout, &wait_mask) < 0 && errno != EINTR)
		return -errno;
	return 0;
}
