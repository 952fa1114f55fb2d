/* SPDX-License-Identifier: MIT */
/*
 * The guest's devices (guest ABI section 7), all on I/O ports, and how
 * they plug into the VM.
 *
 * Every device describes itself in one struct device: its port range and
 * handler, and hooks for each moment of a run where the VM needs it.  The
 * VM knows no device by name: devices.c lists them (gmvm_devices[]) and
 * calls each hook in that order (destroy in reverse), so adding a device
 * is one descriptor and one line in that list.
 *
 * A hook a device does not need is NULL.  Every hook but io runs on the
 * main thread; io runs on a vCPU thread, with the device's own lock to
 * take (see each device); stats also runs on the control socket's thread
 * while the vCPUs are paused (`gmvm ctl PATH stats`), so it takes that
 * lock too.
 */
#ifndef GMVM_DEVICES_H
#define GMVM_DEVICES_H

#include <stdbool.h>
#include <stdint.h>

#include "../gmvm.h"

struct stats_out;
struct snap_machine;

struct device {
	const char *name;	/* its ports' name (--stats port exits) */
	uint16_t first;		/* its I/O ports, [first, last] */
	uint16_t last;
	bool no_string;		/* rep ins/outs (count > 1) is a guest fault */
	port_fn io;		/* called with opaque = the device's state */

	/*
	 * Set up: 0 and *state, or -errno.  With says_why, init has printed
	 * its own error line; else the VM prints "setting up devices: ...".
	 */
	int (*init)(struct vm *vm, void **state);
	bool says_why;
	/* Flush output before gmvm prints a message of its own. */
	void (*flush)(void *state);
	/*
	 * Audit (after the run, and after every change with --audit each):
	 * 0, or -EUCLEAN with a message printed.  Thread-safe.
	 */
	int (*check)(void *state);
	/* Its section of --stats, after the VM's own. */
	void (*stats)(void *state, struct stats_out *out);
	/*
	 * At exit, after --stats, before guest memory is destroyed: 0, or
	 * -EUCLEAN with a message printed if it was left inconsistent.
	 */
	int (*teardown)(void *state);
	/* Free everything (also after a failed start).  NULL state: none. */
	void (*destroy)(void *state);
	/*
	 * Snapshots (docs/SNAPSHOT.md): snap_save puts the device's state
	 * into @m while every vCPU is paused (control socket's thread);
	 * snap_restore sets it from a checked file after init, before any
	 * vCPU runs (main thread).  0, or -errno with one line in @why.
	 * NULL: the device has no state a guest could see change.
	 */
	int (*snap_save)(void *state, struct snap_machine *m, char *why,
			 size_t why_len);
	int (*snap_restore)(void *state, const struct snap_machine *m,
			    char *why, size_t why_len);
	/*
	 * Live migration: call @fn for each guest range the device may
	 * write without this process seeing it (its mappings of guest
	 * memory), so that they are sent in every round.  Thread-safe.
	 * NULL: none.
	 */
	int (*dma_ranges)(void *state,
			  int (*fn)(void *arg, uint64_t gpa, uint64_t len),
			  void *arg);
};

/* A device on the I/O ports [@first, @last], named @name in --stats. */
#define DEVICE_PORTS(dev_name, dev_first, dev_last) \
	.name = (dev_name), .first = (dev_first), .last = (dev_last)

/* The devices, by file. */
extern const struct device serial_device;	/* serial.c: COM1 */
extern const struct device exit_port_device;	/* exit_port.c */
extern const struct device doorbell_device;	/* hypercall.c */
extern const struct device dma_test_device;	/* dma_device.c */

/*
 * devices.c: the VM's side.  device_add() sets one device up and
 * registers its ports (-errno, printing nothing); devices_init() adds
 * every device of gmvm_devices[], in order, and prints what failed.  The
 * others call the hook of every added device that has it.
 */
int device_add(struct vm *vm, const struct device *dev);
int devices_init(struct vm *vm);
void devices_flush(struct vm *vm);
int devices_check(struct vm *vm);
void devices_stats(struct vm *vm, struct stats_out *out);
int devices_teardown(struct vm *vm);
void devices_destroy(struct vm *vm);
/* Every device's snap_save / snap_restore, in order: the first failure. */
int devices_snap_save(struct vm *vm, struct snap_machine *m, char *why,
		      size_t why_len);
int devices_snap_restore(struct vm *vm, const struct snap_machine *m,
			 char *why, size_t why_len);
/* Every device's dma_ranges: the first failure. */
int devices_dma_ranges(struct vm *vm,
		       int (*fn)(void *arg, uint64_t gpa, uint64_t len),
		       void *arg);

/* dma_process.c: `gmvm dma-device`, internal, started by gmvm itself. */
int dma_process_main(int argc, char **argv);

#endif /* GMVM_DEVICES_H */
