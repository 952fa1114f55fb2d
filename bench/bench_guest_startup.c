/* SPDX-License-Identifier: MIT */
/*
 * Start-up: spawn to the first guest instruction for 1 GiB and 16 GiB of
 * guest RAM (gmvm runs guest/bench/startup.S), beside a bare KVM VM (this
 * program re-run as --bare-vm SIZE: one anonymous memslot, one real-mode
 * vCPU); peak RSS of both; the bytes of libgmem's page-state map.  gmvm
 * twice: probing at every start (--no-probe-cache, the gating and vmcall
 * probes' throwaway VMs included) and with the probe cache warm (a cache
 * of this program's own, in a temporary XDG_CACHE_HOME, filled by one
 * untimed run).
 *
 * Start is the host TSC read right before posix_spawn(); the first
 * instruction of either guest reads its TSC, which is the host's
 * (bench/lib/tsc.c checks it).  Prints a markdown table and "BENCH" lines.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

#define GIB		(1ULL << 30)
#define START_REPS	5

/*
 * --bare-vm SIZE: the floor of starting a VM.  One KVM VM, SIZE bytes of
 * anonymous memory (never touched but one page) as one memslot, one vCPU
 * in real mode at 0x1000 whose first instruction reads the TSC; the port
 * exit that follows carries it out in EDX:EAX.  Each step that fails has
 * its own exit status, which the failure message of the run shows.
 */
static int bare_vm(uint64_t size)
{
	static const uint8_t code[] = {
		0x0f, 0x31,		/* rdtsc */
		0xe6, 0xf4,		/* out %al, $0xf4 */
		0xf4,			/* hlt */
	};
	struct kvm_regs regs = { .rip = 0x1000 };
	struct kvmu_vcpu vcpu;
	int kvm, vm;
	uint8_t *mem;
	double t0;

	kvm = kvmu_open();
	if (kvm < 0)
		return 2;
	vm = kvmu_vm_create(kvm, 0);
	if (vm < 0)
		return 3;
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return 4;
	memcpy(mem + 0x1000, code, sizeof(code));
	if (kvmu_set_slot(vm, 0, 0, mem, size))
		return 5;
	if (kvmu_vcpu_create(kvm, vm, 0, &vcpu))
		return 6;
	if (kvmu_vcpu_real_mode(&vcpu, 0, 0, &regs))
		return 7;
	if (kvmu_vcpu_run(&vcpu) || vcpu.run->exit_reason != KVM_EXIT_IO ||
	    kvmu_vcpu_get_regs(&vcpu, &regs))
		return 8;
	printf("@ start %llx\n", (unsigned long long)
	       ((regs.rdx & 0xffffffffULL) << 32 | (regs.rax & 0xffffffffULL)));
	fflush(stdout);
	/* Stay ~50 ms, as the gmvm guest does, for the RSS samples. */
	t0 = bench_mono_raw_ns();
	while (bench_mono_raw_ns() - t0 < 5e7)
		;
	return 0;
}

struct start {
	double ms;		/* median spawn to first guest instruction */
	double hwm, anon, file, shmem;	/* medians, KiB */
	long long map_bytes;
	bool ok;
};

enum start_kind {
	START_BARE,		/* the bare KVM VM */
	START_GMVM_PROBING,	/* gmvm --no-probe-cache */
	START_GMVM_CACHED,	/* gmvm, its probe cache warm */
};

static void start_measure(struct start *st, uint64_t size,
			  enum start_kind kind)
{
	double ms[START_REPS], hwm[START_REPS], anon[START_REPS];
	double file[START_REPS], shmem[START_REPS];
	char mem[32], elf[PATH_MAX + 96];
	bool gmvm = kind != START_BARE;
	int rep;

	memset(st, 0, sizeof(*st));
	st->map_bytes = -1;
	bench_guest_path(elf, sizeof(elf), "startup.elf");
	snprintf(mem, sizeof(mem), gmvm ? "%lluG" : "%llu",
		 (unsigned long long)(gmvm ? size / GIB : size));
	/* rep -1: untimed, it fills the probe cache for the cached runs. */
	for (rep = kind == START_GMVM_CACHED ? -1 : 0; rep < START_REPS;
	     rep++) {
		char *gargv[8] = { (char *)bench_gmvm_path(), (char *)"run",
				   (char *)"--memory", mem,
				   (char *)"--stats=json" };
		char *bargv[] = { (char *)bench_self_path(),
				  (char *)"--bare-vm", mem, NULL };
		unsigned int n = 5;
		uint64_t tsc;
		const char *p;
		struct bench_run r;

		if (kind == START_GMVM_PROBING)
			gargv[n++] = (char *)"--no-probe-cache";
		gargv[n++] = elf;
		gargv[n] = NULL;
		if (bench_run_cmd(gmvm ? gargv : bargv, &r, true))
			return;
		if (rep < 0) {
			bench_run_free(&r);
			continue;
		}
		if (!(p = bench_find_tag(r.out, "start")) ||
		    bench_parse_hex(p, &tsc, 1) != 1 || r.hwm_kib <= 0) {
			bench_fail("start-up (%s): no start line or no RSS sample:\n%s",
			     gmvm ? "gmvm" : "bare VM", r.out);
			bench_run_free(&r);
			return;
		}
		bench_tsc_check(&r, tsc);
		ms[rep] = bench_cycles_us((double)(tsc - r.h0)) / 1e3;
		hwm[rep] = (double)r.hwm_kib;
		anon[rep] = (double)r.anon_kib;
		file[rep] = (double)r.file_kib;
		shmem[rep] = (double)r.shmem_kib;
		if (gmvm && (p = strstr(r.out, "\"map_bytes\": ")))
			st->map_bytes = strtoll(p + 13, NULL, 10);
		bench_run_free(&r);
	}
	st->ms = bench_median(ms, START_REPS);
	st->hwm = bench_median(hwm, START_REPS);
	st->anon = bench_median(anon, START_REPS);
	st->file = bench_median(file, START_REPS);
	st->shmem = bench_median(shmem, START_REPS);
	st->ok = true;
}

