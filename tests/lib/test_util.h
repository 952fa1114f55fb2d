/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the host tests.  Each test is a program that exits 0
 * (pass), 1 (fail) or 77 (skipped, with the reason as its last line).
 */
#ifndef GMEM_TEST_UTIL_H
#define GMEM_TEST_UTIL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gmem/gmem.h"

#define T_EXIT_PASS 0
#define T_EXIT_FAIL 1
#define T_EXIT_SKIP 77

#define TEST_FAIL(fmt, ...)                                                 \
	do {                                                                \
		fprintf(stderr, "FAIL %s:%d: " fmt "\n", __FILE__, __LINE__, \
			##__VA_ARGS__);                                     \
		exit(T_EXIT_FAIL);                                          \
	} while (0)

#define TEST_ASSERT(cond)                                                   \
	do {                                                                \
		if (!(cond))                                                \
			TEST_FAIL("%s", #cond);                             \
	} while (0)

/* Compare as signed 64-bit values (libgmem returns counts or -errno). */
#define TEST_ASSERT_EQ(a, b)                                                \
	do {                                                                \
		long long _a = (long long)(a), _b = (long long)(b);         \
		if (_a != _b)                                               \
			TEST_FAIL("%s == %s: %lld (%#llx) != %lld (%#llx)", \
				  #a, #b, _a, (unsigned long long)_a, _b,   \
				  (unsigned long long)_b);                  \
	} while (0)

/* Exit 77 with the reason. */
void test_skip(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/*
 * libgmem runs with or without KVM: test_create_vm() returns a KVM VM fd
 * where /dev/kvm is usable (guest_memfd backings, real memslots), else -1,
 * and test_create_gmem() then gives libgmem memfd backings and a slot
 * callback (the PLAIN_SLOT layout of the emulated backend).  Tests that
 * need a real vCPU call test_require_kvm(), which skips with the reason.
 */
void test_require_gmem(void);
void test_require_kvm(void);
/* GMEM_TEST_BACKEND=emulated (default) | vm-attributes | gmem-in-place:
 * the backend every host test runs on (native ones skip where the host
 * does not offer them). */
enum gmem_backend test_backend(void);
bool test_kvm_available(void);
int test_create_vm(void);

/* Slots recorded without KVM. */
struct test_slots {
	pthread_mutex_t lock;
	long live, calls;
};
extern struct test_slots test_slots;

/*
 * A set_slot() callback that keeps the live slots by id and fails the test
 * on a misuse: a registration of an id that is live, a delete of one that
 * is not, a slot that is not page aligned or has no host address.  Knob:
 * fail the nth registration with fail_err (a VMM whose slot table is full).
 */
#define SLOT_TABLE_MAX 64
struct slot_table {
	pthread_mutex_t lock;
	bool live[SLOT_TABLE_MAX];
	struct gmem_slot slot[SLOT_TABLE_MAX];	/* by id */
	long registers, deletes;
	unsigned int fail_register_nth;
	int fail_err;
};
void slot_table_init(struct slot_table *t);
int slot_table_set(void *data, const struct gmem_slot *slot);
unsigned int slot_table_nr_live(struct slot_table *t);
/* Live slots covering [gpa, gpa + len) exactly, whole. */
unsigned int slot_table_count_at(struct slot_table *t, uint64_t gpa,
				 uint64_t len);

/* A memfd of @size bytes. */
int test_memfd(uint64_t size);

/* One region [0, ram_size) at GPA 0, backings as test_create_gmem(). */
void test_fill_config(struct gmem_config *cfg, struct gmem_region_config *rc,
		      int vm_fd, uint64_t ram_size, enum gmem_mode mode,
		      enum gmem_state initial);

/* The runs of equal state of [gpa, gpa+len) (at most 64). */
struct test_runs {
	uint64_t gpa[64], len[64];
	int state[64];
	size_t nr;
};
void test_get_runs(struct gmem_vm *vm, uint64_t gpa, uint64_t len,
		   struct test_runs *r);
void test_expect_same_runs(const struct test_runs *a,
			   const struct test_runs *b);

/* The fd of a backing of region 0. */
int test_backing_fd(struct gmem_vm *vm, enum gmem_backing_id id);

/* Run gmem_audit() and fail the test with its message on a violation. */
void test_audit(struct gmem_vm *vm);

/* A connected unix stream socket to @path (asserted). */
int test_connect_unix(const char *path);
/* One request line to a control socket, its one reply line (with '\n'). */
void test_ctl_request(const char *sock, const char *line, char *reply,
		      size_t len);

/* Create guest memory for a test with the given size and mode. */
struct gmem_vm *test_create_gmem(int vm_fd, uint64_t ram_size,
				 enum gmem_mode mode, enum gmem_state initial,
				 const struct gmem_platform_ops *platform,
				 void *platform_data);

/*
 * Is the host byte at @p readable / writable?  Uses a SIGSEGV handler and
 * siglongjmp, so it proves the real protection of a mapping.
 */
bool test_probe_read(const volatile uint8_t *p, uint8_t *value);
bool test_probe_write(volatile uint8_t *p, uint8_t value);

/* Run @fn for discard mode, then for in-place mode, printing "mode NAME"
 * before each (the tests that check a behaviour in both modes). */
void test_each_mode(void (*fn)(enum gmem_mode mode));

/* Deterministic PRNG (xorshift64*). */
uint64_t test_rand(uint64_t *state);
uint64_t test_seed(const char *env_name, uint64_t dflt);

/* ---- recording hooks, subscriber and listener ----------------------------- */

enum rec_kind {
	REC_PREPARE, REC_INVALIDATE,		/* platform */
	REC_POPULATE, REC_DISCARD,		/* listener */
	REC_INVAL,				/* subscriber */
};

struct rec_event {
	enum rec_kind kind;
	int reason;	/* REC_INVAL: enum gmem_inval_reason */
	int backing;	/* REC_INVAL: enum gmem_backing_id */
	uint64_t offset, len;
};

/*
 * Records every call in order, and for the listener keeps the set of
 * mapped pages (one byte per page) so that it can report its mappings to
 * gmem_audit().  Fault knobs: fail the nth populate/discard/prepare.
 */
struct recorder {
	struct rec_event *ev;
	size_t nr, cap;
	uint64_t npages;
	uint8_t *mapped;	/* listener: page mapped? */
	uint8_t *prepared;	/* platform: page prepared (private)? */
	unsigned int fail_populate_nth, fail_discard_nth, fail_prepare_nth;
	int fail_err;
	bool strict;		/* fail the test on a double map/unmap */
	pthread_mutex_t lock;
};

extern const struct gmem_platform_ops recorder_platform_ops;
extern const struct gmem_listener_ops recorder_listener_ops;
void recorder_init(struct recorder *r, uint64_t ram_size);
void recorder_free(struct recorder *r);
void recorder_reset_events(struct recorder *r);
void recorder_inval(void *data, enum gmem_inval_reason reason,
		    enum gmem_backing_id backing, uint64_t offset,
		    uint64_t len);

/*
 * Guest memory of @ram_size bytes, all private, whose platform hooks,
 * listener (*@l) and subscriber (*@sub) all record into @rec (initialised
 * here): every hook event lands in one sequence.
 */
struct gmem_vm *test_create_recorded(int vm_fd, uint64_t ram_size,
				     enum gmem_mode mode, struct recorder *rec,
				     struct gmem_listener **l,
				     struct gmem_subscription **sub);

/* ---- a real-mode vCPU that loads and stores at any GPA < 1 MiB + 64 KiB -- */

struct test_vcpu;

enum test_access {
	TEST_ACCESS_DATA,	/* completed; value in *value */
	TEST_ACCESS_EXIT,	/* exited to userspace at *exit_gpa */
};

/*
 * A vCPU of @vm_fd whose code lives in page @code_gpa of guest memory,
 * written through @code_host (the host mapping of that page).
 */
struct test_vcpu *test_vcpu_create(int vm_fd, uint64_t code_gpa,
				   uint8_t *code_host);
void test_vcpu_destroy(struct test_vcpu *v);

/*
 * Execute a 32-bit load (write = false) or store of @value at @gpa.
 * Returns how it ended; on an exit, *exit_gpa is the GPA KVM reported and
 * the vCPU is reset (the access is abandoned).
 */
enum test_access test_vcpu_access(struct test_vcpu *v, uint64_t gpa,
				  bool write, uint32_t *value,
				  uint64_t *exit_gpa);

#endif /* GMEM_TEST_UTIL_H */
