/* SPDX-License-Identifier: MIT */
/*
 * gmvm's side of a snapshot that needs no KVM, on the fuzzers' VM
 * (fuzz/lib/fuzz_vm.c: real libgmem, the real DMA device, no vCPU):
 *  - the DMA device's state (vmm/devices/dma_device.c's snap_save and
 *    snap_restore): registers as the guest last wrote them, and exactly
 *    the pins that PINs and UNPINs left (a refused PIN is none); restored
 *    into a fresh VM with the same page states, the registers read back
 *    the same, the pin holds (a conversion of its page to private is
 *    refused busy until the guest unpins) and the audit passes;
 *  - a restore whose pin covers a private page, or lies outside RAM, is
 *    refused with -EBADMSG and a line naming the pin;
 *  - vm_snapshot_save() (vmm/snapshot_save.c): a relative path, an
 *    existing file, a missing directory are refused with their errno and
 *    a line, before anything is read; a failure while reading the state
 *    (here KVM_GET_REGS, with no vCPU fd) leaves neither PATH nor
 *    PATH.tmp;
 *  - the control socket's snapshot request, served by gmvm's own command
 *    table (vmm/control/commands.c) on that VM: each refusal is the
 *    documented error reply, the request's path cut at 40 bytes in it,
 *    nothing is written, and the VM is left running (not paused); a
 *    stopping VM is refused.
 * The KVM half (vCPU state, whole files restored and run) is
 * tests/test_gmvm_restore.sh.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "test_util.h"
#include "fuzz_vm.h"
#include <fcntl.h>

#include "devices/devices.h"
#include "snapshot/machine.h"

#define MiB (1ULL << 20)
#define KiB (1ULL << 10)

static struct fuzz_vm a, b;
static struct snap_machine m, m2;

static uint32_t cmd(struct fuzz_vm *f, uint32_t c, uint64_t addr,
		    uint32_t len)
{
	uint32_t result;

	return fuzz_dma_command(f, c, addr, len, 0x77, &result);
}

static void same_registers(struct fuzz_vm *f, const struct snap_dmadev *d)
{
	TEST_ASSERT_EQ(fuzz_port_read32(f, GM_DMA_ADDR_LO), d->regs.addr_lo);
	TEST_ASSERT_EQ(fuzz_port_read32(f, GM_DMA_ADDR_HI), d->regs.addr_hi);
	TEST_ASSERT_EQ(fuzz_port_read32(f, GM_DMA_LEN), d->regs.len);
	TEST_ASSERT_EQ(fuzz_port_read32(f, GM_DMA_PATTERN), d->regs.pattern);
	TEST_ASSERT_EQ(fuzz_port_read32(f, GM_DMA_STATUS), d->regs.status);
	TEST_ASSERT_EQ(fuzz_port_read32(f, GM_DMA_RESULT), d->regs.result);
}

static void dma_state(const struct fuzz_vm_opts *o)
{
	uint32_t sum;
	char why[256] = "";

	fuzz_vm_init(&a, o, true);
	TEST_ASSERT_EQ(gmem_convert(a.vm.gmem, 1 * MiB, 64 * KiB, GMEM_SHARED),
		       16);
	TEST_ASSERT_EQ(cmd(&a, GM_DMA_CMD_PIN, 1 * MiB + 4 * KiB, 8 * KiB),
		       GM_DMA_OK);
	TEST_ASSERT_EQ(cmd(&a, GM_DMA_CMD_PIN, 1 * MiB + 16 * KiB, 4 * KiB),
		       GM_DMA_OK);
	TEST_ASSERT_EQ(cmd(&a, GM_DMA_CMD_UNPIN, 1 * MiB + 16 * KiB, 4 * KiB),
		       GM_DMA_OK);
	/* Refused: a private page, then an unpin of nothing. */
	TEST_ASSERT_EQ(cmd(&a, GM_DMA_CMD_PIN, 3 * MiB, 4 * KiB),
		       GM_DMA_FAULT);
	TEST_ASSERT_EQ(cmd(&a, GM_DMA_CMD_UNPIN, 5 * MiB, 4 * KiB),
		       GM_DMA_BAD);
	TEST_ASSERT_EQ(fuzz_dma_command(&a, GM_DMA_CMD_CHECKSUM, 1 * MiB,
					4 * KiB, 0xabcd1234, &sum),
		       GM_DMA_OK);
	fuzz_port_write32(&a, GM_DMA_ADDR_HI, 0x12);

	TEST_ASSERT_EQ(devices_snap_save(&a.vm, &m, why, sizeof(why)), 0);
	TEST_ASSERT_EQ(m.dma.nr_pins, 1);
	TEST_ASSERT_EQ(m.dma.pins[0].addr, 1 * MiB + 4 * KiB);
	TEST_ASSERT_EQ(m.dma.pins[0].len, 8 * KiB);
	TEST_ASSERT_EQ(m.dma.regs.addr_hi, 0x12);
	TEST_ASSERT_EQ(m.dma.regs.pattern, 0xabcd1234);
	same_registers(&a, &m.dma);

	/* A fresh VM in the same page states, as a restore makes it. */
	fuzz_vm_init(&b, o, true);
	TEST_ASSERT_EQ(gmem_convert(b.vm.gmem, 1 * MiB, 64 * KiB, GMEM_SHARED),
		       16);
	TEST_ASSERT_EQ(devices_snap_restore(&b.vm, &m, why, sizeof(why)), 0);
	same_registers(&b, &m.dma);
	TEST_ASSERT_EQ(gmem_convert(b.vm.gmem, 1 * MiB + 8 * KiB, 4 * KiB,
				    GMEM_PRIVATE), -EAGAIN);
	TEST_ASSERT_EQ(cmd(&b, GM_DMA_CMD_UNPIN, 1 * MiB + 4 * KiB, 8 * KiB),
		       GM_DMA_OK);
	TEST_ASSERT_EQ(gmem_convert(b.vm.gmem, 1 * MiB + 8 * KiB, 4 * KiB,
				    GMEM_PRIVATE), 1);
	fuzz_vm_check(&b);
	/* Saved again: no pins now. */
	TEST_ASSERT_EQ(devices_snap_save(&b.vm, &m2, why, sizeof(why)), 0);
	TEST_ASSERT_EQ(m2.dma.nr_pins, 0);
	fuzz_vm_destroy(&b);

	/* Pins the restored maps do not allow. */
	m2 = m;
	m2.dma.pins[0].addr = 3 * MiB;
	fuzz_vm_init(&b, o, true);
	TEST_ASSERT_EQ(devices_snap_restore(&b.vm, &m2, why, sizeof(why)),
		       -EBADMSG);
	TEST_ASSERT(strstr(why, "pin 0 [0x300000, +0x2000): not all of it is shared and plugged"));
	m2.dma.pins[0].addr = 64 * MiB;
	TEST_ASSERT_EQ(devices_snap_restore(&b.vm, &m2, why, sizeof(why)),
		       -EBADMSG);
	TEST_ASSERT(strstr(why, "not inside RAM"));
	fuzz_vm_check(&b);
	fuzz_vm_destroy(&b);
}

