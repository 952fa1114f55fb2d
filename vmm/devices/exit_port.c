/* SPDX-License-Identifier: MIT */
/*
 * The exit port (0xf4): `outl %eax, $0xf4` ends the VM with status
 * eax & 0xff.  Any write size is accepted (the low byte is the status);
 * a read is not defined by the ABI and is a guest fault.
 */
#include "devices.h"

static enum exit_action exit_port(struct vcpu *vcpu, void *opaque,
				  uint16_t port, bool out, unsigned int size,
				  uint8_t *data)
{
	if (!out)
		return vm_stop(vcpu->vm, GM_EXIT_GUEST_FAULT,
			       "vcpu %u: read of the write-only exit port %#x (RIP %#llx)",
			       vcpu->index, port,
			       (unsigned long long)vcpu_rip(vcpu));
	return vm_stop(vcpu->vm, data[0], NULL);
}

const struct device exit_port_device = {
	DEVICE_PORTS("exit", GM_PORT_EXIT, GM_PORT_EXIT),
	.no_string = true,
	.io = exit_port,
};
