/* SPDX-License-Identifier: MIT */
/*
 * Runtime state and the small services every guest uses: boot info, exit,
 * assertion failures, command-line arguments, the test-area allocator.
 */
#include "guest.h"

void __guest_runtime_init(const struct gm_boot_info *bi);

const struct gm_boot_info *gm_boot;
uint64_t gm_ram_size;
uint64_t gm_shared_base;
uint64_t gm_free_start;
uint32_t gm_nr_vcpus;
uint32_t gm_flags;

static uint64_t alloc_next;

/*
 * Called by crt0 on vCPU 0 after .bss is zeroed and before any vCPU runs
 * guest_main().  Copies what the helpers need out of the boot info so that
 * a guest that scribbles on it (it is ordinary private memory) cannot break
 * them.
 */
void __guest_runtime_init(const struct gm_boot_info *bi)
{
	if (bi->magic != GM_BOOT_MAGIC || bi->version != GM_BOOT_VERSION) {
		printf("guest: bad boot info at %p: magic 0x%x version %u\n",
		       (const void *)bi, bi->magic, bi->version);
		gexit(1);
	}
	gm_boot = bi;
	gm_ram_size = bi->ram_size;
	gm_shared_base = bi->shared_base;
	gm_free_start = bi->free_start;
	gm_nr_vcpus = bi->nr_vcpus;
	gm_flags = bi->flags;
	__guest_regions_init(bi);
	alloc_next = test_area_start();
}

void gexit(int status)
{
	outl(GM_PORT_EXIT, (uint32_t)status);
	/* The exit port stops every vCPU; never go on if it did not. */
	for (;;)
		asm volatile("cli; hlt" : : : "memory");
}

void guest_fail(const char *file, int line, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("GUEST_ASSERT failed: %s:%d: %s\n", file, line, msg);
	gexit(1);
}

/* ---- command line ------------------------------------------------------ */

const char *cmdline(void)
{
	if (!gm_boot || !gm_boot->cmdline)
		return "";
	return gpa_private(gm_boot->cmdline);
}

/*
 * Find the word that is @key or starts with "@key=".  Returns a pointer to
 * the character after the key ('=' or end of word), NULL if absent.
 */
static const char *arg_find(const char *key)
{
	const char *p = cmdline();
	size_t klen = strlen(key);

	while (*p) {
		const char *w;

		while (*p == ' ')
			p++;
		w = p;
		while (*p && *p != ' ')
			p++;
		if ((size_t)(p - w) >= klen && !strncmp(w, key, klen) &&
		    (w[klen] == '=' || w + klen == p))
			return w + klen;
	}
	return NULL;
}

bool arg_present(const char *word)
{
	return arg_find(word) != NULL;
}

uint64_t arg_u64(const char *key, uint64_t def)
{
	const char *v = arg_find(key);
	char *end;
	uint64_t n;

	if (!v || *v != '=')
		return def;
	n = strtoull(v + 1, &end, 0);
	if (end == v + 1 || (*end && *end != ' ')) {
		printf("guest: bad number in argument %s%.20s\n", key, v);
		gexit(1);
	}
	return n;
}

bool arg_is(const char *key, const char *value)
{
	const char *v = arg_find(key);
	size_t n = strlen(value);

	return v && *v == '=' && !strncmp(v + 1, value, n) &&
	       (v[1 + n] == '\0' || v[1 + n] == ' ');
}

/* ---- PRNG --------------------------------------------------------------- */

void rng_seed(struct rng *r, uint64_t seed)
{
	/* One splitmix64 step: similar seeds give unrelated streams, and
	 * the state is never 0 (xorshift's fixed point). */
	uint64_t z = seed + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	r->state = z ? z : 0x9e3779b97f4a7c15ULL;
}

/* ---- test area ---------------------------------------------------------- */

void test_area_require(uint64_t size)
{
	GUEST_ASSERT_MSG(test_area_size() >= size,
			 "test area [0x%llx, 0x%llx) smaller than 0x%llx bytes;"
			 " run with a larger --memory",
			 (unsigned long long)test_area_start(),
			 (unsigned long long)test_area_end(),
			 (unsigned long long)size);
}

uint64_t test_alloc(uint64_t size, uint64_t align)
{
	uint64_t old = __atomic_load_n(&alloc_next, __ATOMIC_RELAXED);
	uint64_t start, end;

	do {
		start = ALIGN_UP(old, align);
		end = start + size;
		GUEST_ASSERT_MSG(end >= start && end <= test_area_end(),
				 "test area exhausted: want 0x%llx bytes at "
				 "0x%llx, it ends at 0x%llx",
				 (unsigned long long)size,
				 (unsigned long long)start,
				 (unsigned long long)test_area_end());
	} while (!__atomic_compare_exchange_n(&alloc_next, &old, end, false,
					      __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return start;
}

/* ---- conversions --------------------------------------------------------- */

void must_to_private(uint64_t gpa, uint64_t size)
{
	long r = to_private(gpa, size >> PAGE_SHIFT);

	GUEST_ASSERT_MSG(r == 0, "to_private(0x%llx, %llu pages) = %ld",
			 (unsigned long long)gpa,
			 (unsigned long long)(size >> PAGE_SHIFT), r);
}

void must_to_shared(uint64_t gpa, uint64_t size)
{
	long r = to_shared(gpa, size >> PAGE_SHIFT);

	GUEST_ASSERT_MSG(r == 0, "to_shared(0x%llx, %llu pages) = %ld",
			 (unsigned long long)gpa,
			 (unsigned long long)(size >> PAGE_SHIFT), r);
}
