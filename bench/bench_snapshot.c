/* SPDX-License-Identifier: MIT */
/*
 * Snapshot and restore of a VM's memory (vmm/snapshot/), host side, no
 * KVM (issue 11 item 6).  libgmem VMs without a KVM VM (memfds stand in
 * for the guest_memfd, as in bench_migrate and the snapshot tests):
 *  - 1 GiB, 512 MiB resident, discard mode (256 MiB private, 256 MiB
 *    shared) and the same in in-place mode;
 *  - 16 GiB sparse, discard mode: 256 MiB resident in 64 KiB pieces
 *    scattered over 12 GiB (half private, half shared), the other 4 GiB
 *    unplugged, everything else never touched.
 *
 * The snapshot is written as gmvm writes one (vmm/snapshot_save.c): the
 * memory sections, then the machine sections (a stand-in vCPU: its state
 * needs KVM, its size does not), to PATH.tmp, fsync, rename, fsync of the
 * directory.  Baseline in the same run and directory, the I/O floor: the
 * resident bytes pread() from the backings and write()n once to a file
 * with a plain loop, then fsync of the file and of the directory.
 *
 * Restore is the memory part only (snap_reader_open(), then
 * snap_mem_restore() into a new VM), with the file in the page cache and
 * evicted from it, against a fresh start host side (the same VM created,
 * nothing resident) and against its own I/O floor (the resident bytes
 * read from the file once and pwrite()n into fresh memfds); and the 16
 * GiB guest's layout alone (nothing resident), what a restore costs
 * beyond the content.  The restore "to the first guest instruction"
 * needs KVM and is reported as skipped.
 *
 * Files go to a new directory under $BENCH_SNAPSHOT_DIR (default
 * /var/tmp: on disk where /tmp may be tmpfs) and are removed.
 * Goals (issue 11): file <= 1.05x resident + 1 MiB; snapshot time <= 1.5x
 * the I/O floor; restore of the 16 GiB sparse guest <= 2x a fresh start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "bench.h"
#include "machine.h"
#include "snapshot.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define RUNS 3
#define BUF (1u << 20)		/* the snapshot writer's buffer, too */
#define MAX_EXTENTS 4096

struct extent {
	uint64_t gpa, len;
	enum gmem_state state;
};

struct guest {
	const char *name;
	uint64_t ram;
	enum gmem_mode mode;
	struct gmem_vm *vm;
	struct extent ext[MAX_EXTENTS];
	unsigned int nr_ext;
	uint64_t resident;
	bool layout_only;	/* states and plugs, nothing written */
};

static char dir[256];
static uint8_t *buf;

/* ---- the guests ---------------------------------------------------------- */

static void fill(struct guest *g, uint64_t gpa, uint64_t len,
		 enum gmem_state st)
{
	struct extent *e = &g->ext[g->nr_ext++];
	uint64_t done;

	if (g->nr_ext > MAX_EXTENTS)
		bench_die("too many extents");
	e->gpa = gpa;
	e->len = len;
	e->state = st;
	for (done = 0; done < len; done += BUF) {
		uint64_t n = len - done < BUF ? len - done : BUF;

		/* Not zeros: a page of zeros is memory like any other, but
		 * an accidental zero-page shortcut must not flatter. */
		memset(buf, (int)(0x11 + g->nr_ext + done / BUF), n);
		BENCH_ASSERT_EQ(gmem_access(g->vm, gpa + done, buf, n, true,
					    st), 0);
	}
	g->resident += len;
}

static void make_guest(struct guest *g)
{
	struct gmem_region_config rc;
	struct gmem_config cfg;
	uint64_t gpa;

	bench_gmem_config(&cfg, &rc, -1, g->ram, g->mode, GMEM_PRIVATE);
	g->vm = bench_gmem_create(&cfg);
	g->nr_ext = 0;
	g->resident = 0;
	if (g->ram == 1 * GiB) {
		/* The upper half shared; 256 MiB of each half written. */
		BENCH_ASSERT_EQ(gmem_convert(g->vm, g->ram / 2, g->ram / 2,
					     GMEM_SHARED) > 0, 1);
		fill(g, 0, 256 * MiB, GMEM_PRIVATE);
		fill(g, g->ram / 2, 256 * MiB, GMEM_SHARED);
		return;
	}
	/* 16 GiB: [0, 8G) private, [8G, 12G) shared, [12G, 16G)
	 * unplugged; 64 KiB written every 4 MiB (private) and every 2 MiB
	 * (shared): 2048 pieces each, 128 MiB each. */
	BENCH_ASSERT_EQ(gmem_convert(g->vm, 8 * GiB, 4 * GiB, GMEM_SHARED) > 0,
			1);
	BENCH_ASSERT_EQ(gmem_set_plugged(g->vm, 12 * GiB, 4 * GiB, false) > 0,
			1);
	if (g->layout_only)
		return;
	for (gpa = 0; gpa < 8 * GiB; gpa += 4 * MiB)
		fill(g, gpa, 64 << 10, GMEM_PRIVATE);
	for (gpa = 8 * GiB; gpa < 12 * GiB; gpa += 2 * MiB)
		fill(g, gpa, 64 << 10, GMEM_SHARED);
}

