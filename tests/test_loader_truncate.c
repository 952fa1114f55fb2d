/* SPDX-License-Identifier: MIT */
/*
 * The ELF loader against a file that changes under it (issue 10).
 *
 * gmvm validates the image at start-up and loads it much later; if it
 * kept a mapping of the file, a truncation in between would kill it with
 * SIGBUS and an in-place rewrite would change bytes it had validated.
 * The loader must work from its own copy:
 *
 *  1. deterministic: open a valid image, then truncate the file to nothing
 *     and rewrite it with other bytes; every segment of the opened image
 *     must still read exactly what was validated (no SIGBUS, no change);
 *  2. racing: a thread truncates the file to random lengths, grows it past
 *     its end and rewrites it, while the main thread opens it again and
 *     again; each open must either refuse the file (one line, -1) or give
 *     a consistent image: its segments lie inside its bytes, and
 *     validating a copy of those bytes again gives the same image.  (A
 *     read racing a rewrite may mix old and new pages, so an accepted
 *     image need not be the valid one: only what was checked must be what
 *     is loaded.)
 *
 * Needs no KVM: elf_open() does not touch guest memory.  Links
 * vmm/loader.o and vmm/layout.o (see the Makefile).
 */
#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"
#include "../vmm/layout.h"
#include "../vmm/loader.h"

#define PADDR 0x100000ULL
#define CODE_SIZE 8192	/* two pages: a truncation can cut the segment */

static uint8_t image[sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) + CODE_SIZE];
static char path[] = "/tmp/gmvm-loader-XXXXXX";
static int saved_stderr = -1;
static volatile uint64_t sink;	/* keeps the byte reads */
static struct ram_layout ram;	/* gmvm's default: flat, 256 MiB */

/* A valid image: one RWX PT_LOAD at 1 MiB with a .bss tail. */
static void build_image(void)
{
	Elf64_Ehdr *eh = (Elf64_Ehdr *)image;
	Elf64_Phdr *ph = (Elf64_Phdr *)(image + sizeof(*eh));
	size_t i, off = sizeof(*eh) + sizeof(*ph);

	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_entry = PADDR;
	eh->e_phoff = sizeof(*eh);
	eh->e_ehsize = sizeof(*eh);
	eh->e_phentsize = sizeof(*ph);
	eh->e_phnum = 1;
	ph->p_type = PT_LOAD;
	ph->p_flags = PF_R | PF_W | PF_X;
	ph->p_offset = off;
	ph->p_paddr = PADDR;
	ph->p_vaddr = PADDR;
	ph->p_filesz = CODE_SIZE;
	ph->p_memsz = CODE_SIZE + 3 * 4096;
	/* Non-zero bytes, so that a hole or a rewrite shows. */
	for (i = 0; i < CODE_SIZE; i++)
		image[off + i] = (uint8_t)(i * 7 + 1);
}

static void write_all(int fd, const void *buf, size_t len, off_t at)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, at);

		if (n < 0 && errno == EINTR)
			continue;
		TEST_ASSERT(n > 0);
		p += n;
		len -= (size_t)n;
		at += n;
	}
}

static void on_sigbus(int sig)
{
	static const char msg[] =
		"FAIL: SIGBUS: the loader read its image through a mapping of a file that was truncated\n";

	(void)sig;
	if (write(saved_stderr >= 0 ? saved_stderr : 2, msg,
		  sizeof(msg) - 1) < 0)
		_exit(T_EXIT_FAIL);
	_exit(T_EXIT_FAIL);
}

/* Every loaded byte of @img must be the valid image's. */
static void check_image(const struct elf_image *img)
{
	const struct elf_segment *s;
	uint64_t k, same = 0;

	TEST_ASSERT_EQ(img->size, sizeof(image));
	TEST_ASSERT(!memcmp(img->data, image, sizeof(image)));
	TEST_ASSERT_EQ(img->nr_segs, 1);
	s = &img->segs[0];
	TEST_ASSERT_EQ(s->paddr, PADDR);
	TEST_ASSERT_EQ(s->filesz, CODE_SIZE);
	/* What elf_load() copies into the guest, byte by byte. */
	for (k = 0; k < s->filesz; k++)
		same += img->data[s->offset + k] == image[s->offset + k];
	TEST_ASSERT_EQ(same, s->filesz);
}

/*
 * Whatever was accepted: segments inside the bytes, all of them readable,
 * and the same verdict from a second validation of a copy.
 */
