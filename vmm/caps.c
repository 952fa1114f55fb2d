/* SPDX-License-Identifier: MIT */
/*
 * `gmvm caps [--json]`: what this host's KVM offers for private guest
 * memory, and what gmvm would do with it (backend for each conversion
 * mode, guest_memfd flags, memslot layout, hypercall transport) and why.
 * Every answer comes from a probe, never from an assumption: libgmem's
 * gmem_probe_vm() on a VM created here as gmvm run creates its own (so
 * VM-scoped answers are those of that VM type), gmem_pick_backend(),
 * gmem_pick_guest_memfd_flags(), and the start-up probes gmvm run uses
 * (probes.c: gating layout and vmcall, from the probe cache when it has
 * them, which is said with where the cache lives).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "gmvm.h"
#include "map_limit.h"
#include "migrate/track.h"

/* What libgmem would run in one conversion mode, and why. */
struct caps_backend {
	enum gmem_mode mode;
	int ret;			/* gmem_pick_backend() */
	enum gmem_backend lib_backend;	/* libgmem's choice */
	const char *lib_why;
	enum gmem_backend backend;	/* what gmvm runs (vm_choose_backend) */
	const char *why;
	int flags_ret;			/* gmem_pick_guest_memfd_flags() */
	uint64_t flags;
	const char *flags_why;
	int lib_flags_ret;		/* ... for libgmem's choice */
	uint64_t lib_flags;
	const char *lib_flags_why;
};

struct caps_report {
	struct gmem_vm_caps vm;		/* of the VM gmvm created here */
	/* How many runs of page state the host's mapping limit allows
	 * (map_limit.c): map_limit_read()'s answer. */
	int maps_ret;
	struct map_limit maps;
	const char *module;
	char missing[512];
	int nr_missing;
	struct caps_backend modes[2];	/* discard (gmvm's default), in-place */
	bool need_layout;		/* some mode runs the emulated backend */
	struct probes probes;		/* gating layout, vmcall, the cache */
	/* Live migration's dirty trackers on this host (track.h). */
	struct mig_track_caps mig;
	int mig_ret;
	/* Whether uffd-wp sees the guest's writes through the layout gmvm
	 * uses (track_guest.c); 1 when no layout could be probed. */
	int guest_ret;
	const char *guest_why;
};

/*
 * What `gmvm ctl PATH migrate` tracks with: uffd-wp only, and only where
 * it sees the guest's writes through the layout gmvm uses (migrate_cmd.c
 * asks the same question and refuses otherwise); the KVM dirty log is
 * reported but not used.
 */
static const char *mig_tracker(const struct caps_report *r)
{
	return r->mig_ret || r->guest_ret ? "none" :
	       mig_track_name(r->mig.kinds & MIG_TRACK_UFFD_WP);
}

/* A probe's reason, which a probe that could not run may lack. */
static const char *why_of(const char *why)
{
	return why ? why : "unknown";
}

#define MIG_KVM_UNUSED "not used: gmvm does not hand its memslots to it yet, so a VM with guest_memfd-bound memslots is refused"

