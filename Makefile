# SPDX-License-Identifier: MIT
#
# gmvm and libgmem.  Plain make, out-of-tree objects under $(BUILD).
#
#   make            libgmem (static + shared), gmvm, guest programs, tests
#   make check      everything built with -fsanitize=address,undefined, then
#                   every test run under a timeout (tests/run-tests.sh)
#   make check-tsan the concurrency tests built with -fsanitize=thread
#   make bench      benchmarks, each against a baseline measured in the run
#   make fuzz       libFuzzer harnesses (clang), each run FUZZ_TIME seconds
#   make run        the demo guest
#   make install    libgmem (header, libgmem.a, libgmem.so, libgmem.pc, man
#                   pages) under $(DESTDIR)$(PREFIX); make uninstall.
#                   INSTALL_ONLY=1 installs an existing $(BUILD) without
#                   building anything (tests/test_install.sh uses it).
#
# Conventions: lib/*.c is libgmem; vmm/**/*.c is gmvm; guest/lib/* is the
# freestanding guest runtime and every guest/tests/*.c one guest program;
# every tests/test_*.c one host test program (tests/lib/*.c is shared by
# them); every bench/bench_*.c one benchmark (bench/lib/*.c is shared by
# them; bench/gating/*.c is bench_gating_scaling's alone).

CC ?= gcc
BUILD ?= build
SAN ?=
OPT ?= -O2

WARN := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wformat=2 \
	-Wmissing-prototypes -Wstrict-prototypes -Wmissing-declarations \
	-Wold-style-definition -Wundef -Wvla -Wwrite-strings -Wcast-align \
	-Wimplicit-fallthrough -Wno-unused-parameter -Wno-missing-field-initializers

# Layering: everything sees the public header (include/) and the internal
# helper layer (util/, header-only, never installed); only libgmem itself and
# the white-box tests below see lib/'s internal headers (-Ilib).
CFLAGS_COMMON := -std=gnu11 $(OPT) -g $(WARN) -D_GNU_SOURCE -Iinclude -Iutil -pthread
ifneq ($(SAN),)
CFLAGS_COMMON += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS_SAN := -fsanitize=$(SAN)
endif
HOST_CFLAGS := $(CFLAGS_COMMON) -fPIC $(EXTRA_CFLAGS)
HOST_LDFLAGS := -pthread $(LDFLAGS_SAN) $(EXTRA_LDFLAGS)

# Guests: freestanding x86-64, never sanitised, linked at 1 MiB.
GUEST_CFLAGS := -std=gnu11 -O2 -g $(WARN) -Wno-missing-prototypes \
	-ffreestanding -fno-pic -fno-pie -fno-stack-protector -fno-builtin \
	-nostdlib -mno-red-zone -mcmodel=small -fno-asynchronous-unwind-tables \
	-mgeneral-regs-only -Iguest/include -Iinclude
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none \
	-Wl,-T,guest/guest.ld -Wl,-z,noexecstack -Wl,-z,max-page-size=4096