/* ---- the machine sections: their size, without KVM ----------------------- */

/*
 * One vCPU as gmvm saves it (the structs KVM fills are zeros here: only
 * their size matters), the legacy 4096-byte XSAVE area and no MSRs; the
 * clock, the DMA device without pins, the run options.
 */
static struct snap_machine *stand_in_machine(const struct guest *g)
{
	struct snap_machine *m = calloc(1, sizeof(*m));

	if (!m)
		bench_die("no memory");
	m->nr_vcpus = 1;
	m->vcpu[0].mp_state = KVM_MP_STATE_RUNNABLE;
	m->vcpu[0].xsave_size = SNAP_XSAVE_LEGACY;
	m->vcpu[0].xsave = calloc(1, SNAP_XSAVE_LEGACY);
	if (!m->vcpu[0].xsave)
		bench_die("no memory");
	m->opts.ram_size = g->ram;
	m->opts.nr_vcpus = 1;
	m->opts.mode = g->mode;
	return m;
}

/* ---- snapshot and its floor ---------------------------------------------- */

/* vmm/snapshot_save.c's write_file(), with the stand-in machine. */
static double snapshot(const struct guest *g, const struct snap_machine *mach,
		       const char *path, struct snap_save_stats *st)
{
	struct snap_save_opts so = {
		.initial_state = GMEM_PRIVATE, .no_replace = true,
		.machine = mach,
	};
	char msg[256];
	double t0 = bench_now_us();

	/* gmvm's path (vmm/snapshot_save.c), a stand-in machine for the
	 * vCPU state it would gather from KVM. */
	if (snap_save_file(g->vm, path, &so, st, msg, sizeof(msg)))
		bench_die("snapshot of %s: %s", g->name, msg);
	return (bench_now_us() - t0) / 1e6;
}

static void sync_dir(void)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) < 0)
		bench_die("%s: %s", dir, strerror(errno));
	close(fd);
}

/* The resident bytes once: backing -> pread() -> write() -> file, fsync. */
static double io_floor(const struct guest *g, const char *path)
{
	struct gmem_region_info ri = { .size = sizeof(ri) };
	double t0 = bench_now_us();
	unsigned int i;
	uint64_t done;
	int out, src;
	ssize_t n;

	BENCH_ASSERT_EQ(gmem_region_get(g->vm, 0, &ri), 0);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		bench_die("%s: %s", path, strerror(errno));
	for (i = 0; i < g->nr_ext; i++) {
		const struct extent *e = &g->ext[i];
		uint64_t off;

		/* In-place mode: both states live in the one backing. */
		if (e->state == GMEM_SHARED && g->mode == GMEM_MODE_DISCARD) {
			src = ri.shared_fd;
			off = ri.shared_offset;
		} else {
			src = ri.private_fd;
			off = ri.private_offset;
		}
		for (done = 0; done < e->len; done += (uint64_t)n) {
			size_t len = e->len - done < BUF ? e->len - done : BUF;

			n = pread(src, buf, len, (off_t)(off + e->gpa + done));
			if (n <= 0 || write(out, buf, (size_t)n) != n)
				bench_die("the floor's copy: %s",
					  strerror(errno));
		}
	}
	if (fsync(out) < 0 || close(out) < 0)
		bench_die("%s: %s", path, strerror(errno));
	sync_dir();
	t0 = (bench_now_us() - t0) / 1e6;
	unlink(path);
	return t0;
}

/* ---- restore and a fresh start ------------------------------------------- */

