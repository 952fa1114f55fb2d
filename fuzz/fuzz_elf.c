/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the ELF loader (vmm/loader.c): the input is the image file.
 *
 * Each input is validated for guest RAM layouts (flat: the smallest gmvm
 * allows and the largest; pc, with its hole at [3G, 4G): 5 GiB and the
 * largest); whatever is accepted must satisfy everything
 * the rest of gmvm relies on (segments sorted, disjoint, each inside one
 * RAM range and above 1 MiB, file bytes inside the image, the entry in an
 * executable segment), and it is checked against two more layouts, those
 * of two real libgmem VMs of 256 MiB of RAM: one flat, one with a 64 MiB
 * hole at 128 MiB.  An image accepted for one of them is launched there
 * the way vm_launch() does it (boot_plan, elf_load, boot_write): every
 * segment must read back as its file bytes followed by zeros to the end
 * of its last file page, and the boot info must hold the region table
 * (guest ABI extension 4) of that VM's layout.
 */
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_vm.h"
#include "loader.h"

#define LOAD_RAM (256ULL << 20)

/* The launch VMs: flat, and with a hole (an image may land above it). */
static struct fuzz_vm fvm[2];
static uint8_t *readback;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct fuzz_vm_opts o = {
		.ram_size = LOAD_RAM,
		.mode = GMEM_MODE_DISCARD,
	};

	fuzz_quiet();	/* one line per refused image */
	fuzz_vm_init(&fvm[0], &o, false);
	o.hole_start = LOAD_RAM / 2;
	o.hole = LOAD_RAM / 4;
	fuzz_vm_init(&fvm[1], &o, false);
	readback = malloc(ELF_MAX_FILE_SIZE + SZ_4K);
	FUZZ_ASSERT(readback);
	return 0;
}

/* A segment inside one range of @ram: the loop is the model. */
static bool in_one_range(const struct ram_layout *ram, uint64_t gpa,
			 uint64_t len)
{
	unsigned int i;

	for (i = 0; i < ram->nr; i++)
		if (gpa >= ram->range[i].gpa &&
		    gpa - ram->range[i].gpa < ram->range[i].len)
			return len <= ram->range[i].len -
				      (gpa - ram->range[i].gpa);
	return false;
}

/* What vm.c, boot.c and elf_load() assume of an accepted image. */
static void check_image(const struct elf_image *img, size_t size,
			const struct ram_layout *ram)
{
	bool entry_ok = false;
	unsigned int i;

	FUZZ_ASSERT(img->nr_segs >= 1);
	FUZZ_ASSERT(img->size == size);
	FUZZ_ASSERT(img->start == img->segs[0].paddr);
	for (i = 0; i < img->nr_segs; i++) {
		const struct elf_segment *s = &img->segs[i];

		FUZZ_ASSERT(s->memsz > 0 && s->filesz <= s->memsz);
		FUZZ_ASSERT(s->paddr >= SZ_1M &&
			    in_one_range(ram, s->paddr, s->memsz));
		FUZZ_ASSERT(s->offset <= size && s->filesz <= size - s->offset);
		if (i)
			FUZZ_ASSERT(img->segs[i - 1].paddr +
				    img->segs[i - 1].memsz <= s->paddr);
		if ((s->flags & PF_X) && img->entry >= s->paddr &&
		    img->entry - s->paddr < s->memsz)
			entry_ok = true;
	}
	FUZZ_ASSERT(entry_ok);
	FUZZ_ASSERT(img->end == img->segs[img->nr_segs - 1].paddr +
				img->segs[img->nr_segs - 1].memsz);
}

static void check_loaded(struct vm *vm, const struct elf_image *img)
{
	struct gmem_vm *mem = vm->gmem;
	unsigned int i;

	for (i = 0; i < img->nr_segs; i++) {
		const struct elf_segment *s = &img->segs[i];
		uint64_t tail = s->paddr + s->filesz;
		uint64_t zlen = ALIGN_UP(tail, SZ_4K) - tail, k;

		if (zlen > s->memsz - s->filesz)
			zlen = s->memsz - s->filesz;
		FUZZ_ASSERT(s->filesz + zlen <= ELF_MAX_FILE_SIZE + SZ_4K);
		if (s->filesz + zlen && gmem_access(mem, s->paddr, readback,
						    s->filesz + zlen, false,
						    GMEM_PRIVATE))
			fuzz_fail("segment %u: cannot read it back", s->index);
		if (memcmp(readback, img->data + s->offset, s->filesz))
			fuzz_fail("segment %u: guest bytes differ from the file",
				  s->index);
		for (k = 0; k < zlen; k++)
			if (readback[s->filesz + k])
				fuzz_fail("segment %u: byte %#llx past p_filesz is not zero",
					  s->index,
					  (unsigned long long)(tail + k));
	}
}

