/* SPDX-License-Identifier: MIT */
/*
 * The guest image: a static ELF64 x86-64 executable (guest ABI section 1).
 *
 * The file is read once into private memory and only that copy is
 * validated and loaded, so a file that is truncated or rewritten while
 * gmvm runs can change nothing that was checked (and cannot SIGBUS gmvm,
 * as a mapping of it could).
 */
#ifndef GMVM_LOADER_H
#define GMVM_LOADER_H

#include <stddef.h>
#include <stdint.h>

/*
 * Largest image file gmvm reads.  Guest programs are kilobytes; the bound
 * keeps a wrong path (a disk image, /dev/zero's cousins) from filling
 * gmvm's memory before it is refused.
 */
#define ELF_MAX_FILE_SIZE (64ULL << 20)

struct elf_segment {
	uint64_t paddr;
	uint64_t memsz;
	uint64_t filesz;
	uint64_t offset;
	uint32_t flags;		/* PF_X, PF_W, PF_R */
	unsigned int index;	/* program header index, for messages */
};

struct elf_image {
	const char *path;
	const uint8_t *data;	/* the whole file, gmvm's own copy */
	size_t size;
	uint64_t entry;
	struct elf_segment *segs;	/* PT_LOAD with p_memsz > 0, by paddr */
	unsigned int nr_segs;
	uint64_t start;		/* lowest segment GPA */
	uint64_t end;		/* end of the highest segment */
};

struct ram_layout;
struct vm;

/*
 * Read @path (at most ELF_MAX_FILE_SIZE bytes) and validate it for a guest
 * whose RAM is @ram: every segment above 1 MiB and inside one RAM range.
 * On failure, prints one line naming the problem and returns -1.
 */
int elf_open(struct elf_image *img, const char *path,
	     const struct ram_layout *ram);

/*
 * Validate the image in @data (@size bytes, from malloc; the image owns it
 * from now on, even on failure).  @name names it in messages.  elf_open()
 * uses it after reading the file; the fuzzer calls it directly.
 */
int elf_open_buffer(struct elf_image *img, const char *name, uint8_t *data,
		    size_t size, const struct ram_layout *ram);

/* Copy every segment into private guest memory (zero-filling p_memsz). */
int elf_load(struct vm *vm, const struct elf_image *img);

void elf_close(struct elf_image *img);

#endif /* GMVM_LOADER_H */