static void base_config(struct gmem_config *base, const struct guest *g)
{
	struct gmem_region_config rc;

	bench_gmem_config(base, &rc, -1, g->ram, g->mode, GMEM_PRIVATE);
	close(rc.private_fd);
	base->regions = NULL;
	base->nr_regions = 0;
}

struct restore_times {
	double open_s, mem_s;
};

/*
 * snap_mem_restore_file() in its two steps, timed apart: the reader checks
 * the framing and every checksum (reading the whole file), then the
 * restore checks the memory sections and writes the content in.
 */
static struct gmem_vm *restore(const struct guest *g, const char *path,
			       struct restore_times *t, bool verify)
{
	struct gmem_config base;
	struct snap_restore_opts o = {
		.base = &base, .create = bench_create_memfd_vm,
		.create_data = (void *)"restored-private",
	};
	struct snap_reader r;
	struct snap_src src;
	struct gmem_vm *vm;
	char msg[256];
	double t0 = bench_now_us(), t1;
	int fd, err;

	base_config(&base, g);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || snap_src_fd(&src, fd))
		bench_die("%s: %s", path, strerror(errno));
	err = snap_reader_open(&r, &src, msg, sizeof(msg));
	if (err)
		bench_die("restore of %s: %s", g->name, msg);
	t1 = bench_now_us();
	err = snap_mem_restore(&r, &o, &vm);
	if (err)
		bench_die("restore of %s: %s", g->name, msg);
	t->mem_s = (bench_now_us() - t1) / 1e6;
	t->open_s = (t1 - t0) / 1e6;
	if (verify && snap_mem_verify(vm, &r, SNAP_FIND_AUTO))
		bench_die("restore of %s: %s", g->name, msg);
	snap_reader_close(&r);
	close(fd);
	return vm;
}

/* What a restore cannot do without: the same VM, created empty. */
static double fresh_start(const struct guest *g)
{
	struct gmem_region_config rc = GMEM_INIT(struct gmem_region_config,
		.gpa = 0, .len = g->ram, .private_fd = -1, .shared_fd = -1);
	struct gmem_config cfg;
	struct gmem_vm *vm;
	double t0;

	base_config(&cfg, g);
	cfg.mode = g->mode;
	cfg.initial_state = GMEM_PRIVATE;
	cfg.max_gpa = g->ram;
	cfg.regions = &rc;
	cfg.nr_regions = 1;
	t0 = bench_now_us();
	BENCH_ASSERT_EQ(bench_create_memfd_vm((void *)"fresh-private", &cfg, &vm), 0);
	t0 = (bench_now_us() - t0) / 1e6;
	gmem_destroy(vm);
	return t0;
}

/* The page cache forgets the (synced, clean) file: restore reads disk. */
static void evict(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED))
		bench_die("%s: cannot evict from the page cache", path);
	close(fd);
}

/*
 * What a restore cannot do without: the resident bytes read from the file
 * once, with read(), and pwrite()n into fresh memfds (one per backing) at
 * their places.  Without the file's headers or a checksum: a floor.
 */
static double restore_floor(const struct guest *g, const char *path)
{
	int in = open(path, O_RDONLY | O_CLOEXEC);
	int fd[2] = { bench_memfd("floor-private", g->ram),
		      bench_memfd("floor-shared", g->ram) };
	double t0 = bench_now_us();
	unsigned int i;
	uint64_t done;
	ssize_t n;

	if (in < 0 || fd[0] < 0 || fd[1] < 0)
		bench_die("the restore floor: %s", strerror(errno));
	for (i = 0; i < g->nr_ext; i++) {
		const struct extent *e = &g->ext[i];
		int out = fd[e->state == GMEM_SHARED &&
			     g->mode == GMEM_MODE_DISCARD];

		for (done = 0; done < e->len; done += (uint64_t)n) {
			size_t len = e->len - done < BUF ? e->len - done : BUF;

			n = read(in, buf, len);
			if (n <= 0 || pwrite(out, buf, (size_t)n,
					     (off_t)(e->gpa + done)) != n)
				bench_die("the restore floor's copy: %s",
					  strerror(errno));
		}
	}
	t0 = (bench_now_us() - t0) / 1e6;
	close(in);
	close(fd[0]);
	close(fd[1]);
	return t0;
}

/* ---- one guest, RUNS times ----------------------------------------------- */

