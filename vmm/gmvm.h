/* SPDX-License-Identifier: MIT */
/*
 * gmvm: the VM, its vCPUs and the pieces that talk to each other.
 *
 * Threads: the main thread builds the VM, starts one thread per vCPU,
 * then waits for them (vm_run()), stopping the VM itself when --timeout
 * expires or SIGINT/SIGTERM arrives (signals.c).  Everything in struct vm
 * is written by the main thread before the vCPU threads start and is
 * read-only afterwards, except:
 *  - the stop state (stopping, status, stop_msg), under stop_lock, and
 *    stop_flag, read without the lock by every vCPU thread before each
 *    KVM_RUN (atomic);
 *  - device state, each under its device's own lock;
 *  - struct vcpu, which belongs to its thread, except run->immediate_exit
 *    (set atomically by whoever stops or pauses the VM) and the thread
 *    handle (written before the start gate opens);
 *  - the pause state (pause_req, nr_paused), under gate_lock (pause.c);
 *  - stop_quit, written by the control server's thread (--control), read
 *    by the main thread after joining it.
 *
 * Lock order: a device lock may be held while calling into libgmem
 * (gmem_access); libgmem may call the DMA device's IOMMU listener, whose
 * lock (swiommu) is a leaf.  stop_lock is a leaf.  The console lock is a
 * leaf.  Nothing is called with stop_lock held.  gate_lock is a leaf; a
 * vCPU parked by a pause holds it alone (in pthread_cond_wait).  The
 * control server (control/server.c) holds no lock while its commands run.
 */
#ifndef GMVM_GMVM_H
#define GMVM_GMVM_H

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "kvm_compat.h"
#include <gmem/gmem.h>

#include "layout.h"
#include "probe_cache.h"
#include "stats.h"
#include "x86/boot.h"

#define GMVM_MAX_VCPUS 64
#define GMVM_MIN_RAM (2ULL << 20)
#define GMVM_MAX_RAM (64ULL << 30)
/* The highest top of RAM: GMVM_MAX_RAM with the pc layout's hole. */
#define GMVM_MAX_RAM_TOP (GMVM_MAX_RAM + RAM_PC_HOLE_END - RAM_PC_HOLE_START)
#define GMVM_DEFAULT_RAM (256ULL << 20)

#define SZ_4K 0x1000ULL
#define SZ_64K 0x10000ULL
#define SZ_1M 0x100000ULL
#define SZ_2M 0x200000ULL
#define SZ_1G 0x40000000ULL

#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a) - 1))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

enum implicit_policy {
	IMPLICIT_CONVERT = 0,
	IMPLICIT_DENY = 1,
};

enum dmatest_where {
	DMATEST_INTERNAL = 0,	/* in gmvm, behind swiommu */
	DMATEST_EXTERNAL = 1,	/* a separate device process */
};

enum stats_format {
	STATS_NONE = 0,
	STATS_TEXT = 1,
	STATS_JSON = 2,
};

/* What `gmvm run` was asked to do (main.c fills it). */
struct vm_config {
	uint64_t ram_size;	/* --memory: bytes of RAM */
	enum ram_layout_kind layout;	/* --memory-layout */
	bool no_probe_cache;	/* --no-probe-cache */
	unsigned int nr_vcpus;
	enum gmem_mode mode;
	enum implicit_policy implicit;
	bool init_shared;
	bool deferred_reclaim;	/* --reclaim deferred */
	enum dmatest_where dmatest;
	bool audit_each;	/* --audit each */
	double timeout;		/* seconds; 0: none */
	enum stats_format stats;
	const char *control_path;	/* --control PATH, or NULL */
	const char *incoming;	/* --incoming unix:SOCKET, or NULL */
	const char *elf_path;
	char *cmdline;		/* the guest's ARGS joined; NULL if none */
	/* `gmvm restore`: the checked snapshot (restore.c); NULL for run. */
	struct restore *restore;
};

/* vmcall_probe.c: what a guest vmcall does on this host. */
enum vmcall_verdict {
	VMCALL_EXITS = 0,	/* it does: hypercalls may use vmcall */
	VMCALL_NO_CAP,		/* KVM_CAP_EXIT_HYPERCALL lacks MAP_GPA_RANGE */
	VMCALL_SPINS,		/* no exit within the probe's wait */
	VMCALL_RETURNS,		/* back in the guest without an exit */
	VMCALL_ODD_EXIT,	/* some other exit */
	VMCALL_NO_VM,		/* no probe VM: a passing failure */
	VMCALL_NO_SETUP,	/* the probe VM could not be set up: passing */
	VMCALL_NR_VERDICTS
};

