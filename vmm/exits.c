/* SPDX-License-Identifier: MIT */
/*
 * Exit dispatch: what gmvm does with each way KVM_RUN returns 0.
 *
 *   KVM_EXIT_IO          registered port handlers (vm->ports), chosen by
 *                        the first port of the access (`outl %eax, $0xf4`
 *                        is one 4-byte access to the exit port, not four
 *                        byte accesses to 0xf4..0xf7); an access to a port
 *                        nobody registered is a guest fault (126), as in
 *                        KVM selftests: loud beats silent
 *   KVM_EXIT_MMIO        a wrong-view access (implicit.c), or an access
 *                        outside guest RAM (126)
 *   KVM_EXIT_HYPERCALL   vmcall MAP_GPA_RANGE (hypercall.c)
 *   KVM_EXIT_HLT         the vCPU parks
 *   anything else        126 with the exit's name, number and RIP
 *
 * KVM_RUN failing (EINTR, EFAULT with KVM_EXIT_MEMORY_FAULT, others) is
 * handled by the vCPU loop (vcpu.c).  Everything in kvm_run is written by
 * KVM on behalf of the guest, so it is validated before use.
 */
#include <stdio.h>
#include <string.h>

#include "gmvm.h"

static const char *const exit_names[] = {
	[KVM_EXIT_UNKNOWN] = "KVM_EXIT_UNKNOWN",
	[KVM_EXIT_EXCEPTION] = "KVM_EXIT_EXCEPTION",
	[KVM_EXIT_IO] = "KVM_EXIT_IO",
	[KVM_EXIT_HYPERCALL] = "KVM_EXIT_HYPERCALL",
	[KVM_EXIT_DEBUG] = "KVM_EXIT_DEBUG",
	[KVM_EXIT_HLT] = "KVM_EXIT_HLT",
	[KVM_EXIT_MMIO] = "KVM_EXIT_MMIO",
	[KVM_EXIT_IRQ_WINDOW_OPEN] = "KVM_EXIT_IRQ_WINDOW_OPEN",
	[KVM_EXIT_SHUTDOWN] = "KVM_EXIT_SHUTDOWN",
	[KVM_EXIT_FAIL_ENTRY] = "KVM_EXIT_FAIL_ENTRY",
	[KVM_EXIT_INTR] = "KVM_EXIT_INTR",
	[KVM_EXIT_SET_TPR] = "KVM_EXIT_SET_TPR",
	[KVM_EXIT_TPR_ACCESS] = "KVM_EXIT_TPR_ACCESS",
	[KVM_EXIT_S390_SIEIC] = "KVM_EXIT_S390_SIEIC",
	[KVM_EXIT_S390_RESET] = "KVM_EXIT_S390_RESET",
	[KVM_EXIT_DCR] = "KVM_EXIT_DCR",
	[KVM_EXIT_NMI] = "KVM_EXIT_NMI",
	[KVM_EXIT_INTERNAL_ERROR] = "KVM_EXIT_INTERNAL_ERROR",
	[KVM_EXIT_OSI] = "KVM_EXIT_OSI",
	[KVM_EXIT_PAPR_HCALL] = "KVM_EXIT_PAPR_HCALL",
	[KVM_EXIT_S390_UCONTROL] = "KVM_EXIT_S390_UCONTROL",
	[KVM_EXIT_WATCHDOG] = "KVM_EXIT_WATCHDOG",
	[KVM_EXIT_S390_TSCH] = "KVM_EXIT_S390_TSCH",
	[KVM_EXIT_EPR] = "KVM_EXIT_EPR",
	[KVM_EXIT_SYSTEM_EVENT] = "KVM_EXIT_SYSTEM_EVENT",
	[KVM_EXIT_S390_STSI] = "KVM_EXIT_S390_STSI",
	[KVM_EXIT_IOAPIC_EOI] = "KVM_EXIT_IOAPIC_EOI",
	[KVM_EXIT_HYPERV] = "KVM_EXIT_HYPERV",
	[KVM_EXIT_ARM_NISV] = "KVM_EXIT_ARM_NISV",
	[KVM_EXIT_X86_RDMSR] = "KVM_EXIT_X86_RDMSR",
	[KVM_EXIT_X86_WRMSR] = "KVM_EXIT_X86_WRMSR",
	[KVM_EXIT_DIRTY_RING_FULL] = "KVM_EXIT_DIRTY_RING_FULL",
	[KVM_EXIT_AP_RESET_HOLD] = "KVM_EXIT_AP_RESET_HOLD",
	[KVM_EXIT_X86_BUS_LOCK] = "KVM_EXIT_X86_BUS_LOCK",
	[KVM_EXIT_XEN] = "KVM_EXIT_XEN",
	[KVM_EXIT_RISCV_SBI] = "KVM_EXIT_RISCV_SBI",
	[KVM_EXIT_RISCV_CSR] = "KVM_EXIT_RISCV_CSR",
	[KVM_EXIT_NOTIFY] = "KVM_EXIT_NOTIFY",
	[38] = "KVM_EXIT_LOONGARCH_IOCSR",
	[KVM_EXIT_MEMORY_FAULT] = "KVM_EXIT_MEMORY_FAULT",
	[40] = "KVM_EXIT_TDX",
	[41] = "KVM_EXIT_ARM_SEA",
};

