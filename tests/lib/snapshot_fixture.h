/* SPDX-License-Identifier: MIT */
/*
 * What the memory snapshot tests share (test_snapshot_roundtrip,
 * test_snapshot_refuse, test_snapshot_write_fail; vmm/snapshot/ and
 * docs/SNAPSHOT.md are what they test), without KVM where there is none:
 *  - VMs whose memslots are counted (slots_now() must be 0 once every VM
 *    is gone) and whose backings create_cb() makes, as restore asks;
 *  - a per-page model of a VM (state, plug, residency per backing,
 *    content) and the 16 MiB VM of four regions the tests start from;
 *  - files: a growing byte buffer, save and verify that fail the test;
 *  - a temporary directory per test, the PRNG (SNAPSHOT_SEED), timing.
 * Linked only into the snapshot tests (it needs vmm/snapshot/).
 */
#ifndef GMEM_SNAPSHOT_FIXTURE_H
#define GMEM_SNAPSHOT_FIXTURE_H

#include "test_util.h"
#include "format.h"
#include "snapshot.h"

#define PG GMEM_PAGE_SIZE
#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define ULL(x) ((unsigned long long)(x))
#define MAX_REGIONS 8

/* KVM's VM fd, or -1 without KVM (then memfds stand in for guest_memfd). */
extern int vm_fd;

/*
 * Seed the PRNG, skip unless the backend is the emulated one, open the VM
 * and make a temporary directory /tmp/NAME.XXXXXX for the files.
 */
void snap_fixture_init(const char *name);
/* No memslot left, remove the directory, close the VM. */
void snap_fixture_fini(void);

/* A random number below @n (0 for 0). */
uint64_t rnd(uint64_t n);

/* ---- VMs: slots counted, backings made here -------------------------------- */

long slots_now(void);

/* How create_cb() makes a VM (restore calls it with the file's config). */
struct creator {
	bool own_shared;	/* discard: one VMM memfd, region at offset gpa */
	int fail_err;		/* fail creation with this */
	bool dirty;		/* write a page before restore sees the VM */
	bool veto;		/* a listener that refuses every populate */
	int created;
};

int create_cb(void *data, const struct gmem_config *in, struct gmem_vm **out);
struct gmem_config base_config(uint32_t flags);

/* ---- the model ----------------------------------------------------------- */

struct rgn {
	uint64_t gpa, len;
};

struct model {
	enum gmem_mode mode;
	enum gmem_state initial;
	uint64_t max_gpa, npages;
	struct rgn r[MAX_REGIONS];
	unsigned int nr;
	uint8_t *state, *plugged;
	uint8_t *res[2];	/* per backing (in-place: res[0] only) */
	uint32_t *seed;		/* content: 0 zeros, else pattern(seed) */
};

void model_init(struct model *m, enum gmem_mode mode,
		enum gmem_state initial, uint64_t max_gpa);
void model_free(struct model *m);
void model_add_region(struct model *m, uint64_t gpa, uint64_t len);

/*
 * The VM the tests start from, in @m's mode and initial state and a
 * 16 MiB space: [0, 4M), [6M, 8M) and [8M, 9M) (adjacent, hot-plugged)
 * and [12M, 14M) (hot-plugged; in discard mode the two hot-plugged ones
 * on the VMM's own shared memfd at an offset).
 */
struct gmem_vm *create_model_vm(struct model *m, uint32_t flags,
				struct creator *c);

/* ---- files -------------------------------------------------------------- */

struct bytes {
	uint8_t *p;
	size_t len, cap;
};

void b_put(struct bytes *b, const void *p, size_t n);
void b_free(struct bytes *b);
struct bytes read_file(const char *path);
bool exists(const char *path);
/* @name in the test's temporary directory. */
void path_in_dir(char *out, size_t len, const char *name);
/* Save @vm to @path, verify @vm against @path: fail the test on an error. */
void save(struct gmem_vm *vm, const struct model *m, const char *path,
	  enum snap_find find, struct snap_save_stats *st);
void verify(struct gmem_vm *vm, const char *path);

/* ---- time ---------------------------------------------------------------- */

double now_s(void);
/* Where the time goes (make check's budget): print and return now_s(). */
double lap(double t0, const char *what);

#endif /* GMEM_SNAPSHOT_FIXTURE_H */