struct result {
	double snap_s, floor_s, file_b, fresh_s;
	double warm_s, warm_open_s, cold_s, cold_open_s, rfloor_s;
	struct snap_save_stats st;
	uint64_t mem_file_b;
};

static void measure(struct guest *g, struct result *res)
{
	double snap[RUNS], flr[RUNS], fresh[RUNS], warm[RUNS], warm_o[RUNS];
	double cold[RUNS], cold_o[RUNS], rfloor[RUNS];
	struct snap_machine *mach;
	struct restore_times t;
	struct gmem_vm *vm;
	char path[300], fpath[300];
	int i;

	bench_progress("%s: filling", g->name);
	make_guest(g);
	mach = stand_in_machine(g);
	snprintf(path, sizeof(path), "%s/%s.snap", dir, g->name);
	snprintf(fpath, sizeof(fpath), "%s/%s.floor", dir, g->name);
	for (i = 0; i < RUNS; i++) {
		bench_progress("%s: run %d of %d", g->name, i + 1, RUNS);
		/* Alternate which goes first: neither always finds the
		 * disk busy with the other's writeback. */
		if (i & 1) {
			snap[i] = snapshot(g, mach, path, &res->st);
			flr[i] = io_floor(g, fpath);
		} else {
			flr[i] = io_floor(g, fpath);
			snap[i] = snapshot(g, mach, path, &res->st);
		}
		if (res->st.data_bytes != g->resident)
			bench_die("%s: %llu bytes saved, %llu resident", g->name,
				  (unsigned long long)res->st.data_bytes,
				  (unsigned long long)g->resident);
		fresh[i] = fresh_start(g);
		rfloor[i] = restore_floor(g, path);
		vm = restore(g, path, &t, i == 0);
		warm[i] = t.open_s + t.mem_s;
		warm_o[i] = t.open_s;
		gmem_destroy(vm);
		evict(path);
		vm = restore(g, path, &t, false);
		cold[i] = t.open_s + t.mem_s;
		cold_o[i] = t.open_s;
		gmem_destroy(vm);
		unlink(path);
		bench_progress("%s: snapshot %.3f s, floor %.3f s, restore "
			       "%.3f s (cold %.3f s), restore floor %.3f s, "
			       "fresh %.3f ms", g->name, snap[i], flr[i],
			       warm[i], cold[i], rfloor[i], fresh[i] * 1e3);
	}
	res->file_b = (double)res->st.file_bytes;
	res->snap_s = bench_median(snap, RUNS);
	res->floor_s = bench_median(flr, RUNS);
	res->fresh_s = bench_median(fresh, RUNS);
	res->warm_s = bench_median(warm, RUNS);
	res->warm_open_s = bench_median(warm_o, RUNS);
	res->cold_s = bench_median(cold, RUNS);
	res->rfloor_s = bench_median(rfloor, RUNS);
	res->cold_open_s = bench_median(cold_o, RUNS);
	snap_machine_free(mach);
	free(mach);
	gmem_destroy(g->vm);
	g->vm = NULL;
}

/*
 * What a restore costs beyond the content: the 16 GiB guest's layout
 * (states, plugs) with nothing resident, saved and restored.
 */
static void measure_layout(struct guest *g, double *restore_s, double *fresh_s)
{
	double rs[RUNS], fs[RUNS];
	struct snap_machine *mach;
	struct snap_save_stats st;
	struct restore_times t;
	struct gmem_vm *vm;
	char path[300];
	int i;

	make_guest(g);
	mach = stand_in_machine(g);
	snprintf(path, sizeof(path), "%s/%s.snap", dir, g->name);
	for (i = 0; i < RUNS; i++) {
		snapshot(g, mach, path, &st);
		fs[i] = fresh_start(g);
		vm = restore(g, path, &t, i == 0);
		rs[i] = t.open_s + t.mem_s;
		gmem_destroy(vm);
		unlink(path);
	}
	*restore_s = bench_median(rs, RUNS);
	*fresh_s = bench_median(fs, RUNS);
	snap_machine_free(mach);
	free(mach);
	gmem_destroy(g->vm);
	g->vm = NULL;
}