/* The boot info as the guest reads it: version 1, then extension 4. */
static void check_boot_info(struct vm *vm)
{
	struct gm_region table[RAM_MAX_RANGES];
	struct gm_boot_info_ext bi;
	uint64_t page = vm->boot.boot_info;
	unsigned int i;

	FUZZ_ASSERT(!gmem_access(vm->gmem, page, &bi, sizeof(bi), false,
				 GMEM_PRIVATE));
	FUZZ_ASSERT(bi.v1.magic == GM_BOOT_MAGIC &&
		    bi.v1.version == GM_BOOT_VERSION);
	FUZZ_ASSERT(bi.v1.ram_size == vm->ram.top);
	FUZZ_ASSERT(bi.v1.free_start == vm->boot.free_start &&
		    bi.v1.shared_base == vm->shared_base);
	FUZZ_ASSERT(bi.v1.flags & GM_BOOT_F_REGIONS);
	FUZZ_ASSERT(bi.regions.nr_regions == vm->ram.nr &&
		    !bi.regions.reserved);
	/* In the boot info's own page, after the boot info. */
	FUZZ_ASSERT(bi.regions.regions >= page + sizeof(bi) &&
		    bi.regions.regions + vm->ram.nr * sizeof(table[0]) <=
		    page + SZ_4K);
	FUZZ_ASSERT(!gmem_access(vm->gmem, bi.regions.regions, table,
				 vm->ram.nr * sizeof(table[0]), false,
				 GMEM_PRIVATE));
	for (i = 0; i < vm->ram.nr; i++)
		if (table[i].gpa != vm->ram.range[i].gpa ||
		    table[i].size != vm->ram.range[i].len)
			fuzz_fail("region table entry %u [%#llx, +%#llx), the layout says [%#llx, +%#llx)",
				  i, (unsigned long long)table[i].gpa,
				  (unsigned long long)table[i].size,
				  (unsigned long long)vm->ram.range[i].gpa,
				  (unsigned long long)vm->ram.range[i].len);
}

/* Load into @f as vm_launch() does; the image was accepted for its RAM. */
static void launch(struct fuzz_vm *f, const struct elf_image *img,
		   const uint8_t *data, size_t size)
{
	struct vm *vm = &f->vm;
	char cmdline[64];
	unsigned int i;
	size_t n;
	int64_t r;

	/* A command line from the last bytes, to vary the boot area. */
	n = size < sizeof(cmdline) - 1 ? size : sizeof(cmdline) - 1;
	n = n ? data[size - 1] % n : 0;
	memcpy(cmdline, data, n);
	cmdline[n] = '\0';

	memset(&vm->boot, 0, sizeof(vm->boot));
	vm->boot.image_start = img->start;
	vm->boot.image_end = img->end;
	vm->boot.entry = img->entry;
	if (boot_plan(vm, n ? cmdline : NULL))
		return;		/* -ENOSPC: gmvm's area does not fit */
	FUZZ_ASSERT(vm->boot.free_start <= vm->ram.top);
	FUZZ_ASSERT(!elf_load(vm, img));
	FUZZ_ASSERT(!boot_write(vm, n ? cmdline : NULL));
	check_loaded(vm, img);
	check_boot_info(vm);
	/* A fresh guest for the next input: discard everything. */
	for (i = 0; i < vm->ram.nr; i++) {
		r = gmem_convert(vm->gmem, vm->ram.range[i].gpa,
				 vm->ram.range[i].len, GMEM_SHARED);
		FUZZ_ASSERT(r >= 0);
		r = gmem_convert(vm->gmem, vm->ram.range[i].gpa,
				 vm->ram.range[i].len, GMEM_PRIVATE);
		FUZZ_ASSERT(r >= 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct {
		enum ram_layout_kind kind;
		uint64_t size;
	} rams[] = {
		{ RAM_LAYOUT_FLAT, GMVM_MIN_RAM },
		{ RAM_LAYOUT_FLAT, GMVM_MAX_RAM },
		{ RAM_LAYOUT_PC, 5 * SZ_1G },
		{ RAM_LAYOUT_PC, GMVM_MAX_RAM },
	};
	unsigned int i, nr = ARRAY_SIZE(rams) + ARRAY_SIZE(fvm);
	struct ram_layout computed;

	if (size > ELF_MAX_FILE_SIZE)
		return -1;	/* elf_open() refuses it before reading */
	for (i = 0; i < nr; i++) {
		/* The launch VMs' layouts come first. */
		struct fuzz_vm *f = i < ARRAY_SIZE(fvm) ? &fvm[i] : NULL;
		const struct ram_layout *ram = f ? &f->vm.ram : &computed;
		struct elf_image img;
		uint8_t *copy = malloc(size ? size : 1);

		FUZZ_ASSERT(copy);
		if (!f)
			FUZZ_ASSERT(!ram_layout_compute(
				rams[i - ARRAY_SIZE(fvm)].kind,
				rams[i - ARRAY_SIZE(fvm)].size, &computed));
		memcpy(copy, data, size);
		/* The image owns copy now, accepted or not. */
		if (elf_open_buffer(&img, "fuzz.elf", copy, size, ram))
			continue;
		check_image(&img, size, ram);
		if (f)
			launch(f, &img, data, size);
		elf_close(&img);
	}
	return 0;
}
