/* SPDX-License-Identifier: MIT */
/*
 * The VM: KVM and VM fds, the capability check, guest memory (libgmem),
 * devices, launch, and the orchestration of one run from start to exit
 * status.
 *
 * A run, in order:
 *   1. validate the image (before touching KVM: a bad image is 125 even
 *      on a host without KVM);
 *   2. open /dev/kvm, create the VM, check the required capabilities
 *      (every missing one is named), run the host probes (probes.c:
 *      whether vmcall comes back, which memslot layout gating stops a
 *      vCPU under), from the probe cache when it has them;
 *   3. pick the libgmem backend from the VM's own capabilities (and, for
 *      the emulated one, the layout the gating probe found);
 *      gmem_create: one RAM region per range of the RAM layout
 *      (--memory-layout, layout.c), each at its own GPA, all pages
 *      private (or shared with --init-shared), shared_base as libgmem
 *      reports it (above the top of RAM; 0 for a native backend);
 *   4. devices, each as it describes itself (devices/devices.c);
 *   5. launch: place gmvm's structures after the image; with
 *      --init-shared, convert the RAM of [0, free_start) to private first
 *      (the ABI puts the image and gmvm's structures in private memory,
 *      so the one block below free_start is private and everything from
 *      free_start up starts shared); load the image and write boot info
 *      (with the region table), GDT, command line and page tables into
 *      private memory;
 *   6. create the vCPUs, start their threads behind a gate so that they
 *      all enter KVM_RUN together, wait (with the --timeout deadline, and
 *      for SIGINT/SIGTERM, which stop the VM with 130/143);
 *   7. exit status: the first vm_stop() wins; if none was called, every
 *      vCPU parked in hlt: 126;
 *   8. audit libgmem's invariants (a violation is 125: a bug never passes
 *      silently), check the devices, print --stats, tear down.
 *
 * `gmvm restore` (cfg->restore, restore.c) runs the same way with three
 * steps replaced: no image (1; the file was checked instead), memory from
 * the snapshot (3), and instead of 5, the devices' state and kvmclock
 * from it; each vCPU's state is set right after it is created (6).
 *
 * Shared state and locking: see gmvm.h.  The main thread waits for the
 * vCPU threads in ppoll() on vm->done_fd (not pthread_join) so that it can
 * fire the timeout and act on a stop signal meanwhile (signals.c); threads
 * are joined only after all have left their loops, so a kick never targets
 * a joined thread.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "gmvm.h"
#include "devices/devices.h"
#include "loader.h"

/* vm_stop(), saying whether this call was the first (and so decided). */
static bool stop_va(struct vm *vm, int status, const char *fmt, va_list ap)
{
	bool first;
	unsigned int i;

	pthread_mutex_lock(&vm->stop_lock);
	first = !vm->stopping;
	if (first) {
		vm->stopping = true;
		vm->status = status;
		if (fmt)
			vsnprintf(vm->stop_msg, sizeof(vm->stop_msg), fmt, ap);
	}
	pthread_mutex_unlock(&vm->stop_lock);
	if (!first)
		return false;
	__atomic_store_n(&vm->stop_flag, 1, __ATOMIC_RELEASE);
	/* Paused vCPUs wait on a condition, not in KVM_RUN (pause.c). */
	vm_pause_wake(vm);
	for (i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->thread_started &&
		    !pthread_equal(v->thread, pthread_self()))
			vcpu_kick(v);
	}
	return true;
}

enum exit_action vm_stop(struct vm *vm, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	stop_va(vm, status, fmt, ap);
	va_end(ap);
	return EXIT_STOP;
}

