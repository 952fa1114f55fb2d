/* SPDX-License-Identifier: MIT */
/*
 * gmvm's command line: subcommands and the options of `gmvm run`.
 *
 * Every problem with the command line is one line on stderr and exit
 * status 125 (guest ABI section 8), so that a test harness can tell a bad
 * invocation from anything the guest did.
 */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gmvm.h"
#include "devices/devices.h"

static const char usage_main[] =
	"usage: gmvm COMMAND [ARGS...]\n"
	"\n"
	"Run guest programs on KVM with private and shared guest memory\n"
	"(libgmem).\n"
	"\n"
	"commands:\n"
	"  run [OPTIONS] GUEST.elf [ARGS...]   run a guest program\n"
	"  run --incoming unix:SOCKET [OPTIONS]\n"
	"                                      receive a VM live from another\n"
	"                                      gmvm (ctl PATH migrate) and run it\n"
	"  restore [OPTIONS] FILE              run a VM on from its snapshot\n"
	"  caps [--json] [--no-probe-cache]    show what this host's KVM offers\n"
	"  ctl PATH COMMAND [ARGS...]          control a gmvm run --control PATH\n"
	"  help                                this text\n"
	"\n"
	"`gmvm COMMAND --help` describes a command.\n"
	"\n"
	"internal: `gmvm dma-device` is the DMA device process that\n"
	"`gmvm run --dmatest=external` starts; it is not run by hand.\n"
	"\n"
	"exit status of `run`: 0..123 the guest's own (exit port 0xf4),\n"
	"124 --timeout fired, 125 gmvm or host error (bad option or image,\n"
	"no KVM, resource failure), 126 guest fault (triple fault, denied\n"
	"implicit access, unhandled exit, all vCPUs halted), 130 stopped by\n"
	"SIGINT, 143 stopped by SIGTERM, or by a quit request or a snapshot\n"
	"with --stop on the control socket (`gmvm run --help` says more);\n"
	"0 also when the VM moved to another gmvm (ctl PATH migrate).\n"
	"`restore` exits as `run` does.\n";

