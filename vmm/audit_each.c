/* SPDX-License-Identifier: MIT */
/*
 * The `--audit each` policy: after every change a vCPU made to guest
 * memory (a conversion, a plug or an unplug), check every invariant
 * against the kernel, not only at exit.  Slow, and meant for tests: a bug
 * is caught at the change that made it, not at the end of the run.
 *
 * Called on the vCPU thread that made the change, with no lock held.
 */
#include <errno.h>
#include <string.h>

#include "gmvm.h"
#include "devices/devices.h"

/*
 * --audit each: after every change, check every invariant against the
 * kernel (libgmem's audit, and the DMA device's mappings, an external
 * device's real ones included).  A violation stops the VM with 125.
 */
enum exit_action audit_after_change(struct vcpu *vcpu, const char *what)
{
	struct vm *vm = vcpu->vm;
	char msg[512];
	int ret;

	if (!vm->cfg->audit_each)
		return EXIT_RESUME;
	ret = gmem_audit(vm->gmem, msg, sizeof(msg));
	if (ret == -EUCLEAN)
		return vm_stop(vm, GM_EXIT_HOST_ERROR,
			       "vcpu %u: audit after %s: %s", vcpu->index,
			       what, msg);
	if (ret < 0)
		return vm_stop(vm, GM_EXIT_HOST_ERROR,
			       "vcpu %u: audit after %s: gmem_audit: %s",
			       vcpu->index, what, strerror(-ret));
	if (devices_check(vm))
		return vm_stop(vm, GM_EXIT_HOST_ERROR,
			       "vcpu %u: audit after %s: the DMA device's mappings are wrong (see above)",
			       vcpu->index, what);
	return EXIT_RESUME;
}
