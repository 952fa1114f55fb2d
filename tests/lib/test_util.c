/* SPDX-License-Identifier: MIT */
/*
 * The host tests' shared helpers (see test_util.h): KVM or not, guest
 * memory and slot tables for a test, protection probes, a PRNG, the
 * recording hooks, and a real-mode vCPU that makes one access at a time
 * (on the tiny-VM layer util/kvm_util.h).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kvm_compat.h"
#include "kvm_util.h"
#include "test_util.h"
#include "vec.h"

void test_skip(const char *fmt, ...)
{
	va_list ap;

	printf("skipped: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(T_EXIT_SKIP);
}

/*
 * KVM here?  Cached: 1 usable (guest_memfd and a gating layout), 0 not
 * (then libgmem runs without a VM: memfd backings, slots through a
 * recording callback), with the reason in kvm_why.
 */
static int kvm_state = -1;
static char kvm_why[160];

static bool have_kvm(void)
{
	struct gmem_vm_caps caps = { .size = sizeof(caps) };
	enum gmem_layout layout;
	const char *why;
	uint64_t flags;
	int kvm, vm, err;

	if (kvm_state >= 0)
		return kvm_state;
	kvm_state = 0;
	kvm = kvmu_open();
	if (kvm < 0) {
		snprintf(kvm_why, sizeof(kvm_why), "no usable /dev/kvm: %s",
			 strerror(-kvm));
		return false;
	}
	vm = kvmu_vm_create(kvm, 0);
	close(kvm);
	if (vm < 0) {
		snprintf(kvm_why, sizeof(kvm_why), "KVM_CREATE_VM: %s",
			 strerror(-vm));
		return false;
	}
	err = gmem_probe_vm(vm, &caps);
	close(vm);
	if (err) {
		snprintf(kvm_why, sizeof(kvm_why), "gmem_probe_vm: %s",
			 strerror(-err));
		return false;
	}
	if (gmem_pick_guest_memfd_flags(&caps, GMEM_BACKEND_EMULATED, &flags,
					&why)) {
		snprintf(kvm_why, sizeof(kvm_why), "guest_memfd unusable: %s",
			 why);
		return false;
	}
	err = gmem_probe_gating(&layout);
	if (err == -EOPNOTSUPP) {
		snprintf(kvm_why, sizeof(kvm_why),
			 "no memslot layout gates vCPU access on this host");
		return false;
	}
	if (err)
		TEST_FAIL("gating probe failed: %s", strerror(-err));
	kvm_state = 1;
	return true;
}

void test_require_gmem(void)
{
	/* libgmem itself runs with or without KVM (test_create_vm()). */
}

void test_require_kvm(void)
{
	if (!have_kvm())
		test_skip("%s", kvm_why);
}

bool test_kvm_available(void)
{
	return have_kvm();
}

enum gmem_backend test_backend(void)
{
	const char *b = getenv("GMEM_TEST_BACKEND");

	if (!b || !*b || !strcmp(b, "emulated"))
		return GMEM_BACKEND_EMULATED;
	if (!strcmp(b, "vm-attributes"))
		return GMEM_BACKEND_VM_ATTRIBUTES;
	if (!strcmp(b, "gmem-in-place"))
		return GMEM_BACKEND_GMEM_IN_PLACE;
	TEST_FAIL("GMEM_TEST_BACKEND=%s: emulated, vm-attributes or "
		  "gmem-in-place", b);
}

int test_create_vm(void)
{
	int kvm, vm;

	if (!have_kvm() && test_backend() != GMEM_BACKEND_EMULATED)
		test_skip("%s selected: %s", gmem_backend_name(test_backend()),
			  kvm_why);
	if (!have_kvm())
		return -1;	/* libgmem without a VM: see test_create_gmem() */
	kvm = kvmu_open();
	if (kvm < 0)
		test_skip("open /dev/kvm: %s", strerror(-kvm));
	/* A native backend needs a VM type with private memory. */
	vm = kvmu_vm_create(kvm, test_backend() == GMEM_BACKEND_EMULATED ?
				 0UL : 1UL /* KVM_X86_SW_PROTECTED_VM */);
	if (vm < 0 && test_backend() != GMEM_BACKEND_EMULATED)
		test_skip("%s selected, but no SW_PROTECTED VM here: %s",
			  gmem_backend_name(test_backend()), strerror(-vm));
	if (vm < 0)
		TEST_FAIL("KVM_CREATE_VM: %s", strerror(-vm));
	close(kvm);
	return vm;
}