const char *exit_reason_name(uint32_t reason)
{
	if (reason < ARRAY_SIZE(exit_names) && exit_names[reason])
		return exit_names[reason];
	return "unknown exit reason";
}

static const struct port_handler *find_port(struct vm *vm, uint16_t port,
					    unsigned int *idx)
{
	unsigned int i;

	for (i = 0; i < vm->nr_ports; i++) {
		if (port >= vm->ports[i].first && port <= vm->ports[i].last) {
			*idx = i;
			return &vm->ports[i];
		}
	}
	return NULL;
}

static enum exit_action handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	struct vm *vm = vcpu->vm;
	uint16_t port = run->io.port;
	unsigned int size = run->io.size, i, idx = 0;
	uint32_t count = run->io.count;
	bool out = run->io.direction == KVM_EXIT_IO_OUT;
	const char *dir = out ? "write" : "read";
	const struct port_handler *h;
	uint8_t *data;

	if ((size != 1 && size != 2 && size != 4) || count == 0 ||
	    (run->io.direction != KVM_EXIT_IO_OUT &&
	     run->io.direction != KVM_EXIT_IO_IN) ||
	    run->io.data_offset > vm->run_size ||
	    (uint64_t)size * count > vm->run_size - run->io.data_offset)
		return vm_stop(vm, GM_EXIT_GUEST_FAULT,
			       "vcpu %u: malformed I/O exit: port %#x, direction %u, size %u, count %u, data offset %llu (RIP %#llx)",
			       vcpu->index, port, run->io.direction, size,
			       count, (unsigned long long)run->io.data_offset,
			       (unsigned long long)vcpu_rip(vcpu));
	h = find_port(vm, port, &idx);
	if (!h)
		return vm_stop(vm, GM_EXIT_GUEST_FAULT,
			       "vcpu %u: %u-byte %s at I/O port %#x, which no device defines (RIP %#llx)",
			       vcpu->index, size, dir, port,
			       (unsigned long long)vcpu_rip(vcpu));
	if (count > 1 && h->no_string)
		return vm_stop(vm, GM_EXIT_GUEST_FAULT,
			       "vcpu %u: string I/O (rep %s, count %u) at the %s port %#x, which takes single accesses only (RIP %#llx)",
			       vcpu->index, out ? "outs" : "ins", count,
			       h->name, port,
			       (unsigned long long)vcpu_rip(vcpu));
	if (idx < ARRAY_SIZE(vcpu->stats.port_exits))
		vcpu->stats.port_exits[idx]++;
	data = (uint8_t *)run + run->io.data_offset;
	for (i = 0; i < count; i++) {
		enum exit_action act = h->fn(vcpu, h->opaque, port, out, size,
					     data + (size_t)i * size);

		if (act != EXIT_RESUME)
			return act;
	}
	return EXIT_RESUME;
}

