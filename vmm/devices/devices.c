/* SPDX-License-Identifier: MIT */
/*
 * The VM's side of its devices: which devices there are, in which order,
 * and calling each one's hooks (struct device, devices.h).
 *
 * The order of gmvm_devices[] is the order of the port handlers, and so
 * of the "port exits" in --stats, and the order in which the devices are
 * set up, checked, counted and torn down; they are destroyed in reverse.
 *
 * State: vm->devices[] and vm->ports[] are written by the main thread
 * before any vCPU thread starts (or, in the fuzzers, by the only thread)
 * and are read-only while vCPUs run.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices.h"

static const struct device *const gmvm_devices[] = {
	&serial_device,
	&exit_port_device,
	&doorbell_device,
	&dma_test_device,
};

static int register_ports(struct vm *vm, const struct port_handler *h)
{
	unsigned int i;

	if (h->first > h->last || vm->nr_ports == VM_MAX_PORT_HANDLERS)
		return -EINVAL;
	for (i = 0; i < vm->nr_ports; i++)
		if (h->first <= vm->ports[i].last &&
		    vm->ports[i].first <= h->last)
			return -EBUSY;
	vm->ports[vm->nr_ports++] = *h;
	return 0;
}

int device_add(struct vm *vm, const struct device *dev)
{
	struct port_handler h = {
		.first = dev->first,
		.last = dev->last,
		.name = dev->name,
		.no_string = dev->no_string,
		.fn = dev->io,
	};
	void *state = NULL;
	int ret;

	if (vm->nr_devices == VM_MAX_DEVICES)
		return -EINVAL;
	if (dev->init) {
		ret = dev->init(vm, &state);
		if (ret)
			return ret;
	}
	h.opaque = state;
	ret = dev->io ? register_ports(vm, &h) : 0;
	if (ret) {
		if (dev->destroy)
			dev->destroy(state);
		return ret;
	}
	vm->devices[vm->nr_devices].dev = dev;
	vm->devices[vm->nr_devices].state = state;
	vm->nr_devices++;
	return 0;
}

int devices_init(struct vm *vm)
{
	unsigned int i;
	int ret;

	for (i = 0; i < ARRAY_SIZE(gmvm_devices); i++) {
		ret = device_add(vm, gmvm_devices[i]);
		if (!ret)
			continue;
		if (!gmvm_devices[i]->says_why)
			gmvm_err("setting up devices: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

void devices_flush(struct vm *vm)
{
	bool flushed = false;
	unsigned int i;

	for (i = 0; i < vm->nr_devices; i++) {
		if (vm->devices[i].dev->flush) {
			vm->devices[i].dev->flush(vm->devices[i].state);
			flushed = true;
		}
	}
	/* No console (it failed to start): stdout is still gmvm's. */
	if (!flushed)
		fflush(stdout);
}

/*
 * Call the hook that returns 0 or -EUCLEAN (check, teardown) of every
 * device, @pick choosing which: -EUCLEAN if any of them said so.
 */
typedef int (*verdict_hook)(void *state);

static int call_each(struct vm *vm,
		     verdict_hook (*pick)(const struct device *dev))
{
	unsigned int i;
	int ret = 0;

	for (i = 0; i < vm->nr_devices; i++) {
		verdict_hook hook = pick(vm->devices[i].dev);

		if (hook && hook(vm->devices[i].state))
			ret = -EUCLEAN;
	}
	return ret;
}

static verdict_hook pick_check(const struct device *dev)
{
	return dev->check;
}

static verdict_hook pick_teardown(const struct device *dev)
{
	return dev->teardown;
}

int devices_check(struct vm *vm)
{
	return call_each(vm, pick_check);
}

void devices_stats(struct vm *vm, struct stats_out *out)
{
	unsigned int i;

	for (i = 0; i < vm->nr_devices; i++)
		if (vm->devices[i].dev->stats)
			vm->devices[i].dev->stats(vm->devices[i].state, out);
}

int devices_teardown(struct vm *vm)
{
	return call_each(vm, pick_teardown);
}

void devices_destroy(struct vm *vm)
{
	while (vm->nr_devices) {
		vm->nr_devices--;
		if (vm->devices[vm->nr_devices].dev->destroy)
			vm->devices[vm->nr_devices].dev->destroy(
				vm->devices[vm->nr_devices].state);
	}
}

int devices_snap_save(struct vm *vm, struct snap_machine *m, char *why,
		      size_t why_len)
{
	unsigned int i;
	int ret;

	for (i = 0; i < vm->nr_devices; i++) {
		if (!vm->devices[i].dev->snap_save)
			continue;
		ret = vm->devices[i].dev->snap_save(vm->devices[i].state, m,
						    why, why_len);
		if (ret)
			return ret;
	}
	return 0;
}

int devices_snap_restore(struct vm *vm, const struct snap_machine *m,
			 char *why, size_t why_len)
{
	unsigned int i;
	int ret;

	for (i = 0; i < vm->nr_devices; i++) {
		if (!vm->devices[i].dev->snap_restore)
			continue;
		ret = vm->devices[i].dev->snap_restore(vm->devices[i].state,
						       m, why, why_len);
		if (ret)
			return ret;
	}
	return 0;
}

int devices_dma_ranges(struct vm *vm,
		       int (*fn)(void *arg, uint64_t gpa, uint64_t len),
		       void *arg)
{
	unsigned int i;
	int ret;

	for (i = 0; i < vm->nr_devices; i++) {
		if (!vm->devices[i].dev->dma_ranges)
			continue;
		ret = vm->devices[i].dev->dma_ranges(vm->devices[i].state, fn,
						     arg);
		if (ret)
			return ret;
	}
	return 0;
}