LIB_SRCS := $(sort $(wildcard lib/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
VMM_SRCS := $(sort $(wildcard vmm/*.c vmm/*/*.c))
VMM_OBJS := $(VMM_SRCS:%.c=$(BUILD)/%.o)
# gmvm without its main(): what the fuzzers and test_gmvm_hypercall link.
VMM_NOMAIN_OBJS := $(filter-out $(BUILD)/vmm/main.o,$(VMM_OBJS))
# tests/lib/snapshot_fixture.c needs vmm/snapshot/ and migrate_fixture.c
# vmm/migrate/ too: only the snapshot and migration tests link them (below).
TESTLIB_SRCS := $(filter-out tests/lib/snapshot_fixture.c tests/lib/migrate_fixture.c,$(sort $(wildcard tests/lib/*.c)))
TESTLIB_OBJS := $(TESTLIB_SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS := $(sort $(wildcard tests/test_*.c))
TESTS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(sort $(wildcard bench/bench_*.c))
BENCHES := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
BENCHLIB_SRCS := $(sort $(wildcard bench/lib/*.c))
BENCHLIB_OBJS := $(BENCHLIB_SRCS:%.c=$(BUILD)/%.o)
BENCHLIB_A := $(BUILD)/bench/lib/libbench.a
# bench_gating_scaling's parts, too big for one file: only it links them.
GATING_SRCS := $(sort $(wildcard bench/gating/*.c))
GATING_OBJS := $(GATING_SRCS:%.c=$(BUILD)/%.o)
GUEST_RT_SRCS := $(sort $(wildcard guest/lib/*.c guest/lib/*.S))
GUEST_RT_OBJS := $(patsubst %,$(BUILD)/%.o,$(GUEST_RT_SRCS))
GUEST_SRCS := $(sort $(wildcard guest/tests/*.c))
GUESTS := $(GUEST_SRCS:guest/tests/%.c=$(BUILD)/guest/%.elf)
# Benchmark guests (make bench only): guest/bench/*.c link with the runtime,
# guest/bench/*.S stand alone (their first instruction is the entry).
GUEST_BENCH_SRCS := $(sort $(wildcard guest/bench/*.c guest/bench/*.S))
GUEST_BENCHES := $(addsuffix .elf,$(basename \
	$(GUEST_BENCH_SRCS:guest/bench/%=$(BUILD)/guest/bench/%)))

# The test build of the library carries the fault-injection points
# (-DGMEM_TESTING); production code (libgmem.a, libgmem.so, gmvm) does not.
LIB_TEST_OBJS := $(LIB_SRCS:%.c=$(BUILD)/lib-test/%.o)
LIBGMEM_A := $(BUILD)/libgmem.a
LIBGMEM_TEST_A := $(BUILD)/libgmem-test.a
# The version is the header's GMEM_VERSION_*; the soname changes only when
# the ABI breaks (a new LIBGMEM_x node in lib/libgmem.map does not).
gmem_version_part = $(shell sed -n 's/^\#define GMEM_VERSION_$(1)[[:space:]]\{1,\}\([0-9]\{1,\}\).*/\1/p' include/gmem/gmem.h)
LIBGMEM_VERSION := $(call gmem_version_part,MAJOR).$(call gmem_version_part,MINOR).$(call gmem_version_part,PATCH)
LIBGMEM_SONAME := libgmem.so.2
LIBGMEM_REALNAME := libgmem.so.$(LIBGMEM_VERSION)
# The real file, and beside it the links libgmem.so.2 (soname) and libgmem.so.
LIBGMEM_SO := $(BUILD)/$(LIBGMEM_REALNAME)
LIBGMEM_SO_LINKS := $(BUILD)/$(LIBGMEM_SONAME) $(BUILD)/libgmem.so
GMVM := $(BUILD)/gmvm

.PHONY: all lib gmvm guests guest-benches tests benches check check-tsan bench \
	fuzz fuzzers soak soaks run clean help install uninstall
# Keep guest objects: they are intermediates of a pattern chain.
.SECONDARY:
all: lib gmvm guests tests benches

lib: $(LIBGMEM_A) $(LIBGMEM_SO) $(LIBGMEM_SO_LINKS) $(LIBGMEM_TEST_A)
gmvm: $(GMVM)
guests: $(GUESTS)
guest-benches: $(GUEST_BENCHES)
tests: $(TESTS)
benches: $(BENCHES)

$(BUILD)/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -Ilib -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -MMD -MP -c $< -o $@

$(LIBGMEM_A): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/lib-test/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -Ilib -DGMEM_TESTING -MMD -MP -c $< -o $@

$(LIBGMEM_TEST_A): $(LIB_TEST_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(LIBGMEM_SO): $(LIB_OBJS) lib/libgmem.map
	$(CC) -shared -Wl,-soname,$(LIBGMEM_SONAME) -Wl,--version-script=lib/libgmem.map \
		-Wl,--no-undefined -o $@ $(LIB_OBJS) $(HOST_LDFLAGS)

$(LIBGMEM_SO_LINKS): $(LIBGMEM_SO)
	ln -sf $(LIBGMEM_REALNAME) $@

$(GMVM): $(VMM_OBJS) $(LIBGMEM_A)
	$(CC) -o $@ $(VMM_OBJS) $(LIBGMEM_A) $(HOST_LDFLAGS) -lm

# White-box tests look inside libgmem (its internal headers and symbols);
# every other test uses the public API only.
WHITEBOX_TESTS := test_gmem_failures test_gmem_faults test_gmem_oracle \
	test_gmem_plug test_range_map test_range_map_scale \
	test_gmem_max_map_count
$(patsubst %,$(BUILD)/tests/%,$(WHITEBOX_TESTS)): TEST_CFLAGS = -Ilib

$(BUILD)/tests/%: tests/%.c $(TESTLIB_OBJS) $(LIBGMEM_TEST_A)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) $(TEST_CFLAGS) -DGMEM_TESTING -Itests/lib -MMD -MP -o $@ $< $(TEST_VMM_OBJS) $(TESTLIB_OBJS) $(LIBGMEM_TEST_A) $(HOST_LDFLAGS) -lm

# The snapshot tests link the snapshot module (vmm/snapshot/, which uses
# libgmem's public header only) and see its headers; all but the CRC32C
# test also link their shared fixture (tests/lib/snapshot_fixture.c).
SNAPSHOT_OBJS := $(filter $(BUILD)/vmm/snapshot/%,$(VMM_OBJS))
SNAPSHOT_FIXTURE_OBJ := $(BUILD)/tests/lib/snapshot_fixture.o
SNAPSHOT_TESTS := $(addprefix $(BUILD)/tests/,test_snapshot_roundtrip \
	test_snapshot_refuse test_snapshot_write_fail test_snapshot_machine)
$(SNAPSHOT_FIXTURE_OBJ): tests/lib/snapshot_fixture.c
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -Ivmm/snapshot -MMD -MP -c $< -o $@
$(SNAPSHOT_TESTS) $(BUILD)/tests/test_snapshot_crc32c: TEST_CFLAGS = -Ivmm/snapshot
$(SNAPSHOT_TESTS): TEST_VMM_OBJS = $(SNAPSHOT_FIXTURE_OBJ) $(SNAPSHOT_OBJS)
$(SNAPSHOT_TESTS): $(SNAPSHOT_FIXTURE_OBJ) $(SNAPSHOT_OBJS)
$(BUILD)/tests/test_snapshot_crc32c: TEST_VMM_OBJS = $(SNAPSHOT_OBJS)
$(BUILD)/tests/test_snapshot_crc32c: $(SNAPSHOT_OBJS)

# The migration tests link the migration module (vmm/migrate/) and the
# snapshot module under it, the snapshot fixture and their own
# (tests/lib/migrate_fixture.c); test_migrate_kvm needs no fixture.
MIGRATE_OBJS := $(filter $(BUILD)/vmm/migrate/%,$(VMM_OBJS))
MIGRATE_FIXTURE_OBJ := $(BUILD)/tests/lib/migrate_fixture.o
MIGRATE_TESTS := $(addprefix $(BUILD)/tests/,test_migrate_roundtrip \
	test_migrate_fail test_migrate_refuse)
$(MIGRATE_FIXTURE_OBJ): tests/lib/migrate_fixture.c
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -Ivmm/snapshot -Ivmm/migrate -Itests/lib -MMD -MP -c $< -o $@
$(MIGRATE_TESTS) $(BUILD)/tests/test_migrate_kvm: TEST_CFLAGS = -Ivmm/snapshot -Ivmm/migrate
$(MIGRATE_TESTS): TEST_VMM_OBJS = $(MIGRATE_FIXTURE_OBJ) $(SNAPSHOT_FIXTURE_OBJ) $(MIGRATE_OBJS) $(SNAPSHOT_OBJS)
$(MIGRATE_TESTS): $(MIGRATE_FIXTURE_OBJ) $(SNAPSHOT_FIXTURE_OBJ) $(MIGRATE_OBJS) $(SNAPSHOT_OBJS)
$(BUILD)/tests/test_migrate_kvm: TEST_VMM_OBJS = $(MIGRATE_OBJS) $(SNAPSHOT_OBJS)
$(BUILD)/tests/test_migrate_kvm: $(MIGRATE_OBJS) $(SNAPSHOT_OBJS)

# The DMA device protocol test speaks the protocol of vmm/devices/ to the
# device process (gmvm dma-device); it needs the protocol header only.
$(BUILD)/tests/test_dmadev_protocol: TEST_CFLAGS = -Ivmm/devices

# gmvm's hypercall rules and mapping-limit estimate, alone; and its
# hypercall handlers on the fuzzers' VM (real libgmem, no KVM), with
# libgmem's fault injection (-Ilib).
HC_RULES_OBJS := $(BUILD)/vmm/hc_rules.o $(BUILD)/vmm/map_limit.o
$(BUILD)/tests/test_hc_rules: TEST_VMM_OBJS = $(HC_RULES_OBJS)
$(BUILD)/tests/test_hc_rules: TEST_CFLAGS = -Ivmm
$(BUILD)/tests/test_hc_rules: $(HC_RULES_OBJS)
HC_VM_OBJS := $(VMM_NOMAIN_OBJS) $(BUILD)/fuzz/lib/fuzz_vm.o
$(BUILD)/tests/test_gmvm_hypercall: TEST_VMM_OBJS = $(HC_VM_OBJS)
$(BUILD)/tests/test_gmvm_hypercall: TEST_CFLAGS = -Ilib -Ivmm -Ifuzz/lib
# Its snapshot side (devices' state, saving's refusals) on the same VM.
$(BUILD)/tests/test_gmvm_snapshot: TEST_VMM_OBJS = $(HC_VM_OBJS)
$(BUILD)/tests/test_gmvm_snapshot: TEST_CFLAGS = -Ivmm -Ifuzz/lib
$(BUILD)/tests/test_gmvm_snapshot: $(HC_VM_OBJS)
# The migration wiring (run --incoming, ctl migrate) on the same VM; it
# runs build/gmvm too.
$(BUILD)/tests/test_gmvm_migrate_wire: TEST_VMM_OBJS = $(HC_VM_OBJS)
$(BUILD)/tests/test_gmvm_migrate_wire: TEST_CFLAGS = -Ivmm -Ifuzz/lib
$(BUILD)/tests/test_gmvm_migrate_wire: $(HC_VM_OBJS) $(GMVM)
$(BUILD)/tests/test_gmvm_hypercall: $(HC_VM_OBJS)

# Host tests of a part of gmvm link that part's objects (gmvm itself is no
# library).
$(BUILD)/tests/test_loader_truncate: TEST_VMM_OBJS = $(BUILD)/vmm/loader.o $(BUILD)/vmm/err.o $(BUILD)/vmm/layout.o
$(BUILD)/tests/test_loader_truncate: $(BUILD)/vmm/loader.o $(BUILD)/vmm/err.o $(BUILD)/vmm/layout.o
$(BUILD)/tests/test_layout: TEST_VMM_OBJS = $(BUILD)/vmm/layout.o
$(BUILD)/tests/test_layout: $(BUILD)/vmm/layout.o
$(BUILD)/tests/test_probe_cache: TEST_VMM_OBJS = $(BUILD)/vmm/probe_cache.o
$(BUILD)/tests/test_probe_cache: $(BUILD)/vmm/probe_cache.o
# The control socket's protocol and server (vmm/control/) with a fake
# command table; the pause test drives gmvm's own pause.c and vm_stop().
CONTROL_TEST_OBJS := $(addprefix $(BUILD)/vmm/,control/json.o control/proto.o \
	control/server.o control/listen.o err.o)
$(BUILD)/tests/test_control $(BUILD)/tests/test_control_proto: TEST_VMM_OBJS = $(CONTROL_TEST_OBJS)
$(BUILD)/tests/test_control $(BUILD)/tests/test_control_proto: $(CONTROL_TEST_OBJS)
$(BUILD)/tests/test_vm_pause: TEST_VMM_OBJS = $(VMM_NOMAIN_OBJS)
$(BUILD)/tests/test_vm_pause: $(VMM_NOMAIN_OBJS)

# Benchmarks link the bench library (bench/lib), an archive so that each
# takes only what it uses, and the production libgmem; they see the public
# header and util/ only, except bench_range_map, which measures lib/'s
# internal map.
$(BUILD)/bench/lib/%.o: bench/lib/%.c
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -MMD -MP -c $< -o $@

$(BENCHLIB_A): $(BENCHLIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/bench/bench_range_map: BENCH_CFLAGS = -Ilib
# bench_migrate drives the migration module (vmm/migrate/, vmm/snapshot/).
$(BUILD)/bench/bench_migrate: BENCH_CFLAGS = -Ivmm/snapshot -Ivmm/migrate
$(BUILD)/bench/bench_migrate: BENCH_OBJS = $(MIGRATE_OBJS) $(SNAPSHOT_OBJS)
$(BUILD)/bench/bench_migrate: $(MIGRATE_OBJS) $(SNAPSHOT_OBJS)
# bench_snapshot drives the snapshot module (vmm/snapshot/).
$(BUILD)/bench/bench_snapshot: BENCH_CFLAGS = -Ivmm/snapshot
$(BUILD)/bench/bench_snapshot: BENCH_OBJS = $(SNAPSHOT_OBJS)
$(BUILD)/bench/bench_snapshot: $(SNAPSHOT_OBJS)

# bench_gating_scaling's parts (bench/gating/), built as bench/lib is.
$(BUILD)/bench/gating/%.o: bench/gating/%.c
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -Ibench/lib -MMD -MP -c $< -o $@

$(BUILD)/bench/bench_gating_scaling: BENCH_OBJS = $(GATING_OBJS)
$(BUILD)/bench/bench_gating_scaling: $(GATING_OBJS)

$(BUILD)/bench/%: bench/%.c $(BENCHLIB_A) $(LIBGMEM_A)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) $(BENCH_CFLAGS) -Ibench/lib -MMD -MP -o $@ $< $(BENCH_OBJS) $(BENCHLIB_A) $(LIBGMEM_A) $(HOST_LDFLAGS) -lm

$(BUILD)/guest/%.c.o: guest/%.c
	@mkdir -p $(@D)
	$(CC) $(GUEST_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/guest/%.S.o: guest/%.S
	@mkdir -p $(@D)
	$(CC) $(GUEST_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/guest/%.elf: $(BUILD)/guest/tests/%.c.o $(GUEST_RT_OBJS) guest/guest.ld
	$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $< $(GUEST_RT_OBJS) -lgcc

$(BUILD)/guest/bench/%.elf: $(BUILD)/guest/bench/%.c.o $(GUEST_RT_OBJS) guest/guest.ld
	$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $< $(GUEST_RT_OBJS) -lgcc

$(BUILD)/guest/bench/%.elf: $(BUILD)/guest/bench/%.S.o guest/guest.ld
	$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $<

# The sanitised build lives in its own tree so that it never mixes objects
# with the plain one.
check:
	$(MAKE) BUILD=build/san SAN=address,undefined all
	tests/run-tests.sh build/san

check-tsan:
	$(MAKE) BUILD=build/tsan SAN=thread lib gmvm guests tests
	tests/run-tests.sh --concurrency build/tsan

# gnuplot draws bench/latency.svg; install-deps.sh --bench installs it.
# Its own tree, build/perf: not build/bench, which the default build's
# bench objects use (build/bench/lib/stats.o would be two files).
bench:
	scripts/install-deps.sh --bench
	$(MAKE) BUILD=build/perf OPT=-O2 all guest-benches
	bench/run-bench.sh build/perf

# Fuzzing: every fuzz/fuzz_*.c is one libFuzzer harness, linked with
# fuzz/lib/*.c and gmvm's objects (all but main.o: libFuzzer has the
# main) and libgmem, everything built by clang with ASan and UBSan into
# build/fuzz.  fuzz/run-fuzz.sh runs each for FUZZ_TIME seconds on its
# seeds (fuzz/corpus/NAME, read only) and fails on any crash, hang
# (FUZZ_INPUT_TIMEOUT seconds for one input), leak or sanitizer report.
# clang's -Wformat=2 also flags vprintf wrappers that lack a format
# attribute (lib/audit.c); gcc's build keeps that check.
FUZZ_CC ?= clang-14
FUZZ_TIME ?= 60
FUZZ_INPUT_TIMEOUT ?= 20
FUZZ_SRCS := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZERS := $(FUZZ_SRCS:fuzz/%.c=$(BUILD)/%)
FUZZLIB_SRCS := $(sort $(wildcard fuzz/lib/*.c))
FUZZLIB_OBJS := $(FUZZLIB_SRCS:%.c=$(BUILD)/%.o)
FUZZ_VMM_OBJS := $(VMM_NOMAIN_OBJS)

fuzzers: $(FUZZERS)

$(BUILD)/fuzz/lib/%.o: fuzz/lib/%.c
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -Ivmm -MMD -MP -c $< -o $@

$(BUILD)/fuzz_%: fuzz/fuzz_%.c $(FUZZLIB_OBJS) $(FUZZ_VMM_OBJS) $(LIBGMEM_A)
	$(CC) $(HOST_CFLAGS) -Ivmm -Ifuzz/lib -MMD -MP -fsanitize=fuzzer -o $@ $< \
		$(FUZZLIB_OBJS) $(FUZZ_VMM_OBJS) $(LIBGMEM_A) $(HOST_LDFLAGS) -lm

fuzz:
	scripts/install-deps.sh --fuzz
	$(MAKE) BUILD=build/fuzz CC=$(FUZZ_CC) SAN=address,undefined,fuzzer-no-link \
		OPT=-O1 EXTRA_CFLAGS=-Wno-format-nonliteral fuzzers
	FUZZ_INPUT_TIMEOUT=$(FUZZ_INPUT_TIMEOUT) fuzz/run-fuzz.sh build/fuzz $(FUZZ_TIME)

run: all
	$(GMVM) run --stats $(BUILD)/guest/demo.elf

clean:
	rm -rf build

# ---------------------------------------------------------------------------
# Installation (libgmem only; gmvm is not installed).

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL ?= install
MAN3_PAGES := $(sort $(wildcard man/man3/*.3))
MAN7_PAGES := $(sort $(wildcard man/man7/*.7))
INSTALL_FILES := $(LIBGMEM_A) $(LIBGMEM_SO) $(LIBGMEM_SO_LINKS)
# In the .pc file, directories under $(PREFIX) are written as ${prefix}/...
# so that pkg-config --define-prefix can relocate the tree.
pc_dir = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

ifeq ($(INSTALL_ONLY),1)
install:
	@for f in $(INSTALL_FILES); do [ -e "$$f" ] || \
		{ echo "install: $$f is missing (build it with make BUILD=$(BUILD) lib)" >&2; exit 1; }; done
else
install: $(INSTALL_FILES)
endif
	@case "$(LIBGMEM_VERSION)" in [0-9]*.[0-9]*.[0-9]*) ;; \
		*) echo "install: no GMEM_VERSION_* in include/gmem/gmem.h" >&2; exit 1 ;; esac
	$(INSTALL) -d $(DESTDIR)$(INCLUDEDIR)/gmem $(DESTDIR)$(LIBDIR) \
		$(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	$(INSTALL) -m 644 include/gmem/gmem.h $(DESTDIR)$(INCLUDEDIR)/gmem/gmem.h
	$(INSTALL) -m 644 $(LIBGMEM_A) $(DESTDIR)$(LIBDIR)/libgmem.a
	$(INSTALL) -m 755 $(LIBGMEM_SO) $(DESTDIR)$(LIBDIR)/$(LIBGMEM_REALNAME)
	ln -sf $(LIBGMEM_REALNAME) $(DESTDIR)$(LIBDIR)/$(LIBGMEM_SONAME)
	ln -sf $(LIBGMEM_REALNAME) $(DESTDIR)$(LIBDIR)/libgmem.so
	sed -e 's|@prefix@|$(PREFIX)|' \
		-e 's|@libdir@|$(call pc_dir,$(LIBDIR))|' \
		-e 's|@includedir@|$(call pc_dir,$(INCLUDEDIR))|' \
		-e 's|@version@|$(LIBGMEM_VERSION)|' \
		libgmem.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/libgmem.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/libgmem.pc
	$(if $(MAN3_PAGES),$(INSTALL) -m 644 $(MAN3_PAGES) $(DESTDIR)$(MANDIR)/man3/)
	$(if $(MAN7_PAGES),$(INSTALL) -m 644 $(MAN7_PAGES) $(DESTDIR)$(MANDIR)/man7/)

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/gmem/gmem.h
	-rmdir $(DESTDIR)$(INCLUDEDIR)/gmem 2>/dev/null
	rm -f $(DESTDIR)$(LIBDIR)/libgmem.a $(DESTDIR)$(LIBDIR)/$(LIBGMEM_REALNAME) \
		$(DESTDIR)$(LIBDIR)/$(LIBGMEM_SONAME) $(DESTDIR)$(LIBDIR)/libgmem.so \
		$(DESTDIR)$(PKGCONFIGDIR)/libgmem.pc
	rm -f $(patsubst man/%,$(DESTDIR)$(MANDIR)/%,$(MAN3_PAGES) $(MAN7_PAGES))

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---------------------------------------------------------------------------
# Soak (issue 10): soak/soak_*.c, built like the tests (libgmem-test.a with
# its fault points, tests/lib, ASan+UBSan) into build/soak; soak/run-soak.sh
# runs each for SOAK_TIME seconds and, where /dev/kvm works, gmvm itself.
SOAK_TIME ?= 600
SOAK_SRCS := $(sort $(wildcard soak/soak_*.c))
SOAKS := $(SOAK_SRCS:soak/%.c=$(BUILD)/soak/%)

soaks: $(SOAKS)

$(BUILD)/soak/%: soak/%.c $(TESTLIB_OBJS) $(LIBGMEM_TEST_A)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -Ilib -Itests/lib -DGMEM_TESTING -MMD -MP -o $@ $< \
		$(TESTLIB_OBJS) $(LIBGMEM_TEST_A) $(HOST_LDFLAGS) -lm

soak:
	$(MAKE) BUILD=build/soak SAN=address,undefined soaks gmvm guests
	SOAK_TIME=$(SOAK_TIME) soak/run-soak.sh build/soak
