/* SPDX-License-Identifier: MIT */
/*
 * ELF loader (guest ABI section 1).
 *
 * The file is read once into memory of gmvm's own (at most
 * ELF_MAX_FILE_SIZE bytes), and every field of that copy is checked before
 * it is used: an image is untrusted input, and a bad one must end in one
 * line naming the problem (status 125), never in a crash or a half-loaded
 * guest.  All arithmetic on header fields is overflow-checked.
 *
 * Why a copy and not a mapping: the file is validated at start-up and
 * loaded after KVM and guest memory are set up, and a file that shrinks in
 * between (a rebuild, a truncation) turns every access past its new end
 * into SIGBUS, and one rewritten in place changes bytes that were already
 * validated (a MAP_PRIVATE page reflects the file until it is written).
 * A private copy is exactly what was checked, whatever happens to the
 * file.  A file changing while it is read gives some mix of old and new
 * bytes, which is then validated like any other image.
 *
 * Zero fill: guest RAM is fresh when the image is loaded (gmem_create made
 * new backings, and a launch-time conversion of --init-shared discards or
 * keeps never-written, i.e. zero, content), so whole pages past p_filesz
 * already read as zero.  The loader writes zeros only from p_filesz to the
 * end of that page (which another segment's bytes may share), so a large
 * .bss costs no memory until the guest touches it.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gmvm.h"
#include "loader.h"

static int elf_fail(const struct elf_image *img, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int elf_fail(const struct elf_image *img, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	gmvm_verr(img->path, fmt, ap);
	va_end(ap);
	return -1;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct elf_segment *x = a, *y = b;

	return x->paddr < y->paddr ? -1 : x->paddr > y->paddr;
}

static const char *elf_type_name(unsigned int type)
{
	switch (type) {
	case ET_NONE: return "ET_NONE";
	case ET_REL: return "ET_REL, an object file";
	case ET_EXEC: return "ET_EXEC";
	case ET_DYN: return "ET_DYN, a shared object or PIE";
	case ET_CORE: return "ET_CORE, a core dump";
	default: return "unknown";
	}
}

static int elf_check_header(struct elf_image *img, const Elf64_Ehdr *eh)
{
	/* elf_open() refused files shorter than the magic. */
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG))
		return elf_fail(img, "not an ELF file (bad magic)");
	if (img->size <= EI_DATA)
		return elf_fail(img, "truncated: %zu bytes, the ELF header needs %zu",
				img->size, sizeof(*eh));
	if (eh->e_ident[EI_CLASS] != ELFCLASS64)
		return elf_fail(img, "not a 64-bit ELF file (EI_CLASS %u%s)",
				eh->e_ident[EI_CLASS],
				eh->e_ident[EI_CLASS] == ELFCLASS32 ?
				", ELF32" : "");
	if (eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return elf_fail(img, "not a little-endian ELF file (EI_DATA %u)",
				eh->e_ident[EI_DATA]);
	if (img->size < sizeof(*eh))
		return elf_fail(img, "truncated: %zu bytes, the ELF header needs %zu",
				img->size, sizeof(*eh));
	if (eh->e_ident[EI_VERSION] != EV_CURRENT ||
	    eh->e_version != EV_CURRENT)
		return elf_fail(img, "unknown ELF version %u", eh->e_version);
	if (eh->e_machine != EM_X86_64)
		return elf_fail(img, "machine %u is not x86-64 (EM_X86_64 = %u)",
				eh->e_machine, EM_X86_64);
	if (eh->e_type != ET_EXEC)
		return elf_fail(img, "not an executable: type %u (%s), need ET_EXEC (static, non-PIE)",
				eh->e_type, elf_type_name(eh->e_type));
	if (eh->e_ehsize < sizeof(*eh))
		return elf_fail(img, "bad ELF header size %u", eh->e_ehsize);
	if (eh->e_phnum == 0)
		return elf_fail(img, "no program headers, so no PT_LOAD segment");
	if (eh->e_phnum == PN_XNUM)
		return elf_fail(img, "too many program headers (extended numbering is not supported)");
	if (eh->e_phentsize != sizeof(Elf64_Phdr))
		return elf_fail(img, "program header entry size %u, expected %zu",
				eh->e_phentsize, sizeof(Elf64_Phdr));
	/* e_phnum < 0xffff and entries are 56 bytes: no overflow. */
	if (eh->e_phoff > img->size ||
	    img->size - eh->e_phoff < (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr))
		return elf_fail(img, "truncated: program headers at offset %llu (%u x %zu bytes) end past the end of the file (%zu bytes)",
				(unsigned long long)eh->e_phoff, eh->e_phnum,
				sizeof(Elf64_Phdr), img->size);
	return 0;
}

