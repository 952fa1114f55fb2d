/* SPDX-License-Identifier: MIT */
/*
 * `gmvm caps [--json]`: what this host's KVM offers for private guest
 * memory, and what gmvm would do with it (backend, guest_memfd flags,
 * memslot layout, hypercall transport) and why.  Every answer comes from a
 * probe (libgmem's gmem_probe_host/gmem_pick_gmem_flags/gmem_probe_gating
 * and gmvm's vmcall probe), never from an assumption.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "gmvm.h"

struct caps_report {
	struct gmem_host_caps host;
	const char *module;
	char missing[512];
	int nr_missing;
	int flags_ret;
	uint64_t flags;
	const char *flags_why;
	int gating_ret;
	enum gmem_layout layout;
	bool vmcall;
	const char *vmcall_why;
	bool native;
};

static void flag_names(uint64_t flags, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	if (flags & GUEST_MEMFD_FLAG_MMAP)
		off += (size_t)snprintf(buf + off, len - off, "MMAP");
	if ((flags & GUEST_MEMFD_FLAG_INIT_SHARED) && off < len)
		off += (size_t)snprintf(buf + off, len - off, "%sINIT_SHARED",
					off ? "|" : "");
	if ((flags & ~(GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED)) &&
	    off < len)
		snprintf(buf + off, len - off, "%sother", off ? "|" : "");
	if (!buf[0])
		snprintf(buf, len, "none");
}

static void vm_type_names(uint64_t types, char *buf, size_t len)
{
	static const char *const names[] = {
		"default", "sw-protected", "sev", "sev-es", "snp", "tdx",
	};
	size_t off = 0;
	unsigned int i;

	buf[0] = '\0';
	for (i = 0; i < 64 && off < len; i++) {
		if (!(types & (1ULL << i)))
			continue;
		if (i < ARRAY_SIZE(names))
			off += (size_t)snprintf(buf + off, len - off, "%s%s",
						off ? ", " : "", names[i]);
		else
			off += (size_t)snprintf(buf + off, len - off,
						"%stype %u", off ? ", " : "",
						i);
	}
	if (!buf[0])
		snprintf(buf, len, "default only (KVM_CAP_VM_TYPES absent)");
}

/* A stable short name for scripts; gmem_layout_name() is prose. */
static const char *layout_id(enum gmem_layout layout)
{
	switch (layout) {
	case GMEM_LAYOUT_GMEM_SLOT: return "gmem-slot";
	case GMEM_LAYOUT_PLAIN_SLOT: return "plain-slot";
	default: return "auto";
	}
}

static const char *yes(bool b)
{
	return b ? "yes" : "no";
}

static const char *jbool(bool b)
{
	return b ? "true" : "false";
}

/*
 * Which vendor module provides KVM, for the reader: under kvm_pvm (no
 * hardware virtualization) a guest that is not PVM-aware runs entirely in
 * KVM's instruction emulator, about a microsecond per instruction.
 */
static const char *kvm_module(void)
{
	static const char *const mods[] = { "kvm_intel", "kvm_amd", "kvm_pvm" };
	char path[64];
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(mods); i++) {
		snprintf(path, sizeof(path), "/sys/module/%s", mods[i]);
		if (!access(path, F_OK))
			return mods[i];
	}
	return "unknown";
}

static void print_text(const struct caps_report *r)
{
	const struct gmem_host_caps *h = &r->host;
	char buf[256];

	printf("KVM:                 /dev/kvm, API version %d, module %s%s\n",
	       h->api_version, r->module,
	       strcmp(r->module, "kvm_pvm") ? "" :
	       " (no hardware virtualization: guest code is emulated)");
	vm_type_names(h->vm_types, buf, sizeof(buf));
	printf("VM types:            %#llx (%s)\n",
	       (unsigned long long)h->vm_types, buf);
	flag_names(h->guest_memfd_flags, buf, sizeof(buf));
	printf("guest_memfd:         %s, flags %#llx (%s)\n",
	       yes(h->guest_memfd),
	       (unsigned long long)h->guest_memfd_flags, buf);
	printf("memory attributes:   %#llx (%s)\n",
	       (unsigned long long)h->memory_attributes,
	       (h->memory_attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE) ?
	       "PRIVATE" : "no private attribute");
	printf("hypercall exit:      %#llx (%s)\n",
	       (unsigned long long)h->exit_hypercall,
	       (h->exit_hypercall & (1ULL << KVM_HC_MAP_GPA_RANGE)) ?
	       "MAP_GPA_RANGE" : "no MAP_GPA_RANGE");
	printf("memslots:            %u\n", h->nr_memslots);
	printf("user_memory2:        %s\n", yes(h->user_memory2));
	printf("memory fault info:   %s\n", yes(h->memory_fault_info));
	printf("sync regs:           %#x%s\n", h->sync_regs,
	       (h->sync_regs & KVM_SYNC_X86_REGS) ?
	       " (gmvm reads doorbell registers from kvm_run)" :
	       " (gmvm uses KVM_GET_REGS/KVM_SET_REGS)");
	printf("gmvm requirements:   %s%s\n",
	       r->nr_missing ? "missing: " : "all present",
	       r->nr_missing ? r->missing : "");
	printf("backend:             %s\n", r->native ?
	       "emulated by libgmem; this host also reports KVM_MEMORY_ATTRIBUTE_PRIVATE, which a native backend could use" :
	       "emulated (two views gated with mprotect); native would need KVM_MEMORY_ATTRIBUTE_PRIVATE for the VM type, which this host does not report");
	if (r->flags_ret) {
		printf("guest_memfd flags:   none usable: %s (%s)\n",
		       r->flags_why ? r->flags_why : "unknown",
		       strerror(-r->flags_ret));
	} else {
		flag_names(r->flags, buf, sizeof(buf));
		printf("guest_memfd flags:   %#llx (%s): MMAP so that the views can be mapped and gated%s\n",
		       (unsigned long long)r->flags, buf,
		       (r->flags & GUEST_MEMFD_FLAG_INIT_SHARED) ?
		       "; INIT_SHARED so that KVM treats the pages as shared and a VM type without private memory can fault them" :
		       "; INIT_SHARED is not offered");
	}
	if (r->gating_ret)
		printf("layout:              none gates: %s\n",
		       strerror(-r->gating_ret));
	else
		printf("layout:              %s: %s (a probe vCPU's load from a gated page exited to userspace under this layout)\n",
		       layout_id(r->layout), gmem_layout_name(r->layout));
	printf("vmcall comes back:   %s: %s -> hypercalls use %s\n",
	       yes(r->vmcall), r->vmcall_why ? r->vmcall_why : "",
	       r->vmcall ? "vmcall (boot flag bit 2)" :
	       "the doorbell, port 0xf5");
}