/*
 * probes.c: the host probes gmvm runs before its VM (gating layout,
 * vmcall), through the probe cache unless @use_cache is false
 * (--no-probe-cache).  Never fails: a failed probe is an answer (the
 * caller reports it), and a cache that cannot be used is only not used.
 */
struct probes {
	int gating_ret;			/* gmem_probe_gating() */
	enum gmem_layout layout;	/* when gating_ret is 0 */
	enum vmcall_verdict vmcall;
	bool use_cache;
	int path_ret;			/* probe_cache_path() */
	int key_ret;			/* making this host's key */
	char path[PATH_MAX];		/* the cache file, if path_ret is 0 */
	struct probe_cache_result cache;
};

/* What an exit handler tells the vCPU loop to do next. */
enum exit_action {
	EXIT_RESUME = 0,	/* re-enter KVM_RUN */
	EXIT_PARK = 1,		/* hlt: this vCPU is done, the VM goes on */
	EXIT_STOP = 2,		/* vm_stop() was called: leave the loop */
};

struct vm;
struct vcpu;

/*
 * A port-I/O handler: one access of @size (1, 2 or 4) bytes starting at
 * @port, which lies in [first, last] (the access may extend past last: a
 * port-I/O transaction is addressed by its first port).  @data holds the
 * value written (out) or receives the value read (in), little-endian.
 */
typedef enum exit_action (*port_fn)(struct vcpu *vcpu, void *opaque,
				    uint16_t port, bool out,
				    unsigned int size, uint8_t *data);

#define VM_MAX_PORT_HANDLERS 8
#define VM_MAX_DEVICES 8

struct device;

struct port_handler {
	uint16_t first;
	uint16_t last;
	const char *name;
	bool no_string;		/* rep ins/outs (count > 1) is a guest fault */
	port_fn fn;
	void *opaque;
};

struct vcpu {
	struct vm *vm;
	unsigned int index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	/*
	 * It left its loop by hlt (EXIT_PARK), or was restored so: written
	 * by its thread before it leaves the count of running vCPUs (under
	 * gate_lock), so a pause (which waits under that lock) reads it
	 * settled; before the threads start by a restore.
	 */
	bool parked;

	/* Registers when KVM_CAP_SYNC_REGS is not available. */
	struct kvm_regs regs;

	/* Implicit conversion livelock guard (implicit.c). */
	uint64_t fault_gpa;
	unsigned int fault_repeats;
	unsigned int fault_stuck;

	/* Hypercall latency: set by the handler, recorded before re-entry. */
	bool hc_timing;
	uint64_t t_exit;

	struct vcpu_stats stats;
};

struct vm {
	const struct vm_config *cfg;
	int kvm_fd;
	int vm_fd;
	size_t run_size;
	struct gmem_vm *gmem;
	struct ram_layout ram;	/* one libgmem region per range */
	uint64_t shared_base;	/* above ram.top */
	struct kvm_cpuid2 *cpuid;
	bool sync_regs;		/* KVM_CAP_SYNC_REGS has KVM_SYNC_X86_REGS */
	bool vmcall;		/* hypercalls use vmcall (boot flag bit 2) */
	struct probes probes;	/* what the host probes found */
	struct boot_layout boot;

	unsigned int nr_vcpus;
	struct vcpu *vcpus;

	struct port_handler ports[VM_MAX_PORT_HANDLERS];
	unsigned int nr_ports;

	/* The devices set up (devices/devices.c), in order, and their state. */
	struct {
		const struct device *dev;
		void *state;
	} devices[VM_MAX_DEVICES];
	unsigned int nr_devices;

	/*
	 * Start gate: vCPU threads wait here until every thread exists.
	 * running counts the vCPU threads still in their loop; the thread
	 * that takes it to 0 writes done_fd (an eventfd), which the main
	 * thread polls together with the stop signals.  gate, running under
	 * gate_lock; done_fd is set before the threads start.
	 */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;
	int gate;		/* 0 wait, 1 go, -1 abort */
	unsigned int running;
	int done_fd;

	/*
	 * Pause (pause.c), under gate_lock: pause_req asks every vCPU to
	 * park (also read atomically without the lock, as a hint), nr_paused
	 * counts the parked ones; pause_cond wakes both sides.
	 */
	pthread_cond_t pause_cond;
	int pause_req;
	unsigned int nr_paused;

	/* The control socket (--control), or NULL: control/commands.c. */
	struct control *control;
	bool stop_quit;		/* a quit request stopped the VM */