static enum exit_action internal_error(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint32_t sub = run->internal.suberror;
	char insn[15 * 3 + 1] = "";
	unsigned int i, n;

	if (sub != KVM_INTERNAL_ERROR_EMULATION)
		return vm_stop(vcpu->vm, GM_EXIT_GUEST_FAULT,
			       "vcpu %u: KVM internal error (KVM_EXIT_INTERNAL_ERROR %u, suberror %u%s) (RIP %#llx)",
			       vcpu->index, KVM_EXIT_INTERNAL_ERROR, sub,
			       sub == KVM_INTERNAL_ERROR_SIMUL_EX ?
			       ": exception while delivering an exception" :
			       sub == KVM_INTERNAL_ERROR_DELIVERY_EV ?
			       ": event delivery failed (no IDT loaded?)" : "",
			       (unsigned long long)vcpu_rip(vcpu));
	if (run->emulation_failure.ndata >= 3 &&
	    (run->emulation_failure.flags &
	     KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		n = run->emulation_failure.insn_size;
		if (n > 15)
			n = 15;
		for (i = 0; i < n; i++)
			snprintf(insn + 3 * i, sizeof(insn) - 3 * i, " %02x",
				 run->emulation_failure.insn_bytes[i]);
	}
	return vm_stop(vcpu->vm, GM_EXIT_GUEST_FAULT,
		       "vcpu %u: KVM could not emulate an instruction (KVM_EXIT_INTERNAL_ERROR %u, emulation failure) at RIP %#llx%s%s; one cause is a wrong-view access (implicit conversion) by an instruction form the host cannot emulate, such as a vector or string instruction: convert the page explicitly first (guest ABI section 6)",
		       vcpu->index, KVM_EXIT_INTERNAL_ERROR,
		       (unsigned long long)vcpu_rip(vcpu),
		       insn[0] ? ", bytes" : "", insn);
}

enum exit_action exits_dispatch(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint32_t reason = run->exit_reason;

	switch (reason) {
	case KVM_EXIT_IO:
		return handle_io(vcpu);
	case KVM_EXIT_MMIO:
		return implicit_mmio(vcpu);
	case KVM_EXIT_HYPERCALL:
		return hypercall_vmcall_exit(vcpu);
	case KVM_EXIT_HLT:
		return EXIT_PARK;
	case KVM_EXIT_SHUTDOWN:
		return vm_stop(vcpu->vm, GM_EXIT_GUEST_FAULT,
			       "vcpu %u: triple fault (KVM_EXIT_SHUTDOWN %u): an exception the guest could not handle; no IDT is loaded until the guest installs one (RIP %#llx)",
			       vcpu->index, reason,
			       (unsigned long long)vcpu_rip(vcpu));
	case KVM_EXIT_INTERNAL_ERROR:
		return internal_error(vcpu);
	case KVM_EXIT_FAIL_ENTRY:
		return vm_stop(vcpu->vm, GM_EXIT_GUEST_FAULT,
			       "vcpu %u: VM entry failed (KVM_EXIT_FAIL_ENTRY %u, hardware reason %#llx) (RIP %#llx)",
			       vcpu->index, reason,
			       (unsigned long long)run->fail_entry.hardware_entry_failure_reason,
			       (unsigned long long)vcpu_rip(vcpu));
	default:
		return vm_stop(vcpu->vm, GM_EXIT_GUEST_FAULT,
			       "vcpu %u: unhandled exit %s (%u) (RIP %#llx)",
			       vcpu->index, exit_reason_name(reason), reason,
			       (unsigned long long)vcpu_rip(vcpu));
	}
}