static bool vm_stop_first(struct vm *vm, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static bool vm_stop_first(struct vm *vm, int status, const char *fmt, ...)
{
	va_list ap;
	bool first;

	va_start(ap, fmt);
	first = stop_va(vm, status, fmt, ap);
	va_end(ap);
	return first;
}

/*
 * SIGINT or SIGTERM reached gmvm (main thread): stop the VM like the
 * watchdog does.  If the guest or an error stopped it first, that status
 * stands.
 */
static void vm_stop_by_signal(struct vm *vm, int sig)
{
	int status = sig == SIGINT ? GM_EXIT_SIGINT : GM_EXIT_SIGTERM;

	if (vm_stop_first(vm, status,
			  "stopped by %s while the guest was running: every vCPU was taken out of KVM_RUN (status %d)",
			  signal_name(sig), status))
		vm->stop_signal = sig;
}

/*
 * A quit request on the control socket (its thread): stop the VM as
 * SIGTERM does, with its status, and say so the same way.
 */
void vm_quit(struct vm *vm)
{
	if (vm_stop_first(vm, GM_EXIT_SIGTERM,
			  "stopped by a quit request on the control socket while the guest was running: every vCPU was taken out of KVM_RUN (status %d)",
			  GM_EXIT_SIGTERM))
		vm->stop_quit = true;
}

/* `snapshot --stop` on the control socket: quit, saying why. */
void vm_quit_snapshot(struct vm *vm)
{
	/* Not the file's name: nothing a peer sent goes to stderr. */
	if (vm_stop_first(vm, GM_EXIT_SIGTERM,
			  "stopped by a snapshot request with stop on the control socket, once the snapshot was written: every vCPU was taken out of KVM_RUN (status %d)",
			  GM_EXIT_SIGTERM))
		vm->stop_quit = true;
}

/* `migrate` on the control socket succeeded: the guest runs elsewhere. */
void vm_quit_moved(struct vm *vm, const char *where)
{
	if (vm_stop_first(vm, 0, "VM moved to %s", where))
		vm->stop_quit = true;
}

bool vm_stopping(struct vm *vm)
{
	return __atomic_load_n(&vm->stop_flag, __ATOMIC_ACQUIRE);
}

static int vm_open_kvm(struct vm *vm)
{
	char why[640];
	int r, ret;

	ret = kvm_host_check(&vm->kvm_fd, &vm->vm_fd, vm->nr_vcpus, why,
			     sizeof(why));
	if (ret) {
		gmvm_err("%s", why);
		return ret;
	}
	r = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (r < (int)sizeof(struct kvm_run)) {
		gmvm_err("KVM_GET_VCPU_MMAP_SIZE: %s",
			 r < 0 ? strerror(errno) : "too small");
		return -EINVAL;
	}
	vm->run_size = (size_t)r;
	r = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
	vm->sync_regs = r > 0 && (r & KVM_SYNC_X86_REGS);
	ret = cpuid_get_supported(vm->kvm_fd, &vm->cpuid);
	if (ret) {
		gmvm_err("KVM_GET_SUPPORTED_CPUID: %s", strerror(-ret));
		return ret;
	}
	probes_get(vm->kvm_fd, !vm->cfg->no_probe_cache, &vm->probes);
	vm->vmcall = vm->probes.vmcall == VMCALL_EXITS;
	return 0;
}

/*
 * Which backend gmvm runs for this VM (from the VM's own capabilities)
 * and, for the emulated one, the memslot layout under which gating stops
 * a vCPU: gmem_create() takes the layout the gating probe found (now, or
 * in an earlier run: the probe cache), so it runs no probe of its own.
 */
static int vm_pick_backend(struct vm *vm, enum gmem_backend *backend,
			   enum gmem_layout *layout)
{
	struct gmem_vm_caps caps = GMEM_INIT(struct gmem_vm_caps);
	const char *why = NULL, *lib_why;
	enum gmem_backend lib_backend;
	int ret;

	*layout = GMEM_LAYOUT_AUTO;
	ret = gmem_probe_vm(vm->vm_fd, &caps);
	if (ret) {
		gmvm_err("probing the VM's capabilities: gmem_probe_vm: %s",
			 strerror(-ret));
		return ret;
	}
	ret = vm_choose_backend(&caps, vm->cfg->mode, &lib_backend, &lib_why,
				backend, &why);
	if (ret) {
		gmvm_err("no libgmem backend for %s mode on this host: %s (%s)",
			 gmem_mode_name(vm->cfg->mode), why ? why : "unknown",
			 strerror(-ret));
		return ret;
	}
	if (*backend != GMEM_BACKEND_EMULATED)
		return 0;
	ret = vm->probes.gating_ret;
	if (ret) {
		gmvm_err("creating %llu MiB of guest memory (%s mode): no memslot layout gates a vCPU on this host: gmem_probe_gating: %s",
			 (unsigned long long)(vm->ram.bytes >> 20),
			 gmem_mode_name(vm->cfg->mode), strerror(-ret));
		return ret;
	}
	*layout = vm->probes.layout;
	return 0;
}

/*
 * The shared backing of discard mode: one memfd of gmvm's own, as large as
 * the top of RAM, in which the region at GPA g lives at offset g (a hole
 * is never written, so it costs nothing).  So the DMA device process gets
 * one fd in which IOVA x is at offset x, whatever the layout.  The name
 * is the one libgmem gives its own shared memfds (tests look for it).
 */
static int shared_memfd(const struct vm *vm)
{
	int fd, ret;

	fd = memfd_create("gmem-shared", MFD_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		gmvm_err("creating the shared backing: memfd_create: %s",
			 strerror(errno));
		return ret;
	}
	if (ftruncate(fd, (off_t)vm->ram.top)) {
		ret = -errno;
		gmvm_err("sizing the shared backing to %#llx bytes: ftruncate: %s",
			 (unsigned long long)vm->ram.top, strerror(errno));
		close(fd);
		return ret;
	}
	return fd;
}

/* What libgmem made must be what gmvm asked for: one region per range. */
int vm_check_memory(struct vm *vm)
{
	struct gmem_region_info info = GMEM_INIT(struct gmem_region_info);
	unsigned int i;

	vm->shared_base = gmem_shared_base(vm->gmem);
	if (vm->shared_base && vm->shared_base < vm->ram.top) {
		gmvm_err("libgmem put the shared view at %#llx, inside RAM [0, %#llx)",
			 (unsigned long long)vm->shared_base,
			 (unsigned long long)vm->ram.top);
		return -EINVAL;
	}
	if (gmem_ram_size(vm->gmem) != vm->ram.bytes ||
	    gmem_region_count(vm->gmem) != (int)vm->ram.nr) {
		gmvm_err("libgmem reports %#llx bytes of RAM in %d regions, gmvm asked for %#llx in %u",
			 (unsigned long long)gmem_ram_size(vm->gmem),
			 gmem_region_count(vm->gmem),
			 (unsigned long long)vm->ram.bytes, vm->ram.nr);
		return -EINVAL;
	}
	for (i = 0; i < vm->ram.nr; i++) {
		if (gmem_region_get(vm->gmem, i, &info) ||
		    info.gpa != vm->ram.range[i].gpa ||
		    info.len != vm->ram.range[i].len) {
			gmvm_err("libgmem's region %u is not RAM range [%#llx, +%#llx)",
				 i, (unsigned long long)vm->ram.range[i].gpa,
				 (unsigned long long)vm->ram.range[i].len);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * libgmem's VM from @gc, whose regions (at most RAM_MAX_RANGES, fds -1)
 * are RAM: the backend and layout this host gates with, a guest_memfd
 * libgmem creates per region and (discard mode) gmvm's shared memfd;
 * memslots are KVM slots 0 and up, registered by libgmem on the VM fd.
 */
static int vm_gmem_create(struct vm *vm, struct gmem_config *gc)
{
	struct gmem_region_config ram[RAM_MAX_RANGES];
	int shared_fd = -1, ret;
	unsigned int i;

	if (gc->nr_regions > RAM_MAX_RANGES)
		return -EINVAL;
	ret = vm_pick_backend(vm, &gc->backend, &gc->layout);
	if (ret)
		return ret;
	if (gc->mode == GMEM_MODE_DISCARD) {
		shared_fd = shared_memfd(vm);
		if (shared_fd < 0)
			return shared_fd;
	}
	for (i = 0; i < gc->nr_regions; i++) {
		ram[i] = gc->regions[i];
		ram[i].private_fd = -1;
		ram[i].shared_fd = shared_fd;
		ram[i].shared_offset = shared_fd < 0 ? 0 : ram[i].gpa;
	}
	gc->regions = ram;
	gc->vm_fd = vm->vm_fd;
	gc->set_slot = NULL;	/* libgmem registers KVM slots */
	gc->slot_base = 0;
	ret = gmem_create(gc, &vm->gmem);
	if (shared_fd >= 0)
		close(shared_fd);	/* libgmem holds its own dups */
	if (ret) {
		vm->gmem = NULL;
		gmvm_err("creating %llu MiB of guest memory in %u region%s (%s mode, %s backend): gmem_create: %s%s",
			 (unsigned long long)(vm->ram.bytes >> 20), vm->ram.nr,
			 vm->ram.nr > 1 ? "s" : "",
			 gmem_mode_name(gc->mode),
			 gmem_backend_name(gc->backend), strerror(-ret),
			 vm->probes.cache.enabled && !vm->probes.cache.load ?
			 " (its memslot layout came from the probe cache: --no-probe-cache probes again)" :
			 "");
	}
	return ret;
}

/* What a restore creates its VM with (snap_restore_opts.create). */
int vm_memory_create(void *data, const struct gmem_config *cfg,
		     struct gmem_vm **out)
{
	struct gmem_config gc = *cfg;
	struct vm *vm = data;
	int ret = vm_gmem_create(vm, &gc);

	*out = ret ? NULL : vm->gmem;
	return ret;
}

/* Guest RAM: one region per range of the layout, at its GPA. */
static int vm_create_memory(struct vm *vm)
{
	struct gmem_region_config ram[RAM_MAX_RANGES];
	struct gmem_config gc = {
		.size = sizeof(gc),
		.flags = vm->cfg->deferred_reclaim ?
			 GMEM_CONFIG_DEFERRED_RECLAIM : 0,
		.mode = vm->cfg->mode,
		.initial_state = vm->cfg->init_shared ? GMEM_SHARED :
							GMEM_PRIVATE,
		.max_gpa = 0,		/* the top of RAM */
		.shared_base = 0,	/* libgmem picks; we use what it says */
		.regions = ram,
		.nr_regions = vm->ram.nr,
	};
	unsigned int i;
	int ret;

	for (i = 0; i < vm->ram.nr; i++)
		ram[i] = (struct gmem_region_config){
			.size = sizeof(ram[i]),
			.gpa = vm->ram.range[i].gpa,
			.len = vm->ram.range[i].len,
		};
	ret = vm_gmem_create(vm, &gc);
	return ret ? ret : vm_check_memory(vm);
}

/*
 * --init-shared: gmvm's area, [0, free_start), is private (guest ABI
 * section 3), the rest shared.  Converted range by range: a conversion
 * touching a hole would be refused.
 */
static int vm_init_shared_area(struct vm *vm)
{
	uint64_t end = vm->boot.free_start;
	unsigned int i;
	int64_t r;

	for (i = 0; i < vm->ram.nr && vm->ram.range[i].gpa < end; i++) {
		const struct ram_range *rr = &vm->ram.range[i];
		uint64_t len = end - rr->gpa < rr->len ? end - rr->gpa :
							 rr->len;

		r = gmem_convert(vm->gmem, rr->gpa, len, GMEM_PRIVATE);
		if (r < 0) {
			gmvm_err("--init-shared: converting gmvm's area [%#llx, %#llx) to private: gmem_convert: %s",
				 (unsigned long long)rr->gpa,
				 (unsigned long long)(rr->gpa + len),
				 strerror((int)-r));
			return (int)r;
		}
	}
	return 0;
}

static int vm_launch(struct vm *vm, const struct elf_image *img)
{
	const char *cmdline = vm->cfg->cmdline;
	int ret;

	vm->boot.image_start = img->start;
	vm->boot.image_end = img->end;
	vm->boot.entry = img->entry;
	ret = boot_plan(vm, cmdline);
	if (ret)
		return ret;
	if (vm->cfg->init_shared) {
		ret = vm_init_shared_area(vm);
		if (ret)
			return ret;
	}
	ret = elf_load(vm, img);
	if (ret)
		return ret;
	return boot_write(vm, cmdline);
}

/*
 * Wait until every vCPU thread has left its loop, stopping the VM when the
 * --timeout deadline passes or a stop signal arrives.  No wake-up is lost:
 * the last vCPU thread writes done_fd after it takes running to 0, and the
 * stop signals are blocked except inside ppoll().
 */
static void vm_wait_vcpus(struct vm *vm)
{
	bool timed = vm->cfg->timeout > 0, signalled = false;
	uint64_t deadline = 0;
	int ret;

	if (timed)
		deadline = vm->t_start + (uint64_t)(vm->cfg->timeout * 1e9);
	for (;;) {
		struct timespec left, *wait = NULL;
		unsigned int running;
		int sig;

		pthread_mutex_lock(&vm->gate_lock);
		running = vm->running;
		pthread_mutex_unlock(&vm->gate_lock);
		if (!running)
			break;
		sig = signals_caught();
		if (sig && !signalled) {
			signalled = true;
			vm_stop_by_signal(vm, sig);
		}
		if (timed) {
			uint64_t now = now_ns();

			if (now >= deadline) {
				timed = false;
				vm_stop(vm, GM_EXIT_TIMEOUT,
					"timeout: the guest was still running after %g s (--timeout)",
					vm->cfg->timeout);
				continue;
			}
			left.tv_sec = (time_t)((deadline - now) / 1000000000ULL);
			left.tv_nsec = (long)((deadline - now) % 1000000000ULL);
			wait = &left;
		}
		ret = signals_wait(vm->done_fd, wait);
		if (ret) {
			/* Cannot wait: stop, and poll until the vCPUs are out. */
			vm_stop(vm, GM_EXIT_HOST_ERROR,
				"waiting for the vCPUs: ppoll: %s",
				strerror(-ret));
			timed = false;
		}
	}
}

/* Start every vCPU thread, open the gate, wait for all, return status. */
static int vm_run_vcpus(struct vm *vm)
{
	unsigned int i, started = 0;
	int ret = 0;

	vm->done_fd = eventfd(0, EFD_CLOEXEC);
	if (vm->done_fd < 0) {
		gmvm_err("eventfd: %s", strerror(errno));
		return GM_EXIT_HOST_ERROR;
	}
	vcpu_signal_init();
	for (i = 0; i < vm->nr_vcpus; i++) {
		ret = pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread,
				     &vm->vcpus[i]);
		if (ret)
			break;
		vm->vcpus[i].thread_started = true;
		started++;
	}
	pthread_mutex_lock(&vm->gate_lock);
	vm->running = started;
	vm->gate = ret ? -1 : 1;
	pthread_cond_broadcast(&vm->gate_cond);
	pthread_mutex_unlock(&vm->gate_lock);
	if (ret) {
		gmvm_err("starting vCPU thread %u: %s", i, strerror(ret));
		goto join;
	}
	vm->t_start = now_ns();
	control_start(vm);
	vm_wait_vcpus(vm);
	/* Before the vCPU threads are joined (a pause kicks them) and before
	 * t_end is written (its stats read the clock themselves). */
	control_close(vm);
	vm->t_end = now_ns();

join:
	for (i = 0; i < started; i++)
		pthread_join(vm->vcpus[i].thread, NULL);
	close(vm->done_fd);
	vm->done_fd = -1;
	if (ret)
		return GM_EXIT_HOST_ERROR;
	if (!vm->stopping) {
		vm->status = GM_EXIT_GUEST_FAULT;
		snprintf(vm->stop_msg, sizeof(vm->stop_msg),
			 "all %u vCPU%s halted (hlt) without writing the exit port: the VM can make no progress",
			 vm->nr_vcpus, vm->nr_vcpus > 1 ? "s" : "");
	}
	return vm->status;
}

/* After the run: audit, consistency checks, stats.  Returns the status. */
static int vm_finish(struct vm *vm, int status)
{
	char msg[512] = "";
	int ret;

	devices_flush(vm);
	if (vm->stop_msg[0])
		gmvm_err("%s", vm->stop_msg);

	ret = gmem_audit(vm->gmem, msg, sizeof(msg));
	if (ret == -EUCLEAN) {
		gmvm_err("libgmem audit after the run found a violated invariant: %s",
			 msg);
		status = GM_EXIT_HOST_ERROR;
	} else if (ret < 0) {
		gmvm_err("libgmem audit after the run could not check: %s%s%s",
			 strerror(-ret), msg[0] ? ": " : "", msg);
		status = GM_EXIT_HOST_ERROR;
	}
	if (devices_check(vm))
		status = GM_EXIT_HOST_ERROR;
	stats_print(vm);
	if (devices_teardown(vm))
		status = GM_EXIT_HOST_ERROR;
	/* A run the guest did not end: say that its memory was checked,
	 * once nothing can still fail. */
	if ((vm->stop_signal || vm->stop_quit) &&
	    status != GM_EXIT_HOST_ERROR)
		gmvm_err("audit after the run: every invariant holds (libgmem's page states, views and backings, and the DMA device's mappings)");
	fflush(stdout);
	return status;
}

int vm_run(const struct vm_config *cfg)
{
	int status = GM_EXIT_HOST_ERROR;
	struct ram_layout ram;
	struct elf_image img;
	struct vm *vm;
	unsigned int i;
	int ret;

	ret = ram_layout_compute(cfg->layout, cfg->ram_size, &ram);
	if (ret) {
		gmvm_err("--memory %#llx with --memory-layout %s: %s",
			 (unsigned long long)cfg->ram_size,
			 ram_layout_name(cfg->layout), strerror(-ret));
		return GM_EXIT_HOST_ERROR;
	}
	memset(&img, 0, sizeof(img));
	/* A restore has no image: its memory comes from the snapshot. */
	if (!cfg->restore && elf_open(&img, cfg->elf_path, &ram))
		return GM_EXIT_HOST_ERROR;
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		gmvm_err("out of memory");
		goto err_elf;
	}
	vm->cfg = cfg;
	vm->kvm_fd = -1;
	vm->vm_fd = -1;
	vm->ram = ram;
	vm->nr_vcpus = cfg->nr_vcpus;
	pthread_mutex_init(&vm->stop_lock, NULL);
	pthread_mutex_init(&vm->gate_lock, NULL);
	pthread_cond_init(&vm->gate_cond, NULL);
	vm_pause_init(vm);
	vm->done_fd = -1;
	vm->vcpus = calloc(vm->nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		gmvm_err("out of memory");
		goto err_vm;
	}
	for (i = 0; i < vm->nr_vcpus; i++)
		vm->vcpus[i].fd = -1;

	/* Before KVM: a path that cannot be used is 125 on any host. */
	if (control_open(vm))
		goto err_kvm;
	if (vm_open_kvm(vm))
		goto err_kvm;
	if (cfg->restore ? restore_host(vm) || restore_memory(vm) :
			   vm_create_memory(vm))
		goto err_gmem;
	if (devices_init(vm))
		goto err_devices;
	if (cfg->restore ? restore_devices(vm) : vm_launch(vm, &img))
		goto err_devices;
	elf_close(&img);
	for (i = 0; i < vm->nr_vcpus; i++)
		if (vcpu_create(vm, &vm->vcpus[i], i) ||
		    (cfg->restore && restore_vcpu(vm, &vm->vcpus[i])))
			goto err_vcpus;

	status = vm_run_vcpus(vm);
	status = vm_finish(vm, status);

err_vcpus:
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu_destroy(vm, &vm->vcpus[i]);
err_devices:
	devices_destroy(vm);
err_gmem:
	if (vm->gmem)
		gmem_destroy(vm->gmem);
err_kvm:
	control_close(vm);
	free(vm->cpuid);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	free(vm->vcpus);
err_vm:
	vm_pause_destroy(vm);
	pthread_cond_destroy(&vm->gate_cond);
	pthread_mutex_destroy(&vm->gate_lock);
	pthread_mutex_destroy(&vm->stop_lock);
	free(vm);
err_elf:
	elf_close(&img);
	return status;
}