	/* Stop state: the first vm_stop() wins. */
	pthread_mutex_t stop_lock;
	bool stopping;
	int status;
	char stop_msg[1024];
	int stop_flag;		/* atomic mirror of stopping for the loops */
	int stop_signal;	/* main thread only: the signal whose stop won */

	uint64_t t_start;
	uint64_t t_end;
};

/* vm.c */
int vm_run(const struct vm_config *cfg);
/* For a restore: the create callback of snap_mem_restore() (@data is the
 * vm), and the check that libgmem's regions are vm->ram's. */
int vm_memory_create(void *data, const struct gmem_config *cfg,
		     struct gmem_vm **out);
int vm_check_memory(struct vm *vm);
enum exit_action vm_stop(struct vm *vm, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool vm_stopping(struct vm *vm);
void vm_quit(struct vm *vm);
void vm_quit_snapshot(struct vm *vm);
/* A migration to @where succeeded: stop with status 0, saying so. */
void vm_quit_moved(struct vm *vm, const char *where);

/*
 * pause.c: vm_pause() takes every vCPU out of KVM_RUN and parks it, within
 * @timeout_ms (0, or -ETIMEDOUT and the VM runs on); idempotent.  Their
 * threads' state (stats) may be read until vm_resume().  vm_pause_wake():
 * a stop wakes parked vCPUs (vm_stop()).  vcpu_pause_point(): the vCPU
 * loop, before KVM_RUN when pause_req is set, and after every EINTR.
 */
void vm_pause_init(struct vm *vm);
void vm_pause_destroy(struct vm *vm);
int vm_pause(struct vm *vm, unsigned int timeout_ms);
void vm_resume(struct vm *vm);
void vm_pause_wake(struct vm *vm);
void vcpu_pause_point(struct vcpu *vcpu);

/*
 * control/commands.c: --control.  control_open() creates the socket (one
 * line and -errno if it cannot), control_start() serves it once the vCPUs
 * run, control_close() stops serving and removes it (idempotent).
 * control/client.c: `gmvm ctl`.
 */
int control_open(struct vm *vm);
void control_start(struct vm *vm);
void control_close(struct vm *vm);
int ctl_main(int argc, char **argv);

/* err.c: every message of gmvm's own, "gmvm: [ABOUT: ]TEXT\n" on stderr. */
void gmvm_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void gmvm_err_about(const char *about, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void gmvm_verr(const char *about, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* host.c: what gmvm needs from this host's KVM, and its backend there. */
int kvm_open(int *fd, bool quiet);
/*
 * Can this host run a VM of @nr_vcpus?  /dev/kvm opened into *kvm_fd, its
 * API version checked, a VM created into *vm_fd (-1 until then), gmvm's
 * required capabilities and the vCPU count checked: 0, or -errno with
 * the one-line reason in @why.  The caller closes what was opened.
 */
int kvm_host_check(int *kvm_fd, int *vm_fd, unsigned int nr_vcpus,
		   char *why, size_t len);
/* The most vCPUs a VM of @vm_fd may have (KVM_CAP_MAX_VCPUS, ...). */
long kvm_max_vcpus(int vm_fd);
int vm_missing_caps(int fd, char *buf, size_t len);
int vm_choose_backend(const struct gmem_vm_caps *caps, enum gmem_mode mode,
		      enum gmem_backend *lib_backend, const char **lib_why,
		      enum gmem_backend *backend, const char **why);

/* CLOCK_MONOTONIC in nanoseconds: run time, latencies, deadlines. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* vcpu.c */
int vcpu_create(struct vm *vm, struct vcpu *vcpu, unsigned int index);
void vcpu_destroy(struct vm *vm, struct vcpu *vcpu);
void *vcpu_thread(void *arg);
void vcpu_kick(struct vcpu *vcpu);
struct kvm_regs *vcpu_regs(struct vcpu *vcpu);
int vcpu_regs_dirty(struct vcpu *vcpu);
uint64_t vcpu_rip(struct vcpu *vcpu);
void vcpu_signal_init(void);

/* exits.c */
enum exit_action exits_dispatch(struct vcpu *vcpu);
const char *exit_reason_name(uint32_t reason);

/* hypercall.c: MAP_GPA_RANGE and SET_PLUGGED, by doorbell or vmcall. */
enum exit_action hypercall_vmcall_exit(struct vcpu *vcpu);

enum vmcall_verdict vmcall_probe(int kvm_fd);
const char *vmcall_why(enum vmcall_verdict v);
/* Does @v describe the host (worth caching), not a passing failure? */
bool vmcall_lasting(enum vmcall_verdict v);

void probes_get(int kvm_fd, bool use_cache, struct probes *p);
/* "hit", "miss" or "off", and a line saying why and where. */
const char *probes_cache_status(const struct probes *p);
void probes_cache_describe(const struct probes *p, char *buf, size_t len);

/* audit_each.c: --audit each, after a change by @vcpu. */
enum exit_action audit_after_change(struct vcpu *vcpu, const char *what);

/* implicit.c */
enum exit_action implicit_mmio(struct vcpu *vcpu);
enum exit_action implicit_memory_fault(struct vcpu *vcpu);
void implicit_note_exit(struct vcpu *vcpu);

/*
 * restore.c: `gmvm restore FILE`.  restore_open() reads and checks the
 * whole file before KVM is touched (one line and 125 if it is not a good
 * whole-VM snapshot) and fills @cfg from its run options; vm_run() then
 * calls the others in place of loading an image: restore_host() after
 * KVM is open, restore_memory() for guest memory, restore_devices() after
 * the devices are set up, restore_vcpu() after each vCPU is created.
 * Each prints its one line and returns -errno.
 */
struct restore;
int restore_open(const char *path, struct vm_config *cfg);
/* The same on @fd (taken: closed by restore_close(), or now on failure),
 * named @name in messages (`run --incoming`: the stream). */
int restore_open_fd(int fd, const char *name, struct vm_config *cfg);
void restore_close(struct vm_config *cfg);
int restore_host(struct vm *vm);
int restore_memory(struct vm *vm);
int restore_devices(struct vm *vm);
int restore_vcpu(struct vm *vm, struct vcpu *vcpu);

/*
 * incoming.c: `gmvm run --incoming unix:SOCKET`.  incoming_uri(): the
 * SOCKET of a unix:SOCKET URI, or -EINVAL.  incoming_receive(): listen on
 * it, receive one VM and check it as a restore checks a snapshot, filling
 * @cfg (cfg->restore) for vm_run(); 0, or an exit status after one line
 * (125, or 130/143: stopped while waiting for the source).
 */
int incoming_uri(const char *uri, const char **path);
int incoming_receive(const char *uri, struct vm_config *cfg);

/*
 * migrate_cmd.c: the control socket's migrate: the VM to the destination
 * at @uri (unix:SOCKET) by mig_send(), every vCPU paused for the last
 * round.  0: the destination runs it (stop the VM; the vCPUs stay
 * paused until then).  -errno and one line in @why: the VM runs on as
 * before (paused if @paused, by a pause request).
 */
struct mig_stats;
int vm_migrate(struct vm *vm, const char *uri, bool paused,
	       struct mig_stats *st, char *why, size_t why_len);
/* @m's sections, written by the snapshot's writers, as the stream's VMM
 * sections: 0 or -errno (one line in @why). */
struct mig_out;
struct snap_machine;
int vm_machine_send(const struct snap_machine *m, struct mig_out *o,
		    char *why, size_t why_len);

/*
 * snapshot_save.c: the whole VM into the new file @path (absolute; not
 * there yet), with every vCPU paused by the caller: 0 and the file's
 * size, or -errno and one line in @why.  Nothing is left at @path on
 * failure, but for one: *@bytes is set then too if the file is complete
 * at @path and only syncing its directory failed.
 */
int vm_snapshot_save(struct vm *vm, const char *path, uint64_t *bytes,
		     char *why, size_t why_len);
/* The machine beyond memory (vCPUs, clock, devices, run options) into
 * @m, every vCPU paused: what a snapshot and a migration send. */
struct snap_machine;
int vm_machine_gather(struct vm *vm, struct snap_machine *m, char *why,
		      size_t len);

/* vcpu_state.c: KVM state to and from the snapshot's machine sections. */
struct snap_vcpu;
struct snap_clock;
int vcpu_state_get(struct vcpu *vcpu, struct snap_vcpu *v, char *why,
		   size_t len);
int vcpu_state_set(struct vcpu *vcpu, const struct snap_vcpu *v, char *why,
		   size_t len);
int vm_clock_get(struct vm *vm, struct snap_clock *c, char *why, size_t len);
int vm_clock_set(struct vm *vm, const struct snap_clock *c, char *why,
		 size_t len);

/* caps.c */
int caps_main(int argc, char **argv);

/*
 * signals.c: `gmvm run` only.  signals_init() (before any thread exists)
 * ignores SIGPIPE and blocks SIGINT and SIGTERM; signals_wait() polls @fd
 * for input with them unblocked, until @timeout (NULL: none), input, or a
 * signal; signals_caught() is the first stop signal noted, or 0.
 */
int signals_init(void);
int signals_wait(int fd, const struct timespec *timeout);
int signals_caught(void);
const char *signal_name(int sig);

#endif /* GMVM_GMVM_H */