/* A JSON string: the reasons come from libgmem and may hold anything. */
static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void print_json(const struct caps_report *r)
{
	const struct gmem_host_caps *h = &r->host;

	printf("{\"kvm\": true, \"api_version\": %d, \"module\": \"%s\", \"vm_types\": %llu",
	       h->api_version, r->module, (unsigned long long)h->vm_types);
	printf(", \"guest_memfd\": %s, \"guest_memfd_flags\": %llu",
	       jbool(h->guest_memfd), (unsigned long long)h->guest_memfd_flags);
	printf(", \"memory_attributes\": %llu, \"exit_hypercall\": %llu",
	       (unsigned long long)h->memory_attributes,
	       (unsigned long long)h->exit_hypercall);
	printf(", \"nr_memslots\": %u, \"user_memory2\": %s, \"memory_fault_info\": %s, \"sync_regs\": %u",
	       h->nr_memslots, jbool(h->user_memory2),
	       jbool(h->memory_fault_info), h->sync_regs);
	printf(", \"requirements_met\": %s", jbool(!r->nr_missing));
	printf(", \"backend\": \"emulated\", \"native_possible\": %s",
	       jbool(r->native));
	if (r->flags_ret) {
		printf(", \"gmem_flags\": null, \"gmem_flags_why\": ");
		json_str(r->flags_why ? r->flags_why : "unknown");
	} else {
		printf(", \"gmem_flags\": %llu", (unsigned long long)r->flags);
	}
	if (r->gating_ret)
		printf(", \"layout\": null");
	else
		printf(", \"layout\": \"%s\"", layout_id(r->layout));
	printf(", \"vmcall\": %s, \"vmcall_why\": ", jbool(r->vmcall));
	json_str(r->vmcall_why);
	printf(", \"hypercall_transport\": \"%s\"}\n",
	       r->vmcall ? "vmcall" : "doorbell");
}

int caps_main(int argc, char **argv)
{
	struct caps_report r;
	bool json = false;
	int kvm_fd, vm_fd, ret, i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
			continue;
		}
		gmvm_err("caps: unknown argument '%s' (usage: gmvm caps [--json])",
			 argv[i]);
		return GM_EXIT_HOST_ERROR;
	}
	memset(&r, 0, sizeof(r));
	if (kvm_open(&kvm_fd, false))
		return GM_EXIT_HOST_ERROR;
	ret = gmem_probe_host(&r.host);
	if (ret) {
		gmvm_err("probing KVM: gmem_probe_host: %s", strerror(-ret));
		goto err_kvm;
	}
	vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm_fd < 0) {
		gmvm_err("KVM_CREATE_VM: %s", strerror(errno));
		goto err_kvm;
	}
	r.nr_missing = vm_missing_caps(vm_fd, r.missing, sizeof(r.missing));
	close(vm_fd);
	r.native = r.host.memory_attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE;
	r.module = kvm_module();
	r.flags_ret = gmem_pick_gmem_flags(&r.host, &r.flags, &r.flags_why);
	r.gating_ret = gmem_probe_gating(&r.layout);
	r.vmcall = hypercall_vmcall_works(kvm_fd, &r.vmcall_why);
	close(kvm_fd);
	if (json)
		print_json(&r);
	else
		print_text(&r);
	return 0;

err_kvm:
	close(kvm_fd);
	return GM_EXIT_HOST_ERROR;
}