static void check_consistent(const struct elf_image *img)
{
	struct elf_image again;
	uint8_t *copy;
	unsigned int i;
	uint64_t sum = 0;

	for (i = 0; i < img->nr_segs; i++) {
		const struct elf_segment *s = &img->segs[i];
		uint64_t k;

		TEST_ASSERT(s->offset <= img->size &&
			    s->filesz <= img->size - s->offset);
		for (k = 0; k < s->filesz; k++)
			sum += img->data[s->offset + k];
	}
	copy = malloc(img->size);
	TEST_ASSERT(copy);
	memcpy(copy, img->data, img->size);
	TEST_ASSERT_EQ(elf_open_buffer(&again, "copy", copy, img->size,
				       &ram), 0);
	TEST_ASSERT_EQ(again.entry, img->entry);
	TEST_ASSERT_EQ(again.nr_segs, img->nr_segs);
	TEST_ASSERT(!memcmp(again.segs, img->segs,
			    img->nr_segs * sizeof(*img->segs)));
	elf_close(&again);
	sink = sum;
}

static void deterministic(int fd)
{
	uint8_t junk[sizeof(image)];
	struct elf_image img;

	write_all(fd, image, sizeof(image), 0);
	TEST_ASSERT_EQ(elf_open(&img, path, &ram), 0);
	/* After validation: the file goes away, then comes back different. */
	TEST_ASSERT_EQ(ftruncate(fd, 0), 0);
	check_image(&img);
	memset(junk, 0xcc, sizeof(junk));
	write_all(fd, junk, sizeof(junk), 0);
	check_image(&img);
	elf_close(&img);
}

static atomic_int stop;

static void *churn(void *arg)
{
	int fd = *(int *)arg;
	uint64_t rng = 0x9e3779b97f4a7c15ULL;

	while (!atomic_load(&stop)) {
		uint64_t r = test_rand(&rng);
		off_t len = (off_t)(r % (sizeof(image) + 1));

		switch ((r >> 32) % 4) {
		case 0:		/* a prefix of the image */
			TEST_ASSERT_EQ(ftruncate(fd, len), 0);
			break;
		case 1:		/* longer: zeros after the image */
			TEST_ASSERT_EQ(ftruncate(fd, (off_t)sizeof(image) +
						 len), 0);
			break;
		case 2:		/* truncated, then written back whole */
			TEST_ASSERT_EQ(ftruncate(fd, len), 0);
			write_all(fd, image, sizeof(image), 0);
			break;
		default:	/* back to exactly the image */
			write_all(fd, image, sizeof(image), 0);
			TEST_ASSERT_EQ(ftruncate(fd, sizeof(image)), 0);
			break;
		}
	}
	return NULL;
}

static void racing(int fd)
{
	unsigned int i, ok = 0, refused = 0, iters = 20000;
	char log_path[] = "/tmp/gmvm-loader-log-XXXXXX";
	char first[256] = "";
	pthread_t t;
	FILE *log;
	int log_fd;

	/* Refusals print one line each: keep them out of the test log. */
	log_fd = mkstemp(log_path);
	TEST_ASSERT(log_fd >= 0);
	unlink(log_path);
	fflush(stderr);
	saved_stderr = dup(2);
	TEST_ASSERT(saved_stderr >= 0);
	TEST_ASSERT(dup2(log_fd, 2) == 2);

	TEST_ASSERT_EQ(pthread_create(&t, NULL, churn, &fd), 0);
	for (i = 0; i < iters; i++) {
		struct elf_image img;

		if (elf_open(&img, path, &ram)) {
			refused++;
			continue;
		}
		check_consistent(&img);
		elf_close(&img);
		ok++;
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);

	fflush(stderr);
	TEST_ASSERT(dup2(saved_stderr, 2) == 2);
	close(saved_stderr);
	saved_stderr = -1;
	log = fdopen(log_fd, "r");
	TEST_ASSERT(log);
	rewind(log);
	if (!fgets(first, sizeof(first), log))
		first[0] = '\0';
	fclose(log);
	printf("racing: %u opens accepted an image, %u refused the file%s%s",
	       ok, refused, first[0] ? "; e.g. " : "\n", first);
	/* Both outcomes must have happened for the race to mean anything. */
	TEST_ASSERT(ok > 0);
	TEST_ASSERT(refused > 0);
}

int main(void)
{
	struct sigaction sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigbus;
	sigaction(SIGBUS, &sa, NULL);
	TEST_ASSERT_EQ(ram_layout_compute(RAM_LAYOUT_FLAT, 256ULL << 20, &ram),
		       0);
	build_image();
	fd = mkstemp(path);
	TEST_ASSERT(fd >= 0);
	deterministic(fd);
	printf("deterministic: an opened image keeps its bytes after the file is truncated and rewritten\n");
	racing(fd);
	close(fd);
	unlink(path);
	printf("PASS\n");
	return T_EXIT_PASS;
}