static void save_refusals(void)
{
	char dir[] = "/tmp/test_gmvm_snapshot.XXXXXX", path[128], tmp[140];
	char why[512];
	uint64_t bytes = 0;
	struct stat st;

	TEST_ASSERT(mkdtemp(dir));
	TEST_ASSERT_EQ(vm_snapshot_save(&a.vm, "rel.snap", &bytes, why,
					sizeof(why)), -EINVAL);
	TEST_ASSERT(strstr(why, "'rel.snap' is not an absolute path"));
	TEST_ASSERT_EQ(vm_snapshot_save(&a.vm, dir, &bytes, why, sizeof(why)),
		       -EEXIST);
	TEST_ASSERT(strstr(why, "already exists"));
	snprintf(path, sizeof(path), "%s/no/such.snap", dir);
	TEST_ASSERT_EQ(vm_snapshot_save(&a.vm, path, &bytes, why, sizeof(why)),
		       -ENOENT);
	TEST_ASSERT(strstr(why, "No such file or directory"));
	/* Fails reading the vCPU (no KVM): nothing left behind. */
	snprintf(path, sizeof(path), "%s/vm.snap", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	TEST_ASSERT_EQ(vm_snapshot_save(&a.vm, path, &bytes, why, sizeof(why)),
		       -EBADF);
	TEST_ASSERT(strstr(why, "vcpu 0: KVM_GET_REGS"));
	TEST_ASSERT(stat(path, &st) && errno == ENOENT);
	TEST_ASSERT(stat(tmp, &st) && errno == ENOENT);
	TEST_ASSERT_EQ(bytes, 0);
	TEST_ASSERT_EQ(rmdir(dir), 0);
}

/* One request to the control socket @sock: its reply must be @want. */
static void expect_reply(const char *sock, const char *line,
			 const char *want)
{
	char reply[1024];

	test_ctl_request(sock, line, reply, sizeof(reply));
	if (strcmp(reply, want))
		TEST_FAIL("%s: got %s want %s", line, reply, want);
}

/* No file of the directory's but those named: nothing was written. */
static void only_files(const char *dir, unsigned int n)
{
	char cmdl[256];

	snprintf(cmdl, sizeof(cmdl), "test $(ls -A %s | wc -l) = %u", dir, n);
	TEST_ASSERT_EQ(system(cmdl), 0);
}

static void socket_refusals(const struct fuzz_vm_opts *o)
{
	char dir[] = "/tmp/test_gmvm_snapshot.XXXXXX", sock[128], line[512];
	char want[1024], longname[160];
	int fd;

	TEST_ASSERT(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/ctl", dir);
	fuzz_vm_init(&a, o, true);
	a.cfg.control_path = sock;
	TEST_ASSERT_EQ(control_open(&a.vm), 0);
	control_start(&a.vm);

	expect_reply(sock, "{\"cmd\": \"snapshot\"}\n",
		     "{\"error\": \"snapshot: 'path' (a string) is required\"}\n");
	expect_reply(sock, "{\"cmd\": \"snapshot\", \"path\": \"\"}\n",
		     "{\"error\": \"snapshot: '' is not an absolute path; nothing was written\"}\n");
	expect_reply(sock, "{\"cmd\": \"snapshot\", \"path\": \"x.snap\"}\n",
		     "{\"error\": \"snapshot: 'x.snap' is not an absolute path; nothing was written\"}\n");
	snprintf(line, sizeof(line), "{\"cmd\": \"snapshot\", \"path\": \"%s\"}\n", dir);
	snprintf(want, sizeof(want), "{\"error\": \"snapshot: %s already exists; nothing was written\"}\n", dir);
	expect_reply(sock, line, want);
	/* A long name is cut at 40 bytes in the reply. */
	snprintf(longname, sizeof(longname), "%s/%s", dir,
		 "a-rather-long-snapshot-file-name-0123456789.snap");
	fd = open(longname, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	TEST_ASSERT(fd >= 0);
	close(fd);
	snprintf(line, sizeof(line), "{\"cmd\": \"snapshot\", \"path\": \"%s\", \"stop\": true}\n",
		 longname);
	snprintf(want, sizeof(want), "{\"error\": \"snapshot: %.40s... already exists; nothing was written\"}\n",
		 longname);
	expect_reply(sock, line, want);
	snprintf(line, sizeof(line), "{\"cmd\": \"snapshot\", \"path\": \"%s/vm.snap\"}\n", dir);
	expect_reply(sock, line, "{\"error\": \"snapshot: vcpu 0: KVM_GET_REGS: Bad file descriptor; nothing was written\"}\n");
	only_files(dir, 2);	/* the socket and the long-named file */
	/* Not paused afterwards, not stopped (stop was not reached). */
	TEST_ASSERT_EQ(__atomic_load_n(&a.vm.pause_req, __ATOMIC_ACQUIRE), 0);
	TEST_ASSERT(!vm_stopping(&a.vm));
	vm_quit(&a.vm);
	expect_reply(sock, line, "{\"error\": \"snapshot: the VM is stopping\"}\n");
	control_close(&a.vm);
	fuzz_vm_destroy(&a);
	unlink(longname);
	TEST_ASSERT_EQ(rmdir(dir), 0);
}

int main(void)
{
	struct fuzz_vm_opts o = { .ram_size = 16 * MiB };

	fuzz_quiet();
	dma_state(&o);
	save_refusals();
	fuzz_vm_destroy(&a);
	socket_refusals(&o);
	o.mode = GMEM_MODE_IN_PLACE;
	o.hole_start = 8 * MiB;
	o.hole = 2 * MiB;
	dma_state(&o);
	fuzz_vm_destroy(&a);
	printf("all passed\n");
	return T_EXIT_PASS;
}