void test_audit(struct gmem_vm *vm)
{
	char msg[512];
	int err = gmem_audit(vm, msg, sizeof(msg));

	if (err)
		TEST_FAIL("audit: %s (%s)", msg, strerror(-err));
}

/* Without KVM, slots are only recorded: count them, check deletes match. */
static int record_slot(void *data, const struct gmem_slot *slot)
{
	struct test_slots *t = data;

	pthread_mutex_lock(&t->lock);
	if (slot->len)
		t->live++;
	else
		t->live--;
	t->calls++;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

struct test_slots test_slots = { .lock = PTHREAD_MUTEX_INITIALIZER };

void slot_table_init(struct slot_table *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->fail_err = -ENOSPC;
}

int slot_table_set(void *data, const struct gmem_slot *slot)
{
	struct slot_table *t = data;
	int err = 0;

	pthread_mutex_lock(&t->lock);
	if (slot->size < sizeof(*slot))
		TEST_FAIL("slot %u: size %u", slot->id, slot->size);
	if (slot->id >= SLOT_TABLE_MAX)
		TEST_FAIL("slot id %u: ids must stay small (lowest free)",
			  slot->id);
	if (slot->len) {
		if ((slot->gpa | slot->len) % GMEM_PAGE_SIZE ||
		    !slot->userspace_addr)
			TEST_FAIL("slot %u [%#llx, +%#llx) at %p: bad",
				  slot->id, (unsigned long long)slot->gpa,
				  (unsigned long long)slot->len,
				  slot->userspace_addr);
		if (t->fail_register_nth && --t->fail_register_nth == 0) {
			err = t->fail_err;
		} else {
			if (t->live[slot->id])
				TEST_FAIL("slot id %u registered twice",
					  slot->id);
			t->live[slot->id] = true;
			t->slot[slot->id] = *slot;
			t->registers++;
		}
	} else {
		if (!t->live[slot->id])
			TEST_FAIL("slot id %u deleted but not live", slot->id);
		t->live[slot->id] = false;
		t->deletes++;
	}
	pthread_mutex_unlock(&t->lock);
	return err;
}

unsigned int slot_table_nr_live(struct slot_table *t)
{
	unsigned int i, n = 0;

	pthread_mutex_lock(&t->lock);
	for (i = 0; i < SLOT_TABLE_MAX; i++)
		n += t->live[i];
	pthread_mutex_unlock(&t->lock);
	return n;
}

unsigned int slot_table_count_at(struct slot_table *t, uint64_t gpa,
				 uint64_t len)
{
	unsigned int i, n = 0;

	pthread_mutex_lock(&t->lock);
	for (i = 0; i < SLOT_TABLE_MAX; i++)
		if (t->live[i] && t->slot[i].gpa == gpa &&
		    t->slot[i].len == len)
			n++;
	pthread_mutex_unlock(&t->lock);
	return n;
}

int test_memfd(uint64_t size)
{
	int fd = memfd_create("test-private", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		TEST_FAIL("memfd: %s", strerror(errno));
	return fd;
}

void test_fill_config(struct gmem_config *cfg, struct gmem_region_config *rc,
		      int vm_fd, uint64_t ram_size, enum gmem_mode mode,
		      enum gmem_state initial)
{
	*rc = GMEM_INIT(struct gmem_region_config, .gpa = 0, .len = ram_size,
			.private_fd = -1, .shared_fd = -1);
	*cfg = GMEM_INIT(struct gmem_config, .vm_fd = vm_fd, .mode = mode,
			 .initial_state = initial, .regions = rc,
			 .nr_regions = 1);
	if (vm_fd < 0) {
		/* No KVM: a memfd stands in for the guest_memfd (the
		 * PLAIN_SLOT layout needs only mmap and PUNCH_HOLE), and
		 * the slots are recorded. */
		rc->private_fd = test_memfd(ram_size);
		cfg->set_slot = record_slot;
		cfg->slot_data = &test_slots;
	} else if (test_backend() != GMEM_BACKEND_EMULATED) {
		/* The conformance suite on a native backend: one variable,
		 * GMEM_TEST_BACKEND, selects it for every host test. */
		cfg->backend = test_backend();
	} else {
		enum gmem_layout layout;

		if (gmem_probe_gating(&layout))
			TEST_FAIL("gating probe");
		cfg->layout = layout;
	}
}

struct gmem_vm *test_create_gmem(int vm_fd, uint64_t ram_size,
				 enum gmem_mode mode, enum gmem_state initial,
				 const struct gmem_platform_ops *platform,
				 void *platform_data)
{
	struct gmem_region_config rc;
	struct gmem_config cfg;
	struct gmem_vm *vm;
	int err;

	test_fill_config(&cfg, &rc, vm_fd, ram_size, mode, initial);
	cfg.platform = platform;
	cfg.platform_data = platform_data;
	err = gmem_create(&cfg, &vm);
	if (rc.private_fd >= 0)
		close(rc.private_fd);	/* libgmem holds its own dup */
	if (err == -EOPNOTSUPP && cfg.backend != GMEM_BACKEND_AUTO &&
	    cfg.backend != GMEM_BACKEND_EMULATED)
		test_skip("%s is not offered by this VM",
			  gmem_backend_name(cfg.backend));
	if (err)
		TEST_FAIL("gmem_create(%#llx, %s): %s",
			  (unsigned long long)ram_size, gmem_mode_name(mode),
			  strerror(-err));
	return vm;
}

static int collect_run(void *arg, uint64_t gpa, uint64_t len,
		       enum gmem_state st)
{
	struct test_runs *r = arg;

	if (r->nr == 64)
		return -E2BIG;
	r->gpa[r->nr] = gpa;
	r->len[r->nr] = len;
	r->state[r->nr] = (int)st;
	r->nr++;
	return 0;
}

void test_get_runs(struct gmem_vm *vm, uint64_t gpa, uint64_t len,
		   struct test_runs *r)
{
	memset(r, 0, sizeof(*r));
	TEST_ASSERT_EQ(gmem_for_each_run(vm, gpa, len, collect_run, r), 0);
}

void test_expect_same_runs(const struct test_runs *a,
			   const struct test_runs *b)
{
	size_t i;

	TEST_ASSERT_EQ(a->nr, b->nr);
	for (i = 0; i < a->nr; i++) {
		TEST_ASSERT_EQ(a->gpa[i], b->gpa[i]);
		TEST_ASSERT_EQ(a->len[i], b->len[i]);
		TEST_ASSERT_EQ(a->state[i], b->state[i]);
	}
}

int test_backing_fd(struct gmem_vm *vm, enum gmem_backing_id id)
{
	struct gmem_region_info info = { .size = sizeof(info) };

	if (id != GMEM_BACKING_PRIVATE && id != GMEM_BACKING_SHARED)
		return -EINVAL;
	if (gmem_region_get(vm, 0, &info))
		TEST_FAIL("gmem_region_get");
	return id == GMEM_BACKING_PRIVATE ? info.private_fd : info.shared_fd;
}

/* ---- protection probes ------------------------------------------------ */

static sigjmp_buf probe_jmp;
static volatile sig_atomic_t probing;

static void probe_segv(int sig)
{
	if (probing)
		siglongjmp(probe_jmp, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void probe_install(struct sigaction *old)
{
	struct sigaction sa = { .sa_handler = probe_segv };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, old);
}

/* Load *@p into *@value, or store *@value at @p: did it not fault? */
static bool probe(volatile uint8_t *p, bool write, uint8_t *value)
{
	struct sigaction old;
	bool ok = false;

	probe_install(&old);
	probing = 1;
	if (!sigsetjmp(probe_jmp, 1)) {
		if (write)
			*p = *value;
		else
			*value = *p;
		ok = true;
	}
	probing = 0;
	sigaction(SIGSEGV, &old, NULL);
	return ok;
}

bool test_probe_read(const volatile uint8_t *p, uint8_t *value)
{
	return probe((volatile uint8_t *)p, false, value);
}

bool test_probe_write(volatile uint8_t *p, uint8_t value)
{
	return probe(p, true, &value);
}

void test_each_mode(void (*fn)(enum gmem_mode mode))
{
	static const enum gmem_mode modes[] = { GMEM_MODE_DISCARD,
						GMEM_MODE_IN_PLACE };
	unsigned int i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		printf("mode %s\n", gmem_mode_name(modes[i]));
		fflush(stdout);
		fn(modes[i]);
	}
}

uint64_t test_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

uint64_t test_seed(const char *env_name, uint64_t dflt)
{
	const char *s = getenv(env_name);
	uint64_t seed = s ? strtoull(s, NULL, 0) : dflt;

	printf("seed %s=%#llx\n", env_name, (unsigned long long)seed);
	return seed ? seed : 1;
}

/* ---- recorder ------------------------------------------------------------ */

static void rec_push(struct recorder *r, enum rec_kind kind, int reason,
		     int backing, uint64_t offset, uint64_t len)
{
	if (vec_reserve((void **)&r->ev, &r->cap, r->nr, sizeof(*r->ev)))
		TEST_FAIL("out of memory");
	r->ev[r->nr++] = (struct rec_event){ kind, reason, backing, offset,
					     len };
}

static bool rec_should_fail(unsigned int *nth)
{
	return *nth && --*nth == 0;
}

static void rec_check_range(struct recorder *r, uint64_t offset, uint64_t len)
{
	if (len == 0 || (offset | len) % GMEM_PAGE_SIZE ||
	    offset / GMEM_PAGE_SIZE + len / GMEM_PAGE_SIZE > r->npages)
		TEST_FAIL("callback with bad range [%#llx, +%#llx)",
			  (unsigned long long)offset, (unsigned long long)len);
}

/* Set @flags over a range; in strict mode every page must flip. */
static void rec_mark(struct recorder *r, uint8_t *flags, uint64_t offset,
		     uint64_t len, uint8_t v, const char *what)
{
	uint64_t p;

	rec_check_range(r, offset, len);
	for (p = offset / GMEM_PAGE_SIZE; p < (offset + len) / GMEM_PAGE_SIZE;
	     p++) {
		if (r->strict && flags[p] == v)
			TEST_FAIL("%s of page %#llx twice", what,
				  (unsigned long long)(p * GMEM_PAGE_SIZE));
		flags[p] = v;
	}
}

/*
 * One recorded callback: fail if its @fail_nth knob says so (NULL: never),
 * else record @kind and set @flags over the range to @v.
 */
static int rec_event(struct recorder *r, unsigned int *fail_nth,
		     enum rec_kind kind, uint8_t *flags, uint8_t v,
		     const char *what, uint64_t offset, uint64_t len)
{
	int err = 0;

	pthread_mutex_lock(&r->lock);
	if (fail_nth && rec_should_fail(fail_nth)) {
		err = r->fail_err;
	} else {
		rec_push(r, kind, 0, 0, offset, len);
		rec_mark(r, flags, offset, len, v, what);
	}
	pthread_mutex_unlock(&r->lock);
	return err;
}

static int rec_prepare(void *data, uint64_t offset, uint64_t len)
{
	struct recorder *r = data;

	return rec_event(r, &r->fail_prepare_nth, REC_PREPARE, r->prepared, 1,
			 "prepare", offset, len);
}

static void rec_invalidate(void *data, uint64_t offset, uint64_t len)
{
	struct recorder *r = data;

	rec_event(r, NULL, REC_INVALIDATE, r->prepared, 0, "invalidate",
		  offset, len);
}

static int rec_populate(void *data, uint64_t offset, uint64_t len)
{
	struct recorder *r = data;

	return rec_event(r, &r->fail_populate_nth, REC_POPULATE, r->mapped, 1,
			 "populate", offset, len);
}

static int rec_discard(void *data, uint64_t offset, uint64_t len,
		       unsigned int flags)
{
	struct recorder *r = data;

	/* A forced discard cannot be refused: the knob skips it. */
	return rec_event(r, (flags & GMEM_DISCARD_FORCED) ? NULL :
				    &r->fail_discard_nth,
			 REC_DISCARD, r->mapped, 0, "discard", offset, len);
}

static int rec_report(void *data,
		      int (*fn)(void *arg, uint64_t offset, uint64_t len),
		      void *arg)
{
	struct recorder *r = data;
	uint64_t p, start;
	int err = 0;

	pthread_mutex_lock(&r->lock);
	for (p = 0; p < r->npages && !err;) {
		if (!r->mapped[p]) {
			p++;
			continue;
		}
		for (start = p; p < r->npages && r->mapped[p]; p++)
			;
		err = fn(arg, start * GMEM_PAGE_SIZE,
			 (p - start) * GMEM_PAGE_SIZE);
	}
	pthread_mutex_unlock(&r->lock);
	return err;
}

void recorder_inval(void *data, enum gmem_inval_reason reason,
		    enum gmem_backing_id backing, uint64_t offset,
		    uint64_t len)
{
	struct recorder *r = data;

	pthread_mutex_lock(&r->lock);
	rec_check_range(r, offset, len);
	rec_push(r, REC_INVAL, reason, backing, offset, len);
	pthread_mutex_unlock(&r->lock);
}

const struct gmem_platform_ops recorder_platform_ops = {
	.size = sizeof(struct gmem_platform_ops),
	.prepare = rec_prepare,
	.invalidate = rec_invalidate,
};

const struct gmem_listener_ops recorder_listener_ops = {
	.size = sizeof(struct gmem_listener_ops),
	.populate = rec_populate,
	.discard = rec_discard,
	.report = rec_report,
};

void recorder_init(struct recorder *r, uint64_t ram_size)
{
	memset(r, 0, sizeof(*r));
	r->npages = ram_size / GMEM_PAGE_SIZE;
	r->mapped = calloc(r->npages, 1);
	r->prepared = calloc(r->npages, 1);
	if (!r->mapped || !r->prepared)
		TEST_FAIL("out of memory");
	r->strict = true;
	r->fail_err = -EAGAIN;
	pthread_mutex_init(&r->lock, NULL);
}

void recorder_free(struct recorder *r)
{
	free(r->ev);
	free(r->mapped);
	free(r->prepared);
	pthread_mutex_destroy(&r->lock);
}

struct gmem_vm *test_create_recorded(int vm_fd, uint64_t ram_size,
				     enum gmem_mode mode, struct recorder *rec,
				     struct gmem_listener **l,
				     struct gmem_subscription **sub)
{
	struct gmem_vm *vm;

	recorder_init(rec, ram_size);
	vm = test_create_gmem(vm_fd, ram_size, mode, GMEM_PRIVATE,
			      &recorder_platform_ops, rec);
	TEST_ASSERT_EQ(gmem_listener_register(vm, &recorder_listener_ops, rec,
					      l), 0);
	TEST_ASSERT_EQ(gmem_subscribe(vm, recorder_inval, rec, sub), 0);
	return vm;
}

void recorder_reset_events(struct recorder *r)
{
	pthread_mutex_lock(&r->lock);
	r->nr = 0;
	pthread_mutex_unlock(&r->lock);
}

/* ---- real-mode vCPU ---------------------------------------------------- */

struct test_vcpu {
	struct kvmu_vcpu vcpu;
	uint64_t code_gpa;
};

/* mov eax, [bx]; hlt  at +0, mov [bx], eax; hlt  at +8 (16-bit code). */
static const uint8_t access_code[] = {
	0x66, 0x8b, 0x07, 0xf4, 0x90, 0x90, 0x90, 0x90,
	0x66, 0x89, 0x07, 0xf4,
};

struct test_vcpu *test_vcpu_create(int vm_fd, uint64_t code_gpa,
				   uint8_t *code_host)
{
	struct test_vcpu *v = calloc(1, sizeof(*v));
	int kvm, err;

	if (!v || code_gpa >= 0x100000 || code_gpa % 16)
		TEST_FAIL("bad test vCPU");
	memcpy(code_host, access_code, sizeof(access_code));
	v->code_gpa = code_gpa;
	kvm = kvmu_open();
	if (kvm < 0)
		TEST_FAIL("open /dev/kvm: %s", strerror(-kvm));
	err = kvmu_vcpu_create(kvm, vm_fd, 0, &v->vcpu);
	close(kvm);
	if (err)
		TEST_FAIL("creating the test vCPU: %s", strerror(-err));
	return v;
}

void test_vcpu_destroy(struct test_vcpu *v)
{
	kvmu_vcpu_destroy(&v->vcpu);
	free(v);
}

enum test_access test_vcpu_access(struct test_vcpu *v, uint64_t gpa,
				  bool write, uint32_t *value,
				  uint64_t *exit_gpa)
{
	struct kvm_run *run = v->vcpu.run;
	uint64_t ds = gpa & ~0xffffULL;
	struct kvm_regs regs;
	int err;

	if (gpa + 4 > 0x10fff0)
		TEST_FAIL("GPA %#llx out of real-mode reach",
			  (unsigned long long)gpa);
	memset(&regs, 0, sizeof(regs));
	regs.rip = write ? 8 : 0;
	regs.rbx = gpa - ds;
	regs.rax = write ? *value : 0;
	err = kvmu_vcpu_real_mode(&v->vcpu, v->code_gpa, ds, &regs);
	if (err)
		TEST_FAIL("real mode for the test vCPU: %s", strerror(-err));

	err = kvmu_vcpu_run(&v->vcpu);
	if (err == -EFAULT && run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
		*exit_gpa = kvm_run_memory_fault(run)->gpa;
		return TEST_ACCESS_EXIT;
	}
	if (err)
		TEST_FAIL("KVM_RUN: %s", strerror(-err));
	if (run->exit_reason == KVM_EXIT_MMIO) {
		*exit_gpa = run->mmio.phys_addr;
		/* Let KVM finish the instruction (a read gets zeros) so the
		 * vCPU holds no pending I/O when it is reused. */
		memset(run->mmio.data, 0, sizeof(run->mmio.data));
		err = kvmu_vcpu_run(&v->vcpu);
		if (err || run->exit_reason != KVM_EXIT_HLT)
			TEST_FAIL("completing an MMIO exit: %d/%u", err,
				  run->exit_reason);
		return TEST_ACCESS_EXIT;
	}
	if (run->exit_reason != KVM_EXIT_HLT)
		TEST_FAIL("unexpected exit %u at GPA %#llx",
			  run->exit_reason, (unsigned long long)gpa);
	if (!write) {
		err = kvmu_vcpu_get_regs(&v->vcpu, &regs);
		if (err)
			TEST_FAIL("KVM_GET_REGS: %s", strerror(-err));
		*value = (uint32_t)regs.rax;
	}
	return TEST_ACCESS_DATA;
}

int test_connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	TEST_ASSERT(fd >= 0);
	TEST_ASSERT(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path));
	TEST_ASSERT_EQ(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

void test_ctl_request(const char *sock, const char *line, char *reply,
		      size_t len)
{
	size_t got = 0;
	ssize_t n;
	int fd = test_connect_unix(sock);

	TEST_ASSERT_EQ(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	while (got + 1 < len && (!got || reply[got - 1] != '\n')) {
		n = read(fd, reply + got, len - 1 - got);
		TEST_ASSERT(n > 0);
		got += (size_t)n;
	}
	reply[got] = '\0';
	close(fd);
}