/* The bytes the machine sections add: the same writer into a memfd. */
static uint64_t machine_bytes(const struct guest *g)
{
	struct snap_machine *mach = stand_in_machine(g);
	int fd = bench_memfd("machine", 0);
	struct snap_writer w;
	struct snap_msg m;
	char msg[256];
	int64_t size;

	snap_msg_init(&m, msg, sizeof(msg));
	if (fd < 0 || snap_writer_init(&w, fd, NULL, &m))
		bench_die("machine sections: no memory");
	snap_machine_write(&w, mach);
	size = snap_writer_finish(&w);
	snap_writer_free(&w);
	if (size < 0)
		bench_die("machine sections: %s", msg);
	close(fd);
	snap_machine_free(mach);
	free(mach);
	/* Less the file header and END. */
	return (uint64_t)size - SNAP_HEADER_SIZE - SNAP_SEC_HEADER_SIZE;
}

static const char *fs_name(void)
{
	static char other[32];
	struct statfs s;

	if (statfs(dir, &s))
		return "unknown";
	switch ((unsigned long)s.f_type) {
	case 0xef53: return "ext4";
	case 0x58465342: return "xfs";
	case 0x9123683e: return "btrfs";
	case 0x01021994: return "tmpfs";
	case 0x794c7630: return "overlayfs";
	}
	snprintf(other, sizeof(other), "fs type %#lx",
		 (unsigned long)s.f_type);
	return other;
}

/* ---- the report ---------------------------------------------------------- */

static void rows(const char *label, const struct guest *g,
		 const struct result *r, bool restore_goal)
{
	double goal_b = 1.05 * (double)g->resident + (double)MiB;

	printf("| %s: file size | %.0f B | resident %llu B | %.4fx | <= 1.05x "
	       "+ 1 MiB | %s |\n", label, r->file_b,
	       (unsigned long long)g->resident, r->file_b / (double)g->resident,
	       bench_goal_mark(r->file_b <= goal_b));
	printf("| %s: snapshot time | %.3f s | I/O floor %.3f s | %.2fx | <= "
	       "1.5x | %s |\n", label, r->snap_s, r->floor_s,
	       r->snap_s / r->floor_s,
	       bench_goal_mark(r->snap_s <= 1.5 * r->floor_s));
	printf("| %s: restore, host side, file in page cache | %.3f s "
	       "(checksum pass %.3f s) | fresh start, host side %.3f ms | "
	       "%.0fx | %s | %s |\n", label, r->warm_s, r->warm_open_s,
	       r->fresh_s * 1e3, r->warm_s / r->fresh_s,
	       restore_goal ? "<= 2x" : "(reference)",
	       restore_goal ? bench_goal_mark(r->warm_s <= 2 * r->fresh_s) :
			      "");
	printf("| %s: restore, host side, file in page cache | %.3f s | "
	       "restore I/O floor %.3f s | %.2fx | (reference) | |\n", label,
	       r->warm_s, r->rfloor_s, r->warm_s / r->rfloor_s);
	printf("| %s: restore, host side, file not in page cache | %.3f s "
	       "(checksum pass %.3f s) | fresh start, host side %.3f ms | "
	       "%.0fx | (reference) | |\n", label, r->cold_s, r->cold_open_s,
	       r->fresh_s * 1e3, r->cold_s / r->fresh_s);
	printf("BENCH snap_%s_resident %llu\nBENCH snap_%s_file %.0f\n"
	       "BENCH snap_%s_snapshot_s %.4f\nBENCH snap_%s_floor_s %.4f\n"
	       "BENCH snap_%s_restore_s %.4f\nBENCH snap_%s_restore_cold_s %.4f\n"
	       "BENCH snap_%s_fresh_s %.5f\nBENCH snap_%s_restore_floor_s %.4f\n",
	       g->name,
	       (unsigned long long)g->resident, g->name, r->file_b, g->name,
	       r->snap_s, g->name, r->floor_s, g->name, r->warm_s, g->name,
	       r->cold_s, g->name, r->fresh_s, g->name, r->rfloor_s);
}