static const char usage_run[] =
	"usage: gmvm run [OPTIONS] GUEST.elf [ARGS...]\n"
	"\n"
	"Load the static x86-64 ELF executable GUEST.elf into private guest\n"
	"memory and start every vCPU at its entry point in 64-bit mode.  ARGS\n"
	"are joined by single spaces into the boot info command line.  Options\n"
	"end at the first word that is not an option (or after `--`).\n"
	"\n"
	"options (`--opt VALUE` and `--opt=VALUE` are the same):\n"
	"  --memory SIZE         guest RAM, bytes with optional suffix K, M or G;\n"
	"                        a multiple of 4 KiB, 2M .. 64G (default 256M)\n"
	"  --memory-layout KIND  where RAM sits in guest-physical memory; flat\n"
	"                        (default): [0, SIZE); pc: [0, 3G) and, when\n"
	"                        SIZE > 3G, the rest from 4G up (a hole at\n"
	"                        [3G, 4G), as on a PC).  The boot info's region\n"
	"                        table (guest ABI extension 4) lists the ranges\n"
	"  --vcpus N             number of vCPUs, 1 .. 64 (default 1)\n"
	"  --conversion MODE     discard: a converted page reads as zeros and its\n"
	"                        old memory is freed (default); in-place: content\n"
	"                        is kept across conversions\n"
	"  --implicit POLICY     what touching a page through the wrong view does:\n"
	"                        convert (default): convert that page and complete\n"
	"                        the access; deny: stop with status 126\n"
	"  --reclaim WHEN        discard mode: when the old memory of a converted\n"
	"                        page is punched out; sync (default): inside the\n"
	"                        conversion; deferred: by a reclaim thread, off\n"
	"                        the guest's critical path (a page is still never\n"
	"                        handed out again before its old memory is gone)\n"
	"  --dmatest WHERE       where the DMA test device runs; internal\n"
	"                        (default): in gmvm, behind a software IOMMU;\n"
	"                        external: in a separate process that gets only\n"
	"                        the shared backing's fd and maps only the shared\n"
	"                        runs (needs --conversion discard)\n"
	"  --audit WHEN          when gmvm checks every libgmem invariant against\n"
	"                        the kernel (views, backings, DMA mappings, incl.\n"
	"                        an external device's real mappings); exit\n"
	"                        (default): once, when the guest exits; each:\n"
	"                        also after every conversion and plug change\n"
	"                        (slow; for tests).  A violation: status 125\n"
	"  --init-shared         every page starts shared, except gmvm's own area\n"
	"                        below free_start (image, boot info, page tables,\n"
	"                        stacks), which is private\n"
	"  --timeout SECONDS     stop the guest with status 124 after SECONDS\n"
	"                        (decimals allowed; default: no limit)\n"
	"  --stats[=text|json]   at exit, print statistics on stdout after the\n"
	"                        guest's output: page states, conversions,\n"
	"                        exits, hypercall latency\n"
	"  --no-probe-cache      run the start-up probes (gating layout, vmcall)\n"
	"                        now, neither reading nor writing the probe\n"
	"                        cache ($XDG_CACHE_HOME/gmvm/probes, else\n"
	"                        ~/.cache/gmvm/probes; `gmvm caps` says more)\n"
	"  --control PATH        serve the control socket PATH (mode 0600, this\n"
	"                        user and root only) while the guest runs:\n"
	"                        stats, pause, resume, quit, snapshot (`gmvm\n"
	"                        ctl --help`, docs/CONTROL.md).  An existing\n"
	"                        PATH is replaced only if it is a stale socket\n"
	"  --incoming unix:SOCKET  no GUEST.elf: listen on SOCKET (as for\n"
	"                        --control), take one connection from `gmvm ctl\n"
	"                        PATH migrate unix:SOCKET` on another gmvm and\n"
	"                        run the VM it sends on from where it was, as\n"
	"                        `gmvm restore` would (docs/MIGRATION.md).  The\n"
	"                        stream describes the VM, so --memory,\n"
	"                        --memory-layout, --vcpus, --conversion,\n"
	"                        --implicit, --init-shared, --reclaim and\n"
	"                        --dmatest are refused with it.  A refused or\n"
	"                        broken stream: one line, status 125, SOCKET\n"
	"                        removed.  --timeout bounds the wait for the\n"
	"                        source too (124)\n"
	"  -h, --help            this text\n"
	"\n"
	"The guest's console output goes to stdout.  If stdout stops taking it\n"
	"(a reader such as `head` went away: EPIPE; SIGPIPE is ignored), gmvm\n"
	"says so once on stderr, drops the rest and lets the guest run on.\n"
	"\n"
	"SIGINT and SIGTERM stop the guest: every vCPU is taken out of the\n"
	"guest, then gmvm prints --stats if asked, runs the final audit (one\n"
	"line on stderr says it passed) and exits with 128 + the signal's\n"
	"number.  A second signal while gmvm stops changes nothing.  If the\n"
	"guest stopped first, its status stands.  A signal ignored when gmvm\n"
	"started stays ignored.  A quit request on the control socket, or a\n"
	"snapshot with --stop, stops the guest as SIGTERM does (status 143).\n"
	"\n"
	"exit status:\n"
	"  0..123  the guest's own (written to the exit port, 0xf4)\n"
	"  124     --timeout fired\n"
	"  125     gmvm or host error: bad option or image, no KVM, resource\n"
	"          failure, a violated invariant in the final audit\n"
	"  126     guest fault: triple fault, denied implicit access, unhandled\n"
	"          exit, all vCPUs halted\n"
	"  130     stopped by SIGINT (128 + 2)\n"
	"  143     stopped by SIGTERM (128 + 15), or by a quit request or a\n"
	"          snapshot with --stop on the control socket\n"
	"A VM that moved to another gmvm (control socket's migrate) exits 0\n"
	"after the final audit, saying \"VM moved to SOCKET\" on stderr.\n";