static void print_startup(void)
{
	static const uint64_t sizes[2] = { GIB, 16 * GIB };
	struct start g[2], c[2], b[2];
	int s;

	bench_progress("start-up");
	for (s = 0; s < 2; s++) {
		start_measure(&b[s], sizes[s], START_BARE);
		start_measure(&g[s], sizes[s], START_GMVM_PROBING);
		start_measure(&c[s], sizes[s], START_GMVM_CACHED);
	}
	printf("## Start-up: spawn to the first guest instruction, and memory before the guest touches any\n\n");
	printf("| memory | gmvm ms, probing | gmvm ms, probe cache hit | bare KVM VM ms | ratio to the bare VM (probing / cached) | gmvm peak RSS KiB (anon / file / shmem) | bare VM peak RSS KiB | libgmem map bytes | map bytes per GiB |\n");
	printf("|---|---|---|---|---|---|---|---|---|\n");
	for (s = 0; s < 2; s++) {
		unsigned long long gib = sizes[s] / GIB;

		if (!g[s].ok || !c[s].ok || !b[s].ok) {
			printf("| %llu GiB | failed | | | | | | | |\n", gib);
			continue;
		}
		printf("| %llu GiB | %.1f | %.1f | %.1f | %.1f / %.1f | %.0f (%.0f / %.0f / %.0f) | %.0f | %lld | %.1f |\n",
		       gib, g[s].ms, c[s].ms, b[s].ms, g[s].ms / b[s].ms,
		       c[s].ms / b[s].ms, g[s].hwm, g[s].anon, g[s].file,
		       g[s].shmem, b[s].hwm, g[s].map_bytes,
		       (double)g[s].map_bytes / (double)gib);
		printf("BENCH start gib=%llu gmvm_ms=%.2f gmvm_cached_ms=%.2f bare_ms=%.2f gmvm_hwm_kib=%.0f bare_hwm_kib=%.0f map_bytes=%lld\n",
		       gib, g[s].ms, c[s].ms, b[s].ms, g[s].hwm, b[s].hwm,
		       g[s].map_bytes);
	}
	if (g[0].ok && g[1].ok && b[0].ok && b[1].ok)
		printf("\nPer GiB of guest RAM, (16 GiB - 1 GiB) / 15: gmvm peak RSS %.1f KiB, bare VM %.1f KiB, libgmem map %.1f bytes.",
		       (g[1].hwm - g[0].hwm) / 15.0,
		       (b[1].hwm - b[0].hwm) / 15.0,
		       (double)(g[1].map_bytes - g[0].map_bytes) / 15.0);
	printf(" Medians of %d runs. Probing: `--no-probe-cache`, so every start runs the gating and vmcall probes' throwaway VMs; cached: the probe cache (a temporary XDG_CACHE_HOME of this benchmark's, filled by one untimed run) has their answers. Ratio: against the bare VM. Start: the host TSC read right before posix_spawn(); first instruction: the guest's TSC read by the instruction at the ELF entry (guest/bench/startup.S), printed afterwards. The bare VM is this program re-executed (`--bare-vm SIZE`): KVM_CREATE_VM, one anonymous memslot of SIZE, one vCPU in real mode whose first instruction reads the TSC. RSS: VmHWM of the process's own mm (sampled from /proc every millisecond while the guest spins for ~50 ms after its first instruction), which includes the guest memory gmvm itself wrote (image, page tables, boot info, stacks). Kernel-side KVM memslot metadata (e.g. rmaps, once a vCPU runs) is not in RSS.\n\n",
	       START_REPS);
}

/*
 * gmvm's probe cache in a directory of our own, not the user's: the
 * cached runs start from what this run wrote, and nothing is left behind.
 */
static char cache_dir[] = "/tmp/gmvm-bench-cache-XXXXXX";

static void cache_remove(void)
{
	char p[sizeof(cache_dir) + 32];

	snprintf(p, sizeof(p), "%s/gmvm/probes", cache_dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/gmvm", cache_dir);
	rmdir(p);
	rmdir(cache_dir);
}

int main(int argc, char **argv)
{
	struct bench_host host;
	int ret;

	if (argc == 3 && !strcmp(argv[1], "--bare-vm"))
		return bare_vm(strtoull(argv[2], NULL, 0));
	bench_gmvm_setup("startup.elf", &host);	/* exits 77 with the reason */
	if (!mkdtemp(cache_dir) || setenv("XDG_CACHE_HOME", cache_dir, 1))
		bench_die("a probe cache directory: %s", strerror(errno));
	print_startup();
	ret = bench_gmvm_finish();
	cache_remove();
	return ret;
}