/* Guest RAM as a segment may use it: "[1 MiB, 0xc0000000) [...]". */
static void ram_text(const struct ram_layout *ram, char *buf, size_t len)
{
	size_t off = 0;
	unsigned int i;

	for (i = 0; i < ram->nr && off < len; i++) {
		const struct ram_range *r = &ram->range[i];

		if (r->gpa + r->len <= SZ_1M)
			continue;
		if (r->gpa < SZ_1M)
			off += (size_t)snprintf(buf + off, len - off,
						"%s[1 MiB, %#llx)",
						off ? " " : "",
						(unsigned long long)(r->gpa +
								     r->len));
		else
			off += (size_t)snprintf(buf + off, len - off,
						"%s[%#llx, %#llx)",
						off ? " " : "",
						(unsigned long long)r->gpa,
						(unsigned long long)(r->gpa +
								     r->len));
	}
}

static int elf_check_segments(struct elf_image *img, const Elf64_Ehdr *eh,
			      const struct ram_layout *ram)
{
	char ram_buf[128];

	unsigned int i, n = 0;
	bool entry_ok = false;

	img->segs = calloc(eh->e_phnum, sizeof(*img->segs));
	if (!img->segs)
		return elf_fail(img, "out of memory");
	for (i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		struct elf_segment *s;

		memcpy(&ph, img->data + eh->e_phoff + i * sizeof(ph),
		       sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		if (ph.p_filesz > ph.p_memsz)
			return elf_fail(img, "segment %u: p_filesz %#llx is larger than p_memsz %#llx",
					i, (unsigned long long)ph.p_filesz,
					(unsigned long long)ph.p_memsz);
		if (ph.p_offset > img->size ||
		    img->size - ph.p_offset < ph.p_filesz)
			return elf_fail(img, "truncated: segment %u's %llu bytes at file offset %llu end past the end of the file (%zu bytes)",
					i, (unsigned long long)ph.p_filesz,
					(unsigned long long)ph.p_offset,
					img->size);
		if (ph.p_memsz == 0)
			continue;	/* occupies nothing */
		/* In one RAM range: a segment across a hole is not in RAM. */
		if (ph.p_paddr < SZ_1M ||
		    !ram_layout_contains(ram, ph.p_paddr, ph.p_memsz)) {
			ram_text(ram, ram_buf, sizeof(ram_buf));
			return elf_fail(img, "segment %u [%#llx, %#llx) is outside guest RAM %s",
					i, (unsigned long long)ph.p_paddr,
					(unsigned long long)(ph.p_paddr +
							     ph.p_memsz),
					ram_buf);
		}
		s = &img->segs[n++];
		s->paddr = ph.p_paddr;
		s->memsz = ph.p_memsz;
		s->filesz = ph.p_filesz;
		s->offset = ph.p_offset;
		s->flags = ph.p_flags;
		s->index = i;
		/*
		 * Paging is an identity map, so the code runs at its
		 * physical address: the entry must be inside an executable
		 * segment as loaded (p_paddr), whatever p_vaddr says.
		 */
		if ((ph.p_flags & PF_X) && eh->e_entry >= ph.p_paddr &&
		    eh->e_entry - ph.p_paddr < ph.p_memsz)
			entry_ok = true;
	}
	if (n == 0)
		return elf_fail(img, "no PT_LOAD segment with contents");
	qsort(img->segs, n, sizeof(*img->segs), seg_cmp);
	for (i = 1; i < n; i++) {
		const struct elf_segment *a = &img->segs[i - 1];
		const struct elf_segment *b = &img->segs[i];

		if (b->paddr < a->paddr + a->memsz)
			return elf_fail(img, "segments %u [%#llx, %#llx) and %u [%#llx, %#llx) overlap",
					a->index, (unsigned long long)a->paddr,
					(unsigned long long)(a->paddr + a->memsz),
					b->index, (unsigned long long)b->paddr,
					(unsigned long long)(b->paddr + b->memsz));
	}
	if (!entry_ok)
		return elf_fail(img, "entry point %#llx is not inside an executable PT_LOAD segment",
				(unsigned long long)eh->e_entry);
	img->nr_segs = n;
	img->entry = eh->e_entry;
	img->start = img->segs[0].paddr;
	img->end = img->segs[n - 1].paddr + img->segs[n - 1].memsz;
	return 0;
}

int elf_open_buffer(struct elf_image *img, const char *name, uint8_t *data,
		    size_t size, const struct ram_layout *ram)
{
	Elf64_Ehdr eh;

	memset(img, 0, sizeof(*img));
	img->path = name;
	img->data = data;
	img->size = size;
	/* elf_check_header() reads the magic before it looks at the size. */
	if (size < SELFMAG) {
		elf_fail(img, "not an ELF file (only %zu bytes)", size);
		goto err;
	}
	memset(&eh, 0, sizeof(eh));
	memcpy(&eh, data, size < sizeof(eh) ? size : sizeof(eh));
	if (elf_check_header(img, &eh) ||
	    elf_check_segments(img, &eh, ram))
		goto err;
	return 0;

err:
	elf_close(img);
	return -1;
}

/*
 * Read all of @fd, up to ELF_MAX_FILE_SIZE bytes, into *@out.  @hint is
 * the size fstat saw; the file may have changed since, so read to EOF.
 */
static int read_file(struct elf_image *img, int fd, size_t hint,
		     uint8_t **out, size_t *out_size)
{
	/* One spare byte: a file that did not change ends without a grow. */
	size_t cap = hint + 1, have = 0;
	uint8_t *buf = malloc(cap), *p;
	ssize_t n;

	if (!buf)
		return elf_fail(img, "out of memory for a %zu-byte image", hint);
	for (;;) {
		if (have == cap) {
			/* It grew since fstat. */
			if (cap > ELF_MAX_FILE_SIZE) {
				free(buf);
				return elf_fail(img, "too large: more than %llu MiB, the limit for a guest image",
						ELF_MAX_FILE_SIZE >> 20);
			}
			cap = cap > ELF_MAX_FILE_SIZE / 2 ?
			      ELF_MAX_FILE_SIZE + 1 : cap * 2;
			p = realloc(buf, cap);
			if (!p) {
				free(buf);
				return elf_fail(img, "out of memory for a %zu-byte image",
						cap);
			}
			buf = p;
		}
		n = read(fd, buf + have, cap - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return elf_fail(img, "cannot read: %s", strerror(errno));
		}
		if (n == 0)
			break;
		have += (size_t)n;
	}
	*out = buf;
	*out_size = have;
	return 0;
}

int elf_open(struct elf_image *img, const char *path,
	     const struct ram_layout *ram)
{
	struct stat st;
	uint8_t *data = NULL;
	size_t size = 0;
	int fd, ret;

	memset(img, 0, sizeof(*img));
	img->path = path;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return elf_fail(img, "cannot open: %s", strerror(errno));
	if (fstat(fd, &st)) {
		ret = elf_fail(img, "cannot stat: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = elf_fail(img, "not a regular file");
		goto out;
	}
	if ((uint64_t)st.st_size > ELF_MAX_FILE_SIZE) {
		ret = elf_fail(img, "too large: %lld bytes, the limit for a guest image is %llu MiB",
			       (long long)st.st_size,
			       ELF_MAX_FILE_SIZE >> 20);
		goto out;
	}
	ret = read_file(img, fd, (size_t)st.st_size, &data, &size);
	if (!ret)
		ret = elf_open_buffer(img, path, data, size, ram);
out:
	close(fd);
	return ret;
}

int elf_load(struct vm *vm, const struct elf_image *img)
{
	static uint8_t zeros[SZ_4K];
	unsigned int i;
	int ret;

	for (i = 0; i < img->nr_segs; i++) {
		const struct elf_segment *s = &img->segs[i];
		uint64_t tail = s->paddr + s->filesz;
		uint64_t zlen;

		if (s->filesz) {
			ret = gmem_access(vm->gmem, s->paddr,
					  (void *)(img->data + s->offset),
					  s->filesz, true, GMEM_PRIVATE);
			if (ret < 0) {
				elf_fail(img, "loading segment %u at %#llx: %s",
					 s->index, (unsigned long long)s->paddr,
					 strerror(-ret));
				return ret;
			}
		}
		zlen = ALIGN_UP(tail, SZ_4K) - tail;
		if (zlen > s->memsz - s->filesz)
			zlen = s->memsz - s->filesz;
		if (zlen) {
			ret = gmem_access(vm->gmem, tail, zeros, zlen, true,
					  GMEM_PRIVATE);
			if (ret < 0) {
				elf_fail(img, "zero-filling segment %u at %#llx: %s",
					 s->index, (unsigned long long)tail,
					 strerror(-ret));
				return ret;
			}
		}
	}
	return 0;
}

void elf_close(struct elf_image *img)
{
	free((void *)img->data);
	free(img->segs);
	img->data = NULL;
	img->segs = NULL;
}