static const char usage_restore[] =
	"usage: gmvm restore [OPTIONS] FILE\n"
	"\n"
	"Run on a VM from FILE, a snapshot written by `gmvm ctl PATH snapshot\n"
	"FILE` (docs/SNAPSHOT.md): its memory (private pages into the\n"
	"guest_memfd and shared ones into the shared backing in discard mode,\n"
	"one backing in in-place mode), page states, plugs, devices (the DMA\n"
	"device's registers and pins; its mappings are the shared-and-plugged\n"
	"runs before the first instruction) and every vCPU, which continues\n"
	"where it stopped.  The VM is what `gmvm run` was asked for (memory,\n"
	"layout, vCPUs, conversion mode, --implicit, --init-shared, --reclaim,\n"
	"--dmatest): the snapshot says, so those options are not taken here.\n"
	"\n"
	"The whole file is checked before KVM is touched: a truncated,\n"
	"corrupted, foreign or newer-format file is one line on stderr naming\n"
	"the problem and status 125.\n"
	"\n"
	"options (as for `gmvm run`):\n"
	"  --control PATH        serve the control socket PATH; a restored VM\n"
	"                        can be snapshotted again\n"
	"  --stats[=text|json]   at exit, statistics of this run\n"
	"  --timeout SECONDS     stop the guest with status 124 after SECONDS\n"
	"  --audit exit|each     when to check every invariant (default exit)\n"
	"  --no-probe-cache      run the start-up probes now\n"
	"  -h, --help            this text\n"
	"\n"
	"exit status: as `gmvm run`'s: the guest's own 0..123, 124 --timeout,\n"
	"125 gmvm or host error (a file refused included), 126 guest fault,\n"
	"130 SIGINT, 143 SIGTERM or quit.\n";

static const char usage_caps[] =
	"usage: gmvm caps [--json] [--no-probe-cache]\n"
	"\n"
	"Show what this host's KVM offers for private guest memory (VM types,\n"
	"guest_memfd and its flags, memory attributes, hypercall exits, ...),\n"
	"which backend, guest_memfd flags and memslot layout gmvm would use and\n"
	"why, and whether a guest vmcall comes back to gmvm (else hypercalls use\n"
	"the port doorbell).  Exit status 125 if KVM is not usable.\n"
	"\n"
	"The layout and vmcall answers come from probes that run throwaway VMs;\n"
	"gmvm keeps them in the probe cache, $XDG_CACHE_HOME/gmvm/probes (else\n"
	"~/.cache/gmvm/probes), keyed by the kernel, the KVM device, the CPU\n"
	"and the KVM modules' parameters.  `probe cache:` says whether this\n"
	"answer was a hit or a miss, and where the file is.  Anything else that\n"
	"changes what KVM does (firmware, microcode): --no-probe-cache, or\n"
	"delete the file.\n"
	"\n"
	"options:\n"
	"  --json            one JSON object instead of text\n"
	"  --no-probe-cache  probe now; neither read nor write the cache\n"
	"  -h, --help        this text\n";

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr, and the status of a bad invocation. */
static int bad_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	gmvm_verr(NULL, fmt, ap);
	va_end(ap);
	return GM_EXIT_HOST_ERROR;
}

