/* SPDX-License-Identifier: MIT */
/*
 * The guest image: a static ELF64 x86-64 executable (guest ABI section 1).
 */
#ifndef GMVM_LOADER_H
#define GMVM_LOADER_H

#include <stddef.h>
#include <stdint.h>

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
	const uint8_t *data;	/* the whole file, read-only mapping */
	size_t size;
	uint64_t entry;
	struct elf_segment *segs;	/* PT_LOAD with p_memsz > 0, by paddr */
	unsigned int nr_segs;
	uint64_t start;		/* lowest segment GPA */
	uint64_t end;		/* end of the highest segment */
};

struct vm;

/*
 * Open and validate @path for a guest of @ram_size bytes.  On failure,
 * prints one line naming the problem and returns -1.
 */
int elf_open(struct elf_image *img, const char *path, uint64_t ram_size);

/* Copy every segment into private guest memory (zero-filling p_memsz). */
int elf_load(struct vm *vm, const struct elf_image *img);

void elf_close(struct elf_image *img);

#endif /* GMVM_LOADER_H */