int main(void)
{
	static struct guest g[] = {
		{ .name = "1g-discard", .ram = 1 * GiB,
		  .mode = GMEM_MODE_DISCARD },
		{ .name = "1g-in-place", .ram = 1 * GiB,
		  .mode = GMEM_MODE_IN_PLACE },
		{ .name = "16g-sparse", .ram = 16 * GiB,
		  .mode = GMEM_MODE_DISCARD },
	};
	struct guest layout = { .name = "16g-layout", .ram = 16 * GiB,
				.mode = GMEM_MODE_DISCARD, .layout_only = true };
	static const char *label[] = {
		"1 GiB, discard", "1 GiB, in-place", "16 GiB sparse, discard",
	};
	struct result r[3];
	const char *base = getenv("BENCH_SNAPSHOT_DIR");
	double lay_restore_s, lay_fresh_s;
	const char *fs;
	uint64_t mach_b;
	unsigned int i;

	if (!base)
		base = "/var/tmp";
	snprintf(dir, sizeof(dir), "%s/bench_snapshot.XXXXXX", base);
	if (!mkdtemp(dir))
		bench_skip("no directory for the files under %s: %s", base,
			   strerror(errno));
	buf = malloc(BUF);
	if (!buf)
		bench_die("no memory");
	memset(r, 0, sizeof(r));
	for (i = 0; i < 3; i++)
		measure(&g[i], &r[i]);
	bench_progress("16 GiB layout, nothing resident");
	measure_layout(&layout, &lay_restore_s, &lay_fresh_s);
	mach_b = machine_bytes(&g[0]);
	fs = fs_name();
	rmdir(dir);
	free(buf);

	printf("## Snapshot and restore (bench_snapshot, host side, no KVM)"
	       "\n\n");
	printf("Host side, no KVM: libgmem VMs without a KVM VM (a memfd "
	       "stands in for the guest_memfd).  A 1 GiB guest with 512 MiB "
	       "resident (256 MiB private, 256 MiB shared) in discard and in "
	       "in-place mode; a 16 GiB sparse guest in discard mode with "
	       "%llu MiB resident in 64 KiB pieces scattered over 12 GiB (half "
	       "private, half shared), 4 GiB unplugged, the rest never "
	       "touched.  The snapshot is written as gmvm writes one "
	       "(vmm/snapshot_save.c: memory sections, then the machine "
	       "sections, to FILE.tmp, fsync, rename, fsync of the "
	       "directory), to %s (%s).  Baseline in the same run and "
	       "directory, the I/O floor: the resident bytes pread() from the "
	       "backings and write()n once into a file with a 1 MiB buffer, "
	       "then fsync of the file and the directory.  Restore is the "
	       "memory part (snap_reader_open(), which checks every "
	       "checksum, then snap_mem_restore() into a new VM), once with "
	       "the file in the page cache and once after "
	       "posix_fadvise(DONTNEED) evicted it; against a fresh start, "
	       "host side: the same VM (same size and layout) created with "
	       "nothing resident; and against the restore's I/O floor: the "
	       "resident bytes read() from the file once and pwrite()n into "
	       "fresh memfds.  Median of %d runs.\n\n",
	       (unsigned long long)(g[2].resident >> 20), base, fs,
	       RUNS);
	printf("| figure | value | baseline | ratio | goal | |\n");
	printf("|---|---|---|---|---|---|\n");
	for (i = 0; i < 3; i++)
		rows(label[i], &g[i], &r[i], i == 2);
	printf("| 16 GiB sparse layout, nothing resident: restore, host side "
	       "| %.3f ms | fresh start, host side %.3f ms | %.2fx | "
	       "(reference) | |\n", lay_restore_s * 1e3, lay_fresh_s * 1e3,
	       lay_restore_s / lay_fresh_s);
	printf("| 16 GiB sparse: restore to the first guest instruction | "
	       "see bench_guest_restore (needs KVM) | fresh gmvm start | | "
	       "<= 2x | |\n");
	printf("\nThe machine sections (vCPU, clock, DMA device, run options) "
	       "are in every file above: %llu bytes for one vCPU with the "
	       "legacy 4096-byte XSAVE area and no MSRs (their content, which "
	       "needs KVM, is a stand-in of zeros; each MSR adds 16 bytes, a "
	       "larger XSAVE area its size).  The 16 GiB sparse guest's file: "
	       "data records %llu, state runs %llu, unplugged runs %llu.\n",
	       (unsigned long long)mach_b,
	       (unsigned long long)r[2].st.data_records,
	       (unsigned long long)r[2].st.state_runs,
	       (unsigned long long)r[2].st.unplugged_runs);
	printf("BENCH snap_machine_bytes %llu\n", (unsigned long long)mach_b);
	printf("BENCH snap_16g-layout_restore_s %.5f\n"
	       "BENCH snap_16g-layout_fresh_s %.5f\n", lay_restore_s,
	       lay_fresh_s);
	return 0;
}