/* SIZE: decimal (or 0x hex) bytes with an optional K, M or G suffix. */
static int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	/* Decimal, or hex with 0x; never octal ("0256M" is 256M). */
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		v = strtoull(s, &end, 16);
	else
		v = strtoull(s, &end, 10);
	if (errno)
		return -errno;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (*end)
		return -EINVAL;
	if (shift && v > (ULLONG_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_uint(const char *s, unsigned long *out)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno)
		return -errno;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

enum opt_id {
	OPT_MEMORY, OPT_VCPUS, OPT_CONVERSION, OPT_IMPLICIT, OPT_INIT_SHARED,
	OPT_TIMEOUT, OPT_STATS, OPT_RECLAIM, OPT_DMATEST, OPT_AUDIT,
	OPT_MEMORY_LAYOUT, OPT_NO_PROBE_CACHE, OPT_CONTROL, OPT_INCOMING,
	OPT_HELP,
};

enum opt_arg { ARG_NONE, ARG_REQUIRED, ARG_OPTIONAL };

/*
 * An option whose value is one of two words names them (choice[0] is 0,
 * choice[1] is 1; no value, for an optional one, is 0): the parser checks
 * the word and apply_opt() gets its number.
 */
/*
 * @restore: `gmvm restore` takes it too; the others but --incoming
 * describe the VM (describes_vm()), which a snapshot's or a migration
 * stream's run options give.
 */
static const struct {
	const char *name;
	enum opt_id id;
	enum opt_arg arg;
	const char *choice[2];
	bool restore;
} run_opts[] = {
	{ "memory", OPT_MEMORY, ARG_REQUIRED },
	{ "memory-layout", OPT_MEMORY_LAYOUT, ARG_REQUIRED, { "flat", "pc" } },
	{ "vcpus", OPT_VCPUS, ARG_REQUIRED },
	{ "conversion", OPT_CONVERSION, ARG_REQUIRED,
	  { "discard", "in-place" } },
	{ "implicit", OPT_IMPLICIT, ARG_REQUIRED, { "convert", "deny" } },
	{ "init-shared", OPT_INIT_SHARED, ARG_NONE },
	{ "reclaim", OPT_RECLAIM, ARG_REQUIRED, { "sync", "deferred" } },
	{ "dmatest", OPT_DMATEST, ARG_REQUIRED, { "internal", "external" } },
	{ "audit", OPT_AUDIT, ARG_REQUIRED, { "exit", "each" }, true },
	{ "timeout", OPT_TIMEOUT, ARG_REQUIRED, { NULL }, true },
	/* Optional value only with '=': "--stats GUEST.elf" must not eat
	 * the image name. */
	{ "stats", OPT_STATS, ARG_OPTIONAL, { "text", "json" }, true },
	{ "no-probe-cache", OPT_NO_PROBE_CACHE, ARG_NONE, { NULL }, true },
	{ "control", OPT_CONTROL, ARG_REQUIRED, { NULL }, true },
	{ "incoming", OPT_INCOMING, ARG_REQUIRED },
	{ "help", OPT_HELP, ARG_NONE, { NULL }, true },
};

/* @val (the word of a two-word option, as its number @k) into @cfg. */
static int apply_opt(struct vm_config *cfg, enum opt_id id, const char *val,
		     int k)
{
	const char *path;
	unsigned long n;
	uint64_t size;
	char *end;
	double t;

	switch (id) {
	case OPT_MEMORY:
		if (parse_size(val, &size))
			return bad_usage("--memory: '%s' is not a size (bytes, or a number with suffix K, M or G)",
					 val);
		if (size % SZ_4K)
			return bad_usage("--memory: %s is not a multiple of 4 KiB",
					 val);
		if (size < GMVM_MIN_RAM)
			return bad_usage("--memory: %s is less than the minimum, 2M",
					 val);
		if (size > GMVM_MAX_RAM)
			return bad_usage("--memory: %s is more than the maximum, 64G",
					 val);
		cfg->ram_size = size;
		return 0;
	case OPT_VCPUS:
		if (parse_uint(val, &n) || n < 1 || n > GMVM_MAX_VCPUS)
			return bad_usage("--vcpus: '%s' is not a number from 1 to %d",
					 val, GMVM_MAX_VCPUS);
		cfg->nr_vcpus = (unsigned int)n;
		return 0;
	case OPT_CONVERSION:
		cfg->mode = k ? GMEM_MODE_IN_PLACE : GMEM_MODE_DISCARD;
		return 0;
	case OPT_IMPLICIT:
		cfg->implicit = k ? IMPLICIT_DENY : IMPLICIT_CONVERT;
		return 0;
	case OPT_INIT_SHARED:
		cfg->init_shared = true;
		return 0;
	case OPT_TIMEOUT:
		errno = 0;
		t = strtod(val, &end);
		if (errno || end == val || *end || !isfinite(t) || t <= 0 ||
		    t > 1e7 || (*val < '0' || *val > '9'))
			return bad_usage("--timeout: '%s' is not a number of seconds greater than 0",
					 val);
		cfg->timeout = t;
		return 0;
	case OPT_STATS:
		cfg->stats = k ? STATS_JSON : STATS_TEXT;
		return 0;
	case OPT_RECLAIM:
		cfg->deferred_reclaim = k;
		return 0;
	case OPT_DMATEST:
		cfg->dmatest = k ? DMATEST_EXTERNAL : DMATEST_INTERNAL;
		return 0;
	case OPT_AUDIT:
		cfg->audit_each = k;
		return 0;
	case OPT_MEMORY_LAYOUT:
		cfg->layout = k ? RAM_LAYOUT_PC : RAM_LAYOUT_FLAT;
		return 0;
	case OPT_NO_PROBE_CACHE:
		cfg->no_probe_cache = true;
		return 0;
	case OPT_CONTROL:
		/* Checked when the socket is made (control/server.c). */
		cfg->control_path = val;
		return 0;
	case OPT_INCOMING:
		if (incoming_uri(val, &path))
			return bad_usage("--incoming: '%s' is not unix:SOCKET (the path of a unix socket to listen on)",
					 val);
		cfg->incoming = val;
		return 0;
	case OPT_HELP:
		break;
	}
	return 0;
}

/* Does run_opts[@k] describe the VM (memory, vCPUs, modes, devices)? */
static bool describes_vm(unsigned int k)
{
	return !run_opts[k].restore && run_opts[k].id != OPT_INCOMING;
}

/* A VM-describing option where the VM comes from @from. */
static int refuse_vm_opt(const char *cmd, unsigned int k, const char *ctx,
			 const char *from)
{
	return bad_usage("%s: option --%s is not for %s: the %s's run options describe the VM (see gmvm %s --help)",
			 cmd, run_opts[k].name, ctx, from, cmd);
}

/* The guest's ARGS joined by single spaces, or NULL (no ARGS). */
static char *join_args(int argc, char **argv)
{
	size_t len = 0, off = 0;
	char *s;
	int i;

	if (argc == 0)
		return NULL;
	for (i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	s = malloc(len);
	if (!s)
		return NULL;
	for (i = 0; i < argc; i++) {
		size_t l = strlen(argv[i]);

		memcpy(s + off, argv[i], l);
		off += l;
		s[off++] = i + 1 < argc ? ' ' : '\0';
	}
	return s;
}

/*
 * The options of `gmvm @cmd` (run or restore) from argv[1] on, into @cfg;
 * *@next is the first word after them.  0, 1 after --help (printed), or
 * the status of a bad invocation (its line printed).
 */
static int parse_opts(int argc, char **argv, bool restore,
		      struct vm_config *cfg, int *next, int *vm_opt)
{
	const char *cmd = restore ? "restore" : "run";
	const char *help = restore ? usage_restore : usage_run;
	int i, ret, choice;

	*vm_opt = -1;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *val = NULL;
		size_t nlen;
		unsigned int k;

		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (!strcmp(a, "-h")) {
			fputs(help, stdout);
			return 1;
		}
		if (a[0] != '-')
			break;
		if (a[1] != '-')
			return bad_usage("%s: unknown option '%s' (see gmvm %s --help)",
					 cmd, a, cmd);
		a += 2;
		eq = strchr(a, '=');
		nlen = eq ? (size_t)(eq - a) : strlen(a);
		for (k = 0; k < ARRAY_SIZE(run_opts); k++)
			if (strlen(run_opts[k].name) == nlen &&
			    !strncmp(run_opts[k].name, a, nlen))
				break;
		if (k == ARRAY_SIZE(run_opts))
			return bad_usage("%s: unknown option '%s' (see gmvm %s --help)",
					 cmd, argv[i], cmd);
		if (restore && describes_vm(k))
			return refuse_vm_opt(cmd, k, "restore", "snapshot");
		if (restore && !run_opts[k].restore)
			return bad_usage("restore: option --%s is not for restore (see gmvm restore --help)",
					 run_opts[k].name);
		if (describes_vm(k) && *vm_opt < 0)
			*vm_opt = (int)k;
		if (run_opts[k].id == OPT_HELP && !eq) {
			fputs(help, stdout);
			return 1;
		}
		switch (run_opts[k].arg) {
		case ARG_NONE:
			if (eq)
				return bad_usage("%s: option --%s takes no value",
						 cmd, run_opts[k].name);
			break;
		case ARG_REQUIRED:
			if (eq) {
				val = eq + 1;
			} else {
				if (i + 1 >= argc)
					return bad_usage("%s: option --%s needs a value",
							 cmd, run_opts[k].name);
				val = argv[++i];
			}
			break;
		case ARG_OPTIONAL:
			if (eq)
				val = eq + 1;
			break;
		}
		choice = 0;
		if (run_opts[k].choice[0] && val) {
			const char *const *c = run_opts[k].choice;

			if (strcmp(val, c[0]) && strcmp(val, c[1]))
				return bad_usage("--%s: '%s' is neither '%s' nor '%s'",
						 run_opts[k].name, val, c[0],
						 c[1]);
			choice = !strcmp(val, c[1]);
		}
		ret = apply_opt(cfg, run_opts[k].id, val, choice);
		if (ret)
			return ret;
	}
	*next = i;
	return 0;
}

/* Signals set up (before any thread exists: they inherit the mask), run. */
static int run_vm(struct vm_config *cfg)
{
	int ret = signals_init();

	if (ret)
		return bad_usage("setting up signal handling: %s",
				 strerror(-ret));
	return vm_run(cfg);
}

/*
 * `gmvm run --incoming unix:SOCKET [OPTIONS]`: no image, no VM-describing
 * option (the stream gives the VM, as a snapshot does to restore).
 */
static int incoming_main(struct vm_config *cfg, int argc, char **argv,
			 int i, int vm_opt)
{
	int ret;

	if (vm_opt >= 0)
		return refuse_vm_opt("run", (unsigned int)vm_opt,
				     "--incoming", "migration stream");
	if (i < argc)
		return bad_usage("run: --incoming takes no guest image ('%s'): the VM comes from the migration stream (usage: gmvm run --incoming unix:SOCKET [OPTIONS])",
				 argv[i]);
	ret = incoming_receive(cfg->incoming, cfg);
	if (ret)
		return ret;
	ret = run_vm(cfg);
	restore_close(cfg);
	return ret;
}

static int run_main(int argc, char **argv)
{
	struct vm_config cfg = {
		.ram_size = GMVM_DEFAULT_RAM,
		.layout = RAM_LAYOUT_FLAT,
		.nr_vcpus = 1,
		.mode = GMEM_MODE_DISCARD,
		.implicit = IMPLICIT_CONVERT,
	};
	int i, ret, vm_opt;

	ret = parse_opts(argc, argv, false, &cfg, &i, &vm_opt);
	if (ret)
		return ret == 1 ? 0 : ret;
	if (cfg.incoming)
		return incoming_main(&cfg, argc, argv, i, vm_opt);
	if (cfg.deferred_reclaim && cfg.mode != GMEM_MODE_DISCARD)
		return bad_usage("--reclaim deferred: only --conversion discard punches memory on conversion; in-place mode has nothing to reclaim");
	if (cfg.dmatest == DMATEST_EXTERNAL && cfg.mode != GMEM_MODE_DISCARD)
		return bad_usage("--dmatest external: needs --conversion discard (in in-place mode the shared backing is the guest_memfd itself, and this host's KVM does not stop a process holding it from mapping private pages)");
	if (i >= argc)
		return bad_usage("run: no guest image given (usage: gmvm run [OPTIONS] GUEST.elf [ARGS...])");
	cfg.elf_path = argv[i];
	if (i + 1 < argc) {
		cfg.cmdline = join_args(argc - i - 1, argv + i + 1);
		if (!cfg.cmdline)
			return bad_usage("out of memory for the command line");
	}
	ret = run_vm(&cfg);
	free(cfg.cmdline);
	return ret;
}

static int restore_main(int argc, char **argv)
{
	struct vm_config cfg = { .nr_vcpus = 1 };
	int i, ret, vm_opt;

	ret = parse_opts(argc, argv, true, &cfg, &i, &vm_opt);
	if (ret)
		return ret == 1 ? 0 : ret;
	if (i >= argc)
		return bad_usage("restore: no snapshot given (usage: gmvm restore [OPTIONS] FILE)");
	if (i + 1 < argc)
		return bad_usage("restore: unexpected argument '%s' after the snapshot (usage: gmvm restore [OPTIONS] FILE)",
				 argv[i + 1]);
	/* The whole file is checked here, before KVM is touched. */
	if (restore_open(argv[i], &cfg))
		return GM_EXIT_HOST_ERROR;
	ret = run_vm(&cfg);
	restore_close(&cfg);
	return ret;
}

int main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2)
		return bad_usage("no command given (gmvm help lists the commands)");
	cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") ||
	    !strcmp(cmd, "help")) {
		fputs(usage_main, stdout);
		return 0;
	}
	if (!strcmp(cmd, "run"))
		return run_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "restore"))
		return restore_main(argc - 1, argv + 1);
	/* Internal: the --dmatest=external device process (dma_process.c). */
	if (!strcmp(cmd, "dma-device"))
		return dma_process_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "ctl"))
		return ctl_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "caps")) {
		int i;

		for (i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "-h") ||
			    !strcmp(argv[i], "--help")) {
				fputs(usage_caps, stdout);
				return 0;
			}
		}
		return caps_main(argc - 1, argv + 1);
	}
	return bad_usage("unknown command '%s' (commands: run, restore, caps, ctl, help)",
			 cmd);
}