static void flag_names(uint64_t flags, char *buf, size_t len)
{
	static const struct {
		uint64_t bit;
		const char *name;
	} names[] = {
		{ GMEM_GUEST_MEMFD_MMAP, "MMAP" },
		{ GMEM_GUEST_MEMFD_INIT_SHARED, "INIT_SHARED" },
		{ GMEM_GUEST_MEMFD_NO_DIRECT_MAP, "NO_DIRECT_MAP" },
	};
	uint64_t known = 0;
	size_t off = 0;
	unsigned int i;

	buf[0] = '\0';
	for (i = 0; i < ARRAY_SIZE(names); i++) {
		known |= names[i].bit;
		if ((flags & names[i].bit) && off < len)
			off += (size_t)snprintf(buf + off, len - off, "%s%s",
						off ? "|" : "", names[i].name);
	}
	if ((flags & ~known) && off < len)
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

/* A stable short name for scripts; gmem_backend_name() is prose. */
static const char *backend_id(enum gmem_backend backend)
{
	switch (backend) {
	case GMEM_BACKEND_EMULATED: return "emulated";
	case GMEM_BACKEND_VM_ATTRIBUTES: return "vm-attributes";
	case GMEM_BACKEND_GMEM_IN_PLACE: return "gmem-in-place";
	default: return "auto";
	}
}

static void print_backend_text(const struct caps_backend *b)
{
	char buf[128];

	printf("backend (%s):%*s", gmem_mode_name(b->mode),
	       b->mode == GMEM_MODE_DISCARD ? 3 : 2, "");
	if (b->ret) {
		printf("none: %s (%s)\n", b->why ? b->why : "unknown",
		       strerror(-b->ret));
		return;
	}
	printf("%s: %s\n", gmem_backend_name(b->backend),
	       b->why ? b->why : "");
	if (b->lib_backend != b->backend) {
		printf("  libgmem would pick: %s: %s\n",
		       gmem_backend_name(b->lib_backend),
		       b->lib_why ? b->lib_why : "");
		flag_names(b->lib_flags, buf, sizeof(buf));
		printf("  with guest_memfd flags: %s%#llx (%s): %s\n",
		       b->lib_flags_ret ? "none usable, " : "",
		       (unsigned long long)b->lib_flags, buf,
		       b->lib_flags_why ? b->lib_flags_why : "");
	}
	if (b->flags_ret) {
		printf("  guest_memfd flags: none usable: %s (%s)\n",
		       b->flags_why ? b->flags_why : "unknown",
		       strerror(-b->flags_ret));
	} else {
		flag_names(b->flags, buf, sizeof(buf));
		printf("  guest_memfd flags: %#llx (%s): %s\n",
		       (unsigned long long)b->flags, buf,
		       b->flags_why ? b->flags_why : "");
	}
}

static void print_text(const struct caps_report *r)
{
	const struct gmem_vm_caps *h = &r->vm;
	const struct probes *p = &r->probes;
	bool vmcall = p->vmcall == VMCALL_EXITS;
	char buf[PATH_MAX + 256];
	unsigned int i;

	printf("KVM:                 /dev/kvm, API version %d, module %s%s\n",
	       h->api_version, r->module,
	       strcmp(r->module, "kvm_pvm") ? "" :
	       " (no hardware virtualization: guest code is emulated)");
	vm_type_names(h->vm_types, buf, sizeof(buf));
	printf("VM types:            %#llx (%s)\n",
	       (unsigned long long)h->vm_types, buf);
	flag_names(h->guest_memfd_flags, buf, sizeof(buf));
	printf("guest_memfd:         %s, flags %#llx (%s)%s\n",
	       yes(h->guest_memfd),
	       (unsigned long long)h->guest_memfd_flags, buf,
	       (h->guest_memfd_flags & GMEM_GUEST_MEMFD_NO_DIRECT_MAP) ?
	       "; NO_DIRECT_MAP is offered" : "");
	printf("guest_memfd convert: %s\n", yes(h->gmem_conversion));
	printf("memory attributes:   %#llx (%s)\n",
	       (unsigned long long)h->memory_attributes,
	       (h->memory_attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE) ?
	       "PRIVATE" : "no private attribute");
	printf("hypercall exit:      %#llx (%s)\n",
	       (unsigned long long)h->exit_hypercall,
	       (h->exit_hypercall & (1ULL << KVM_HC_MAP_GPA_RANGE)) ?
	       "MAP_GPA_RANGE" : "no MAP_GPA_RANGE");
	printf("memslots:            %u\n", h->nr_memslots);
	if (r->maps_ret)
		printf("page-state runs:     unknown: %s\n",
		       strerror(-r->maps_ret));
	else
		printf("page-state runs:     about %ld: vm.max_map_count %ld, minus the %ld mappings gmvm has now, over %d mappings per run (one per view; each vCPU adds a few); a conversion past it gets -12\n",
		       r->maps.runs, r->maps.max_map_count, r->maps.mappings,
		       MAP_VMAS_PER_RUN);
	printf("user_memory2:        %s\n", yes(h->user_memory2));
	printf("memory fault info:   %s\n", yes(h->memory_fault_info));
	printf("sync regs:           %#x%s\n", h->sync_regs,
	       (h->sync_regs & KVM_SYNC_X86_REGS) ?
	       " (gmvm reads doorbell registers from kvm_run)" :
	       " (gmvm uses KVM_GET_REGS/KVM_SET_REGS)");
	printf("gmvm requirements:   %s%s\n",
	       r->nr_missing ? "missing: " : "all present",
	       r->nr_missing ? r->missing : "");
	for (i = 0; i < ARRAY_SIZE(r->modes); i++)
		print_backend_text(&r->modes[i]);
	if (!r->need_layout)
		printf("layout:              not needed (no mode runs the emulated backend)\n");
	else if (p->gating_ret)
		printf("layout:              none gates: %s\n",
		       strerror(-p->gating_ret));
	else
		printf("layout:              %s: %s (a probe vCPU's load from a gated page exited to userspace under this layout)\n",
		       layout_id(p->layout), gmem_layout_name(p->layout));
	printf("vmcall comes back:   %s: %s -> hypercalls use %s\n",
	       yes(vmcall), vmcall_why(p->vmcall),
	       vmcall ? "vmcall (boot flag bit 2)" :
	       "the doorbell, port 0xf5");
	probes_cache_describe(p, buf, sizeof(buf));
	printf("probe cache:         %s\n", buf);
	printf("migration tracking:  %s\n", mig_tracker(r));
	printf("  uffd-wp:           %s: %s\n", yes(r->mig.uffd_wp),
	       why_of(r->mig.uffd_why));
	printf("  guest writes:      %s: %s\n", yes(!r->guest_ret),
	       why_of(r->guest_why));
	printf("  KVM dirty log:     %s: %s; %s\n",
	       r->mig.kvm_dirty_log == 1 ? "yes" : "no",
	       why_of(r->mig.kvm_why), MIG_KVM_UNUSED);
	printf("  soft-dirty:        %s: %s\n", yes(r->mig.soft_dirty),
	       why_of(r->mig.soft_dirty_why));
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

static void print_backend_json(const struct caps_backend *b)
{
	if (b->ret) {
		printf("{\"backend\": null, \"why\": ");
		json_str(b->why ? b->why : "unknown");
		printf(", \"guest_memfd_flags\": null}");
		return;
	}
	printf("{\"backend\": \"%s\", \"name\": ", backend_id(b->backend));
	json_str(gmem_backend_name(b->backend));
	printf(", \"why\": ");
	json_str(b->why);
	printf(", \"libgmem_backend\": \"%s\", \"libgmem_why\": ",
	       backend_id(b->lib_backend));
	json_str(b->lib_why);
	if (b->lib_flags_ret)
		printf(", \"libgmem_guest_memfd_flags\": null");
	else
		printf(", \"libgmem_guest_memfd_flags\": %llu",
		       (unsigned long long)b->lib_flags);
	if (b->flags_ret)
		printf(", \"guest_memfd_flags\": null");
	else
		printf(", \"guest_memfd_flags\": %llu, \"no_direct_map\": %s",
		       (unsigned long long)b->flags,
		       jbool(b->flags & GMEM_GUEST_MEMFD_NO_DIRECT_MAP));
	printf(", \"guest_memfd_flags_why\": ");
	json_str(b->flags_why ? b->flags_why : "unknown");
	printf("}");
}

static void print_json(const struct caps_report *r)
{
	const struct gmem_vm_caps *h = &r->vm;
	const struct caps_backend *def = &r->modes[0];
	const struct probes *p = &r->probes;
	bool vmcall = p->vmcall == VMCALL_EXITS;
	char buf[PATH_MAX + 256];

	printf("{\"kvm\": true, \"api_version\": %d, \"module\": \"%s\", \"vm_types\": %llu",
	       h->api_version, r->module, (unsigned long long)h->vm_types);
	printf(", \"guest_memfd\": %s, \"guest_memfd_flags\": %llu, \"guest_memfd_no_direct_map\": %s, \"gmem_conversion\": %s",
	       jbool(h->guest_memfd), (unsigned long long)h->guest_memfd_flags,
	       jbool(h->guest_memfd_flags & GMEM_GUEST_MEMFD_NO_DIRECT_MAP),
	       jbool(h->gmem_conversion));
	printf(", \"memory_attributes\": %llu, \"exit_hypercall\": %llu",
	       (unsigned long long)h->memory_attributes,
	       (unsigned long long)h->exit_hypercall);
	printf(", \"nr_memslots\": %u, \"user_memory2\": %s, \"memory_fault_info\": %s, \"sync_regs\": %u",
	       h->nr_memslots, jbool(h->user_memory2),
	       jbool(h->memory_fault_info), h->sync_regs);
	if (r->maps_ret)
		printf(", \"max_map_count\": null, \"mappings\": null, \"max_runs\": null");
	else
		printf(", \"max_map_count\": %ld, \"mappings\": %ld, \"max_runs\": %ld",
		       r->maps.max_map_count, r->maps.mappings, r->maps.runs);
	printf(", \"requirements_met\": %s", jbool(!r->nr_missing));
	/* The default mode's (discard) choice, flat, as before. */
	if (def->ret)
		printf(", \"backend\": null");
	else
		printf(", \"backend\": \"%s\"", backend_id(def->backend));
	printf(", \"backend_why\": ");
	json_str(def->why ? def->why : "unknown");
	printf(", \"native_possible\": %s",
	       jbool(h->memory_attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE));
	if (def->ret || def->flags_ret) {
		printf(", \"gmem_flags\": null, \"gmem_flags_why\": ");
		json_str(def->flags_why ? def->flags_why : "unknown");
	} else {
		printf(", \"gmem_flags\": %llu, \"gmem_flags_why\": ",
		       (unsigned long long)def->flags);
		json_str(def->flags_why);
	}
	printf(", \"backends\": {\"discard\": ");
	print_backend_json(&r->modes[0]);
	printf(", \"in_place\": ");
	print_backend_json(&r->modes[1]);
	printf("}");
	if (!r->need_layout || p->gating_ret)
		printf(", \"layout\": null");
	else
		printf(", \"layout\": \"%s\"", layout_id(p->layout));
	printf(", \"vmcall\": %s, \"vmcall_why\": ", jbool(vmcall));
	json_str(vmcall_why(p->vmcall));
	printf(", \"hypercall_transport\": \"%s\"",
	       vmcall ? "vmcall" : "doorbell");
	printf(", \"probe_cache\": {\"status\": \"%s\", \"path\": ",
	       probes_cache_status(p));
	if (p->path[0])
		json_str(p->path);
	else
		printf("null");
	probes_cache_describe(p, buf, sizeof(buf));
	printf(", \"why\": ");
	json_str(buf);
	printf("}, \"migration\": {\"tracker\": \"%s\", \"uffd_wp\": %s, \"uffd_wp_why\": ",
	       mig_tracker(r), jbool(r->mig.uffd_wp));
	json_str(why_of(r->mig.uffd_why));
	printf(", \"guest_writes_seen\": %s, \"guest_writes_why\": ",
	       jbool(!r->guest_ret));
	json_str(why_of(r->guest_why));
	printf(", \"kvm_dirty_log\": %s, \"kvm_dirty_log_why\": ",
	       jbool(r->mig.kvm_dirty_log == 1));
	json_str(why_of(r->mig.kvm_why));
	printf(", \"kvm_dirty_log_used\": false, \"kvm_dirty_log_unused_why\": ");
	json_str(MIG_KVM_UNUSED);
	printf(", \"soft_dirty\": %s, \"soft_dirty_why\": ",
	       jbool(r->mig.soft_dirty));
	json_str(why_of(r->mig.soft_dirty_why));
	printf("}}\n");
}

static void pick(const struct gmem_vm_caps *caps, enum gmem_mode mode,
		 struct caps_backend *b)
{
	b->mode = mode;
	b->ret = vm_choose_backend(caps, mode, &b->lib_backend, &b->lib_why,
				   &b->backend, &b->why);
	if (b->ret)
		return;
	b->flags_ret = gmem_pick_guest_memfd_flags(caps, b->backend,
						   &b->flags, &b->flags_why);
	b->lib_flags_ret = gmem_pick_guest_memfd_flags(caps, b->lib_backend,
						       &b->lib_flags,
						       &b->lib_flags_why);
}

int caps_main(int argc, char **argv)
{
	bool json = false, use_cache = true;
	struct caps_report r;
	int kvm_fd, vm_fd, ret, i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
			continue;
		}
		if (!strcmp(argv[i], "--no-probe-cache")) {
			use_cache = false;
			continue;
		}
		gmvm_err("caps: unknown argument '%s' (usage: gmvm caps [--json] [--no-probe-cache])",
			 argv[i]);
		return GM_EXIT_HOST_ERROR;
	}
	memset(&r, 0, sizeof(r));
	r.vm.size = sizeof(r.vm);
	if (kvm_open(&kvm_fd, false))
		return GM_EXIT_HOST_ERROR;
	/* The VM gmvm would run (default type): its own answers. */
	vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm_fd < 0) {
		gmvm_err("KVM_CREATE_VM: %s", strerror(errno));
		goto err_kvm;
	}
	ret = gmem_probe_vm(vm_fd, &r.vm);
	if (ret) {
		gmvm_err("probing the VM's capabilities: gmem_probe_vm: %s",
			 strerror(-ret));
		close(vm_fd);
		goto err_kvm;
	}
	r.nr_missing = vm_missing_caps(vm_fd, r.missing, sizeof(r.missing));
	r.mig_ret = mig_track_probe(vm_fd, &r.mig);
	close(vm_fd);
	r.module = kvm_module();
	r.maps_ret = map_limit_read(&r.maps);
	pick(&r.vm, GMEM_MODE_DISCARD, &r.modes[0]);
	pick(&r.vm, GMEM_MODE_IN_PLACE, &r.modes[1]);
	for (i = 0; i < (int)ARRAY_SIZE(r.modes); i++)
		if (!r.modes[i].ret &&
		    r.modes[i].backend == GMEM_BACKEND_EMULATED)
			r.need_layout = true;
	/* As gmvm run gets them: the same probes, the same cache. */
	probes_get(kvm_fd, use_cache, &r.probes);
	r.guest_ret = 1;
	if (!r.need_layout)
		r.guest_why = "no mode runs the emulated backend, whose views migrate sends from";
	else if (r.probes.gating_ret)
		r.guest_why = "no layout gates here, so no VM runs";
	else
		r.guest_ret = mig_uffd_probe_guest(kvm_fd, r.probes.layout,
						   &r.guest_why);
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
